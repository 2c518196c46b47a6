"""Synthetic visible-infrared pedestrians: the shared renderer and the writers' helpers.

The person renderer below draws an identity in either modality; each dataset family
writes its own stand-in tree with it (``data/datasets/<family>/synthetic.py``: SYSU-MM01,
RegDB, HITSZ-VCM, LLCM, BUPTCampus), so the demos and the tests run without the real
(licence-restricted) data. A writer registers itself with ``synthetic_writer`` (dataset
name, folder under the data root); ``data.synthetic`` (``data/prepare.py``) and
``scripts/make_synthetic_data.py`` find it there.

Cross-modal rule (shared by every identity, hence learnable for unseen ones):
each body part of an identity is made of a *material*. The material fixes the
part's visible texture (plain, stripes, checks, dots, ...) and its infrared
brightness, plus a faint copy of the same texture in infrared. The visible
*colour* of a part is random per identity, and the infrared image never looks
at it, so colour alone carries nothing across modalities. Body proportions are
per identity too and cross modalities as silhouette. Pose, scale, background,
lighting and noise vary per image. Everything is deterministic given ``seed``.
"""
import colorsys
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from ..registry import SYNTHETIC_WRITERS

DEFAULT_SIZE = (128, 64)   # (height, width), the size of real RegDB images

# rng stream tags: a writer draws from rng_stream(seed, <its dataset tag>, <part tag>, ...),
# so the datasets and their parts draw independently. Dataset tags in use: SYSU-MM01 1,
# RegDB 2, HITSZ-VCM 3, LLCM 4, BUPTCampus 5 (a new dataset takes another number).
IDENT, SPLIT, SCENE, IMAGE = 10, 11, 12, 13


@dataclass(frozen=True)
class Material:
    name: str
    texture: str      # visible pattern, also printed faintly in infrared
    ir_level: float   # mean infrared brightness of the part (0..255)


# IR levels ~30 apart so a part's material is readable from brightness alone.
MATERIALS = (
    Material('cotton', 'plain', 200.0),
    Material('wool', 'hstripes', 95.0),
    Material('denim', 'vstripes', 165.0),
    Material('fleece', 'checks', 230.0),
    Material('nylon', 'dots', 60.0),
    Material('polyester', 'diagonal', 130.0),
)
IR_TEXTURE_AMP = 50.0     # infrared texture contrast, below the level spacing
SKIN_IR = 245.0           # bare skin is the warmest thing in the picture
# mean of each binary texture mask, subtracted in IR so the part mean stays at ir_level
_TEXTURE_FRACTION = {'plain': 0.0, 'hstripes': 0.5, 'vstripes': 0.5, 'checks': 0.5,
                     'dots': np.pi * 0.32 ** 2, 'diagonal': 0.5}

#: values of the label map ``render_person(..., return_masks=True)`` returns
PARTS = {'background': 0, 'head': 1, 'face': 2, 'upper': 3, 'lower': 4, 'shoes': 5, 'bag': 6}
MATERIAL_PARTS = ('head', 'upper', 'lower', 'shoes', 'bag')   # parts that have a material


@dataclass(frozen=True)
class Identity:
    """What stays fixed for one person across images, cameras and modalities.

    materials/colours: per part of MATERIAL_PARTS (index into MATERIALS, RGB);
    bag material is None for people without a bag. Proportions are fractions of
    the person's height (width relative to a default body).
    """
    materials: Tuple[Optional[int], ...]
    colours: Tuple[Tuple[int, int, int], ...]
    skin: Tuple[int, int, int]
    height: float = 0.86    # person height / image height
    width: float = 1.0
    head: float = 0.15      # head length / height
    waist: float = 0.52     # where the legs start / height
    bag_side: int = 1
    gender: str = 'male'


def rng_stream(*keys):
    """Independent deterministic stream for a tuple of non-negative ints."""
    return np.random.default_rng([int(k) for k in keys])


def _random_colour(rng):
    # a small palette, so visible colour alone rarely singles out an identity and
    # the model has to look at texture/shape, which is what crosses to infrared
    r, g, b = colorsys.hsv_to_rgb(rng.integers(8) / 8, 0.65, (0.4, 0.85)[rng.integers(2)])
    return (int(r * 255), int(g * 255), int(b * 255))


