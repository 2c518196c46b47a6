import os

import numpy as np
from PIL import Image

from vireid_plugin.visualize.ranked import BORDER, GAP, MATCH, save_ranked_lists


def test_ranked_lists_follow_the_sysu_room_rule_and_never_overwrite(tmp_path):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    paths = []
    for i, shade in enumerate((40, 90, 140, 190, 240)):
        sub = folder / str(i)
        sub.mkdir()
        Image.new('RGB', (8, 16), (shade,) * 3).save(sub / '0001.jpg')  # SYSU-like names
        paths.append(str(sub / '0001.jpg'))
    # two queries of pid 1: from camera 3 (camid 2) and camera 6 (camid 5)
    query = [(paths[0], 1, 2, 0, 1), (paths[1], 1, 5, 0, 1)]
    # gallery: a camera-2 item of another pid (nearest), the true match, another pid
    gallery = [(paths[2], 2, 1, 0, 0), (paths[3], 1, 0, 0, 0), (paths[4], 3, 3, 0, 0)]
    distmat = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    h, w = 32, 16
    n = save_ranked_lists(distmat, query, gallery, 'sysu', str(tmp_path / 'out'), size=(h, w))
    out = sorted(os.listdir(tmp_path / 'out'))
    assert n == 2 and out == ['00000_pid1_cam3.jpg', '00001_pid1_cam6.jpg']
    cam3 = Image.open(tmp_path / 'out' / out[0])
    cam6 = Image.open(tmp_path / 'out' / out[1])
    # camera 3 skips the camera-2 item: query + 2 items; camera 6 keeps all 3
    assert cam3.size == (3 * (w + GAP), h) and cam6.size == (4 * (w + GAP), h)
    # first ranked item of the camera-3 query is the true match: green border
    x = (w + GAP) + GAP + BORDER // 2
    assert np.abs(np.array(cam3.getpixel((x, h // 2))) - MATCH).max() < 60
