"""A gallery index: features of a gallery saved once, searched by query sets.

One safetensors file (tensors ``features`` (N, D) float32, ``modality`` and
``camid`` (N,) int64, -1 = not given; a JSON header with the paths, the model's
name and fingerprint, the preprocessing and the distance), written atomically by the
package's one writer, so an interrupted save leaves the previous index. An index is
opened without extracting anything; :meth:`GalleryIndex.check` refuses one built by
another model, preprocessing or distance with one message.

Search (:meth:`GalleryIndex.search`): top-k gallery items per query by ascending
distance, exact by matrix products over (query chunk x gallery chunk) blocks, so memory
stays bounded whatever the gallery size; ``engine='faiss'`` uses a flat faiss index
(``pip install 'vireid_plugin[faiss]'``); ``rerank=True`` re-ranks with torchreid's
k-reciprocal ``re_ranking`` (full query+gallery matrices: for galleries of thousands).
"""
import json
import os

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

from ..checkpoint_io import atomic_write
from ..engine.evaluation import trial_distance
from ..metrics import compute_distance
from .errors import IndexMismatchError, InferenceInputError
from .inputs import describe_item

__all__ = ['GalleryIndex', 'SEARCH_ENGINES', 'INDEX_FORMAT']

INDEX_FORMAT = 1
SEARCH_ENGINES = ('exact', 'faiss')
#: k-reciprocal re-ranking holds a few (n, n) float matrices of n = queries + gallery
RERANK_MAX_ITEMS = 20000


def _code(values, n):
    if values is None:
        return torch.full((n,), -1, dtype=torch.int64)
    return torch.tensor([-1 if v is None else int(v) for v in values], dtype=torch.int64)


def _path_of(item):
    if isinstance(item, str):
        return item
    if isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
        return list(item)
    return describe_item(item)