def random_identities(rng, n):
    """``n`` identities with pairwise different (head, upper, lower, shoes) materials."""
    m = len(MATERIALS)
    if n > m ** 4:
        raise ValueError('at most {} distinct synthetic identities'.format(m ** 4))
    combos = rng.choice(m ** 4, size=n, replace=False)
    out = []
    for c in combos:
        mats = [int(c) // m ** k % m for k in range(4)]
        mats.append(int(rng.integers(m)) if rng.random() < 0.4 else None)
        skin = colorsys.hsv_to_rgb(rng.uniform(0.03, 0.1), rng.uniform(0.3, 0.6),
                                   rng.uniform(0.35, 0.95))
        out.append(Identity(
            materials=tuple(mats),
            colours=tuple(_random_colour(rng) for _ in MATERIAL_PARTS),
            skin=tuple(int(v * 255) for v in skin),
            height=rng.uniform(0.8, 0.93), width=rng.uniform(0.82, 1.2),
            head=rng.uniform(0.13, 0.17), waist=rng.uniform(0.47, 0.57),
            bag_side=int(rng.choice([-1, 1])), gender=str(rng.choice(['male', 'female']))))
    return out


def random_pose(rng):
    """Per-image placement: shift (fractions of width/height), scale, leg stride, mirror, view."""
    return {'dx': rng.uniform(-0.07, 0.07), 'dy': rng.uniform(-0.03, 0.03),
            'scale': rng.uniform(0.9, 1.05), 'stride': rng.uniform(-1, 1),
            'flip': bool(rng.random() < 0.5), 'view': 'front' if rng.random() < 0.5 else 'back'}


# ---------------------------------------------------------------- scenes


def make_scene(rng, outdoor=False):
    """A camera's fixed surroundings: wall/ground colours, a few objects, lighting."""
    def shade(lo, hi):
        return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.35),
                                            rng.uniform(lo, hi))) * 255
    objects = [(rng.uniform(-0.2, 1.0), rng.uniform(0.1, 0.45), rng.uniform(0, 0.5),
                rng.uniform(0.55, 1.0), shade(0.2, 0.9), rng.uniform(-10, 45))
               for _ in range(int(rng.integers(2, 5)))]   # x0, w, y0, y1, colour, IR offset
    tint = np.array([0.95, 1.0, 1.08]) if outdoor else np.array([1.06, 1.0, 0.86])
    return {'wall': shade(0.45, 0.95) if outdoor else shade(0.3, 0.8),
            'floor': shade(0.2, 0.6), 'horizon': rng.uniform(0.6, 0.8), 'objects': objects,
            'light': tint * (rng.uniform(0.95, 1.15) if outdoor else rng.uniform(0.75, 0.95)),
            'ir_wall': rng.uniform(15, 45) if outdoor else rng.uniform(35, 70),
            'ir_floor': rng.uniform(10, 40)}


def render_background(scene, infrared, rng, size=DEFAULT_SIZE):
    """One view of ``scene`` (float HxW grey or HxWx3): shifted, re-lit, sometimes a warm blob."""
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W]).reshape(2, 1, 1)
    if scene is None:   # neutral backdrop for controlled renders
        return np.full((H, W), 40.0) if infrared else np.full((H, W, 3), 128.0)
    shift = rng.uniform(-0.12, 0.12)
    if infrared:
        bg = np.where(yy < scene['horizon'], scene['ir_wall'], scene['ir_floor'])
        for x0, w, y0, y1, _, ir in scene['objects']:
            box = (xx - shift >= x0) & (xx - shift < x0 + w) & (yy >= y0) & (yy < y1)
            bg = np.where(box, bg + ir, bg)
        bg = bg + rng.uniform(-10, 10)
        if rng.random() < 0.3:   # a warm lamp, radiator or car somewhere
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.15)
            bg = np.where(((yy - cy) * H) ** 2 + ((xx - cx) * W * 1.0) ** 2 < (r * H) ** 2,
                          rng.uniform(110, 170), bg)
        return bg
    bg = np.where((yy < scene['horizon'])[..., None], scene['wall'], scene['floor'])
    for x0, w, y0, y1, colour, _ in scene['objects']:
        box = (xx - shift >= x0) & (xx - shift < x0 + w) & (yy >= y0) & (yy < y1)
        bg = np.where(box[..., None], colour, bg)
    return bg * rng.uniform(0.85, 1.15)


