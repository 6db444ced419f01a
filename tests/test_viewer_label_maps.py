"""Label names from the label maps medical data ships with: id -> name JSON (TotalSegmentator),
named maps in one file, ITK-SNAP label descriptions, CSV/TSV tables; each in the viewer palette."""
from __future__ import annotations

import json

import pytest

from gaze3d.errors import InputError


def _load(path):
    from gaze3d.viewer.labels import LabelSet

    return LabelSet.load(path)


@pytest.mark.parametrize("name, text, expected", [
    ("map.json", json.dumps({"0": "background", "5": "liver", "1": "spleen"}), [(1, "spleen"), (5, "liver")]),
    ("maps.json#total", json.dumps({"total": {"1": "spleen", "2": "kidney_right"}, "lung": {"1": "lobe"}}),
     [(1, "spleen"), (2, "kidney_right")]),
    ("one.json", json.dumps({"total": {"3": "kidney_left"}}), [(3, "kidney_left")]),
    ("snap.txt", '0 0 0 0 0 0 0 "Clear Label"\n1 255 0 0 1 1 1 "Liver"\n7 0 0 255 1 1 1 "Left kidney"\n',
     [(1, "Liver"), (7, "Left kidney")]),
    ("table.csv", "id,name\n0,background\n2,vessel\n4,tumour\n", [(2, "vessel"), (4, "tumour")]),
    ("table.tsv", "3\tgrey matter\n4\twhite matter\n", [(3, "grey matter"), (4, "white matter")]),
])
def test_label_maps_give_names(tmp_path, name, text, expected):
    file, _, key = name.partition("#")
    (tmp_path / file).write_text(text)
    ls = _load(str(tmp_path / file) + (f"#{key}" if key else ""))
    assert [(lab.id, lab.name) for lab in ls] == expected


def test_itksnap_colours_are_kept(tmp_path):
    p = tmp_path / "snap.txt"
    p.write_text('1 255 0 0 1 1 1 "Liver"\n')
    assert _load(p).by_id(1).color == (255, 0, 0)


@pytest.mark.parametrize("name, text, match", [
    ("maps.json", json.dumps({"a": {"1": "x"}, "b": {"1": "y"}}), r"holds 2 label maps \(a, b\); pick one"),
    ("maps.json#c", json.dumps({"a": {"1": "x"}, "b": {"1": "y"}}), r"no label map 'c' \(maps: a, b\)"),
    ("plain.json#a", json.dumps({"building": 6}), "holds one label set"),
    ("t.csv", "id,name\nx,y\n", "expected an integer label id"),
    ("t.csv", "id,name\n", "no labels"),
    ("t.txt#a", "liver\n", r"picks a label map inside a \.json file only"),
])
def test_label_map_errors_name_the_file(tmp_path, name, text, match):
    file, _, key = name.partition("#")
    (tmp_path / file).write_text(text)
    with pytest.raises(InputError, match=match):
        _load(str(tmp_path / file) + (f"#{key}" if key else ""))


def test_totalsegmentator_label_map_names_the_palette(shared_data):
    """The real TotalSegmentator map (several task maps in one file) in the viewer's palette."""
    import numpy as np

    from gaze3d.scan import Volume
    from gaze3d.viewer.app import ViewerApp

    path = shared_data / "medical/totalsegmentator/label_map_total_and_total_mr.json"
    with pytest.raises(InputError, match="pick one"):
        _load(path)
    ls = _load(f"{path}#total")
    assert ls.by_id(5).name == "liver" and ls.by_id(1).name == "spleen"
    assert len(ls) >= 41
    vol = Volume(np.zeros((8, 8, 8), np.float32), np.eye(4))
    app = ViewerApp(vol, ls, off_screen=True, window_size=(320, 240), segmenter="grow")
    try:
        palette = app.session.label_set.names[:9]
        assert palette[:3] == ["spleen", "kidney_right", "kidney_left"]
        assert not any(n.startswith("class") for n in palette)
    finally:
        app.close()
