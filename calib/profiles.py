"""Calibration profiles: per annotator + display + tracker, JSON in the user's config folder.

Profiles live in ``$GAZE3D_CONFIG_DIR/profiles`` when that variable is set,
else ``$XDG_CONFIG_HOME/gaze3d/profiles`` (default ``~/.config/gaze3d/profiles``),
never in the repository. One file per profile, ``<name>.json``, written
atomically; the selected profile's name is in ``<config>/selected_profile.json``.

Every recording stores the profile and correction it was made with
(:func:`store_in_recording`, meta key ``"calibration"``), as a full snapshot,
so a replay applies the very same correction (:func:`recording_correction`,
:func:`.timeline.replay_samples`) even after the profile was recalibrated or deleted.
Live viewer sessions store the whole timeline of their corrections there
(:mod:`.timeline`).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from gaze3d.errors import InputError

from ._io import atomic_write_text
from .correction import Correction

META_KEY = "calibration"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ProfileNotFoundError(InputError):
    """No profile of that name in the profile folder."""


def config_dir() -> Path:
    """The gaze3d user config folder (``$GAZE3D_CONFIG_DIR``, else XDG)."""
    env = os.environ.get("GAZE3D_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg) / "gaze3d"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"profile name: expected 1-64 letters, digits, '.', '_' or '-' (starting with a "
                         f"letter or digit), got {name!r}")
    return name


@dataclass
class Profile:
    """What was calibrated for whom, on which display and tracker, and its correction.

    Parameters
    ----------
    name : str
        File-safe identifier, e.g. ``"alice-dell24-tobii"``.
    annotator, display, tracker : str
        Free-text identifiers of the person, the display and the tracker.
    screen : dict
        ``ScreenSetup.to_dict()`` or ``DisplayGeometry`` fields.
    correction : dict
        ``Correction.to_dict()``.
    validation : dict
        Summary of the validation it was fitted on (accuracy before/after...).
    """

    name: str
    annotator: str = ""
    display: str = ""
    tracker: str = ""
    screen: dict = field(default_factory=dict)
    correction: dict = field(default_factory=lambda: Correction().to_dict())
    validation: dict = field(default_factory=dict)
    created_unix_s: float = field(default_factory=time.time)
    updated_unix_s: float = field(default_factory=time.time)

    def __post_init__(self):
        check_name(self.name)
        Correction.from_dict(self.correction)          # validates

    def get_correction(self) -> Correction:
        return Correction.from_dict(self.correction)

    def to_dict(self) -> dict:
        return {"name": self.name, "annotator": self.annotator, "display": self.display,
                "tracker": self.tracker, "screen": self.screen, "correction": self.correction,
                "validation": self.validation, "created_unix_s": self.created_unix_s,
                "updated_unix_s": self.updated_unix_s}

    @classmethod
    def from_dict(cls, d: dict, source: str = "profile") -> "Profile":
        if not isinstance(d, dict) or "name" not in d:
            raise InputError(f"{source}: expected a JSON object with a 'name'")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        try:
            return cls(**known)
        except InputError as exc:       # name the file as well as the field
            raise InputError(f"{source}: {exc}") from None


class ProfileStore:
    """The profile folder: save, load, list, select, delete.

    Thread-safety: writes are atomic file replacements, so concurrent readers
    see whole files; concurrent writers of the same profile: last one wins.
    """

    def __init__(self, root: Optional[os.PathLike] = None):
        self.config = Path(root).expanduser() if root is not None else config_dir()
        self.root = self.config / "profiles"

    def path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.json"

    def names(self) -> List[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if _NAME.match(p.stem))

    def list(self) -> List[Profile]:
        return [self.load(n) for n in self.names()]

    def save(self, profile: Profile) -> Path:
        profile.updated_unix_s = time.time()
        return atomic_write_text(self.path(profile.name), json.dumps(profile.to_dict(), indent=2) + "\n")

    def load(self, name: str) -> Profile:
        p = self.path(name)
        if not p.is_file():
            have = ", ".join(self.names()) or "none"
            raise ProfileNotFoundError(f"profile {name!r}: not found in {self.root} (available: {have})")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: not a valid profile JSON file ({exc})") from None
        return Profile.from_dict(d, source=str(p))

    def delete(self, name: str) -> None:
        self.load(name)                                 # clear error if missing
        self.path(name).unlink()
        if self.selected_name() == name:
            (self.config / "selected_profile.json").unlink(missing_ok=True)

    def select(self, name: str) -> Profile:
        prof = self.load(name)
        atomic_write_text(self.config / "selected_profile.json", json.dumps({"name": name}) + "\n")
        return prof

    def selected_name(self) -> Optional[str]:
        p = self.config / "selected_profile.json"
        try:
            return json.loads(p.read_text(encoding="utf-8")).get("name")
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            return None

    def selected(self) -> Optional[Profile]:
        """The selected profile, or None when none is selected."""
        name = self.selected_name()
        return self.load(name) if name else None

    def resolve(self, name: Optional[str]) -> Optional[Profile]:
        """``name``'s profile if given, else the selected one (None if neither)."""
        return self.load(name) if name else self.selected()


# --- recordings ----------------------------------------------------------------------------------
def calibration_meta(profile: Optional[Profile], correction: Optional[Correction] = None) -> dict:
    """The ``"calibration"`` meta entry for a recording made with ``profile`` / ``correction``."""
    if correction is None:
        correction = profile.get_correction() if profile is not None else Correction()
    return {"profile": profile.name if profile is not None else None,
            "profile_snapshot": profile.to_dict() if profile is not None else None,
            "correction": correction.to_dict()}


def store_in_recording(writer, profile: Optional[Profile], correction: Optional[Correction] = None) -> dict:
    """Record in ``writer`` (a ``RecordingWriter``) which profile and correction this session uses."""
    meta = calibration_meta(profile, correction)
    writer.set_meta(META_KEY, meta)
    return meta


def recording_correction(recording_or_meta) -> Correction:
    """The correction a recording was made with (identity if it stored none).

    Parameters
    ----------
    recording_or_meta : Recording or dict
        A ``gaze3d.recording.Recording`` or its ``meta`` dict.
    """
    meta = recording_or_meta if isinstance(recording_or_meta, dict) else recording_or_meta.meta
    entry = meta.get(META_KEY)
    if entry is None:
        return Correction()
    if not isinstance(entry, dict) or "correction" not in entry:
        raise InputError(f"recording meta {META_KEY!r}: expected a dict with 'correction', got {entry!r}")
    return Correction.from_dict(entry["correction"])


CALIBRATION_EVENT = "calibration"


def calibration_event(profile: Optional[Profile], correction: Optional[Correction] = None) -> dict:
    """An event marking a correction change (older recordings; the viewer now stores a timeline in meta).

    Still read by :func:`.timeline.replay_samples` for recordings that have them: each
    sample gets the correction of the last such event at or before it.
    """
    return {"type": CALIBRATION_EVENT, **calibration_meta(profile, correction)}
