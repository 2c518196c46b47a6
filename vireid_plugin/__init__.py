"""vireid_plugin: visible-infrared person re-identification as a torchreid task.

``import vireid_plugin`` registers the plugin's datasets into torchreid's dataset
registries and its model builders into torchreid's model factory, so torchreid's
data managers and ``build_model`` accept them; a dataset or model registered later (a
module of one's own, imported after the package) reaches torchreid as it registers.
Importing twice or reloading is harmless: entries are replaced, never duplicated.
"""
from . import compat
from .registry import IMAGE_DATASETS, LOSSES, MODELS, VIDEO_DATASETS
from . import data, losses, models, optim  # noqa: F401  (importing fills the registries)
from . import plugins
from .engine.evaluation import evaluate_for_torchreid_engine

__version__ = '0.1.0'


def register_all():
    """Copy the plugin's registries into torchreid's and let torchreid's own engines score
    plugin datasets with the cross-modal protocols (idempotent; see ``compat.py``)."""
    for name, cls in IMAGE_DATASETS.items():
        compat.register_image_dataset(name, cls)
    for name, cls in VIDEO_DATASETS.items():
        compat.register_video_dataset(name, cls)
    for name, builder in MODELS.items():
        compat.register_model(name, builder)
    compat.install_cross_modal_evaluation(evaluate_for_torchreid_engine)


plugins.load_entry_points()   # datasets of installed distributions (plugins.py)
register_all()
# what registers from now on (a module of one's own, imported by plain torchreid code)
# reaches torchreid's registries at once, without a call
IMAGE_DATASETS.on_register(compat.register_image_dataset)
VIDEO_DATASETS.on_register(compat.register_video_dataset)
MODELS.on_register(compat.register_model)