class GalleryIndex:
    """Features, paths, modality and camera of gallery items, and what made them."""

    def __init__(self, model_name, fingerprint, preprocessing, dist_metric, features=None,
                 paths=(), modality=None, camid=None):
        self.model_name, self.fingerprint = model_name, fingerprint
        self.preprocessing, self.dist_metric = dict(preprocessing), dist_metric
        self.features = features if features is not None else torch.zeros(0, 0)
        self.paths = list(paths)
        n = len(self.paths)
        self.modality = modality if modality is not None else torch.full((n,), -1).long()
        self.camid = camid if camid is not None else torch.full((n,), -1).long()

    def __len__(self):
        return len(self.paths)

    # ---- building -----------------------------------------------------------------------
    @classmethod
    def for_extractor(cls, extractor):
        """An empty index for ``extractor``'s model, preprocessing and distance."""
        return cls(extractor.model_name, extractor.fingerprint, extractor.pre.as_dict(),
                   extractor.dist_metric)

    @classmethod
    def build(cls, extractor, inputs, modality=None, camid=None, **kwargs):
        """Extract ``inputs`` (see ``Extractor.extract``) into a new index; returns
        (index, skipped inputs)."""
        index = cls.for_extractor(extractor)
        return index, index.add(extractor, inputs, modality, camid, **kwargs)

    def add(self, extractor, inputs, modality=None, camid=None, **kwargs):
        """Extract ``inputs`` and append them; returns the skipped inputs."""
        self.check(extractor)
        out = extractor.extract(inputs, modality, camid, **kwargs)
        self.add_features(out.features, [_path_of(it) for it in out.items], out.modality,
                          out.camid)
        return out.skipped

    def add_features(self, features, paths, modality=None, camid=None):
        """Append rows (features already extracted by this index's model)."""
        features = torch.as_tensor(features).float().cpu()
        if len(features) != len(paths):
            raise InferenceInputError('{} feature rows for {} paths'.format(len(features),
                                                                            len(paths)))
        if not len(paths):
            return
        if len(self) and features.shape[1] != self.features.shape[1]:
            raise IndexMismatchError('features of width {} cannot join an index of width '
                                     '{}'.format(features.shape[1], self.features.shape[1]))
        self.features = torch.cat([self.features, features]) if len(self) else features
        self.modality = torch.cat([self.modality, _code(modality, len(paths))])
        self.camid = torch.cat([self.camid, _code(camid, len(paths))])
        self.paths += list(paths)

    def check(self, extractor, path=''):
        """Refuse (one :class:`IndexMismatchError`) an index another model, preprocessing
        or distance built."""
        theirs = (self.model_name, self.fingerprint, self.preprocessing, self.dist_metric)
        ours = (extractor.model_name, extractor.fingerprint, extractor.pre.as_dict(),
                extractor.dist_metric)
        if theirs != ours:
            what = [n for n, a, b in zip(('model', 'weights fingerprint', 'preprocessing',
                                          'distance'), theirs, ours) if a != b]
            raise IndexMismatchError(
                'index {}was built by {} (fingerprint {}, {}); this model is {} (fingerprint '
                '{}, {}): {} differ{}; rebuild the index with this model'.format(
                    path + ' ' if path else '', self.model_name, self.fingerprint,
                    self.dist_metric, extractor.model_name, extractor.fingerprint,
                    extractor.dist_metric, ', '.join(what), 's' if len(what) == 1 else ''))

    # ---- the file -------------------------------------------------------------------------
    def save(self, path):
        """Write the index to ``path`` (one file, atomically); returns ``path``."""
        meta = {'format': INDEX_FORMAT, 'model': self.model_name,
                'fingerprint': self.fingerprint, 'preprocessing': self.preprocessing,
                'dist_metric': self.dist_metric, 'paths': self.paths}
        tensors = {'features': self.features.contiguous(), 'modality': self.modality,
                   'camid': self.camid}
        data = save_bytes(tensors, metadata={'vireid_index': json.dumps(meta)})
        return atomic_write(path, lambda f: f.write(data))

    @classmethod
    def open(cls, path, extractor=None):
        """Read an index; given ``extractor``, also :meth:`check` it."""
        if not os.path.isfile(path):
            raise InferenceInputError('index file not found: {}'.format(path))
        try:
            with safe_open(path, framework='pt') as f:
                meta = json.loads((f.metadata() or {})['vireid_index'])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:   # truncated, foreign, not safetensors: one message
            raise InferenceInputError('{} is not a gallery index written by vireid_plugin '
                                      '({}: {})'.format(path, type(exc).__name__, exc)) from None
        index = cls(meta['model'], meta['fingerprint'], meta['preprocessing'],
                    meta['dist_metric'], tensors['features'], meta['paths'],
                    tensors['modality'], tensors['camid'])
        if extractor is not None:
            index.check(extractor, path)
        return index

    # ---- searching --------------------------------------------------------------------------
    def select(self, modality=None):
        """Indices (int64) of the items of ``modality`` (0/1; None: all)."""
        if modality is None:
            return torch.arange(len(self))
        return torch.nonzero(self.modality == int(modality)).flatten()

    def search(self, query_features, topk=10, modality=None, engine='exact', rerank=False,
               query_chunk=1024, gallery_chunk=65536, rerank_max_items=RERANK_MAX_ITEMS):
        """(distances (Q, k) float32, indices (Q, k) int64 into this index) of each query's
        ``topk`` nearest items of ``modality`` (None: every item), nearest first."""
        if engine not in SEARCH_ENGINES:
            raise InferenceInputError('search engine must be one of {}, got {!r}'.format(
                SEARCH_ENGINES, engine))
        q = torch.as_tensor(query_features).float().cpu()
        subset = self.select(modality)
        if not len(subset):
            raise InferenceInputError('the index holds no {}items'.format(
                '' if modality is None else ('visible ', 'infrared ')[int(modality)]))
        k = min(int(topk), len(subset))
        if not rerank and engine == 'exact':   # rows of the index already
            return exact_topk(q, self.features, k, self.dist_metric, subset, query_chunk,
                              gallery_chunk)
        if rerank:
            dist, idx = self._reranked(q, subset, k, rerank_max_items)
        else:
            dist, idx = faiss_topk(q, self.features[subset], k, self.dist_metric, query_chunk)
        return dist, subset[idx]   # positions in subset -> rows of the index

    def _reranked(self, q, subset, k, max_items):
        if len(q) + len(subset) > max_items:
            raise InferenceInputError(
                're-ranking builds (queries + gallery)^2 distance matrices: {} + {} items is '
                'over {}; search without --rerank, or a smaller gallery'.format(
                    len(q), len(subset), max_items))
        feats = torch.cat([q, self.features[subset]])
        nq = len(q)
        dist = torch.as_tensor(trial_distance(feats, np.arange(nq), np.arange(nq, len(feats)),
                                              self.dist_metric, rerank=True)).float()
        d, i = torch.sort(dist, dim=1, stable=True)
        return d[:, :k], i[:, :k]


