"""The interactive viewer window (plain PyVista): keys, gaze cursor, status line.

Keys
----
1-9            label the attended region with the n-th label
Return         type a label name (Return again to apply, Escape to cancel)
u / ctrl+z     undo          r / ctrl+y     redo
c              clear attention
n              reject: the fixation just made was on something wrongly included
g              show / hide the gaze cursor
p              next calibration profile (after the last: none)
d              drift check: look at the target shown at the centre
ctrl+s         save annotations
[ / ]          volume rendering: lower / raise the opacity ramp
Page Up/Down   volumes: move the axial slice
v              volumes: show / hide the slice planes
q              quit

Without a tracker, or while the tracker is silent, the mouse cursor in the
window is the gaze (hold it still on a structure: that is a fixation).
The same :class:`ViewerApp` runs offscreen for tests; :meth:`press` feeds a
key through VTK's interactor exactly as a real key press does.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

import numpy as np

from gaze3d.attention import AttentionOptions
from gaze3d.errors import Gaze3DError

from ._vtk import make_plotter, vtkActor2D, vtkPolyDataMapper2D, vtkRegularPolygonSource
from .labels import LabelSet
from .lod import PointBudget, parse_budget
from .render import write_png
from .scene import Scene
from .session import LabelingSession
from .targets import Bullseye

HELP = "1-9 label | Return type label | u/r undo/redo | c clear | p profile | d drift | ctrl+s save | q quit"


def default_annotation_path(scan) -> Path:
    """``<scan stem>.labels.<ext>`` beside the scan (volumes: ``.nii.gz``; LAS stays LAS; else PLY)."""
    src = Path(getattr(scan, "source", None) or "scan")
    name = src.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".las", ".laz", ".ply", ".pcd", ".obj", ".stl"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    if type(scan).__name__ == "Volume":
        ext = ".nii.gz"
    elif src.suffix.lower() in (".las", ".laz"):
        ext = ".las"
    else:
        ext = ".ply"
    return src.with_name(f"{name}.labels{ext}")


#: VTK's text rendering draws no glyph for ASCII "|" (and not reliably U+2502); the broken bar is drawn
#: (tests/test_viewer_truth.py)
STATUS_SEPARATOR = " \u00a6 "
# While a label's region grows in its worker, frames are drawn at most this often: the
# worker shares the CPU (and Python's lock) with the render, and the cursor still moves
LABEL_PENDING_FRAME_S = 0.1
# how long a label key waits for its worker before showing "labelling as ..." instead: a region
# grown by then is shown by the key's own frame (one render, not two); a slower one is
# acknowledged at once after this wait (a spinner shown only when it is needed)
LABEL_ACK_DELAY_S = 0.06


def status_text(line: str) -> str:
    """The session's status line as drawn in the VTK window: separators it can draw, no trailing blanks."""
    return "\n".join(part.rstrip().replace(" | ", STATUS_SEPARATOR) for part in line.split("\n"))