# ---------------------------------------------------------------- person


def _texture(name, tu, tv):
    """Binary pattern over texture coordinates (units: one pattern period)."""
    if name == 'plain':
        return np.zeros(tu.shape, bool)
    if name == 'hstripes':
        return np.floor(2 * tv) % 2 == 1
    if name == 'vstripes':
        return np.floor(2 * tu) % 2 == 1
    if name == 'checks':
        return (np.floor(2 * tu) + np.floor(2 * tv)) % 2 == 1
    if name == 'dots':
        return (tu - np.floor(tu) - 0.5) ** 2 + (tv - np.floor(tv) - 0.5) ** 2 < 0.32 ** 2
    if name == 'diagonal':
        return np.floor(1.4 * (tu + tv)) % 2 == 1
    raise ValueError('unknown texture {!r}'.format(name))


def _label_map(ident, pose, size):
    """Part label per pixel, plus body coordinates (u across, v down) and texture coords."""
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    ph = ident.height * H * pose['scale']
    top = (H - ph) / 2 + pose['dy'] * H
    cx = W / 2 + pose['dx'] * W
    bw = 0.28 * ph * ident.width
    u, v = (xx - cx) / bw, (yy - top) / ph
    au, s = np.abs(u), abs(pose['stride'])
    hf, wa, feet = ident.head, ident.waist, 0.95
    lab = np.zeros(size, np.uint8)
    # later parts paint over earlier ones: legs, shoes, torso+arms, head, bag
    legs = (au >= 0.03 + 0.1 * s) & (au <= 0.4 + 0.12 * s)
    lab[legs & (v >= wa) & (v < feet)] = PARTS['lower']
    shoes = (au >= 0.03 + 0.1 * s) & (au <= 0.44 + 0.12 * s) & (v >= feet) & (v <= 1.0)
    lab[shoes] = PARTS['shoes']
    torso = (v >= 0.95 * hf) & (v < wa + 0.02) & (au <= 0.5 - 0.08 * (v - hf) / (wa - hf))
    arm_swing = 0.03 * pose['stride'] * np.sign(u)
    arms = (au > 0.48) & (au <= 0.66) & (v >= hf + 0.01) & (v < wa + 0.04 + arm_swing)
    lab[torso | arms] = PARTS['upper']
    head = (u / 0.27) ** 2 + ((v - hf / 2) / (hf / 2)) ** 2 <= 1
    lab[head] = PARTS['head']
    if pose['view'] == 'front':
        lab[head & (v > 0.4 * hf) & (au < 0.2)] = PARTS['face']
    if ident.materials[4] is not None:
        side = ident.bag_side * (-1 if pose['flip'] else 1)
        bag = (u * side >= 0.5) & (u * side <= 0.82) & (v >= wa - 0.14) & (v < wa + 0.1)
        lab[bag] = PARTS['bag']
    period = ph / 12.0    # texture scales with the person
    return lab, u, (xx - cx) / period, (yy - top) / period


