"""Figures of a finished run: ranked lists, CMC curves, t-SNE, attention maps.

``scripts/visualize.py RUN_DIR`` calls :func:`visualize_run`. One module per figure
kind (``ranked``, ``cmc``, ``tsne``, ``attention``, ``prompts``), ``run`` puts them
together. Importing this package is light (matplotlib and scikit-learn load with the
modules that draw).
"""
FIGURES_DIR = 'figures'       # PNGs go to <run_dir>/figures/

__all__ = ['FIGURES_DIR', 'visualize_run']


def visualize_run(*args, **kwargs):
    """See :func:`vireid_plugin.visualize.run.visualize_run`."""
    from .run import visualize_run as run
    return run(*args, **kwargs)
