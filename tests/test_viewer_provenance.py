"""Label provenance records the fixations that gated the attention: the accumulator's, not a second filter."""
from __future__ import annotations

import numpy as np
import pytest

from viewer_helpers import box_scene, scene_camera

pytestmark = pytest.mark.timeout(120)


def test_label_provenance_fixations_are_the_accumulators(tmp_path):
    from gaze3d.recording import Recording
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.labels import LabelSet
    from gaze3d.viewer.session import LabelingSession

    xyz, truth = box_scene(6000, 1200)
    cam = scene_camera()
    s = LabelingSession(PointCloud(xyz), LabelSet.from_names({6: "building", 2: "ground"}), camera=cam,
                        segmenter="grow", record=tmp_path / "rec.gaze3d", annotator="ann")
    px, _ = cam.project(xyz[truth == 6].mean(axis=0, keepdims=True))
    target = px[0] / [cam.width, cam.height]
    rng = np.random.default_rng(0)
    t0, rate = s.now_ns(), 200
    # two fixations on the box with a saccade between them
    for k, offset in enumerate(((0.0, 0.0), (0.04, 0.0))):
        for i in range(0, 160, 10):
            s.tick(local_samples=[s.mouse_sample(target[0] + offset[0] + rng.normal(0, 3e-4),
                                                 target[1] + offset[1] + rng.normal(0, 3e-4),
                                                 t_ns=t0 + int((k * 160 + i + j) * 1e9 / rate)) for j in range(10)])
    s.commit_attention()
    records = s.accumulator.fixations()
    fx = s.fixations()
    assert len(fx) == len(records) >= 2
    for f, r in zip(fx, records):
        assert f["n"] == r.n_samples and f["positive"] is True
        assert f["t_end_ns"] - f["t_start_ns"] == pytest.approx((r.t_end_s - r.t_start_s) * 1e9, abs=2)
        assert abs(f["x"] - target[0]) < 0.05 and abs(f["y"] - target[1]) < 0.01
    assert fx[1]["x"] - fx[0]["x"] == pytest.approx(0.04, abs=0.005)
    assert s.label_key("1") is not None
    s.close()
    with Recording(tmp_path / "rec.gaze3d") as rec:
        label = next(e for e in rec.events() if e.get("type") == "label")
    assert label["fixations"] == fx
