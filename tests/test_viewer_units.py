"""Viewer logic without a window: label sets, region growing, the in-place overlay."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.viewer.colors import label_color
from gaze3d.viewer.labels import LabelSet
from gaze3d.viewer.overlay import AttentionOverlay
from gaze3d.viewer.regions import grow_cloud, grow_mesh, grow_volume


# ------------------------------------------------------------------ labels
def test_label_set_json_and_txt(tmp_path):
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"labels": [{"name": "ground", "id": 2}, {"name": "building", "id": 6,
                                                                      "color": [255, 0, 0]}]}))
    ls = LabelSet.load(p)
    assert ls.by_key("2").name == "building" and ls.by_key("2").id == 6
    assert ls.by_name("BUILDING").color == (255, 0, 0)
    assert ls.by_id(2).color == tuple(int(c) for c in label_color(2))
    t = tmp_path / "labels.txt"
    t.write_text("# classes\nliver\n  spleen  \n\nleft kidney\n")
    lt = LabelSet.load(t)
    assert lt.names == ["liver", "spleen", "left kidney"] and lt.by_name("left kidney").id == 3
    t2 = tmp_path / "ids.txt"
    t2.write_text("5 liver\n1 spleen # comment\n")
    assert LabelSet.load(t2).by_name("liver").id == 5
    saved = tmp_path / "copy.json"
    ls.save(saved)
    assert [(lab.id, lab.name, lab.color) for lab in LabelSet.load(saved)] == \
        [(lab.id, lab.name, lab.color) for lab in ls]


def test_label_set_did_you_mean_and_errors(tmp_path):
    ls = LabelSet.from_names(["ground", "building", "vegetation"])
    with pytest.raises(InputError, match="did you mean 'building'"):
        ls.by_name("buildng")
    with pytest.raises(InputError, match="known labels"):
        ls.by_name("zzzz")
    with pytest.raises(InputError, match="only 3 labels"):
        ls.by_key("7")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        LabelSet.load(bad)
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"a": 1, "b": 1}))
    with pytest.raises(InputError, match="id 1 used twice"):
        LabelSet.load(dup)
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps({"a": 0}))
    with pytest.raises(InputError, match="0 means unlabelled"):
        LabelSet.load(zero)
    with pytest.raises(InputError, match=r"expected a label set file ending in \.json, \.txt, \.csv or \.tsv"):
        (tmp_path / "x.yaml").write_text("a")
        LabelSet.load(tmp_path / "x.yaml")


# ----------------------------------------------------------------- regions
def test_grow_cloud_stays_in_the_attended_structure():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (4000, 3))                  # blob A around the origin
    b = rng.uniform(0, 1, (4000, 3)) + [3.0, 0, 0]    # blob B, 2 units away
    xyz = np.r_[a, b]
    att = np.r_[np.exp(-((a - 0.5) ** 2).sum(1) / 0.1), 0.3 * np.exp(-((b - [3.5, .5, .5]) ** 2).sum(1) / 0.1)]
    region = grow_cloud(xyz, att, rel_threshold=0.2)
    assert region[:4000].sum() > 500
    assert not region[4000:].any()      # B is above threshold in places but not connected
    assert not grow_cloud(xyz, np.zeros(len(xyz))).any()
    with pytest.raises(InputError, match="attention: expected 8000 values"):
        grow_cloud(xyz, att[:10])


def test_grow_mesh_follows_edges():
    # two separate triangles strips: vertices 0-3 and 4-7
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]] * 2, dtype=float) + np.repeat([[0, 0, 0], [0.5, 0, 0]], 4, axis=0)
    f = np.array([[0, 1, 2], [1, 3, 2], [4, 5, 6], [5, 7, 6]])
    att = np.array([1.0, 0.9, 0.8, 0.7, 0.9, 0.9, 0.9, 0.9])
    region = grow_mesh(v, f, att, rel_threshold=0.5)
    assert region.tolist() == [True] * 4 + [False] * 4


def test_grow_volume_respects_intensity():
    img = np.zeros((30, 30, 30), dtype=np.float32)
    img[5:15, 5:15, 5:15] = 100
    att = np.zeros_like(img)
    att[3:20, 3:20, 3:20] = 1.0
    att[10, 10, 10] = 2.0
    region = grow_volume(img, att, rel_threshold=0.2)
    assert region.sum() == 1000 and region[5:15, 5:15, 5:15].all()
    with pytest.raises(InputError, match="expected shape"):
        grow_volume(img, att[:-1])


# ----------------------------------------------------------------- overlay
def test_overlay_updates_only_changed_elements_in_place():
    n = 1000
    target = np.zeros((n, 4), dtype=np.uint8)
    base = np.full((n, 3), 100, dtype=np.uint8)

    class Arr:
        modified = 0

        def Modified(self):
            Arr.modified += 1

    ov = AttentionOverlay(target, base, vtk_array=Arr(), headroom=2.0)
    assert (target[:, :3] == 100).all() and (target[:, 3] == 255).all()
    v = np.zeros(n, dtype=np.float32)
    v[10:20] = 1.0
    assert ov.update(v) == n                      # first heat: the scale is set, full recolour
    assert ov.scale == 2.0
    assert not (target[10:20, :3] == 100).all(axis=1).any()
    assert (target[20:, :3] == 100).all()
    before = Arr.modified
    v[30] = 0.5
    assert ov.update(v) == 1                      # only the changed element
    assert Arr.modified == before + 1
    assert ov.update(v) == 0                      # nothing changed: no work, no Modified()
    assert Arr.modified == before + 1
    hot, warm = target[10].astype(int), target[30].astype(int)
    assert hot[0] > warm[0] or hot[1] > warm[1]   # more attention, brighter heat
    ov.set_base(np.full((1, 3), 7, dtype=np.uint8), [500])
    assert (target[500, :3] == 7).all()
    ov.clear()
    assert (target[:, :3] == ov.base[:, :3]).all() and ov.scale == 0.0
    with pytest.raises(InputError, match="expected shape"):
        ov.update(np.zeros(5))
    with pytest.raises(InputError, match="NaN"):
        ov.update(np.full(n, np.nan, dtype=np.float32))
