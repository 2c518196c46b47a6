"""torchreid's ``FeatureExtractor`` signature, plus ``modality=``, on the plugin's runs.

``FeatureExtractor(model_name, model_path, image_size, pixel_mean, pixel_std,
pixel_norm, device, verbose, modality=None, config_file='', camid=None)``; calling it
with a path, a numpy image, a float tensor or a list of them returns the features (on
``device``), as torchreid's does. What differs from torchreid's:

- ``model_path`` is a run folder or a checkpoint in one (``<run>/model/...``), whose
  ``config.yaml`` rebuilds the model as trained; ``config_file`` names the config
  otherwise. The weights load strictly (the camera embedding included).
- ``image_size``, ``pixel_mean``, ``pixel_std`` default to None: the run's test
  preprocessing (torchreid's defaults are 256x128 and ImageNet's mean/std). Given,
  they replace the run's, with a printed note when they differ.
- ``modality`` (0/'visible', 1/'infrared'; at construction or per call) and ``camid``
  reach the model, as the engine's evaluation passes them.
- ``device='cuda'`` on a machine without a GPU runs on the CPU.
"""
import os

import torch

from ..runner import CONFIG_FILE
from .errors import InferenceInputError
from .extractor import Extractor
from .preprocess import preprocessing_of

__all__ = ['FeatureExtractor']


def _run_of(model_path):
    """(run folder or '', checkpoint or '') of a run folder or a checkpoint inside one."""
    if os.path.isdir(model_path):
        return model_path, ''
    folder = os.path.dirname(os.path.abspath(model_path))
    for run in (folder, os.path.dirname(folder)):
        if os.path.isfile(os.path.join(run, CONFIG_FILE)):
            return run, model_path
    return '', model_path


class FeatureExtractor:
    """torchreid's ``FeatureExtractor`` for the plugin's models (see the module doc)."""

    def __init__(self, model_name='', model_path='', image_size=None, pixel_mean=None,
                 pixel_std=None, pixel_norm=True, device='cuda', verbose=True, modality=None,
                 config_file='', camid=None):
        if str(device).startswith('cuda') and not torch.cuda.is_available():
            device = 'cpu'
        run_dir, checkpoint = _run_of(model_path) if model_path else ('', '')
        log = print if verbose else (lambda *a: None)
        if config_file:
            if not checkpoint:
                raise InferenceInputError('config_file= needs model_path= naming the weights')
            ex = Extractor.from_config(config_file, checkpoint, device=device)
        elif run_dir:
            ex = Extractor.from_run(run_dir, checkpoint=checkpoint, device=device, log=log)
        else:
            raise InferenceInputError(
                'model_path {!r} is neither a run folder nor a checkpoint inside one (its '
                '{} rebuilds the model); pass config_file= too'.format(model_path, CONFIG_FILE))
        if model_name and model_name != ex.model_name:
            raise InferenceInputError('model_name {!r} but {} was trained as {!r}'.format(
                model_name, ex.checkpoint, ex.model_name))
        run = ex.pre
        given = dict(height=image_size[0] if image_size else None,
                     width=image_size[1] if image_size else None,
                     norm_mean=tuple(pixel_mean) if pixel_mean is not None else None,
                     norm_std=tuple(pixel_std) if pixel_std is not None else None,
                     pixel_norm=bool(pixel_norm))
        changed = {k: v for k, v in given.items() if v is not None and v != getattr(run, k)}
        if changed:
            log('Note: preprocessing {} replaces the run\'s ({})'.format(changed, run.describe()))
            ex.pre = preprocessing_of(ex.cfg, frame_rule=run.frame_rule, **changed)
        if verbose:
            log('Model: ' + ex.describe())
        self.extractor, self.model, self.device = ex, ex.model, ex.device
        self.modality, self.camid = modality, camid

    def __call__(self, input, modality=None, camid=None):
        """Features (N, D) on ``device`` of a path, numpy image, tensor, or a list of them."""
        modality = self.modality if modality is None else modality
        camid = self.camid if camid is None else camid
        items = input if isinstance(input, list) else [input]
        feats = self.extractor(items, modality=modality, camid=camid)
        return feats.to(self.device)
