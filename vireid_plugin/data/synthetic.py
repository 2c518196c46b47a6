"""Synthetic visible-infrared pedestrians in the real on-disk layouts.

Writes small stand-ins for SYSU-MM01, RegDB, HITSZ-VCM, LLCM and BUPTCampus so
the demos and the tests run without the real (licence-restricted) data.

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
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

DEFAULT_SIZE = (128, 64)   # (height, width), the size of real RegDB images

#: dataset family -> folder name under root (what the loaders look for)
DATASET_DIRS = {'sysu_mm01': 'SYSU-MM01', 'regdb': 'RegDB', 'hitsz_vcm': 'HITSZ-VCM',
                'llcm': 'LLCM', 'buptcampus': 'BUPTCampus'}

# rng stream tags, so the datasets (and their parts) draw independently
_SYSU, _REGDB, _VCM, _LLCM, _BUPT = 1, 2, 3, 4, 5
_IDENT, _SPLIT, _SCENE, _IMAGE = 10, 11, 12, 13


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


def _rng(*keys):
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


def _save(img, path, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, **kw)


def _write_atomic(root, family, build, overwrite):
    """Build the dataset in a hidden sibling folder, then rename it into place."""
    name = DATASET_DIRS[family]
    target = os.path.join(root, name)

    def refuse():
        raise FileExistsError(
            'synthetic {} not written: {} already exists (pass overwrite=True to replace '
            'it)'.format(family, target))
    if os.path.exists(target) and not overwrite:
        refuse()
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.{}.partial-'.format(name), dir=root)
    try:
        os.chmod(tmp, 0o755)   # mkdtemp makes it private
        build(tmp)
        if os.path.exists(target):
            if not overwrite:   # someone else finished first
                refuse()
            trash = tempfile.mkdtemp(prefix='.{}.old-'.format(name), dir=root)
            os.rename(target, os.path.join(trash, name))
            os.rename(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))


# ---------------------------------------------------------------- SYSU-MM01

SYSU_RGB_CAMS, SYSU_IR_CAMS = (1, 2, 4, 5), (3, 6)


def _sysu_scenes(seed):
    rooms = {room: make_scene(_rng(seed, _SYSU, _SCENE, room), outdoor=room >= 3)
             for room in (1, 2, 3, 4, 5)}
    # cam3 (IR) films the same room as cam2; cam6 (IR) is outdoors
    return {1: rooms[1], 2: rooms[2], 3: rooms[2], 4: rooms[3], 5: rooms[4], 6: rooms[5]}


def _sysu_cameras(rng, test_ids, no_indoor, ids, keep_prob):
    """{pid: sorted cams}: random drops, then the real data's guarantees."""
    cams = {}
    for pid in ids:
        keep = {c for c in range(1, 7) if rng.random() < keep_prob}
        if pid in no_indoor:          # indoor search queries of this id have no match
            keep -= {1, 2}
        elif pid in test_ids and not keep & {1, 2}:
            keep.add(int(rng.choice([1, 2])))
        if not keep & set(SYSU_RGB_CAMS):
            keep.add(int(rng.choice([4, 5] if pid in no_indoor else SYSU_RGB_CAMS)))
        if not keep & set(SYSU_IR_CAMS):
            keep.add(int(rng.choice(SYSU_IR_CAMS)))
        cams[pid] = sorted(keep)
    return cams


