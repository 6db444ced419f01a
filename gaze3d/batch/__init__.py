"""Batch segmentation of saved recordings, on one machine or a Ray cluster.

``gaze3d batch MANIFEST -o OUTDIR`` (``gaze3d/cli/batch.py``) is a thin layer
over this package:

* :mod:`.manifest`: manifests (CSV/TSV/JSON lines or a folder) -> :class:`BatchItem`,
* :mod:`.provenance`: SHA-256 of inputs, the scan a recording was made on,
* :mod:`.item`: :class:`ItemRunner` runs one item (attention replay,
  segmentation, consensus) and writes its outputs and report atomically,
* :mod:`.consensus`: majority vote, STAPLE, Dice/IoU, Fleiss' kappa,
* :mod:`.engine`: resume, the local process pool, progress, summary,
* :mod:`.ray_engine`: the same items in Ray actors (optional extra ``ray``).

Not to be confused with :mod:`gaze3d.attention.batch` (one recording's
attention replay), which every item calls.
"""
from .engine import BatchResult, plan, run_batch, verify_item
from .item import ItemRunner
from .manifest import OPTIONS, TASKS, BatchItem, load_manifest
from .provenance import check_scan_pairing, file_sha256, scan_provenance, stamp_recording

__all__ = ["BatchItem", "BatchResult", "ItemRunner", "OPTIONS", "TASKS", "check_scan_pairing", "file_sha256",
           "load_manifest", "plan", "run_batch", "scan_provenance", "stamp_recording", "verify_item"]
