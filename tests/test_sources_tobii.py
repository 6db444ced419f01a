"""The ``tobii`` source against the fake ``tobii_research`` (the SDK's documented API), in-process and in a subprocess."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from gaze3d.errors import InputError, OptionalDependencyError
from gaze3d.tracker.sources import get_source
from gaze3d.tracker.sources.base import SourceError
from sources_helpers import FAKES_DIR, env_with_fakes, read_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def tr(monkeypatch):
    """The fake SDK imported as ``tobii_research``, one tracker plugged in, 300 Hz."""
    monkeypatch.syspath_prepend(str(FAKES_DIR))
    monkeypatch.setenv("FAKE_TOBII_FREQUENCY", "300")
    sys.modules.pop("tobii_research", None)
    import tobii_research
    tobii_research.fake_set_devices(1)
    yield tobii_research
    sys.modules.pop("tobii_research", None)


def test_fake_sdk_documented_surface(tr):
    (et,) = tr.find_all_eyetrackers()
    assert et.address.startswith("tobii-prp://") and et.model and et.serial_number
    assert et.get_gaze_output_frequency() == 300.0
    got = []
    et.subscribe_to(tr.EYETRACKER_GAZE_DATA, got.append, as_dictionary=True)
    time.sleep(0.2)
    et.unsubscribe_from(tr.EYETRACKER_GAZE_DATA, got.append)
    assert len(got) >= 30
    d = got[1]
    for side in ("left", "right"):
        for key in ("gaze_point_on_display_area", "gaze_point_validity", "pupil_diameter", "pupil_validity",
                    "gaze_origin_in_user_coordinate_system", "gaze_point_in_user_coordinate_system",
                    "gaze_origin_validity"):
            assert f"{side}_{key}" in d
    assert isinstance(d["device_time_stamp"], int) and isinstance(d["system_time_stamp"], int)
    cal = tr.ScreenBasedCalibration(et)
    cal.enter_calibration_mode()
    assert cal.collect_data(0.1, 0.1) == tr.CALIBRATION_STATUS_SUCCESS
    assert cal.collect_data(0.9, 0.9) == tr.CALIBRATION_STATUS_SUCCESS
    assert cal.compute_and_apply().status == tr.CALIBRATION_STATUS_SUCCESS
    cal.leave_calibration_mode()


def test_tobii_maps_fields_and_times(tr):
    src = get_source("tobii")
    src.open()
    try:
        info = src.info()
        assert info["rate_hz"] == 300.0 and info["model"] == "Fake Spectrum"
        samples = read_for(src, 0.5, min_samples=100)
    finally:
        src.close()
    assert len(samples) >= 100
    dev_epoch = 987_654_321 / 1e6
    n_left_invalid = n_both_invalid = 0
    for s in samples:
        assert s["topic"] == "gaze.2d"
        t = s["t_device"] - dev_epoch           # seconds since the fake device started
        lx, ly = tr.expected_left(t)
        left, right = s["left"], s["right"]
        if left["valid"]:
            assert left["gaze"] == pytest.approx([lx, ly], abs=1e-5)
            assert left["pupil_mm"] == pytest.approx(3.4)
            assert left["origin_mm"] == [-30.0, 5.0, 600.0]
            assert sum(c * c for c in left["direction"]) == pytest.approx(1.0)
            assert left["direction"][2] < 0              # from the eye towards the screen (z towards the user)
        else:
            n_left_invalid += 1
            assert all(math.isnan(v) for v in left["gaze"]) and "pupil_mm" not in left
        if left["valid"] and right["valid"]:           # combined = mean of the valid eyes
            assert s["gaze"] == pytest.approx([lx + 0.005, ly], abs=1e-5)
        elif right["valid"]:
            assert s["gaze"] == pytest.approx([lx + 0.01, ly], abs=1e-5)
        if not left["valid"] and not right["valid"]:
            n_both_invalid += 1
            assert s["valid"] is False and all(math.isnan(v) for v in s["gaze"])
        # system_time_stamp (us) -> this host's monotonic clock, shortly before arrival
        assert -5e6 <= s["t_host_ns"] - s["t_capture_ns"] < 1e9
    lags = sorted(s["t_host_ns"] - s["t_capture_ns"] for s in samples)
    assert lags[len(lags) // 2] < 20e6
    assert n_left_invalid >= 5 and n_both_invalid >= 2
    dt = [b["t_device"] - a["t_device"] for a, b in zip(samples, samples[1:])]
    assert min(dt) > 0 and sum(dt) / len(dt) == pytest.approx(1 / 300.0, rel=0.05)


def test_tobii_frequency_option_and_calibration(tr):
    src = get_source("tobii", frequency="600")
    src.open()
    try:
        assert src.info()["rate_hz"] == 600.0
        assert src.calibrate("point", x=0.5, y=0.5)["ok"] is False          # not started
        assert src.calibrate("start")["ok"]
        for x, y in ((0.1, 0.1), (0.9, 0.1), (0.5, 0.5), (0.1, 0.9), (0.9, 0.9)):
            assert src.calibrate("point", x=x, y=y)["ok"]
        res = src.calibrate("compute")
        assert res["ok"] and res["points"] == 5
        assert src.calibrate("stop")["ok"]
        assert src.calibrate("dance")["ok"] is False
    finally:
        src.close()


def test_tobii_disconnect_raises_and_reopen_works(tr):
    src = get_source("tobii")
    src.open()
    try:
        assert read_for(src, 0.1, min_samples=5)
        (et,) = tr.find_all_eyetrackers()
        et.fake_disconnect()
        with pytest.raises(SourceError, match="lost"):
            for _ in range(50):           # buffered samples first, then the error
                src.read(0.05)
        src.open()                        # the tracker is "re-plugged": a fresh device answers
        assert len(read_for(src, 0.1, min_samples=5)) >= 5
    finally:
        src.close()


def test_tobii_no_device_and_unknown_address(tr):
    tr.fake_set_devices(0)
    src = get_source("tobii")
    with pytest.raises(SourceError, match="no eye tracker found"):
        src.open()
    tr.fake_set_devices(1)
    with pytest.raises(SourceError, match="no eye tracker found at tobii-prp://NOPE"):
        get_source("tobii", address="tobii-prp://NOPE").open()


def test_tobii_close_wakes_a_waiting_read(tr):
    import threading
    tr.fake_set_devices(1)
    src = get_source("tobii")
    src.open()
    (et,) = tr.find_all_eyetrackers()
    et.fake_mute(True)                                      # connected, but no more data: read would wait
    time.sleep(0.05)
    src.read(0.0)
    threading.Timer(0.2, src.close).start()
    t0 = time.monotonic()
    assert src.read(5.0) == []
    assert time.monotonic() - t0 < 2.0


def test_tobii_missing_sdk_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tobii_research", None)      # as if not installed
    with pytest.raises(OptionalDependencyError, match="tobii_research"):
        get_source("tobii").open()


def test_tobii_in_a_subprocess_with_fake_on_pythonpath():
    """The lean-env path: a separate interpreter imports the fake SDK via PYTHONPATH; the device drops after 0.4 s."""
    code = (
        "import json, time\n"
        "from gaze3d.tracker.sources import get_source\n"
        "from gaze3d.tracker.sources.base import SourceError\n"
        "s = get_source('tobii'); s.open(); n = 0; err = None\n"
        "t0 = time.monotonic()\n"
        "try:\n"
        "    while time.monotonic() - t0 < 5:\n"
        "        n += len(s.read(0.05))\n"
        "except SourceError as e:\n"
        "    err = str(e)\n"
        "s.open(); m = len(s.read(0.5)); s.close()\n"
        "print(json.dumps({'n': n, 'err': err, 'after_reopen': m, 'info': s.info()}))\n"
    )
    env = env_with_fakes()
    env.update(FAKE_TOBII_FREQUENCY="250", FAKE_TOBII_DISCONNECT_AFTER_S="0.4")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert 30 <= res["n"] <= 140                    # ~0.4 s at 250 Hz (fewer if the machine is busy)
    assert res["err"] and "lost" in res["err"]
    assert res["after_reopen"] >= 1


# --- issue 19: the fake behaves as the real SDK 2.1.0 where the source depends on it ---------------
def test_fake_unsubscribes_by_equality_and_refuses_a_duplicate(tr):
    class Sink:
        def __init__(self):
            self.n = 0

        def on_gaze(self, d):
            self.n += 1

    sink = Sink()
    (et,) = tr.find_all_eyetrackers()
    assert sink.on_gaze is not sink.on_gaze and sink.on_gaze == sink.on_gaze    # two objects, equal
    et.subscribe_to(tr.EYETRACKER_GAZE_DATA, sink.on_gaze, as_dictionary=True)
    with pytest.raises(tr.EyeTrackerInvalidOperationError):                      # the same callback twice
        et.subscribe_to(tr.EYETRACKER_GAZE_DATA, sink.on_gaze, as_dictionary=True)
    time.sleep(0.1)
    assert tr.fake_subscriber_count() == 1 and sink.n > 0
    et.unsubscribe_from(tr.EYETRACKER_GAZE_DATA, sink.on_gaze)                  # an equal, not identical, object
    n = sink.n
    assert tr.fake_subscriber_count() == 0
    time.sleep(0.1)
    assert sink.n == n                                                          # nothing after unsubscribe
    with pytest.raises(ValueError):
        et.subscribe_to(tr.EYETRACKER_GAZE_DATA, "not callable", as_dictionary=True)
    # find_all_eyetrackers wraps the devices afresh: subscriptions belong to the object they were made on
    (other,) = tr.find_all_eyetrackers()
    assert other is not et and other.address == et.address


def test_fake_data_has_the_sdk_2_1_0_keys_signatures_and_errors(tr):
    import inspect
    (et,) = tr.find_all_eyetrackers()
    got = []
    et.subscribe_to(tr.EYETRACKER_GAZE_DATA, got.append, as_dictionary=True)
    time.sleep(0.1)
    et.unsubscribe_from(tr.EYETRACKER_GAZE_DATA, got.append)
    per_eye = {"gaze_point_on_display_area", "gaze_point_in_user_coordinate_system", "gaze_point_validity",
               "pupil_diameter", "pupil_validity", "gaze_origin_in_user_coordinate_system", "gaze_origin_validity"}
    assert set(got[0]) == {f"{side}_{k}" for side in ("left", "right") for k in per_eye} | {
        "device_time_stamp", "system_time_stamp"}
    assert not any("trackbox" in k for k in got[0])
    assert list(inspect.signature(tr.EyeTracker).parameters) == ["address"]
    assert list(inspect.signature(et.set_gaze_output_frequency).parameters) == ["gaze_output_frequency"]
    assert list(inspect.signature(tr.CalibrationPoint).parameters) == ["position_on_display_area",
                                                                      "calibration_samples"]
    assert tr.EyeTrackerConnectionFailedError.__mro__[1] is Exception
    assert tr.EyeTracker(et.address).serial_number == et.serial_number
    with pytest.raises(tr.EyeTrackerConnectionFailedError):
        tr.EyeTracker("tobii-prp://NOPE")


def test_reopening_the_source_delivers_each_sample_once(tr):
    src = get_source("tobii")
    src.open()
    try:
        assert read_for(src, 0.1, min_samples=5)
        for _ in range(3):
            src.open()                                 # close + find + subscribe again
        assert tr.fake_subscriber_count(tr.EYETRACKER_GAZE_DATA) == 1
        assert tr.fake_subscriber_count(tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST) == 1
        samples = read_for(src, 0.3, min_samples=60)
    finally:
        src.close()
    stamps = [s["t_device"] for s in samples]
    assert len(stamps) == len(set(stamps)) >= 60                      # no sample twice
    assert tr.fake_subscriber_count(tr.EYETRACKER_GAZE_DATA) == 0
    assert tr.fake_subscriber_count(tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST) == 0


def test_close_releases_subscriptions_even_under_an_identity_comparing_sdk(tr, monkeypatch):
    """The source passes the very callback objects it subscribed, so an SDK comparing by identity works too."""
    real_unsub = tr.EyeTracker.unsubscribe_from

    def unsubscribe_by_identity(self, subscription_type, callback=None):
        with self._subscription_lock:
            subs = self._subscriptions.get(subscription_type, {})
            match = [cb for cb in subs if cb is callback]
        real_unsub(self, subscription_type, match[0] if match else object())

    monkeypatch.setattr(tr.EyeTracker, "unsubscribe_from", unsubscribe_by_identity)
    src = get_source("tobii")
    src.open()
    src.close()
    assert tr.fake_subscriber_count(tr.EYETRACKER_GAZE_DATA) == 0
    assert tr.fake_subscriber_count(tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST) == 0


def test_a_failed_subscription_leaves_nothing_subscribed(tr, monkeypatch):
    def refuse(self, subscription_type, callback, as_dictionary=False):
        if subscription_type == tr.EYETRACKER_GAZE_DATA:
            raise tr.EyeTrackerConnectionFailedError("The connection to the eye tracker failed.")
        return real_sub(self, subscription_type, callback, as_dictionary)

    real_sub = tr.EyeTracker.subscribe_to
    monkeypatch.setattr(tr.EyeTracker, "subscribe_to", refuse)
    src = get_source("tobii")
    with pytest.raises(SourceError, match="connecting to tobii-prp://FAKE-0000 failed"):
        src.open()
    assert tr.fake_subscriber_count(tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST) == 0


# --- issue 19: no eye tracker ever found -> a bounded wait, then one clear error ---------------------
def test_no_tracker_ever_found_gives_up_after_wait_s(tr):
    from gaze3d.tracker.sources.tobii import NoEyeTrackerError
    tr.fake_set_devices(0)
    src = get_source("tobii", wait_s="0.3")
    with pytest.raises(SourceError, match=r"no eye tracker found yet; waiting up to 0.3 s") as first:
        src.open()
    with pytest.raises(SourceError) as second:
        src.open()
    assert str(first.value) == str(second.value)                 # the same text: logged once by the server
    time.sleep(0.35)
    with pytest.raises(NoEyeTrackerError, match=r"no eye tracker found within 0.3 s; is it plugged in"):
        src.open()
    assert issubclass(NoEyeTrackerError, InputError)               # the tracker process stops: exit 2
    with pytest.raises(NoEyeTrackerError):
        get_source("tobii", wait_s=0).open()


def test_wait_for_device_and_a_tracker_seen_before_keep_retrying(tr):
    from gaze3d.tracker.sources.tobii import NoEyeTrackerError
    tr.fake_set_devices(0)
    patient = get_source("tobii", wait_s=0, wait_for_device="true")
    for _ in range(3):
        with pytest.raises(SourceError) as exc:
            patient.open()
        assert not isinstance(exc.value, NoEyeTrackerError)
    tr.fake_set_devices(1)
    patient.open()                                                 # plugged in at last
    assert read_for(patient, 0.1, min_samples=5)
    patient.close()
    src = get_source("tobii", wait_s=0)
    src.open()                                                     # seen once...
    tr.fake_set_devices(0)                                         # ...then unplugged: reconnection, not an error
    for _ in range(3):
        with pytest.raises(SourceError, match="no eye tracker found") as exc:
            src.open()
        assert not isinstance(exc.value, NoEyeTrackerError)
    tr.fake_set_devices(1)
    src.open()
    assert read_for(src, 0.1, min_samples=5)
    src.close()
    with pytest.raises(InputError, match="wait_s"):
        get_source("tobii", wait_s="-1")


# --- the fake against the real SDK: names, kinds, signatures, constant values ------------------------
DESCRIBE_SDK = r'''
import inspect, json, sys, types
import tobii_research as m

def describe_callable(f):
    try:
        return str(inspect.signature(f))
    except (TypeError, ValueError):
        return None

def describe_class(c):
    members = {}
    for name in dir(c):
        if name.startswith("_") and name != "__init__":
            continue
        raw = inspect.getattr_static(c, name)
        if isinstance(raw, property):
            members[name] = {"kind": "property"}
        elif callable(raw):
            members[name] = {"kind": "method", "signature": describe_callable(getattr(c, name))}
        else:
            members[name] = {"kind": "attribute"}
    return {"kind": "class", "bases": [b.__name__ for b in c.__mro__[1:]], "members": members}

out = {}
for name in dir(m):
    if name.startswith("_"):
        continue
    v = getattr(m, name)
    if isinstance(v, types.ModuleType):
        continue
    if inspect.isclass(v):
        out[name] = describe_class(v)
    elif callable(v):
        out[name] = {"kind": "function", "signature": describe_callable(v)}
    else:
        out[name] = {"kind": "constant", "value": repr(v)}
print(json.dumps({"version": getattr(m, "__version__", None), "file": m.__file__, "names": out}))
'''

#: Public names of the fake that are test controls, not SDK API.
FAKE_ONLY = ("fake_", "expected_left")


def _real_sdk_python():
    """An interpreter that imports the real ``tobii_research`` (GAZE3D_TOBII_PYTHON, else python3.10), or None."""
    import os
    import shutil
    candidates = [os.environ.get("GAZE3D_TOBII_PYTHON"), shutil.which("python3.10"), sys.executable]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}        # never the fake
    for exe in filter(None, candidates):
        try:
            p = subprocess.run([exe, "-c", "import tobii_research as m; print(m.__version__)"], env=env,
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if p.returncode == 0 and not p.stdout.strip().startswith("fake"):
            return exe
    return None


def _describe(python: str, fake: bool) -> dict:
    import os
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if fake:
        env["PYTHONPATH"] = str(FAKES_DIR)
    p = subprocess.run([python, "-c", DESCRIBE_SDK], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_fake_matches_the_real_sdk():
    """Every public name of the fake exists in tobii-research with the same kind, signature and value."""
    python = _real_sdk_python()
    if python is None:
        pytest.skip("the real tobii_research is not importable here (it ships wheels for Python 3.10 only); "
                    "set GAZE3D_TOBII_PYTHON to an interpreter that has it")
    real = _describe(python, fake=False)
    fake = _describe(python, fake=True)          # the same interpreter: no difference from Python itself
    assert fake["file"].startswith(str(FAKES_DIR)) and not real["file"].startswith(str(FAKES_DIR))
    problems = []
    for name, f in fake["names"].items():
        if name.startswith(FAKE_ONLY):
            continue
        r = real["names"].get(name)
        if r is None:
            problems.append(f"{name}: not in the real SDK")
        elif r["kind"] != f["kind"]:
            problems.append(f"{name}: {f['kind']} in the fake, {r['kind']} in the SDK")
        elif f["kind"] == "constant" and f["value"] != r["value"]:
            problems.append(f"{name} = {f['value']} in the fake, {r['value']} in the SDK")
        elif f["kind"] == "function" and f["signature"] != r["signature"]:
            problems.append(f"{name}{f['signature']} in the fake, {name}{r['signature']} in the SDK")
        elif f["kind"] == "class":
            if f["bases"] != r["bases"]:
                problems.append(f"{name}: bases {f['bases']} in the fake, {r['bases']} in the SDK")
            for member, fm in f["members"].items():
                if member.startswith(FAKE_ONLY):
                    continue
                rm = r["members"].get(member)
                if rm is None:
                    problems.append(f"{name}.{member}: not in the real SDK")
                elif rm["kind"] != fm["kind"] or rm.get("signature") != fm.get("signature"):
                    problems.append(f"{name}.{member}: {fm} in the fake, {rm} in the SDK")
    assert not problems, "\n".join(problems)
    # and every SDK name the source uses is in both
    import re
    from pathlib import Path
    import gaze3d.tracker.sources.tobii as source
    used = set(re.findall(r"\btr\.([A-Za-z_]\w*)", Path(source.__file__).read_text()))
    assert used and used <= set(real["names"]) and used <= set(fake["names"]), used


# --- issue 19: `gaze3d tracker --source tobii` with no eye tracker ---------------------------------
def _tracker_env(devices: int) -> dict:
    env = env_with_fakes()
    env.update(FAKE_TOBII_DEVICES=str(devices), FAKE_TOBII_FREQUENCY="120")
    return env


def test_tracker_without_an_eye_tracker_says_so_once_and_exits_2():
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "gaze3d", "tracker", "--source", "tobii", "--opt", "wait_s=1",
                        "--backoff-s", "0.05", "0.2"], env=_tracker_env(0), capture_output=True, text=True,
                       timeout=60)
    took = time.monotonic() - t0
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, p.stderr                     # one "waiting" warning, then the error
    assert "no eye tracker found yet; waiting up to 1 s" in lines[0]
    assert lines[1] == ("gaze3d tracker: error: NoEyeTrackerError: tobii: no eye tracker found within 1 s; "
                        "is it plugged in and powered on? (--wait-for-device, or option wait_for_device=true, "
                        "waits for one)")
    assert "Traceback" not in p.stderr and took < 30      # bounded: 1 s + one backoff step + start-up


def test_tracker_wait_for_device_waits_and_status_keeps_last_error():
    from gaze3d.tracker.client import TrackerControl
    proc = subprocess.Popen([sys.executable, "-m", "gaze3d", "tracker", "--source", "tobii", "--opt", "wait_s=0.2",
                             "--wait-for-device", "--backoff-s", "0.05", "0.2"], env=_tracker_env(0),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        time.sleep(1.5)                                   # well past wait_s
        assert proc.poll() is None                        # still waiting for a device
        with TrackerControl(info["ctrl"], timeout_s=10.0) as ctl:
            status = ctl.status()
            assert status["state"] == "connecting"
            assert "no eye tracker found" in status["last_error"]
            ctl.request("shutdown")
        assert proc.wait(20) == 0
        err = proc.stderr.read()
        assert err.count("no eye tracker found") == 1, err  # retried many times, said once
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
