"""Names, shapes and classes of a MATLAB v5 file's variables, from their headers alone.

``scipy.io.whosmat`` decompresses each compressed variable whole to report its shape, so a
190 KB file holding ``zeros(5000, 5000)`` costs 200 MB (1.35 GB through ``loadmat``) before
a loader can say the shape is wrong. This reads only the first bytes of every variable (its
array flags, dimensions and name; the MAT-File Format, MathWorks, "Data Element Format"),
so a loader refuses a wrong variable before its data is read. Anything it cannot parse is
``None``: the caller falls back to scipy, which names the problem.
"""
import struct
import zlib

__all__ = ['mat_variables', 'MAT_CLASSES']

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
#: mxClassID -> the name scipy.io.whosmat gives
MAT_CLASSES = {1: 'cell', 2: 'struct', 3: 'object', 4: 'char', 5: 'sparse', 6: 'double',
               7: 'single', 8: 'int8', 9: 'uint8', 10: 'int16', 11: 'uint16', 12: 'int32',
               13: 'uint32', 14: 'int64', 15: 'uint64'}
_PEEK = 4096   # bytes of a variable read: flags, dimensions and a name fit easily


def _tag(buf, pos, order):
    """(type, size, offset of the data, offset after the element) of the element at pos."""
    first, second = struct.unpack_from(order + 'II', buf, pos)
    if first >> 16:   # small data element: size and type in 4 bytes, data in the next 4
        return first & 0xFFFF, first >> 16, pos + 4, pos + 8
    return first, second, pos + 8, pos + 8 + second + (-second % 8)


def _matrix_header(buf, order):
    """(name, shape, class) of a miMATRIX element's payload start."""
    kind, size, data, end = _tag(buf, 0, order)
    if kind != MI_UINT32:
        return None
    cls = struct.unpack_from(order + 'I', buf, data)[0] & 0xFF
    kind, size, data, end = _tag(buf, end, order)
    if kind != MI_INT32:
        return None
    shape = struct.unpack_from(order + '{}i'.format(size // 4), buf, data)
    kind, size, data, _ = _tag(buf, end, order)
    if kind != MI_INT8:
        return None
    name = bytes(buf[data:data + size]).decode('ascii', 'replace')
    return name, tuple(shape), MAT_CLASSES.get(cls, 'unknown')


def mat_variables(path):
    """[(name, shape, class)] of the top-level variables of a MAT v5 file, reading only
    their headers; None when the file is not one this can parse (v4, v7.3, damaged)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(128)
            if len(head) < 128 or head[126:128] not in (b'IM', b'MI'):
                return None
            order = '<' if head[126:128] == b'IM' else '>'
            out = []
            while True:
                tag = f.read(8)
                if len(tag) < 8:
                    return out
                kind, size = struct.unpack(order + 'II', tag)
                if kind == MI_COMPRESSED:
                    inflate, raw = zlib.decompressobj(), b''
                    while len(raw) < _PEEK and size > 0 and not inflate.eof:
                        chunk = f.read(min(size, 65536))
                        size -= len(chunk)
                        if not chunk:
                            break
                        raw += inflate.decompress(chunk, _PEEK - len(raw))
                    f.seek(size, 1)   # the rest of the element, unread
                    kind, _, data, _ = _tag(raw, 0, order)
                    body = raw[data:]
                else:
                    body = f.read(min(size, _PEEK))
                    f.seek(size - len(body) + (-size % 8), 1)
                if kind != MI_MATRIX:
                    return None
                found = _matrix_header(body, order)
                if found is None:
                    return None
                out.append(found)
    except (OSError, struct.error, zlib.error):
        return None
