"""The state dict of a TorchScript archive, read without running anything from it.

OpenAI's CLIP files (``ViT-B-16.pt``, what ``scripts/download_weights.py`` fetches for
LSMRL) are TorchScript archives: a zip holding ``<name>/data.pkl`` (the module tree:
TorchScript objects whose tensors are stored as ``<name>/data/<key>``),
``<name>/constants.pkl`` and ``<name>/code/`` (the TorchScript source; each module
class starts with ``__parameters__ = [...]`` and ``__buffers__ = [...]``).

``torch.load(weights_only=True)`` refuses such archives. open_clip (``load_openai_model``)
and OpenAI's ``clip.load`` call ``torch.jit.load``, which compiles the archive's code and
runs its ``__setstate__`` methods while loading: PyTorch's security policy asks to treat
a model file as a program, so it is not used here. Instead ``data.pkl`` is read by an
unpickler that resolves no Python name except the few that rebuild tensors
(``torch._utils._rebuild_tensor_v2``, the ``torch.*Storage`` dtype markers,
``collections.OrderedDict`` and ``torch.jit._pickle``'s list builders); a TorchScript
class becomes a plain record of its attributes, and the parameters and buffers its
header declares are collected under the dotted names ``Module.state_dict()`` gives.
Any other name in the pickle is refused with :class:`ArchiveError`.
"""
import collections
import io
import pickle
import re
import zipfile

import torch

from .errors import UserError

__all__ = ['ArchiveError', 'is_torchscript_archive', 'read_torchscript_state_dict']

_STORAGE_DTYPES = {
    'FloatStorage': torch.float32, 'HalfStorage': torch.float16,
    'DoubleStorage': torch.float64, 'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64, 'IntStorage': torch.int32, 'ShortStorage': torch.int16,
    'CharStorage': torch.int8, 'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
}
#: nesting of submodules followed at most (a real model is a few levels deep)
_MAX_DEPTH = 64
_CLASS_RE = re.compile(r'^class (\w+)\([\w.]*\):\n((?:  .*\n)*)', re.MULTILINE)
_LIST_RE = r'^  {} = \[(.*)\]$'


class ArchiveError(UserError, ValueError):
    """A TorchScript archive that cannot be read as plain tensors."""


class _StorageType:
    """What ``torch.FloatStorage`` & co. stand for in the pickle: a dtype."""

    def __init__(self, dtype):
        self.dtype = dtype


class _ScriptObject:
    """A TorchScript object of the pickle: its class name and its attributes, nothing run."""

    qualname = ''

    def __setstate__(self, state):
        self.attrs = state if isinstance(state, dict) else {}


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    if not (torch.is_tensor(storage) and isinstance(offset, int)
            and isinstance(size, tuple) and isinstance(stride, tuple)):
        raise ArchiveError('a tensor record is malformed')
    try:
        return storage.as_strided(size, stride, offset)
    except RuntimeError as exc:   # a view past the end of its storage
        raise ArchiveError('a tensor does not fit its storage ({})'.format(
            str(exc).splitlines()[0])) from None


def _same(value):
    return value


_ALLOWED = {
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch.jit._pickle', 'build_intlist'): _same,
    ('torch.jit._pickle', 'build_doublelist'): _same,
    ('torch.jit._pickle', 'build_boollist'): _same,
    ('torch.jit._pickle', 'build_tensorlist'): _same,
    ('torch.jit._pickle', 'build_strlist'): _same,
    ('torch.jit._pickle', 'restore_type_tag'): lambda value, _tag: value,
}


