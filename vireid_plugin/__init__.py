"""vireid_plugin: visible-infrared person re-identification as a torchreid task.

``import vireid_plugin`` registers the plugin's datasets into torchreid's dataset
registries and its model builders into torchreid's model factory, so torchreid's
data managers and ``build_model`` accept them; a dataset or model registered later (a
module of one's own, imported after the package) reaches torchreid as it registers.
Importing twice or reloading is harmless: entries are replaced, never duplicated.
"""
from . import compat  # noqa: F401
from .registry import IMAGE_DATASETS, LOSSES, MODELS, VIDEO_DATASETS  # noqa: F401
from . import data, losses, models, optim  # noqa: F401  (importing fills the registries)
from . import plugins
from .engine.evaluation import evaluate_for_torchreid_engine  # noqa: F401
from .plugins import register_all   # defined beside the imports it follows

__version__ = '0.1.0'

plugins.load_entry_points()   # datasets of installed distributions (plugins.py)
register_all()
# what registers from now on (a module of one's own, imported by plain torchreid code)
# reaches torchreid's registries at once, without a call
IMAGE_DATASETS.on_register(compat.register_image_dataset)
VIDEO_DATASETS.on_register(compat.register_video_dataset)
MODELS.on_register(compat.register_model)
