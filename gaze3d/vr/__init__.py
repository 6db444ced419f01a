"""VR gaze: frames and headset conventions (:mod:`.frames`), importers (:mod:`.edvam`), head-compensated
event detection on world rays (:mod:`.events`). numpy only at import time; see ``docs/vr.md``."""
