"""Features of a user's own images from a trained run, as its evaluation computes them.

``Extractor.from_run(run_dir)`` rebuilds the model of a finished run (its
``config.yaml``; the checkpoint its model selection chose, ``model/model-best.pth.tar``
when ``test.select_on`` is ``val`` or ``test``, else the newest good
``model.pth.tar-N``, else the config's ``model.load_weights``);
``Extractor.from_config(config_file, weights)`` does the same from a config and a
weights file. Either way the images go through the run's test preprocessing
(:mod:`.preprocess`) and the model gets each image's modality (0 = visible,
1 = infrared) and camera id, as the engine's evaluation passes them.

Camera ids: the model's camera embedding (SIE) only knows the training cameras
(0-based, as the training data numbered them). An image from an unknown camera gets
``camid=None``, the default: no camera embedding is added, as for a model trained
without one.

Backends: ``'torch'`` (the model itself) or ``'onnx'`` (onnxruntime on the file
``scripts/export_onnx.py`` wrote from the same weights; checked against the PyTorch
model on one batch when opened).
"""
import hashlib
import os
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch
import torch.nn.functional as F

from ..config import load_config
from ..engine.checkpoint import BEST, CheckpointManager
from ..engine.saved_features import FEATURES_FILE, load_features
from ..progress import progress
from ..runner import CONFIG_FILE
from ..visualize.run import load_run_model
from .batches import ThreadedBatches
from .errors import InferenceInputError, MissingModalityError, NoCheckpointError
from .inputs import ON_BAD, ItemReader, collate, describe_item, modality_code, per_item
from .metric import run_distance
from .preprocess import preprocessing_of

__all__ = ['Extractor', 'Extracted', 'run_checkpoint', 'model_fingerprint']


@dataclass
class Extracted:
    """Features of the inputs that could be read, in input order."""
    features: torch.Tensor                 # (N, D) float32 on the CPU
    indices: List[int]                     # input index of each row
    items: List                            # the inputs of each row
    modality: List                         # per row: 0, 1 or None
    camid: List                            # per row: int or None
    skipped: List = field(default_factory=list)   # [(input description, reason)]


def run_checkpoint(run_dir, cfg=None, log=print):
    """The checkpoint a run's model selection chose (``model-best.pth.tar`` when
    ``test.select_on`` is not 'last'), else its newest good one, else the config's
    ``model.load_weights``; a run without any is one :class:`NoCheckpointError`."""
    select_on = getattr(getattr(cfg, 'test', None), 'select_on', 'last') if cfg else 'last'
    best = os.path.join(run_dir, 'model', BEST)
    if select_on != 'last' and os.path.isfile(best):
        return best
    path, _ = CheckpointManager(run_dir).latest_good(log=log)
    if path is None and cfg is not None and cfg.model.load_weights:
        path = cfg.model.load_weights
    if path is None:
        raise NoCheckpointError('no checkpoint in run folder {} (expected {}/model/'
                                'model.pth.tar-N or model.load_weights in its config)'.format(
                                    run_dir, run_dir))
    return path