def render_person(ident, infrared=False, rng=None, pose=None, scene=None, size=DEFAULT_SIZE,
                  background=None, light=None, noise=True, return_masks=False):
    """One image of ``ident`` as uint8 HxWx3 (infrared: three equal channels).

    Unset ``pose``/``background``/``light`` are drawn from ``rng`` (so a
    tracklet can fix them across frames). ``scene=None`` gives a flat backdrop;
    ``noise=False`` skips sensor noise. With ``return_masks`` also returns the
    HxW part label map (values of ``PARTS``).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    pose = random_pose(rng) if pose is None else pose
    lab, u, tu, tv = _label_map(ident, pose, size)
    img = render_background(scene, infrared, rng, size) if background is None else background
    img = np.array(img, dtype=np.float64)
    # soft cylinder shading so parts are not flat cut-outs (same in both modalities)
    shade = 1 - np.minimum(np.abs(u), 1) ** 2 * (0.15 if infrared else 0.25)
    for part in MATERIAL_PARTS:
        where = lab == PARTS[part]
        if not where.any():
            continue
        k = MATERIAL_PARTS.index(part)
        mat = MATERIALS[ident.materials[k]]
        tex = _texture(mat.texture, tu[where], tv[where])
        if infrared:   # colour-blind: material level + faint texture
            val = mat.ir_level + IR_TEXTURE_AMP * (tex - _TEXTURE_FRACTION[mat.texture])
        else:          # texture drawn in a darker (or, on dark cloth, lighter) shade
            c = np.array(ident.colours[k], float)
            alt = c * 0.4 if c @ [0.299, 0.587, 0.114] > 110 else c + (255 - c) * 0.6
            val = np.where(tex[:, None], alt, c)
        img[where] = val * (shade[where] if infrared else shade[where][:, None])
    face = lab == PARTS['face']
    img[face] = SKIN_IR if infrared else np.array(ident.skin, float)
    if infrared:
        img = gaussian_filter(img, 0.7)   # thermal optics are soft
    else:
        if light is None:
            light = (scene['light'] if scene is not None else np.ones(3)) * rng.uniform(0.9, 1.1)
        img = img * light
    if noise:
        img = img + rng.normal(0, 4.0 if infrared else 5.0, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if infrared:
        img = np.repeat(img[..., None], 3, axis=2)
    return (img, lab) if return_masks else img


def part_mean(img, labels, part):
    """Mean brightness of ``part`` (a PARTS name) in an image from ``render_person``."""
    return float(img[labels == PARTS[part]].mean())



# ---------------------------------------------------------------- writing


def save_image(img, path, **kw):
    """Write a uint8 image array to ``path`` (PIL picks the format from the extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, **kw)


