"""`gaze3d batch`: manifests, bit-identity with `gaze3d attention` / `gaze3d segment`, bad items,
resume (also after SIGKILL), consensus and agreement, the local process pool.

Inputs are real: crops of the bundled IGN LiDAR HD tile and recordings written by the
eye simulator through RecordingWriter (SQLite files).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gaze3d.batch import load_manifest, run_batch, verify_item
from gaze3d.batch.consensus import agreement, dice, fleiss_kappa, iou, majority_vote, staple
from gaze3d.cli import main
from gaze3d.errors import InputError

from batch_helpers import make_inputs, outputs_of, write_csv

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("batch_inputs"))


def test_recordings_store_their_scan(inputs):
    from gaze3d.batch import file_sha256
    from gaze3d.recording import Recording

    with Recording(inputs["recordings"][0]) as rec:
        meta = rec.meta
    assert meta["scan_sha256"] == file_sha256(inputs["scan"])
    assert meta["scan_path"] == str(Path(inputs["scan"]).resolve())
    assert meta["annotator"] == "ann0"


def test_attention_and_segment_are_bit_identical_to_the_commands(inputs, tmp_path):
    from gaze3d.io import load_scan

    scan, rec = inputs["scan"], inputs["recordings"][1]
    manifest = write_csv(tmp_path / "m.csv", [(scan, rec, "segment")])
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    item = tmp_path / "out" / "ann1"
    att = np.load(item / "attention.npy")
    assert att.dtype == np.float32 and att.max() > 0
    # gaze3d attention writes the same values into its PLY field
    assert main(["attention", str(scan), str(rec), "-o", str(tmp_path / "a.ply")]) == 0
    cli_att = np.asarray(load_scan(tmp_path / "a.ply").fields["attention"], dtype=np.float32)
    assert cli_att.tobytes() == att.tobytes()
    # gaze3d segment on that attention gives the same probability and mask
    assert main(["segment", str(scan), "--attention", str(item / "attention.npy"),
                 "-o", str(tmp_path / "s.ply")]) == 0
    seg = load_scan(tmp_path / "s.ply")
    prob, labels = np.load(item / "probability.npy"), np.load(item / "labels.npy")
    assert np.asarray(seg.fields["probability"], np.float32).tobytes() == prob.tobytes()
    np.testing.assert_array_equal(np.asarray(seg.fields["mask"]).astype(np.uint8), labels)
    assert 0 < labels.sum() < len(labels)
    report = json.loads((item / "report.json").read_text())
    assert report["status"] == "ok" and report["inputs"]["model"]["sha256"]
    assert report["provenance"]["recordings"]["recording"]["pairing"] == "sha256"
    assert report["replay"]["recording"]["frames"] > 100
    assert {"load_scan_s", "replay_s.0", "segment_s.0", "total_s"} <= set(report["timings"])


def test_default_checkpoint_is_the_models_one():
    from gaze3d.batch.provenance import default_checkpoint
    from gaze3d.models.interactive import DEFAULT_CHECKPOINT

    assert default_checkpoint().resolve() == Path(DEFAULT_CHECKPOINT).resolve()


def test_bad_items_in_the_middle_fail_alone(inputs, tmp_path, capsys):
    scan, recs = inputs["scan"], inputs["recordings"]
    corrupt = tmp_path / "corrupt.g3dr"
    corrupt.write_bytes(Path(recs[0]).read_bytes()[:3000])          # a truncated SQLite file
    not_sqlite = tmp_path / "text.g3dr"
    not_sqlite.write_text("scan,recording\n")
    manifest = tmp_path / "m.tsv"
    manifest.write_text("id\tscan\trecording\ttask\n"
                        f"first\t{scan}\t{recs[0]}\tattention\n"
                        f"noscan\t{tmp_path / 'missing.ply'}\t{recs[0]}\tattention\n"
                        f"wrongscan\t{scan}\t{inputs['other_recording']}\tattention\n"
                        f"truncated\t{scan}\t{corrupt}\tattention\n"
                        f"text\t{scan}\t{not_sqlite}\tattention\n"
                        f"last\t{scan}\t{recs[1]}\tattention\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out), "--no-progress"]) == 1
    printed = capsys.readouterr().out
    summary = {r["id"]: r for r in json.loads((out / "summary.json").read_text())["items"]}
    assert [summary[k]["status"] for k in ("first", "noscan", "wrongscan", "truncated", "text", "last")] == \
        ["ok", "failed", "failed", "failed", "failed", "ok"]
    assert "missing.ply" in summary["noscan"]["error"] and "no such file" in summary["noscan"]["error"]
    assert "wrong scan" in summary["wrongscan"]["error"] and "other_scan.ply" in summary["wrongscan"]["error"]
    assert "corrupt.g3dr" in summary["truncated"]["error"]
    assert "not a gaze3d recording" in summary["text"]["error"]
    for k in ("noscan", "wrongscan", "truncated", "text"):
        err = summary[k]["error"]
        assert "\n" not in err and not err.startswith("internal error"), err
        assert err in printed
    tsv = (out / "summary.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == ["id", "task", "status", "seconds", "detail"] and len(tsv) == 7
    # the good items' outputs are there; the failed ones have a report saying why, no outputs
    assert (out / "first" / "attention.npy").is_file() and (out / "last" / "attention.npy").is_file()
    failed = json.loads((out / "wrongscan" / "report.json").read_text())
    assert failed["status"] == "failed" and not list((out / "wrongscan").glob("*.npy"))


def test_resume_skips_verified_items_and_reruns_changed_ones(inputs, tmp_path):
    scan, recs = inputs["scan"], inputs["recordings"]
    manifest = write_csv(tmp_path / "m.csv", [(scan, recs[0], "attention"), (scan, recs[1], "attention")])
    items = load_manifest(manifest)
    out = tmp_path / "out"
    first = run_batch(items, out, echo=None, progress=False)
    assert first.counts == {"ok": 2, "skipped": 0, "failed": 0}
    before = outputs_of(out)
    again = run_batch(items, out, resume=True, echo=None, progress=False)
    assert again.counts == {"ok": 0, "skipped": 2, "failed": 0}
    # an output changed on disk: that item is redone, and gives the same bytes again
    (out / "ann1" / "attention.npy").write_bytes(b"garbage")
    assert verify_item(items[1], out, None) == (False, "output attention.npy differs from its report")
    third = run_batch(items, out, resume=True, echo=None, progress=False)
    assert third.counts == {"ok": 1, "skipped": 1, "failed": 0}
    assert outputs_of(out) == before
    # another option: not the same outputs any more
    items[0].options["sigma_deg"] = 2.0
    ok, why = verify_item(items[0], out, None)
    assert not ok and "options" in why
    # without --resume everything runs
    assert run_batch(items[1:], out, echo=None, progress=False).counts["ok"] == 1


def test_kill_and_resume_loses_nothing_and_redoes_nothing(inputs, tmp_path):
    scan, recs = inputs["scan"], inputs["recordings"]
    # 8 items of about 0.2-0.5 s each, listed by id so each has its own folder
    lines = ["id,scan,recording,task,sigma_deg"]
    for k in range(8):
        lines.append(f"item{k},{scan},{recs[k % len(recs)]},attention,{1.0 + 0.1 * k}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gaze3d", "batch", str(manifest), "-o", str(out),
                             "--no-progress"], cwd=str(tmp_path), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("*/report.json"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read().decode()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = sorted(p.parent.name for p in out.glob("*/report.json"))
    assert 2 <= len(finished) < 8
    assert not (out / "summary.json").exists()
    mtimes = {f: (out / f / "report.json").stat().st_mtime_ns for f in finished}

    r = subprocess.run([sys.executable, "-m", "gaze3d", "batch", str(manifest), "-o", str(out), "--resume",
                        "--no-progress"], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = {x["id"]: x for x in json.loads((out / "summary.json").read_text())["items"]}
    assert sorted(k for k, x in summary.items() if x["status"] == "skipped") == finished
    assert all(x["status"] in ("ok", "skipped") for x in summary.values())
    assert {f: (out / f / "report.json").stat().st_mtime_ns for f in finished} == mtimes   # not redone
    assert not list(out.rglob(".*.tmp*"))                        # a killed write left nothing behind
    # everything equals an uninterrupted run
    clean = tmp_path / "clean"
    run_batch(load_manifest(manifest), clean, echo=None, progress=False)
    assert outputs_of(out) == outputs_of(clean) and len(outputs_of(clean)) == 8


def test_consensus_item(inputs, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"scan": str(inputs["scan"]), "recordings": [str(r) for r in inputs["recordings"]],
                                    "task": "consensus", "id": "crop"}) + "\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out), "--no-progress"]) == 0
    item = out / "crop"
    masks = [np.load(item / f"ann{k}.labels.npy") for k in range(3)]
    maj, st = np.load(item / "majority.npy"), np.load(item / "staple.npy")
    np.testing.assert_array_equal(maj, (np.sum(masks, axis=0) >= 2).astype(np.uint8))   # 3 voters: no ties
    rep = json.loads((item / "report.json").read_text())["consensus"]
    assert set(rep["per_annotator"]) == {"ann0", "ann1", "ann2"}
    assert len(rep["pairwise"]) == 3 and 0 < rep["mean_pairwise_dice"] <= 1
    assert rep["fleiss_kappa"] == pytest.approx(fleiss_kappa(masks))
    assert rep["staple_points"] == int(st.sum()) > 0
    for name, a in rep["per_annotator"].items():
        assert 0 <= a["staple_sensitivity"] <= 1 and 0 <= a["staple_specificity"] <= 1
        assert a["dice_to_consensus"] == pytest.approx(dice(masks[int(name[-1])], st))
    # each annotator's mask is the one a segment item gives for that recording alone
    seg = write_csv(tmp_path / "s.csv", [(inputs["scan"], inputs["recordings"][2], "segment")])
    run_batch(load_manifest(seg), out, echo=None, progress=False)
    assert np.load(out / "ann2" / "labels.npy").tobytes() == masks[2].tobytes()


def test_consensus_measures_on_known_values():
    # Fleiss (1971) / Wikipedia worked example: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    raters = np.stack([np.repeat(np.arange(5), row) for row in counts], axis=1)       # (14, 10)
    assert fleiss_kappa(list(raters)) == pytest.approx(0.2099, abs=1e-4)
    a = np.array([1, 1, 0, 0, 1, 0], np.uint8)
    b = np.array([1, 0, 0, 0, 1, 1], np.uint8)
    c = np.array([1, 1, 0, 1, 0, 0], np.uint8)
    assert dice(a, b) == pytest.approx(2 * 2 / 6) and iou(a, b) == pytest.approx(2 / 4)
    maj, ties = majority_vote([a, b, c])
    np.testing.assert_array_equal(maj, [1, 1, 0, 0, 1, 0])
    assert ties == 0
    maj2, ties2 = majority_vote([a, b])
    assert ties2 == 2 and maj2.tolist() == [1, 0, 0, 0, 1, 0]     # a tie is not a majority for "object"
    st, conf = staple([a, a, a])
    np.testing.assert_array_equal(st, a)
    assert conf[0].shape == (3, 2)
    assert fleiss_kappa([a, a, a]) == pytest.approx(1.0)
    rep = agreement([a, b, c], ["a", "b", "c"], maj)
    assert rep["per_annotator"]["a"]["dice_to_consensus"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="2 or more"):
        majority_vote([a])
    with pytest.raises(InputError, match="annotator 1"):
        staple([a, a[:3]])


def test_manifest_errors_name_the_line(inputs, tmp_path):
    scan, rec = inputs["scan"], inputs["recordings"][0]
    cases = {
        f"scan,recording,colour\n{scan},{rec},red\n": "m.csv:2: unknown column 'colour'",
        f"scan,recording,task\n{scan},{rec},paint\n": "m.csv:2: task 'paint'",
        f"scan,recording,sigma_deg\n{scan},{rec},-1\n": "m.csv:2: column 'sigma_deg': expected > 0",
        f"scan,recording\n{scan},{rec}\n{scan},{rec}\n": "m.csv:3: item id 'scan__ann0' is also the id of",
        f"scan,recording,task\n{scan},{rec},consensus\n": "needs at least 2 recordings",
        f"scan,recording\n{scan},\n": "m.csv:2: missing 'recording'",
        "scan,recording\n": "no items",
    }
    for text, message in cases.items():
        (tmp_path / "m.csv").write_text(text)
        with pytest.raises(InputError, match=message.replace("(", r"\(")):
            load_manifest(tmp_path / "m.csv")
    (tmp_path / "m.jsonl").write_text('{"scan": "a.ply", "recording": "b.g3dr"}\n{oops\n')
    with pytest.raises(InputError, match="m.jsonl:2: not JSON"):
        load_manifest(tmp_path / "m.jsonl")
    assert main(["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "o")]) == 2
    assert main(["batch", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")]) == 2
    assert main(["batch", str(tmp_path / "m.csv"), "-o", str(tmp_path / "o"), "--address", "x:1"]) == 2


def test_folder_of_recordings_and_dry_run(inputs, tmp_path, capsys):
    import shutil

    folder = tmp_path / "recs"
    folder.mkdir()
    for r in list(inputs["recordings"]) + [inputs["other_recording"]]:
        shutil.copy(r, folder)
    (folder / "notes.txt").write_text("not a recording")
    items = load_manifest(folder, default_task="consensus")
    assert len(items) == 1 and items[0].task == "consensus" and len(items[0].recordings) == 3
    assert items[0].scan == str(Path(inputs["scan"]).resolve())
    items = load_manifest(folder, default_task="attention")
    assert sorted(it.id for it in items) == ["ann0", "ann1", "ann2", "other"]
    out = tmp_path / "out"
    assert main(["batch", str(folder), "-o", str(out), "--task", "attention", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 items would run" in printed and not out.exists()
    assert main(["batch", str(folder), "-o", str(out), "--task", "attention", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["batch", str(folder), "-o", str(out), "--task", "attention", "--dry-run", "--resume"]) == 0
    assert "0 of 4 items would run" in capsys.readouterr().out


def test_local_pool_gives_the_same_bytes(inputs, tmp_path):
    scan, recs = inputs["scan"], inputs["recordings"]
    manifest = write_csv(tmp_path / "m.csv", [(scan, recs[0], "segment"), (scan, recs[1], "attention"),
                                              (scan, recs, "consensus")])
    items = load_manifest(manifest)
    one = run_batch(items, tmp_path / "one", echo=None, progress=False)
    two = run_batch(items, tmp_path / "two", workers=2, echo=None, progress=False)
    assert one.ok and two.ok
    pids = {json.loads(Path(r["report"]).read_text())["worker"]["pid"] for r in two.results}
    assert os.getpid() not in pids
    assert outputs_of(tmp_path / "one") == outputs_of(tmp_path / "two")
    assert len(outputs_of(tmp_path / "one")) == 1 + 3 + 3 * 3 + 2


def test_demo_recording_names_its_scan_and_batches(tmp_path):
    """The demo's recording (real tracker process, sim source) stores its scan; a batch pairs it by hash."""
    from gaze3d.batch import file_sha256
    from gaze3d.demo import bundled_tile, run_demo
    from gaze3d.recording import Recording

    summary = run_demo(tmp_path / "demo", duration_s=2.0, progress=False)
    rec = summary.outputs["recording"]
    with Recording(rec) as r:
        meta = r.meta
    assert meta["scan_sha256"] == file_sha256(bundled_tile())
    manifest = write_csv(tmp_path / "m.csv", [(bundled_tile(), rec, "attention")])
    out = tmp_path / "out"
    result = run_batch(load_manifest(manifest), out, echo=None, progress=False)
    assert result.ok, result.results
    report = json.loads(Path(result.results[0]["report"]).read_text())
    assert report["provenance"]["recordings"]["recording"]["pairing"] == "sha256"
    assert np.load(out / "session" / "attention.npy").max() > 0


