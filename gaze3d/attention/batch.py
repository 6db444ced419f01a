"""Batch attention over a whole recording (placeholder filled below)."""
from __future__ import annotations


def accumulate_attention(scan, recording, **options):
    raise NotImplementedError
