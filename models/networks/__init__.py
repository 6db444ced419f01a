"""Networks on top of :mod:`gaze3d.models.sparse`, one per module."""
