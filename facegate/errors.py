"""Typed errors with messages a person can act on.

Every error carries an exit code so the CLI can map it without a lookup table of
its own, and a one-line ``str()`` that is safe to print instead of a traceback.
"""

from __future__ import annotations


class FacegateError(Exception):
    """Base class: anything facegate raises on purpose."""

    exit_code = 1
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class UsageError(FacegateError):
    """A wrong argument or option combination."""

    exit_code = 2
    code = "usage"


class InvalidImageError(FacegateError):
    """The input is not a decodable image (corrupt, truncated, empty, wrong type)."""

    exit_code = 3
    code = "invalid_image"


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""

    code = "image_too_large"


class NoFaceError(FacegateError):
    """No face was found where one was required."""

    exit_code = 4
    code = "no_face"


class MultipleFacesError(FacegateError):
    """Several faces were found where exactly one was required."""

    exit_code = 5
    code = "multiple_faces"


class ModelError(FacegateError):
    """A model file is missing, corrupt (sha256 mismatch) or incompatible."""

    exit_code = 6
    code = "model"


class DeviceError(FacegateError):
    """A requested execution device (e.g. CUDA) is not available. Never a silent CPU fallback."""

    exit_code = 7
    code = "device"


class DatasetError(FacegateError):
    """An evaluation data set is missing or malformed."""

    exit_code = 8
    code = "dataset"