class _Unpickler(pickle.Unpickler):
    """Resolves only the names above; storages come from the archive's ``data/`` files."""

    def __init__(self, data, archive, prefix):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._storages = archive, prefix, {}
        self._classes = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == '__torch__' or module.startswith('__torch__.'):
            qualname = '{}.{}'.format(module, name)
            if qualname not in self._classes:
                self._classes[qualname] = type('ScriptObject', (_ScriptObject,),
                                               {'qualname': qualname})
            return self._classes[qualname]
        raise ArchiveError('its pickle refers to the Python name {}.{}, which could run '
                           'code; only TorchScript modules and tensors are read'.format(
                               module, name))

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int)):
            raise ArchiveError('a storage record is malformed: {!r}'.format(pid)[:200])
        _, kind, key, _location, numel = pid
        if key not in self._storages:
            member = '{}/data/{}'.format(self._prefix, key)
            try:
                raw = bytearray(self._archive.read(member))
            except KeyError:
                raise ArchiveError('storage {} is missing'.format(member)) from None
            itemsize = torch.empty((), dtype=kind.dtype).element_size()
            if len(raw) != numel * itemsize:
                raise ArchiveError('storage {} holds {} bytes, expected {} x {}'.format(
                    member, len(raw), numel, itemsize))
            self._storages[key] = (torch.frombuffer(raw, dtype=kind.dtype) if raw
                                   else torch.empty(0, dtype=kind.dtype))
        return self._storages[key]


def _prefix(archive):
    """The archive's top folder when it is a TorchScript archive, else None."""
    names = set(archive.namelist())
    for name in names:
        head, _, tail = name.partition('/')
        if tail == 'data.pkl' and '{}/constants.pkl'.format(head) in names:
            return head
    return None


def is_torchscript_archive(path):
    """True when ``path`` is a zip holding a TorchScript module (data.pkl + constants.pkl)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _prefix(archive) is not None
    except (OSError, zipfile.BadZipFile):
        return False


def _declared(archive, prefix):
    """{class qualname: set of parameter and buffer names} from the code headers."""
    out = {}
    code = prefix + '/code/'
    for name in archive.namelist():
        if not (name.startswith(code) and name.endswith('.py')):
            continue
        module = name[len(code):-3].replace('/', '.')
        text = archive.read(name).decode('utf-8', 'replace')
        for cls, body in _CLASS_RE.findall(text):
            names = set()
            for key in ('__parameters__', '__buffers__'):
                found = re.search(_LIST_RE.format(key), body, re.MULTILINE)
                if found:
                    names.update(re.findall(r'"([^"]*)"', found.group(1)))
            out['{}.{}'.format(module, cls)] = names
    return out


def read_torchscript_state_dict(path):
    """{name: tensor} of the parameters and buffers of the TorchScript module in ``path``,
    read without torch.jit.load or any Python global (see the module doc); raises
    :class:`ArchiveError` (the caller names the file) when that is not possible."""
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _prefix(archive)
            if prefix is None:
                raise ArchiveError('not a TorchScript archive (no data.pkl beside '
                                   'constants.pkl)')
            order = '{}/byteorder'.format(prefix)
            if order in archive.namelist() and archive.read(order).strip() != b'little':
                raise ArchiveError('its tensors are stored big-endian')
            root = _Unpickler(archive.read(prefix + '/data.pkl'), archive, prefix).load()
            declared = _declared(archive, prefix)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            KeyError, AttributeError, IndexError, RecursionError) as exc:
        raise ArchiveError('its module pickle is malformed ({}: {})'.format(
            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else '')) from None
    if not isinstance(root, _ScriptObject):
        raise ArchiveError('its data.pkl holds no TorchScript module')
    state, seen = {}, set()

    def walk(obj, prefix, depth):
        if id(obj) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(obj))
        names = declared.get(obj.qualname)
        for name, value in getattr(obj, 'attrs', {}).items():
            if isinstance(value, _ScriptObject):
                walk(value, '{}{}.'.format(prefix, name), depth + 1)
            elif type(value) is torch.Tensor and (names is None or name in names):
                # detached: nothing the pickle attached (hooks, grad flags) comes along
                state[prefix + str(name)] = value.detach()

    walk(root, '', 0)
    if not state:
        raise ArchiveError('its module holds no parameters or buffers')
    return state
