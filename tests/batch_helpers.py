"""Small real inputs for the batch tests: crops of the bundled IGN tile and simulated recordings."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def make_inputs(folder: Path, n_annotators: int = 3, duration_s: float = 2.0) -> dict:
    """Two crops of the IGN tile and short simulated annotator recordings on the first.

    Returns
    -------
    dict with ``scan`` and ``other_scan`` (PLY paths, both with buildings),
    ``recordings`` (paths, annotators ``ann0``...), ``other_recording`` (made
    on ``other_scan``).
    """
    from gaze3d.batch.synthetic import crop_cloud, simulate_session
    from gaze3d.demo import bundled_tile
    from gaze3d.io import load_scan, save_scan

    folder.mkdir(parents=True, exist_ok=True)
    tile = load_scan(bundled_tile())
    x, y = tile.xyz[:, 0], tile.xyz[:, 1]
    # north-east corner (buildings, ~24k points) and the buildings of the north-west corner
    crops = {"scan": (x > 870255) & (y > 6617100), "other_scan": (x < 870235) & (y > 6617105)}
    out = {}
    for name, mask in crops.items():
        cloud = crop_cloud(tile, mask)
        assert np.any(cloud.labels == 6)
        out[name] = folder / f"{name}.ply"
        save_scan(cloud, out[name])
    cloud = load_scan(out["scan"])
    out["recordings"] = [simulate_session(out["scan"], folder / f"ann{k}.g3dr", duration_s=duration_s, seed=k,
                                          annotator=f"ann{k}", scan=cloud) for k in range(n_annotators)]
    out["other_recording"] = simulate_session(out["other_scan"], folder / "other.g3dr", duration_s=duration_s,
                                              seed=7, annotator="other")
    return out


def write_csv(path: Path, rows) -> Path:
    """A CSV manifest from ``(scan, recordings, task)`` rows (recordings: one path or a list)."""
    lines = ["scan,recording,task"]
    for scan, recs, task in rows:
        recs = [recs] if isinstance(recs, (str, Path)) else recs
        lines.append(f"{scan},{';'.join(str(r) for r in recs)},{task}")
    path.write_text("\n".join(lines) + "\n")
    return path


def outputs_of(outdir: Path) -> dict:
    """``{relative path: bytes}`` of every .npy output under ``outdir``."""
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(Path(outdir).rglob("*.npy"))}