def make_sysu_mm01(root, seed=0, num_train=128, num_val=16, num_test=32, images_per_cam=3,
                   num_no_indoor=None, keep_prob=0.75, size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/SYSU-MM01`` (cam1..cam6/<pid4>/<nnnn>.jpg + exp/*.txt); returns its path.

    Ids are non-contiguous and split at random; some (id, camera) folders are
    dropped. Defaults suit the CPU demo: with 30 training ids the tiny ViT
    memorises them; 144 (train + val) with ``random_grayscale`` take it from
    about 8% to 36% mAP in the demo (README). ``num_no_indoor`` test ids
    (default ``max(1, num_test // 8)``) get no cam1/cam2 folder, so some
    indoor-search queries have no match.
    """
    if min(num_train, num_val, num_test) < 1:
        # the real exp/*.txt files are never empty, and the loader rejects empty ones
        raise ValueError('SYSU-MM01 needs at least one train, val and test id; got {}, {}, '
                         '{}'.format(num_train, num_val, num_test))
    n = num_train + num_val + num_test
    rng = _rng(seed, _SYSU, _SPLIT)
    ids = sorted(int(i) for i in rng.choice(np.arange(1, n + n // 4 + 3), n, replace=False))
    perm = [int(i) for i in rng.permutation(ids)]
    train, val, test = (sorted(perm[:num_train]), sorted(perm[num_train:num_train + num_val]),
                        sorted(perm[num_train + num_val:]))
    if num_no_indoor is None:
        num_no_indoor = max(1, num_test // 8) if num_test >= 4 else 0
    no_indoor = set(int(i) for i in rng.permutation(test)[:num_no_indoor])
    cams = _sysu_cameras(rng, set(test), no_indoor, ids, keep_prob)
    people = dict(zip(ids, random_identities(_rng(seed, _SYSU, _IDENT), n)))
    scenes = _sysu_scenes(seed)

    def build(out):
        for cam in range(1, 7):
            os.makedirs(os.path.join(out, 'cam{}'.format(cam)))
        for pid in ids:
            for cam in cams[pid]:
                r = _rng(seed, _SYSU, _IMAGE, pid, cam)
                for k in range(1, images_per_cam + 1):
                    img = render_person(people[pid], cam in SYSU_IR_CAMS, r,
                                        scene=scenes[cam], size=size)
                    _save(img, os.path.join(out, 'cam{}'.format(cam), '{:04d}'.format(pid),
                                            '{:04d}.jpg'.format(k)), quality=90)
        for name, group in (('train_id', train), ('val_id', val), ('test_id', test),
                            ('available_id', ids)):
            _write_lines(os.path.join(out, 'exp', name + '.txt'), [','.join(map(str, group))])
    return _write_atomic(root, 'sysu_mm01', build, overwrite)


# ---------------------------------------------------------------- RegDB


def make_regdb(root, seed=0, num_ids=64, images_per_id=10, num_trials=10, size=DEFAULT_SIZE,
               overwrite=False):
    """Write ``<root>/RegDB`` (Visible/, Thermal/, idx/); returns its path.

    Like the real set, each visible image has a thermal twin taken at the same
    moment (same pose, same file number). Trial t splits the ids in half at
    random; labels are 0.. in ascending id order, per split.
    """
    if num_ids < 2 or num_ids % 2:
        raise ValueError('RegDB needs an even num_ids >= 2, got {}'.format(num_ids))
    ids = list(range(1, num_ids + 1))
    people = dict(zip(ids, random_identities(_rng(seed, _REGDB, _IDENT), num_ids)))
    scene = make_scene(_rng(seed, _REGDB, _SCENE), outdoor=True)

    def build(out):
        files = {'visible': {}, 'thermal': {}}
        for pid in ids:
            r = _rng(seed, _REGDB, _IMAGE, pid)
            for k in range(images_per_id):
                number = (pid - 1) * images_per_id + k    # unique over the dataset
                pose = random_pose(r)
                for mod, letter, folder in (('visible', 'v', 'Visible'),
                                            ('thermal', 't', 'Thermal')):
                    img = render_person(people[pid], mod == 'thermal', r, pose=pose,
                                        scene=scene, size=size)
                    rel = '{}/{}/{}_{}_{}_{:05d}_{}.bmp'.format(
                        folder, pid, people[pid].gender, pose['view'], letter, number, pid)
                    _save(img, os.path.join(out, rel))
                    files[mod].setdefault(pid, []).append(rel)
        for t in range(1, num_trials + 1):
            perm = [int(i) for i in _rng(seed, _REGDB, _SPLIT, t).permutation(ids)]
            for part, group in (('train', perm[:num_ids // 2]), ('test', perm[num_ids // 2:])):
                label = {pid: i for i, pid in enumerate(sorted(group))}
                for mod in ('visible', 'thermal'):
                    _write_lines(os.path.join(out, 'idx', '{}_{}_{}.txt'.format(part, mod, t)),
                                 ['{} {}'.format(rel, label[pid])
                                  for pid in sorted(group) for rel in files[mod][pid]])
    return _write_atomic(root, 'regdb', build, overwrite)


# ---------------------------------------------------------------- HITSZ-VCM

VCM_IR, VCM_RGB = 1, 2
_VCM_FOLDER = {VCM_IR: 'ir', VCM_RGB: 'rgb'}


def _vcm_plan(rng, pids, tracklets, lengths, min_len, num_cams):
    """[(pid, modality, cam, length)]: first tracklet per modality is long enough
    for the loader; the others may be short (the loader drops those)."""
    lo, hi = lengths
    plan = []
    for pid in pids:
        for m in (VCM_IR, VCM_RGB):
            k = int(rng.integers(tracklets[0], tracklets[1] + 1))
            cams = rng.choice(np.arange(1, num_cams + 1), k, replace=k > num_cams)
            lens = [int(rng.integers(max(lo, min_len), max(hi, min_len) + 1))]
            lens += [int(rng.integers(lo, hi + 1)) for _ in range(k - 1)]
            plan += [(pid, m, int(c), n) for c, n in zip(cams, lens)]
    # make sure the short-tracklet filter has something to drop
    if lo < min_len and all(n >= min_len for *_, n in plan):
        extra = [i for i in range(1, len(plan)) if plan[i][:2] == plan[i - 1][:2]]
        if extra:
            pid, m, c, _ = plan[extra[0]]
            plan[extra[0]] = (pid, m, c, lo)
    return sorted(plan, key=lambda p: p[:3])   # stable: tracklet order kept per camera


def _walk_start(rng):
    """First pose and motion (drift x, drift y, growth, leg phase) of a walk."""
    start = random_pose(rng)
    vx, vy = rng.uniform(-0.006, 0.006), rng.uniform(-0.002, 0.002)
    growth, phase = rng.uniform(-0.006, 0.006), rng.uniform(0, 2 * np.pi)
    return start, (vx, vy, growth, phase)


def _walk_pose(start, motion, f, jitter):
    """Pose of frame ``f`` of a walk: smooth drift in position/scale, swinging legs."""
    vx, vy, growth, phase = motion
    return dict(start, dx=start['dx'] + vx * f + jitter, dy=start['dy'] + vy * f,
                scale=start['scale'] * (1 + growth * f), stride=np.sin(phase + 0.7 * f))


def _render_tracklet(ident, infrared, rng, scene, length, size, poses=None):
    """Frames of one walk in front of a fixed backdrop (``poses``: given, else drawn)."""
    bg = render_background(scene, infrared, rng, size)
    light = None if infrared else scene['light'] * rng.uniform(0.9, 1.1)
    if poses is None:
        start, motion = _walk_start(rng)
    frames = []
    for f in range(length):
        pose = poses[f] if poses is not None else _walk_pose(start, motion, f,
                                                              rng.normal(0, 0.004))
        frames.append(render_person(ident, infrared, rng, pose=pose, size=size,
                                    background=bg, light=light))
    return frames


def make_hitsz_vcm(root, seed=0, flat=False, num_train=64, num_test=24, tracklets=(3, 4),
                   lengths=(8, 24), min_len=12, num_cams=6, size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/HITSZ-VCM`` (info/*.txt + <Train|Test>/<pid4>/<ir|rgb>/D<c>/<f>.jpg).

    ``tracklets``: (min, max) tracklets per id and modality, each in a camera
    D1..D<num_cams> (both modalities share cameras: RGB by day, IR by night).
    ``flat`` puts the pid folders directly under HITSZ-VCM/.
    """
    n = num_train + num_test
    rng = _rng(seed, _VCM, _SPLIT)
    ids = sorted(int(i) for i in rng.choice(np.arange(1, n + n // 4 + 3), n, replace=False))
    splits = {'train': ids[:num_train], 'test': ids[num_train:]}
    people = dict(zip(ids, random_identities(_rng(seed, _VCM, _IDENT), n)))
    scenes = {c: make_scene(_rng(seed, _VCM, _SCENE, c), outdoor=c > num_cams // 2)
              for c in range(1, num_cams + 1)}

    def build(out):
        for split, pids in splits.items():
            folder = out if flat else os.path.join(out, split.capitalize())
            names, rows = [], []
            next_frame, next_track = {}, {}
            for pid, m, cam, length in _vcm_plan(rng, pids, tracklets, lengths, min_len,
                                                 num_cams):
                key = (pid, m, cam)
                t = next_track[key] = next_track.get(key, 0) + 1
                f0 = next_frame.get(key, 1)     # frame numbers continue across tracklets
                next_frame[key] = f0 + length
                r = _rng(seed, _VCM, _IMAGE, pid, m, cam, t)
                frames = _render_tracklet(people[pid], m == VCM_IR, r, scenes[cam], length, size)
                rows.append('{} {} {} {:04d} {}'.format(m, len(names) + 1, len(names) + length,
                                                        pid, cam))
                for f, img in enumerate(frames, f0):
                    names.append('{:04d}M{}D{}T{}F{}.jpg'.format(pid, m, cam, t, f))
                    _save(img, os.path.join(folder, '{:04d}'.format(pid), _VCM_FOLDER[m],
                                            'D{}'.format(cam), '{}.jpg'.format(f)), quality=90)
            info = os.path.join(out, 'info')
            _write_lines(os.path.join(info, '{}_name.txt'.format(split)), names)
            _write_lines(os.path.join(info, 'track_{}_info.txt'.format(split)), rows)
            if split == 'test':
                query = [str(i) for i, row in enumerate(rows, 1) if row.startswith('1 ')]
                _write_lines(os.path.join(info, 'query_IDX.txt'), [' '.join(query)])
    return _write_atomic(root, 'hitsz_vcm', build, overwrite)


# ---------------------------------------------------------------- LLCM

LLCM_CAMS = {'vis': tuple(range(1, 10)), 'nir': (1, 2, 4, 5, 6, 7, 8, 9)}   # no infrared cam3


def _llcm_ids(rng, num_train, num_test):
    """Raw ids from 0 with gaps; the test ids are exactly those divisible by 3 (as LLCM's)."""
    test = rng.choice(np.arange(0, 3 * (num_test + num_test // 4 + 2), 3), num_test, replace=False)
    others = [i for i in range(3 * (num_train + num_train // 4 + 2)) if i % 3]
    train = rng.choice(others, num_train, replace=False)
    return sorted(int(i) for i in train), sorted(int(i) for i in test)


def make_llcm(root, seed=0, num_train=144, num_test=32, cams_per_id=(2, 3), images=(2, 4),
              size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/LLCM`` (idx/*.txt, vis|nir/<pid4>/, test_vis|test_nir/cam<K>/<pid4>/).

    Each id is filmed by ``cams_per_id`` (min, max) cameras per modality, with
    ``images`` (min, max) images each. Visible images are dim (low light).
    Index lines come in per-id blocks in a shuffled id order, labelled by first
    appearance; test_id.txt is one line without a trailing newline; the test
    images are copied into test_*/cam<K>/<pid4>/ as in the release.
    """
    if min(num_train, num_test) < 1:
        raise ValueError('LLCM needs at least one train and one test id')
    rng = _rng(seed, _LLCM, _SPLIT)
    train, test = _llcm_ids(rng, num_train, num_test)
    people = dict(zip(train + test, random_identities(_rng(seed, _LLCM, _IDENT),
                                                      num_train + num_test)))
    scenes = {c: make_scene(_rng(seed, _LLCM, _SCENE, c), outdoor=c > 3) for c in range(1, 10)}
    shots = {}   # (pid, mod) -> [(cam, n_images)]
    for pid in train + test:
        for mod in ('vis', 'nir'):
            k = int(rng.integers(cams_per_id[0], cams_per_id[1] + 1))
            cams = sorted(int(c) for c in rng.choice(LLCM_CAMS[mod], k, replace=False))
            shots[pid, mod] = [(c, int(rng.integers(images[0], images[1] + 1))) for c in cams]

    def build(out):
        for k, (part, pids) in enumerate((('train', train), ('test', test)), 1):
            order = [int(p) for p in _rng(seed, _LLCM, _SPLIT, k).permutation(pids)]
            for mod in ('vis', 'nir'):
                lines = []
                for label, pid in enumerate(order):
                    for cam, n in shots[pid, mod]:
                        r = _rng(seed, _LLCM, _IMAGE, pid, cam, mod == 'nir')
                        clock = int(r.integers(6 * 3600, 23 * 3600))
                        for k in range(n):
                            img = render_person(people[pid], mod == 'nir', r, scene=scenes[cam],
                                                size=size, light=None if mod == 'nir' else
                                                scenes[cam]['light'] * r.uniform(0.45, 0.8))
                            t = clock + 7 * k
                            name = '{:04d}_c{:02d}_s{:02d}{:02d}{:02d}_f{}_{}.jpg'.format(
                                pid, cam, t // 3600, t // 60 % 60, t % 60,
                                int(r.integers(100, 30000)), mod)
                            rel = '{}/{:04d}/{}'.format(mod, pid, name)
                            _save(img, os.path.join(out, rel), quality=90)
                            if part == 'test':
                                copy = os.path.join(out, 'test_' + mod, 'cam{}'.format(cam),
                                                    '{:04d}'.format(pid), name)
                                os.makedirs(os.path.dirname(copy), exist_ok=True)
                                shutil.copyfile(os.path.join(out, rel), copy)
                            lines.append('{} {}'.format(rel, label))
                _write_lines(os.path.join(out, 'idx', '{}_{}.txt'.format(part, mod)), lines)
            if part == 'test':
                with open(os.path.join(out, 'idx', 'test_id.txt'), 'w') as f:
                    f.write(','.join('{:04d}'.format(p) for p in order))
    return _write_atomic(root, 'llcm', build, overwrite)


# ---------------------------------------------------------------- BUPTCampus

BUPT_CAMS = ('LS3', 'G25', 'CQ1', 'W4', 'TSG1', 'TSG2')


def _render_pair(ident, rng, scene, length, size):
    """(RGB frames, IR frames) of one walk filmed by both sensors of a camera at once."""
    start, motion = _walk_start(rng)
    poses = [_walk_pose(start, motion, f, rng.normal(0, 0.004)) for f in range(length)]
    seeds = rng.integers(2 ** 32, size=2)
    return tuple(_render_tracklet(ident, ir, np.random.default_rng(int(sd)), scene, length,
                                  size, poses=poses) for ir, sd in zip((False, True), seeds))


def _bupt_plan(rng, train, aux, test, cams_per_id):
    """{split file: [(pid, modality field, camera, tid)]} and every tracklet pair to render.

    Train ids: one pair in each of ``cams_per_id`` cameras; auxiliary ids: two pairs
    in one camera; test ids: a query (one half of a pair, RGB or IR in turn) and
    gallery pairs in two other cameras plus, for every third id, one in the
    query's camera (dropped by the same-camera removal).
    """
    lines = {name: [] for name in ('train.txt', 'train_auxiliary.txt', 'query.txt',
                                   'gallery.txt')}
    for pid in train:
        k = int(rng.integers(cams_per_id[0], cams_per_id[1] + 1))
        for cam in sorted(rng.choice(len(BUPT_CAMS), k, replace=False)):
            lines['train.txt'].append((pid, 'RGB/IR', BUPT_CAMS[cam], 1))
    for pid in aux:
        cam = BUPT_CAMS[int(rng.integers(len(BUPT_CAMS)))]
        lines['train_auxiliary.txt'] += [(pid, 'RGB/IR', cam, t) for t in (1, 2)]
    for i, pid in enumerate(test):
        cams = [BUPT_CAMS[c] for c in rng.choice(len(BUPT_CAMS), 3, replace=False)]
        lines['query.txt'].append((pid, ('RGB', 'IR')[i % 2], cams[0], 1))
        pairs = [(cams[1], 1), (cams[2], 1)] + ([(cams[0], 2)] if i % 3 == 0 else [])
        lines['gallery.txt'] += [(pid, mod, cam, tid) for cam, tid in pairs
                                 for mod in ('RGB', 'IR')]
    pairs = sorted({(p, c, t) for rows in lines.values() for p, _, c, t in rows})
    return lines, pairs


def make_buptcampus(root, seed=0, num_train=96, num_aux=16, num_test=48, cams_per_id=(2, 3),
                    lengths=(8, 16), size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/BUPTCampus`` (DATA/<pid>/<RGB|IR|FakeIR>/<cam>/..., data_paths.json,
    train.txt, train_auxiliary.txt, query.txt, gallery.txt); returns its path.

    Every tracklet is an RGB/IR pair filmed at once (same poses, same frame
    numbers); FakeIR/ holds a stand-in for the authors' PairGAN output (the IR
    frame under the RGB name). ``lengths``: (min, max) frames a tracklet.
    """
    if min(num_train, num_test) < 1:
        raise ValueError('BUPTCampus needs at least one train and one test id')
    n = num_train + num_aux + num_test
    rng = _rng(seed, _BUPT, _SPLIT)
    ids = [int(i) for i in rng.permutation(np.arange(1, n + n // 4 + 2))[:n]]
    train, aux, test = (sorted(ids[:num_train]), sorted(ids[num_train:num_train + num_aux]),
                        sorted(ids[num_train + num_aux:]))
    people = dict(zip(ids, random_identities(_rng(seed, _BUPT, _IDENT), n)))
    scenes = {c: make_scene(_rng(seed, _BUPT, _SCENE, i), outdoor=i % 2 == 0)
              for i, c in enumerate(BUPT_CAMS)}
    lines, pairs = _bupt_plan(rng, train, aux, test, cams_per_id)

    def build(out):
        paths = {}
        for pid, cam, tid in pairs:
            r = _rng(seed, _BUPT, _IMAGE, pid, BUPT_CAMS.index(cam), tid)
            length = int(r.integers(lengths[0], lengths[1] + 1))
            first = int(r.integers(100, 9000))
            rgb, ir = _render_pair(people[pid], r, scenes[cam], length, size)
            for mod, frames in (('RGB', rgb), ('IR', ir)):
                rels = []
                for f, img in enumerate(frames, first):
                    name = '{}_{}_{}_{}_{}.jpg'.format(pid, mod, cam, tid, f)
                    rels.append('{}/{}/{}/{}'.format(pid, mod, cam, name))
                    _save(img, os.path.join(out, 'DATA', rels[-1]), quality=90)
                    if mod == 'IR':   # PairGAN stand-in: the IR frame, named as the RGB one
                        fake = name.replace('_IR_', '_RGB_')
                        _save(img, os.path.join(out, 'DATA', str(pid), 'FakeIR', cam, fake),
                              quality=90)
                paths.setdefault(str(pid), {}).setdefault(mod, {}).setdefault(
                    cam, {})[str(tid)] = rels
        with open(os.path.join(out, 'data_paths.json'), 'w') as f:
            json.dump(paths, f)
        for name, rows in lines.items():
            _write_lines(os.path.join(out, name), ['{} {} {} {}'.format(*r) for r in rows])
    return _write_atomic(root, 'buptcampus', build, overwrite)


# ---------------------------------------------------------------- entry points

SYNTHETIC = {'sysu_mm01': make_sysu_mm01, 'regdb': make_regdb, 'hitsz_vcm': make_hitsz_vcm,
             'llcm': make_llcm, 'buptcampus': make_buptcampus}


def ensure_synthetic(family, root, **kw):
    """Path of ``<root>/<family folder>``, generating synthetic data first if it is missing."""
    if family not in SYNTHETIC:
        raise KeyError('unknown synthetic dataset {!r}; known: {}'.format(family,
                                                                          sorted(SYNTHETIC)))
    target = os.path.join(root, DATASET_DIRS[family])
    if os.path.isdir(target):
        return target
    print('Generating synthetic {} data in {}'.format(DATASET_DIRS[family], target))
    try:
        return SYNTHETIC[family](root, **kw)
    except FileExistsError:
        if os.path.isdir(target):   # a concurrent run got there first
            return target
        raise
