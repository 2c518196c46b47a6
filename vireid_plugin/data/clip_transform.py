"""One augmentation draw per clip: every frame of a tracklet gets the same random
flip, crop, erasing, ... (torchreid's transforms draw afresh for each frame).

The transforms draw from Python's ``random``, NumPy's and torch's global
generators (torchreid's own transforms use ``random``, torchvision's use torch).
``transform_clip`` records all three states before the first frame and restores
them before every other frame, so whatever a transform pipeline draws for the
first frame it draws again for the rest; afterwards the generators stand where one
draw left them. Frames of a tracklet are resized to one size first by every
pipeline, so the draws (which may depend on the image size) coincide.
"""
import random

import numpy as np
import torch

__all__ = ['transform_clip']


def transform_clip(transform, frames):
    """[transform(f) for f in frames] with one random draw shared by all frames."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    out = []
    for i, frame in enumerate(frames):
        if i:
            random.setstate(state[0])
            np.random.set_state(state[1])
            torch.set_rng_state(state[2])
        out.append(transform(frame))
    return out
