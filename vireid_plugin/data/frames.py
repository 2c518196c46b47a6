"""Which frames of a tracklet form a clip: the dataset authors' rules.

``'chunk'`` (HITSZ-VCM authors, MITML; M3-ReID uses it on BUPTCampus too): for
``seq_len`` S frames from a tracklet of n, c = ceil(n / S); the index list
0..n-1 is padded with the last frame to c*S and cut into S consecutive chunks
of c. Test clips take the first index of each chunk (deterministic); training
clips take one random index per chunk. n < S gives c = 1, i.e. every frame
followed by copies of the last one.

``'uniform'`` (BUPTCampus authors, AuxNet ``dataloader.py``): test clips take
``np.linspace(0, n, S, endpoint=False)`` rounded down; training clips are S
distinct random frames in temporal order (repeats only when n < S).
"""
import math

import numpy as np

FRAME_RULES = ('chunk', 'uniform')


def sample_frame_indices(num_frames, seq_len, train=False, rng=None, rule='chunk'):
    """Indices (int64 array of length ``seq_len``) of the frames of one clip.

    ``rng``: a ``np.random.RandomState`` for training draws (default: numpy's
    global state, which torch's DataLoader seeds per worker).
    """
    if num_frames < 1 or seq_len < 1:
        raise ValueError('need num_frames >= 1 and seq_len >= 1, got {} and {}'.format(
            num_frames, seq_len))
    if rule not in FRAME_RULES:
        raise ValueError('unknown frame rule {!r}; known: {}'.format(rule, FRAME_RULES))
    rng = np.random if rng is None else rng
    if rule == 'uniform':
        if not train:
            return np.linspace(0, num_frames, seq_len, endpoint=False).astype(np.int64)
        draw = rng.choice(num_frames, size=seq_len, replace=num_frames < seq_len)
        return np.sort(draw).astype(np.int64)
    c = math.ceil(num_frames / seq_len)
    padded = np.minimum(np.arange(c * seq_len), num_frames - 1)
    chunks = padded.reshape(seq_len, c)
    if not train:
        return chunks[:, 0].copy()
    return chunks[np.arange(seq_len), rng.randint(0, c, size=seq_len)]
