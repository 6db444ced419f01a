"""LabelHistory: which label action to undo or redo, apart from applying it."""
from __future__ import annotations

from gaze3d.viewer.history import LabelHistory


def test_undo_redo_order_and_a_new_action_clears_redo():
    h = LabelHistory()
    assert h.undo() is None and h.redo() is None and len(h) == 0
    h.push("a")
    h.push("b")
    assert h.undo() == "b" and h.undo() == "a" and h.undo() is None
    assert h.redo() == "a" and h.undo_stack == ["a"] and h.redo_stack == ["b"]
    h.push("c")                                  # a new action: "b" can no longer be redone
    assert h.redo() is None and h.undo_stack == ["a", "c"]
    h.clear()
    assert h.undo() is None and h.redo() is None
