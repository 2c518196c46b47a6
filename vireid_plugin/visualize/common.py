"""What every figure shares: matplotlib without a display, a fixed DPI, image thumbnails.

matplotlib is imported by the first figure drawn, not by importing this module: a
process that imports the package should not load (or switch) a plotting backend it
never uses.
"""
import os

import numpy as np

from ..data.io import ImageReadError, read_image

__all__ = ['DPI', 'pyplot', 'new_figure', 'save_png', 'thumbnail', 'first_frame']

#: every figure is drawn at this DPI and saved without tight cropping, so a figure of
#: (w, h) inches is a PNG of exactly (w * DPI, h * DPI) pixels
DPI = 100


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files and TensorBoard only: no display)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def new_figure(width, height, rows=1, cols=1, **kwargs):
    """A figure of ``width`` x ``height`` inches with a grid of axes (always 2-D)."""
    fig, axes = pyplot().subplots(rows, cols, figsize=(width, height), dpi=DPI,
                                  squeeze=False, **kwargs)
    return fig, axes


def save_png(fig, path):
    """Write ``fig`` to ``path`` (PNG, through the one atomic writer: a link planted at
    ``path`` is replaced, never written through) and return the path; the figure stays
    open."""
    from ..checkpoint_io import atomic_write   # imports torch: not at module import
    return atomic_write(path, lambda f: fig.savefig(f, dpi=DPI, format='png'))


def first_frame(path):
    """A video item's path is a tuple of frame paths: its first frame stands for it."""
    return path[0] if isinstance(path, (tuple, list)) else path


def thumbnail(path, size):
    """(H, W, 3) uint8 of the image at ``path`` resized to ``size`` = (height, width)."""
    path = first_frame(path)
    if not os.path.isfile(path):
        raise ImageReadError('image {} of the saved pool is missing: figures read the test '
                             'images where the run found them (data.root)'.format(path),
                             path=path)
    img = read_image(path).resize((size[1], size[0]))
    return np.asarray(img)