def exact_topk(q, gallery, k, metric, subset=None, query_chunk=1024, gallery_chunk=65536):
    """Exact top-k (ascending distance; ties: lower gallery index first) in blocks of
    ``query_chunk`` x ``gallery_chunk`` distances; ``subset``: the gallery rows searched
    (indices returned are rows of ``gallery``)."""
    subset = torch.arange(len(gallery)) if subset is None else torch.as_tensor(subset)
    out_d, out_i = [], []
    for s in range(0, len(q), query_chunk):
        qc = q[s:s + query_chunk]
        best_d = torch.empty(len(qc), 0)
        best_i = torch.empty(len(qc), 0, dtype=torch.int64)
        for g in range(0, len(subset), gallery_chunk):
            rows = subset[g:g + gallery_chunk]
            d = compute_distance(qc, gallery[rows], metric)
            d, j = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False)
            cand_d = torch.cat([best_d, d], 1)
            cand_i = torch.cat([best_i, rows[j]], 1)
            # ties: lower gallery row first (sort by row, then stably by distance)
            by_row = torch.argsort(cand_i, dim=1, stable=True)
            cand_d, cand_i = cand_d.gather(1, by_row), cand_i.gather(1, by_row)
            order = torch.argsort(cand_d, dim=1, stable=True)[:, :k]
            best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
        out_d.append(best_d)
        out_i.append(best_i)
    return torch.cat(out_d), torch.cat(out_i)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise InferenceInputError('faiss is not installed: pip install "vireid_plugin[faiss]" '
                                  '(faiss-cpu), or search with the exact engine') from None
    return faiss


def faiss_topk(q, gallery, k, metric, query_chunk=1024):
    """Top-k by a flat faiss index: L2 (distances returned as true L2, as
    ``compute_distance``), inner product of L2-normalised features (cosine, returned as
    1 - cos) or of the raw features (dot, returned as -q.g, as ``compute_distance``)."""
    faiss = _faiss()
    g = np.ascontiguousarray(gallery.numpy(), dtype=np.float32)
    qn = np.ascontiguousarray(q.numpy(), dtype=np.float32)
    if metric == 'cosine':
        g, qn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12), \
            qn / np.maximum(np.linalg.norm(qn, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(g.shape[1])
    elif metric == 'dot':
        index = faiss.IndexFlatIP(g.shape[1])
    elif metric == 'euclidean':
        index = faiss.IndexFlatL2(g.shape[1])
    else:
        raise InferenceInputError('faiss search supports euclidean, cosine and dot, not {!r}'
                                  .format(metric))
    index.add(g)
    ds, js = [], []
    for s in range(0, len(qn), query_chunk):
        d, j = index.search(qn[s:s + query_chunk], k)
        ds.append(d)
        js.append(j)
    d, j = np.concatenate(ds), np.concatenate(js)
    d = {'cosine': lambda: 1 - d, 'dot': lambda: -d,
         'euclidean': lambda: np.sqrt(np.maximum(d, 0))}[metric]()
    return torch.from_numpy(d.astype(np.float32)), torch.from_numpy(j.astype(np.int64))
