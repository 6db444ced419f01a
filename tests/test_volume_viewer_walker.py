"""The viewer's label keys on volumes (issue 14): by default the shipped volume network (it refines the
random walker on a region of interest), ``--segmenter walker`` that walker, ``--segmenter grow`` the flood
fill; each labels the looked-at organ and keeps its touching, darker neighbour out."""
from __future__ import annotations

import numpy as np
import pytest

from viewer_helpers import fixate as _fixate

pytest.importorskip("skimage", reason="scikit-image (the io extra) runs the random walker")


def _session(segmenter):
    from gaze3d.camera import Camera
    from gaze3d.scan import Volume
    from gaze3d.viewer.session import LabelingSession

    rng = np.random.default_rng(0)
    arr = rng.normal(0, 3, (40, 40, 24)).astype(np.float32)
    arr[10:22, 12:26, 6:18] += 80                 # the "organ"
    arr[22:34, 12:26, 6:18] += 30                 # a touching, darker neighbour
    vol = Volume(arr, np.diag([2.0, 2.0, 2.5, 1.0]))
    centre = vol.index_to_world([[16, 19, 12]])[0]
    cam = Camera.look_at(centre + [0, -150, 0], centre, view_up=(0, 0, 1), vfov_deg=40, width=320, height=240)
    s = LabelingSession(vol, camera=cam, segmenter=segmenter)
    px, _ = cam.project(centre[None])
    _fixate(s, px[0] / [320, 240], 1.0)
    organ = np.zeros(vol.shape, bool)
    organ[10:22, 12:26, 6:18] = True
    return s, vol, organ


@pytest.mark.parametrize("segmenter, method", [("auto", "model"), ("walker", "walker")])
def test_volume_label_key_labels_the_organ(segmenter, method):
    if method == "model":
        pytest.importorskip("torch", reason="torch (the models extra) runs the volume network")
    s, vol, organ = _session(segmenter)
    action = s.label_key("2")
    assert action.method == method, s._segmenter_error
    got = s.labels.reshape(vol.shape) == 2
    dice = 2 * (got & organ).sum() / (got.sum() + organ.sum())
    assert dice > 0.8, dice
    assert (got & ~organ).sum() < 0.05 * organ.sum()          # the neighbour stays out


def test_segmenter_grow_keeps_the_flood_fill_on_volumes():
    s, vol, organ = _session("grow")
    assert s.label_key("2").method == "grow"


def test_segmenter_walker_is_for_volumes_only():
    from gaze3d.errors import InputError
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.session import LabelingSession

    with pytest.raises(InputError, match="segmenter: 'walker'"):
        LabelingSession(PointCloud(np.random.default_rng(0).normal(size=(50, 3))), segmenter="walker")
