"""The project's own error types.

Every error a user can cause (a bad file, a bad argument, a bad bundle) is one of these, with a
message that names the offending file or value and says what to do about it. Code that calls a
library which may raise anything (PyAV, pydicom, h5py, scipy.io) wraps the call and re-raises as
one of these, so the CLI can print a one-line message instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class MusclestateError(Exception):
    """Base class of every error musclestate raises on purpose."""


class InputError(MusclestateError, ValueError):
    """A file or value supplied by the user is missing, unreadable or inconsistent.

    ``path`` names the file at fault where there is one; the message always names it too.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class MediaError(InputError):
    """A video, image or DICOM file cannot be decoded, or decodes to nothing usable."""


class SignalError(InputError):
    """A signal file or channel is unusable: unknown channel, NaN, non-monotonic time, too short."""


class ConfigError(MusclestateError, ValueError):
    """A configuration value or command-line argument is invalid."""


class DatasetError(InputError):
    """A dataset on disk is missing, incomplete or not a musclestate dataset."""


class BundleError(InputError):
    """A file is not a valid musclestate estimator or segmentation bundle."""
