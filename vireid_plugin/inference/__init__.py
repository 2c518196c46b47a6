"""A trained model on a user's own images: features as the run's evaluation computes them
(:mod:`.extractor`), a saved gallery index searched by query sets (:mod:`.index`),
``scripts/search.py`` (:mod:`.search`, results JSON and an HTML page) and torchreid's
``FeatureExtractor`` signature (:mod:`.torchreid_api`). See docs/inference.md."""
from .errors import (IndexMismatchError, InferenceInputError, MissingModalityError,
                     NoCheckpointError)
from .extractor import Extracted, Extractor, model_fingerprint, run_checkpoint
from .index import GalleryIndex
from .inputs import list_clips, list_images
from .metric import run_distance
from .preprocess import Preprocessing, preprocessing_of
from .torchreid_api import FeatureExtractor

__all__ = ['Extractor', 'Extracted', 'FeatureExtractor', 'GalleryIndex', 'Preprocessing',
           'preprocessing_of', 'run_distance', 'run_checkpoint', 'model_fingerprint',
           'list_images', 'list_clips', 'InferenceInputError', 'MissingModalityError',
           'NoCheckpointError', 'IndexMismatchError']