def model_fingerprint(name, state_dict):
    """sha256 (16 hex digits) of a model's name and every tensor of its state dict."""
    h = hashlib.sha256(name.encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update('{}{}{}'.format(key, t.dtype, tuple(t.shape)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return h.hexdigest()[:16]


def _frame_rule(run_dir):
    """The test frame rule the run's evaluation recorded (video runs), else 'chunk'."""
    path = os.path.join(run_dir, FEATURES_FILE) if run_dir else ''
    if path and os.path.isfile(path):
        try:
            for pool in load_features(path).targets.values():
                return pool.reader.get('frame_rule', 'chunk')
        except ValueError:
            pass
    return 'chunk'


def default_decode_threads(device):
    """Decoding threads beside the model: the cores the model leaves free (on a CPU, those
    beyond torch's intra-op threads; with a GPU, all but one), at least 1 and at most 4
    (beyond that the GIL, not the cores, bounds PIL's per-image Python; use loader
    processes, ``workers=``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') \
        else (os.cpu_count() or 1)
    busy = 1 if torch.device(device).type != 'cpu' else torch.get_num_threads()
    return max(1, min(4, cores - busy))


class TorchBackend:
    name = 'torch'

    def __init__(self, model):
        self.model = model

    def __call__(self, x, modality, camid):
        return self.model(x, modality=modality, camid=camid)


class OnnxBackend:
    """onnxruntime on the graph ``scripts/export_onnx.py`` wrote (CPU)."""
    name = 'onnx'

    def __init__(self, path, threads=0):
        from ..export.onnx import _require
        ort = _require('onnxruntime')
        if not os.path.isfile(path):
            raise InferenceInputError('ONNX file not found: {}'.format(path))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.path = path
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, x, modality, camid):
        from ..export.onnx import OUTPUT_NAME
        n = x.shape[0]
        if 'camid' in self.inputs and camid is None:
            raise InferenceInputError('the ONNX graph {} adds a camera embedding: pass each '
                                      'image\'s training camera id (camid=), or use the torch '
                                      'backend for images of unknown cameras'.format(self.path))
        values = {'images': x, 'clips': x,
                  'modality': torch.zeros(n, dtype=torch.long) if modality is None else modality,
                  'camid': camid}
        feeds = {k: np.ascontiguousarray(values[k].cpu().numpy()) for k in self.inputs}
        return torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0])


class Extractor:
    """A trained model with its run's preprocessing; :meth:`extract` gives features.

    Build it with :meth:`from_run` or :meth:`from_config`. ``dist_metric``: the distance
    the run ranks with (:func:`.metric.run_distance`); ``fingerprint``: a hash of the
    model's name and weights (an index records it).
    """

    def __init__(self, model, cfg, preprocessing, fingerprint, checkpoint='', device='cpu',
                 backend='torch', onnx_file='', batch_size=None, workers=0, decode_threads=None,
                 run_dir=''):
        self.model = model.to(device).eval()
        self.cfg = cfg
        self.model_name = cfg.model.name
        self.pre = preprocessing
        self.fingerprint = fingerprint
        self.checkpoint = checkpoint
        self.run_dir = run_dir
        self.device = torch.device(device)
        self.dist_metric = run_distance(cfg, model)
        self.batch_size = int(batch_size or cfg.test.batch_size or 64)
        self.workers = int(workers)
        #: workers == 0: images are decoded by this many threads of this process while the
        #: model runs (PIL and torch release the GIL); the thread running the model decodes
        #: too while it waits (:mod:`.batches`)
        self.decode_threads = default_decode_threads(self.device) if decode_threads is None \
            else int(decode_threads)
        state = model.state_dict()
        sie = [v for k, v in state.items() if k.endswith('sie_embed')]
        #: cameras the model's camera embedding knows (0: it has none)
        self.num_cameras = int(sie[0].shape[0]) if sie else 0
        self._needs_modality = None
        if backend == 'torch':
            self.backend = TorchBackend(self.model)
        elif backend == 'onnx':
            if not onnx_file:
                raise InferenceInputError('the onnx backend needs the file scripts/'
                                          'export_onnx.py wrote (onnx_file=, --onnx)')
            self.backend = OnnxBackend(onnx_file, threads=torch.get_num_threads())
            self._check_onnx()
        else:
            raise InferenceInputError('backend must be torch or onnx, got {!r}'.format(backend))

    # ---- construction ----------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir, checkpoint='', device='cpu', log=print, **kwargs):
        """The model of a finished run folder (``scripts/main.py``'s ``data.save_dir``)."""
        if not os.path.isdir(run_dir):
            raise InferenceInputError('run folder not found: {}'.format(run_dir))
        config = os.path.join(run_dir, CONFIG_FILE)
        if not os.path.isfile(config):
            raise InferenceInputError('{} has no {}: not a run folder of scripts/main.py (or '
                                      'use Extractor.from_config)'.format(run_dir, CONFIG_FILE))
        cfg = load_config(config)
        checkpoint = checkpoint or run_checkpoint(run_dir, cfg, log=log)
        return cls._build(cfg, checkpoint, device, run_dir=run_dir, **kwargs)

    @classmethod
    def from_config(cls, config_file, weights, device='cpu', opts=(), **kwargs):
        """The model of ``config_file`` (as trained) with the weights file ``weights``."""
        cfg = load_config(config_file, list(opts))
        return cls._build(cfg, weights, device, **kwargs)

    @classmethod
    def _build(cls, cfg, checkpoint, device, run_dir='', preprocessing=None, **kwargs):
        if not os.path.isfile(checkpoint):
            raise NoCheckpointError('checkpoint file not found: {}'.format(checkpoint))
        model = load_run_model(cfg, checkpoint, 'cpu')   # strict: every weight from the file
        fingerprint = model_fingerprint(cfg.model.name, model.state_dict())
        pre = preprocessing or preprocessing_of(cfg, frame_rule=_frame_rule(run_dir))
        return cls(model, cfg, pre, fingerprint, checkpoint=checkpoint, device=device,
                   run_dir=run_dir, **kwargs)

    def describe(self):
        return '{} from {} ({}; {} distance; backend {}; fingerprint {})'.format(
            self.model_name, self.checkpoint, self.pre.describe(), self.dist_metric,
            self.backend.name, self.fingerprint)

    # ---- the forward ------------------------------------------------------------------
    def _dummy(self, n=2):
        shape = (n, self.pre.seq_len, 3) if self.pre.kind == 'video' else (n, 3)
        return torch.zeros(*shape, self.pre.height, self.pre.width)

    @torch.inference_mode()
    def needs_modality(self):
        """Whether the model selects by modality (MIP's prompts): it refuses modality=None."""
        if self._needs_modality is None:
            try:
                self.model(self._dummy(1).to(self.device), modality=None, camid=None)
                self._needs_modality = False
            except ValueError as exc:
                if 'modality' not in str(exc):
                    raise
                self._needs_modality = True
        return self._needs_modality

    def _check_onnx(self):
        from ..export.run import DEFAULT_ATOL
        x = torch.randn(self._dummy().shape, generator=torch.Generator().manual_seed(0))
        m = torch.tensor([0, 1])
        c = torch.zeros(2, dtype=torch.long) if self.num_cameras else None
        with torch.inference_mode():
            ref = self.model(x.to(self.device), modality=m.to(self.device),
                             camid=None if c is None else c.to(self.device)).float().cpu()
        got = self.backend(x, m, c).float()
        diff = float((got - ref).abs().max()) if got.shape == ref.shape else float('inf')
        if diff > DEFAULT_ATOL:
            raise InferenceInputError(
                'ONNX file {} does not compute the model of {} (max |difference| {:.3g} > '
                '{:g}, or another output shape): export it from this checkpoint with '
                'scripts/export_onnx.py'.format(self.backend.path, self.checkpoint, diff,
                                                DEFAULT_ATOL))

    @torch.inference_mode()
    def forward(self, x, modality=None, camid=None):
        """Features (float32, CPU) of a preprocessed batch; modality/camid: (B,) or None."""
        x = x.to(self.device, non_blocking=True)
        if modality is None and self.needs_modality():
            raise MissingModalityError(
                '{} selects its prompts by modality: give each image\'s modality (modality='
                '\'visible\' or \'infrared\'; --query-modality/--gallery-modality)'.format(
                    self.model_name))
        to = (lambda t: None if t is None else t.to(self.device)) \
            if self.backend.name == 'torch' else (lambda t: t)
        f = self.backend(x, to(modality), to(camid)).float()
        if self.pre.normalize_feature:
            f = F.normalize(f, dim=1)
        return f.cpu()

    # ---- inputs -> features -----------------------------------------------------------
    def _labels(self, modality, camid, n):
        mods = per_item(modality, n, 'modality', convert=modality_code)
        cams = per_item(camid, n, 'camid')
        if cams is not None:
            bad = [c for c in cams if not 0 <= c < max(self.num_cameras, 1)]
            if self.num_cameras == 0:
                cams = None   # no camera embedding: camera ids change nothing
            elif bad:
                raise InferenceInputError(
                    'camid {} out of range: {} knows training cameras 0..{} (give None for '
                    'an unknown camera)'.format(bad[0], self.model_name, self.num_cameras - 1))
        return mods, cams

    def extract(self, inputs, modality=None, camid=None, batch_size=None, workers=None,
                on_bad='skip', show_progress=False, desc='extracting features', log=print):
        """Features of ``inputs`` (a list of items, see :mod:`.inputs`, or one item).

        modality: one value for all ('visible'/'infrared'/0/1) or one per input; None
        when the model does not use it. camid: likewise (None: unknown camera).
        on_bad: 'skip' (report each unreadable input, then how many) or 'stop'.
        """
        if on_bad not in ON_BAD:
            raise InferenceInputError('on_bad must be one of {}, got {!r}'.format(
                ON_BAD, on_bad))
        single = not isinstance(inputs, (list, tuple)) or (
            self.pre.kind == 'video' and inputs and isinstance(inputs[0], str)
            and not os.path.isdir(inputs[0]))
        items = [inputs] if single else list(inputs)
        if not items:
            raise InferenceInputError('no inputs to extract features from')
        mods, cams = self._labels(modality, camid, len(items))
        if mods is None and self.needs_modality():
            self.forward(self._dummy(1))    # raises the one message
        feats, kept, skipped = [], [], []
        batch_size = int(batch_size or self.batch_size)
        tensors = [i for i, it in enumerate(items) if torch.is_tensor(it)]
        if tensors:
            kept, feats = self._tensor_items(items, tensors, mods, cams, batch_size)
        rest = [i for i, it in enumerate(items) if not torch.is_tensor(it)]
        if rest:
            workers = self.workers if workers is None else int(workers)
            reader = ItemReader([items[i] for i in rest], self.pre)
            if workers > 0:
                loader = torch.utils.data.DataLoader(
                    reader, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                    pin_memory=self.device.type == 'cuda')
            else:
                loader = ThreadedBatches(reader, batch_size, self.decode_threads,
                                         finish=self._normalized)
            for got, x, bad in progress(loader, '{} of {} inputs'.format(desc, len(rest)),
                                        enabled=show_progress):
                for j, msg in bad:
                    skipped.append((describe_item(items[rest[j]]), msg))
                    if on_bad == 'stop':
                        raise InferenceInputError(msg)
                    log('skipped {}: {}'.format(describe_item(items[rest[j]]), msg))
                if x is None:
                    continue
                idx = [rest[j] for j in got]
                if x.dtype == torch.uint8:   # loader processes hand over uint8 batches
                    x = self.pre.normalize(x)
                feats.append(self.forward(x, *self._batch_labels(mods, cams, idx)))
                kept += idx
        if skipped:
            log('{} of {} input(s) skipped (unreadable)'.format(len(skipped), len(items)))
        order = np.argsort(kept, kind='stable')
        kept = [kept[i] for i in order]
        features = torch.cat(feats)[torch.as_tensor(order)] if feats else torch.zeros(0, 0)
        return Extracted(features, kept, [items[i] for i in kept],
                         [None if mods is None else mods[i] for i in kept],
                         [None if cams is None else cams[i] for i in kept], skipped)

    def _normalized(self, batch):
        """A collated batch with its uint8 images normalised (in a decoding thread)."""
        got, x, bad = batch
        return got, None if x is None else self.pre.normalize(x), bad

    def _batch_labels(self, mods, cams, idx):
        m = None if mods is None else torch.tensor([mods[i] for i in idx], dtype=torch.long)
        c = None if cams is None else torch.tensor([cams[i] for i in idx], dtype=torch.long)
        return m, c

    def _tensor_items(self, items, which, mods, cams, batch_size):
        """Float tensors are model inputs already (torchreid's convention)."""
        rows, idx = [], []
        for i in which:
            t = items[i].float()
            batch = t if t.dim() == (5 if self.pre.kind == 'video' else 4) else t.unsqueeze(0)
            rows += [batch[k] for k in range(batch.shape[0])]
            idx += [i] * batch.shape[0]
        if len(set(idx)) != len(idx) and (mods is not None or cams is not None):
            raise InferenceInputError('a batched tensor input takes one modality/camid for '
                                      'all its rows: pass its rows as separate inputs')
        feats = []
        for s in range(0, len(rows), batch_size):
            part = idx[s:s + batch_size]
            feats.append(self.forward(torch.stack(rows[s:s + batch_size]),
                                      *self._batch_labels(mods, cams, part)))
        return idx, feats

    def __call__(self, inputs, modality=None, camid=None, **kwargs):
        """Features (N, D) of ``inputs`` (unreadable files are an error here)."""
        return self.extract(inputs, modality, camid, on_bad='stop', **kwargs).features
