"""``results.html``: one self-contained page, each query beside its top-k thumbnails.

Thumbnails are drawn with the ranked-list drawer's ``thumbnail`` (the run's test size)
and embedded as JPEG data URIs, so the page needs nothing beside it. A short script
counts, once the page has loaded, the thumbnails the browser decoded
(``data-images-loaded`` on ``<body>``): the browser test reads it.
"""
import base64
import html
import io
import os

from PIL import Image

from ..data.io import ImageReadError
from ..visualize.common import first_frame, thumbnail

__all__ = ['results_html', 'data_uri']

_STYLE = """
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; }
td { padding: 4px; text-align: center; vertical-align: top; font-size: 11px; }
td.query { border-right: 3px solid #000; }
img { display: block; margin: 0 auto; border: 2px solid #888; }
td.query img { border-color: #000; }
.path { max-width: 9em; overflow-wrap: anywhere; color: #555; }
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-loaded', ok);
  document.body.setAttribute('data-images-total', imgs.length);
});
"""


def data_uri(path, size):
    """A JPEG data URI of the image (a clip: its first frame) at ``size`` (height, width);
    a file that cannot be read gives a grey tile."""
    try:
        arr = thumbnail(path, size)
        img = Image.fromarray(arr)
    except (ImageReadError, OSError):
        img = Image.new('RGB', (size[1], size[0]), (200, 200, 200))
    buf = io.BytesIO()
    img.save(buf, format='JPEG', quality=85)
    return 'data:image/jpeg;base64,' + base64.b64encode(buf.getvalue()).decode('ascii')


def _cell(path, caption, size, css=''):
    # the folder too: datasets and cameras reuse file names (SYSU-MM01's 0001.jpg)
    file = first_frame(path) if isinstance(path, (list, tuple)) else path
    name = '/'.join([os.path.basename(os.path.dirname(file)), os.path.basename(file)])
    return ('<td class="{}"><img src="{}" width="{}" height="{}" alt="{}"><div>{}</div>'
            '<div class="path" title="{}">{}</div></td>'.format(
                css, data_uri(path, size), size[1], size[0], html.escape(name),
                html.escape(caption), html.escape(str(path)), html.escape(name)))


def results_html(results, size=(128, 64), title='Search results'):
    """The page (a str) of a ``results.json`` dict: a row per query, then its matches with
    rank and distance."""
    rows = []
    for q in results['queries']:
        cells = [_cell(q['path'], 'query', size, 'query')]
        cells += [_cell(m['path'], '{}: {:.4f}'.format(r, m['distance']), size)
                  for r, m in enumerate(q['matches'], 1)]
        rows.append('<tr>{}</tr>'.format(''.join(cells)))
    info = ', '.join('{} {}'.format(k.replace('_', ' '), html.escape(str(results[k])))
                     for k in ('model', 'dist_metric', 'query_modality', 'gallery_modality')
                     if results.get(k) is not None)
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{t}</title>'
            '<style>{s}</style><script>{j}</script></head>\n<body><h1>{t}</h1><p>{i}</p>'
            '<p>Each row: the query (left), then its top {k} by ascending distance.</p>\n'
            '<table>\n{r}\n</table></body></html>\n').format(
                t=html.escape(title), s=_STYLE, j=_SCRIPT, i=info, k=results.get('topk', ''),
                r='\n'.join(rows))