def write_lines(path, lines):
    """A text file of ``lines``, each ended by a newline."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))


#: the file every synthetic tree carries at its top (``write_atomic`` writes it): the loaders
#: read it, so a synthetic tree is never taken for the real dataset (``is_synthetic``)
SYNTHETIC_MARKER = '.vireid-synthetic'


#: an empty file a user puts at the top of a tree that is real data although it is small
#: (a subset): ``older_synthetic_ids`` then never takes it for an older synthetic tree
REAL_MARKER = '.vireid-real'


def is_synthetic(folder):
    """Whether ``folder`` is a tree a synthetic writer made (it holds ``SYNTHETIC_MARKER``)."""
    return os.path.isfile(os.path.join(folder, SYNTHETIC_MARKER))


def identity_ids(folder):
    """The identities of a dataset tree: the numbers named by its folders one or two levels
    down (``cam1/0001``, ``Visible/1``, ``Train/0001``, ``vis/0001``, ``DATA/1``, or a flat
    ``0001``), as the five layouts name their identity folders."""
    found = set()
    try:
        tops = list(os.scandir(folder))
    except OSError:
        return found
    for top in tops:
        if not top.is_dir():
            continue
        if top.name.isdigit():
            found.add(int(top.name))
            continue
        try:
            found.update(int(e.name) for e in os.scandir(top.path)
                         if e.name.isdigit() and e.is_dir())
        except OSError:
            pass
    return found


def older_synthetic_ids(folder, real_ids):
    """The identity count of ``folder`` when it looks like a tree of an older synthetic
    writer (written before ``SYNTHETIC_MARKER`` existed): unmarked (neither marker), with
    identity folders, but fewer than half of the ``real_ids`` identities of the real
    dataset (the writers' defaults write 64-176, the real sets have 412-3,080); else None."""
    if not real_ids or is_synthetic(folder) or os.path.isfile(os.path.join(folder,
                                                                           REAL_MARKER)):
        return None
    count = len(identity_ids(folder))
    return count if 0 < count < real_ids / 2 else None


def write_atomic(root, folder, build, overwrite, name=None):
    """Build ``<root>/<folder>`` in a hidden sibling folder (``build(tmp)``), mark it as
    synthetic (``SYNTHETIC_MARKER``), then rename it into place; ``name`` (default: the
    folder) names the dataset in the messages. ``overwrite`` replaces an existing
    synthetic tree, never a folder without the marker (the real dataset)."""
    name = name or folder
    target = os.path.join(root, folder)

    def refuse():
        if os.path.exists(target) and not is_synthetic(target):
            raise FileExistsError(
                'synthetic {} not written: {} already exists and is not a synthetic tree '
                '(no {} file: the real dataset?); it is never replaced, choose another '
                'root'.format(name, target, SYNTHETIC_MARKER))
        raise FileExistsError(
            'synthetic {} not written: {} already exists (replace it with '
            'scripts/make_synthetic_data.py --overwrite, or overwrite=True in '
            'Python)'.format(name, target))
    if os.path.exists(target) and (not overwrite or not is_synthetic(target)):
        refuse()
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.{}.partial-'.format(folder), dir=root)
    try:
        os.chmod(tmp, 0o755)   # mkdtemp makes it private
        build(tmp)
        with open(os.path.join(tmp, SYNTHETIC_MARKER), 'w') as f:
            f.write('synthetic {} written by vireid_plugin (data.synthetic, '
                    'scripts/make_synthetic_data.py): not the real dataset\n'.format(name))
        if os.path.exists(target):
            if not overwrite or not is_synthetic(target):   # someone else finished first
                refuse()
            trash = tempfile.mkdtemp(prefix='.{}.old-'.format(folder), dir=root)
            os.rename(target, os.path.join(trash, folder))
            os.rename(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------- walks (tracklets)


def walk_start(rng):
    """First pose and motion (drift x, drift y, growth, leg phase) of a walk."""
    start = random_pose(rng)
    vx, vy = rng.uniform(-0.006, 0.006), rng.uniform(-0.002, 0.002)
    growth, phase = rng.uniform(-0.006, 0.006), rng.uniform(0, 2 * np.pi)
    return start, (vx, vy, growth, phase)


def walk_pose(start, motion, f, jitter):
    """Pose of frame ``f`` of a walk: smooth drift in position/scale, swinging legs."""
    vx, vy, growth, phase = motion
    return dict(start, dx=start['dx'] + vx * f + jitter, dy=start['dy'] + vy * f,
                scale=start['scale'] * (1 + growth * f), stride=np.sin(phase + 0.7 * f))


def render_tracklet(ident, infrared, rng, scene, length, size, poses=None):
    """Frames of one walk in front of a fixed backdrop (``poses``: given, else drawn)."""
    bg = render_background(scene, infrared, rng, size)
    light = None if infrared else scene['light'] * rng.uniform(0.9, 1.1)
    if poses is None:
        start, motion = walk_start(rng)
    frames = []
    for f in range(length):
        pose = poses[f] if poses is not None else walk_pose(start, motion, f,
                                                            rng.normal(0, 0.004))
        frames.append(render_person(ident, infrared, rng, pose=pose, size=size,
                                    background=bg, light=light))
    return frames


# ---------------------------------------------------------------- registration


def synthetic_writer(name, folder, real_ids=0):
    """Register a dataset family's writer ``writer(root, seed=0, ..., overwrite=False) ->
    path``, which writes ``<root>/<folder>`` (the folder the family's loader looks for, its
    ``dataset_dir``) through ``write_atomic``. A decorator; sets ``writer.folder`` and
    ``writer.real_ids``: how many identities the real dataset has (0: unknown), which tells
    an unmarked tree of an older writer from the real one (``older_synthetic_ids``)."""
    def deco(writer):
        writer.folder = folder
        writer.real_ids = real_ids
        return SYNTHETIC_WRITERS.register(name, writer)
    return deco


def writer_for_folder(folder):
    """The registered writer of the dataset folder ``folder`` (e.g. 'SYSU-MM01'), or None."""
    found = [w for _, w in SYNTHETIC_WRITERS.items() if w.folder == folder]
    return found[0] if found else None


def __getattr__(name):
    # ``make_<dataset>`` (make_sysu_mm01, make_regdb, ...): the registered writer, under the
    # name it had when every writer lived in this module (tests and scripts import it so)
    if name.startswith('make_') and name[5:] in SYNTHETIC_WRITERS:
        return SYNTHETIC_WRITERS.get(name[5:])
    raise AttributeError('module {!r} has no attribute {!r}'.format(__name__, name))
