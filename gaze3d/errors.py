"""Exceptions that gaze3d raises for user mistakes.

The CLI turns any :class:`Gaze3DError` into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.
"""


class Gaze3DError(Exception):
    """Base class of the errors a user can cause and fix (bad file, bad option)."""


class InputError(Gaze3DError, ValueError):
    """Bad input data or a bad parameter value.

    The message names the file or parameter and what was expected, in one line,
    for example ``"scan.las: empty point cloud (0 points)"``.
    """


class ScanFormatError(InputError):
    """A scan file that is missing, of an unknown format, corrupt or inconsistent."""


class OptionalDependencyError(Gaze3DError, ImportError):
    """An optional package is needed for this feature but is not installed."""


class Gaze3DWarning(UserWarning):
    """Base class of the warnings gaze3d gives about a user's data (the CLI prints each as one line)."""