class ViewerApp:
    """A labeling window: scene + session + keys.

    Parameters
    ----------
    scan : PointCloud, Mesh or Volume
    label_set : LabelSet, optional
    tracker : TrackerLink, optional
        None: mouse as gaze.
    record : path, optional
        Session recording (see :class:`LabelingSession`).
    annotations : path, optional
        Where ctrl+s saves (default :func:`default_annotation_path`).
    off_screen : bool
        Render offscreen (tests, headless).
    window_size : (2,) int
    segmenter, annotator, point_size, viewport
        See :class:`LabelingSession` and :class:`Scene`.
    attention_options : AttentionOptions, optional
        How attention is accumulated (a dict of the same names is accepted); its
        ``point_size`` defaults to the drawn ``point_size``.
    fps : float
        Frames per second of the interactive loop.
    point_budget : "auto" or int
        Point clouds: points drawn while interacting (keys, camera motion), a
        spatially even subset; once idle for a moment the whole cloud is drawn
        (:mod:`gaze3d.viewer.lod`). ``"auto"``: sized from measured render times
        so a frame takes about 40 ms (the whole cloud where it fits); ``0``:
        always draw every point. Only the picture depends on it: attention,
        labels and recordings use every point.
    label_worker : bool, optional
        Grow a label's region in a worker thread while the window keeps
        drawing (:meth:`LabelingSession.begin_label`; the label is applied in
        the frame after it is grown). Point clouds and meshes; volumes label
        at once (their keys and frames drive the attention engine). Default: on once :meth:`run` opens the
        window; scripts calling :meth:`handle_key` get the label before it returns.

    Thread-safety: not thread-safe; everything runs in the GUI thread (a
    label's worker thread never touches the window).
    """

    def __init__(self, scan, label_set: Optional[LabelSet] = None, *, tracker=None, record=None,
                 annotations=None, off_screen: bool = False, window_size=(1280, 800), segmenter: str = "auto",
                 annotator: Optional[str] = None, point_size: float = 3.0, fps: float = 30.0,
                 volume_render: bool = True, attention_options: Optional[AttentionOptions] = None, plotter=None,
                 viewport=(0.0, 0.0, 1.0, 1.0), profile=None, profile_store=None, display=None,
                 drift_threshold_deg: float = 1.0, drift_dwell_s: float = 1.5,
                 point_budget: Union[str, int] = "auto", label_worker: Optional[bool] = None):
        parse_budget(point_budget)            # a bad value fails before a window opens
        # renders are real (and timed) offscreen, in a host's widget (Qt), or once run() showed the window
        self._live = plotter is not None or off_screen
        self.plotter = plotter if plotter is not None else make_plotter(off_screen=off_screen,
                                                                        window_size=window_size)
        self.plotter.set_background("#1e1f24")
        self.scene = Scene(self.plotter, scan, point_size=point_size, volume_render=volume_render)
        # what is drawn is what attention sees: the splat size, and for a volume the opacity ramp
        attention_options = AttentionOptions.coerce(attention_options)
        if attention_options.point_size is None:
            attention_options = replace(attention_options, point_size=float(point_size))
        if self.scene.volume_actor is not None:
            attention_options = attention_options.with_engine(opacity=self.scene.opacity_points(),
                                                              reference_step_mm=self.scene.opacity_unit_distance)
        self.session = LabelingSession(scan, label_set, tracker=tracker, record=record, annotator=annotator,
                                       segmenter=segmenter, attention_options=attention_options,
                                       viewport=viewport, profile=profile, profile_store=profile_store,
                                       display=display, drift_threshold_deg=drift_threshold_deg,
                                       drift_dwell_s=drift_dwell_s)
        self.session.attach(self.scene)
        self.scene.default_camera()
        self.budget = PointBudget(self.scene.n_elements, point_budget) if self.scene.kind == "cloud" else None
        if self.budget is not None and not self.budget.auto:
            self.scene.set_point_budget(self.budget.size)
        self.annotations = Path(annotations) if annotations else default_annotation_path(scan)
        self.fps = float(fps)
        self.typing: Optional[str] = None
        self._heat_stale = False          # attention taken in that the overlay does not show yet
        # label keys grow the region in a worker thread (the window keeps drawing): None = when the
        # window runs (run()); scripts driving handle_key()/press() get the label before it returns
        self.label_worker: Optional[bool] = label_worker
        self.label_ack_delay_s = LABEL_ACK_DELAY_S
        self._last_draw = 0.0             # time.monotonic() of the last render
        self.show_cursor = True
        self.closed = False
        self._mouse_xy: Optional[tuple] = None
        self._buttons = 0
        # a text actor at a fixed pixel position and size (not a corner annotation, whose font is
        # rescaled per corner by its number of lines): every status line starts at the same x
        self._status = self.plotter.add_text("", position=(6, 4), font_size=9, color="white",
                                             name="gaze3d-status")
        self._status.GetTextProperty().SetJustificationToLeft()
        self._status.GetTextProperty().SetVerticalJustificationToBottom()
        self._status.GetTextProperty().SetFontSize(14)
        self._palette = self.plotter.add_text(self._palette_text(), position="upper_left", font_size=9,
                                              color="white", name="gaze3d-palette")
        self._cursor_source, self._cursor = self._make_cursor()
        self.drift_target = Bullseye(self.plotter, radius_px=max(8.0, 0.012 * float(np.hypot(*window_size))))
        self._install_keys()
        self.update_status()

    # ------------------------------------------------------------- widgets
    def _palette_text(self) -> str:
        lines = [f"{i}  {lab.name}" for i, lab in enumerate(list(self.session.label_set)[:9], start=1)]
        return "\n".join(lines + ["", HELP])

    def _make_cursor(self):
        src = vtkRegularPolygonSource()
        src.SetNumberOfSides(32)
        src.SetRadius(14)
        src.GeneratePolygonOff()
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputConnection(src.GetOutputPort())
        actor = vtkActor2D()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.2, 1.0, 0.4)
        actor.GetProperty().SetLineWidth(2)
        actor.VisibilityOff()
        self.plotter.renderer.AddActor(actor)
        return src, actor

    def _update_cursor(self) -> None:
        g = self.session.last_gaze
        if not self.show_cursor or g is None:
            self._cursor.VisibilityOff()
            return
        w, h = self.plotter.window_size
        self._cursor_source.SetCenter(g[0] * w, (1.0 - g[1]) * h, 0.0)
        self._cursor.VisibilityOn()

    def update_status(self) -> None:
        line = self.session.status_line()
        if self.typing is not None:
            line += f"\nlabel: {self.typing}_   (Return apply, Escape cancel)"
        self._status.SetInput(status_text(line))

    # ---------------------------------------------------------------- keys
    def _install_keys(self) -> None:
        iren = self.plotter.iren
        # Our keys replace PyVista's defaults ('r' reset camera, 'q' exit...) and
        # VTK's character shortcuts ('3' stereo, 'w' wireframe, 'e' exit).
        for key in list(iren._key_press_event_callbacks):
            self.plotter.clear_events_for_key(key)
        iren.interactor.RemoveObservers("CharEvent")
        iren.add_observer("KeyPressEvent", self._on_key)
        iren.add_observer("MouseMoveEvent", self._on_mouse_move)
        # camera motion (drag, wheel): the interactor style renders each step itself, so the
        # budget is drawn from the moment it starts, and the still frame comes once it ends
        style = iren.interactor.GetInteractorStyle()
        self._style_observers = [] if style is None else [
            (style, style.AddObserver(ev, lambda *a: self._interacting()))
            for ev in ("StartInteractionEvent", "InteractionEvent", "EndInteractionEvent")]
        for ev, delta in (("LeftButtonPressEvent", 1), ("LeftButtonReleaseEvent", -1),
                          ("RightButtonPressEvent", 1), ("RightButtonReleaseEvent", -1),
                          ("MiddleButtonPressEvent", 1), ("MiddleButtonReleaseEvent", -1)):
            iren.add_observer(ev, lambda *a, d=delta: self._on_button(d))

    def _interacting(self) -> None:
        """A key or camera motion: frames draw the point budget until idle again."""
        if self.budget is not None:
            self.budget.interact()
            self.scene.show_budget(self.budget.active)

    def _on_button(self, delta: int) -> None:
        self._buttons = max(0, self._buttons + delta)

    def _on_mouse_move(self, *args) -> None:
        x, y = self.plotter.iren.interactor.GetEventPosition()
        w, h = self.plotter.window_size
        self._mouse_xy = (x / max(w, 1), 1.0 - y / max(h, 1))

    def _on_key(self, *args) -> None:
        inter = self.plotter.iren.interactor
        self.handle_key(inter.GetKeySym() or "", ctrl=bool(inter.GetControlKey()))

    def press(self, key: str, ctrl: bool = False) -> None:
        """Simulate a key press through VTK's interactor (the path a real key takes)."""
        inter = self.plotter.iren.interactor
        inter.SetKeySym(key)
        inter.SetKeyCode(key if len(key) == 1 else "\0")
        inter.SetControlKey(int(ctrl))
        inter.InvokeEvent("KeyPressEvent")
        inter.SetControlKey(0)

    def handle_key(self, key: str, ctrl: bool = False) -> None:
        """Act on one key (``key`` is a VTK key symbol such as ``"1"``, ``"z"``, ``"Return"``)."""
        s = self.session
        # the budget first: what the key changes is then recoloured on the drawn points only
        # (the whole cloud catches up in the still frame)
        self._interacting()
        try:
            if self.typing is not None:
                self._type(key)
            elif ctrl and key.lower() == "z":
                s.undo()
            elif ctrl and key.lower() == "y":
                s.redo()
            elif ctrl and key.lower() == "s":
                s.save_annotations(self.annotations)
            elif len(key) == 1 and key in "123456789":
                self._label(key)
            elif key == "u":
                s.undo()
            elif key == "r":
                s.redo()
            elif key == "c":
                s.clear_attention()
            elif key == "n":
                s.reject_last_fixation()
            elif key == "g":
                self.show_cursor = not self.show_cursor
            elif key == "t" and self.scene.kind != "volume":
                self.scene.set_class_tint(not self.scene.class_tint)
                s.say(f"class colours {'on' if self.scene.class_tint else 'off (the scan colours)'}")
            elif key == "p":
                s.cycle_profile()
            elif key == "d":
                s.start_drift_check()
            elif key == "Return":
                self.typing = ""
            elif key in ("bracketleft", "bracketright") and self.scene.volume_actor is not None:
                level, width, op = self.scene.transfer
                self.scene.set_transfer_function(level + (-0.05 if key == "bracketleft" else 0.05) * width, width, op)
                self._sync_attention_opacity()
                s.say(f"opacity ramp at {self.scene.transfer[0]:.0f}")
            elif key == "v" and self.scene.kind == "volume":
                self.scene.show_slices(not self.scene.actor.GetVisibility())
            elif key in ("Prior", "Next") and self.scene.kind == "volume":
                idx = list(self.scene.slice_index)
                idx[2] += 1 if key == "Prior" else -1
                self.scene.set_slices(idx)
                self.scene.update_attention(s.attention)
            elif key == "q":
                self.close()
                return
        except Gaze3DError as exc:   # unknown label name, nothing to save...: say it, keep going
            s.say(str(exc))
        # the key's effect is shown in a budget frame even when its work outlasted the idle delay
        # (a label on a loaded CPU): the still frame comes once idle, not before the effect
        self._interacting()
        self._update_cursor()
        self._update_drift_target()
        self.update_status()
        self.draw()

    def _label(self, label) -> None:
        """A label key (or typed name; a bad one raises here, with its hint).

        With :attr:`label_worker` the region grows in the session's worker thread
        while the window shows ``labelling as NAME ...`` and keeps drawing;
        :meth:`frame` applies it once grown. Without, the key shows that text at
        once (one frame), then labels before it returns.
        """
        s = self.session
        lab = s.resolve_label(label)
        # volumes label at once: their keys and frames drive the attention engine (slices, opacity)
        if self.label_worker and s.kind != "volume":
            s.begin_label(lab)
            if s.wait_label(self.label_ack_delay_s):
                self._apply_label()          # grown already: the key's own frame shows the region
            else:
                s.say(f"labelling as {lab.name} ...")
            return
        self._acknowledge(f"labelling as {lab.name} ...")
        s.label_attended(lab)

    def _acknowledge(self, text: str) -> None:
        """Show at once that a slow key was taken (a label grows its region over the whole cloud:
        hundreds of ms at 1M points on a loaded CPU), then let the key do its work."""
        self.session.say(text)
        self._interacting()
        self.update_status()
        self.draw()

    def finish_label(self) -> bool:
        """Apply the pending label if its region is grown, and show it. True if one was applied."""
        if not self.session.label_ready():
            return False
        self._apply_label()
        self._interacting()          # its effect in a budget frame
        self.update_status()
        self.draw()
        return True

    def _apply_label(self) -> None:
        """Apply the pending label (its worker is done or waited for); the caller draws."""
        s = self.session
        try:
            s.finish_label()
        except Gaze3DError as exc:   # a model that failed: say it, keep going
            s.say(str(exc))
        self._heat_stale = True      # the gaze held meanwhile is now the next label's attention

    def _update_drift_target(self) -> None:
        """Show the bullseye while a drift check runs (display -> viewport -> window pixels)."""
        d = self.session.calibration.drift
        if d is None:
            if self.drift_target.visible:
                self.drift_target.hide()
            return
        vp = self.session.viewport
        w, h = self.plotter.window_size
        self.drift_target.show((d["x"] - vp[0]) / vp[2] * w, (d["y"] - vp[1]) / vp[3] * h)

    def sync_volume_attention(self) -> None:
        """Match the volume attention engine to what is on screen.

        With the slice planes shown, the gaze lands on them: each of the three
        planes gets attention where it is seen, the nearer planes hiding the
        parts behind them (the engine's ``"slice"`` mode). With the slices
        hidden (key ``v``), to what the volume rendering shows (``"render"``
        mode, same opacity ramp).
        """
        acc = self.session.accumulator
        if self.scene is None or self.scene.kind != "volume" or not acc.is_volume:
            return
        if self.scene.actor.GetVisibility():
            acc.set_volume_view(self.scene.slice_index)
        elif self.scene.volume_actor is not None:
            acc.set_volume_view(None)

    def _sync_attention_opacity(self) -> None:
        """Give the volume attention engine the volume rendering's new opacity ramp."""
        self.session.accumulator.set_volume_opacity(self.scene.opacity_points())

    def _type(self, key: str) -> None:
        if key == "Escape":
            self.typing = None
        elif key == "Return":
            text, self.typing = self.typing.strip(), None
            if text:
                self._label(text)
        elif key == "BackSpace":
            self.typing = self.typing[:-1]
        elif key == "space":
            self.typing += " "
        elif len(key) == 1 and key.isprintable():
            self.typing += key
        elif key in ("minus", "underscore", "period"):
            self.typing += {"minus": "-", "underscore": "_", "period": "."}[key]

    # --------------------------------------------------------------- frames
    def frame(self, render: bool = True) -> dict:
        """One frame: gaze in (tracker, or the mouse when there is no live tracker), overlay, status."""
        local = None
        tracker = self.session.tracker
        if (tracker is None or not tracker.alive) and self._mouse_xy is not None and self._buttons == 0:
            x, y = self._mouse_xy
            if 0 <= x <= 1 and 0 <= y <= 1:
                local = [self.session.mouse_sample(x, y)]
        self.sync_volume_attention()
        # new heat reaches the overlay in draw(): frames that draw nothing (idle, between still
        # frames) skip building the attention array and recolouring
        out = self.session.tick(local_samples=local, refresh=not render)
        self._heat_stale = self._heat_stale or (render and out["samples"] > 0)
        if render and self.finish_label():       # a label grown since the last frame: shown now
            return out
        if self.session.label_pending:
            # a label is on its way: budget frames (a still frame would hold the window, and the
            # label, for a whole-cloud render), and not too many
            self._interacting()
            if render and time.monotonic() - self._last_draw < LABEL_PENDING_FRAME_S:
                return out
        self._update_cursor()
        self._update_drift_target()
        self.update_status()
        if render:
            b = self.budget
            now = time.monotonic()
            if b is None or not b.active or b.interactive(now):
                self.draw()
            elif self.scene.budget_shown or b.still_due(now):
                # idle: the still frame, then new heat at full detail at a bounded rate
                # (a full render can take a second on a loaded CPU: keys must not queue behind it)
                self.draw(still=True)
            self._adapt_budget()
        return out

    def draw(self, still: bool = False) -> float:
        """Render now: the point budget while interacting, the whole cloud when ``still`` or without one.

        Returns the render's seconds (0.0 before the window is shown), which
        the point budget learns from.
        """
        if self._heat_stale:
            self._heat_stale = False
            self.session.refresh()
        b = self.budget
        if b is not None:
            self.scene.show_budget(not still and b.interactive())
        if not self._live:
            return 0.0
        t0 = time.perf_counter()
        self.plotter.ren_win.Render()
        dt = time.perf_counter() - t0
        self._last_draw = time.monotonic()
        if b is not None:
            b.note_render(self.scene.drawn_points, dt)
            if not self.scene.budget_shown:
                b.last_still = time.monotonic()
        return dt

    def _adapt_budget(self) -> None:
        """Resize the budget subset to what the measured renders allow (not too often: it is rebuilt)."""
        b = self.budget
        if b is None or not b.auto:
            return
        want, have = b.size, self.scene.point_budget
        if want != have and (want >= self.scene.n_elements or have >= self.scene.n_elements
                             or abs(want - have) > 0.25 * have):
            self.scene.set_point_budget(want)

    def screenshot(self, path=None) -> np.ndarray:
        """(h, w, 3) uint8 image of the window (written as PNG if ``path``)."""
        self.plotter.render()
        img = np.array(self.plotter.screenshot(return_img=True), dtype=np.uint8)[:, :, :3]
        if path is not None:
            write_png(img, path)
        return img

    def run(self) -> None:
        """Open the window and run until it is closed (interactive)."""
        if self.label_worker is None:
            self.label_worker = True
        period_ms = max(1, int(1000 / self.fps))
        self.plotter.add_timer_event(max_steps=2 ** 31 - 1, duration=period_ms, callback=lambda step: self.frame())
        self._live = True
        try:
            self.plotter.show(title="gaze3d view", auto_close=False)
        finally:
            self.close()

    def close(self) -> None:
        """End the session (recording, tracker link) and free the window. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self.session.close()
        finally:
            if self.session.tracker is not None:
                self.session.tracker.close()
            # VTK holds our callbacks (bound methods -> self -> plotter): a cycle through
            # C++ that Python's gc cannot see, so drop them before closing
            for style, obs in self._style_observers:
                style.RemoveObserver(obs)
            self._style_observers = []
            if self.plotter.iren is not None:
                self.plotter.iren.remove_observers()
            self.session.scene = None
            self.plotter.close()
            self.plotter.deep_clean()
            self._cursor = self._cursor_source = None
            self.drift_target = None
            self._status = self._palette = None
            self.scene = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
