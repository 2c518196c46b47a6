"""RegDB family: the loader (``dataset.py``; the trial is torchreid's ``data.split_id``, no
section of its own) and its synthetic writer (``synthetic.py``)."""
from .dataset import RegDB, RegDBThermalToVisible
from .synthetic import make_regdb

__all__ = ['RegDB', 'RegDBThermalToVisible', 'make_regdb']
