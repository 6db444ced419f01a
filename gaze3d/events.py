"""Eye-movement event classification (fixations, saccades, pursuit, gaps).

The integer codes below are shared by the simulator's ground truth, the
classifiers and the recordings.
"""
from __future__ import annotations

from enum import IntEnum


class EventType(IntEnum):
    """Per-sample eye-movement label."""

    GAP = 0        # no valid data: blink, dropout, track loss
    FIXATION = 1
    SACCADE = 2
    PURSUIT = 3
