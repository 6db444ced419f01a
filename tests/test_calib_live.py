"""Live validation: targets shown while gaze streams from a real tracker process; validated live and from its recording."""
import re

import numpy as np
import pytest

from gaze3d.calib.session import run_live_validation
from gaze3d.calib.targets import target_layout
from gaze3d.calib.validation import ValidationSettings, validate
from gaze3d.cli import main

from calib_helpers import show_on_screen
from tracker_helpers import plugin_env


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_live_validation_through_the_tracker_and_again_from_its_recording(tmp_path, capsys):
    from gaze3d.tracker.client import GazeSubscriber, TrackerControl
    from gaze3d.tracker.process import start_tracker
    screen = tmp_path / "screen.json"
    opts = {"screen": screen, "rate_hz": 300, "offset_deg": "0.5,-0.3", "noise_deg": 0.03, "seed": 1}
    rec_path = tmp_path / "session.sqlite"
    shown = []

    def show(i, x, y):
        shown.append(i)
        show_on_screen(screen, x, y)

    with start_tracker("module:calib_helpers:FollowerSource", opts, env=plugin_env(), record_dir=tmp_path) as tracker:
        with TrackerControl(tracker.ctrl_address, timeout_s=5.0) as control, \
                GazeSubscriber(tracker.pub_address, topics=("gaze.2d",)) as sub:
            assert sub.recv(10.0) is not None                     # the stream is up
            control.start_recording(str(rec_path))
            data, pres = run_live_validation(control, sub, target_layout(5), dwell_s=0.9, show_target=show,
                                             seed=2, rate_hz=300)
            control.stop_recording()
    assert shown == [p.index for p in pres] and sorted(shown) == [0, 1, 2, 3, 4]
    settings = ValidationSettings(window_s=(0.35, 0.9))
    report = validate(data, pres, settings=settings)
    assert not report.failed_targets
    ox, oy = report.offset_deg
    assert abs(ox - 0.5) < 0.1 and abs(oy + 0.3) < 0.1
    assert report.precision_rms_deg == pytest.approx(2 * 0.03, rel=0.10)   # white noise: RMS-S2S = 2 sigma
    assert report.data_loss_pct < 5.0
    # the same session from the tracker's recording (calib.target events on the tracker clock)
    rc = main(["calibrate", "validate", "--recording", str(rec_path), "--window-s", "0.35,0.9"])
    text = capsys.readouterr().out
    assert rc == 0, text
    m = re.search(r"offset \(([-+\d.]+), ([-+\d.]+)\) deg, precision RMS-S2S ([\d.]+)", text)
    assert float(m.group(1)) == pytest.approx(ox, abs=0.02) and float(m.group(2)) == pytest.approx(oy, abs=0.02)
    assert float(m.group(3)) == pytest.approx(report.precision_rms_deg, rel=0.05)
