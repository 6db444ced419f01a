"""Undo / redo of label actions: the session's history, apart from what applying an action means."""
from __future__ import annotations

from typing import Generic, List, Optional, TypeVar

A = TypeVar("A")


class LabelHistory(Generic[A]):
    """Two stacks of label actions (:class:`~gaze3d.viewer.session.LabelAction`).

    A new action clears what could be redone; loading annotations clears both
    (:meth:`clear`). The session applies and reverts the actions; this class
    only says which one. Not thread-safe (the render thread owns it).
    """

    def __init__(self):
        self.undo_stack: List[A] = []
        self.redo_stack: List[A] = []

    def push(self, action: A) -> None:
        """A new action: it can be undone; nothing can be redone any more."""
        self.undo_stack.append(action)
        self.redo_stack.clear()

    def undo(self) -> Optional[A]:
        """The action to revert (moved to the redo stack), or None."""
        return self._move(self.undo_stack, self.redo_stack)

    def redo(self) -> Optional[A]:
        """The action to re-apply (moved back to the undo stack), or None."""
        return self._move(self.redo_stack, self.undo_stack)

    @staticmethod
    def _move(src: List[A], dst: List[A]) -> Optional[A]:
        if not src:
            return None
        dst.append(src.pop())
        return dst[-1]

    def clear(self) -> None:
        """Forget every action (annotations loaded from a file)."""
        self.undo_stack.clear()
        self.redo_stack.clear()

    def __len__(self) -> int:
        return len(self.undo_stack)