def test_viewer_session_recording_names_its_scan(inputs, tmp_path):
    """A labeling session recording locally (no tracker) stores the scan's path and SHA-256."""
    from gaze3d.batch import file_sha256
    from gaze3d.io import load_scan
    from gaze3d.recording import Recording
    from gaze3d.viewer.session import LabelingSession

    session = LabelingSession(load_scan(inputs["scan"]), record=tmp_path / "s.g3dr", annotator="tester")
    session.close()
    with Recording(tmp_path / "s.g3dr") as rec:
        meta = rec.meta
    assert meta["scan_sha256"] == file_sha256(inputs["scan"])
    assert meta["scan_path"] == str(Path(inputs["scan"]).resolve())


def test_a_killed_pool_worker_fails_only_its_items(inputs, tmp_path):
    """SIGKILL one worker process of the local pool mid-batch: its items fail with that reason,
    a fresh pool runs the rest, and --resume redoes only the failed ones."""
    import multiprocessing
    import threading

    scan, recs = inputs["scan"], inputs["recordings"]
    lines = ["id,scan,recording,task,sigma_deg"]
    lines += [f"item{k},{scan},{recs[k % len(recs)]},attention,{1.0 + 0.1 * k}" for k in range(8)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    items = load_manifest(manifest)
    out = tmp_path / "out"
    box = {}
    batch = threading.Thread(target=lambda: box.update(
        result=run_batch(items, out, workers=2, echo=None, progress=False)))
    batch.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*/report.json"))) < 2:
        time.sleep(0.02)
    victims = multiprocessing.active_children()
    assert victims, "no pool worker to kill"
    os.kill(victims[0].pid, signal.SIGKILL)
    batch.join(timeout=300)
    assert not batch.is_alive()
    res = box["result"]
    failed = [r for r in res.results if r["status"] == "failed"]
    # the killed worker was running an item (items take ~0.3 s, the hand-over microseconds)
    assert failed and all("worker process died" in r["error"] for r in failed)
    assert res.counts["ok"] + len(failed) == 8 and res.counts["ok"] >= 2
    again = run_batch(items, out, workers=2, resume=True, echo=None, progress=False)
    # --resume reruns failed items only, and not all of them need it: a dead worker breaks the pool,
    # which fails every item in flight, and the other worker's item may still have finished and
    # renamed its outputs into place; they verify, so resume skips it (a fresh-clone run on a
    # loaded machine saw 2 failed, 1 rerun)
    rerun = {r["id"] for r in again.results if r["status"] == "ok"}
    assert again.ok and rerun <= {r["id"] for r in failed}
    assert again.counts["ok"] + again.counts["skipped"] == 8
    assert sorted(p.parent.name for p in out.glob("*/report.json")) == sorted(it.id for it in items)
