"""Which frames of a tracklet form a clip (HITSZ-VCM authors' rule).

For ``seq_len`` S frames from a tracklet of n: c = ceil(n / S); the index list
0..n-1 is padded with the last frame to c*S and cut into S consecutive chunks
of c. Test clips take the first index of each chunk (deterministic); training
clips take one random index per chunk. n < S gives c = 1, i.e. every frame
followed by copies of the last one.
"""
import math

import numpy as np


def sample_frame_indices(num_frames, seq_len, train=False, rng=None):
    if num_frames < 1 or seq_len < 1:
        raise ValueError('need num_frames >= 1 and seq_len >= 1, got {} and {}'.format(
            num_frames, seq_len))
    c = math.ceil(num_frames / seq_len)
    padded = np.minimum(np.arange(c * seq_len), num_frames - 1)
    chunks = padded.reshape(seq_len, c)
    if not train:
        return chunks[:, 0].copy()
    rng = np.random if rng is None else rng
    return chunks[np.arange(seq_len), rng.randint(0, c, size=seq_len)]
