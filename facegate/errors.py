"""Typed errors with messages a person can act on, and the one table of exit codes.

Every error carries an exit code so the CLI can map it without a lookup table of
its own, and a one-line ``str()`` that is safe to print instead of a traceback.
Messages say what is wrong and what to change in words every front end shares; how to
change it in a front end's own terms (a CLI flag, a request field) is that front end's
hint, keyed by the error's ``code`` (see ``facegate.cli.common.CLI_HINTS`` and
``facegate.service.errors.HTTP_HINTS``).

All exit codes live here (``ExitCode`` and ``EXIT_CODES``): the errors below, the gallery's,
the service database's and the video source's take theirs from this table, and both
``facegate --help`` and the README's table are checked against it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``facegate`` command line."""

    OK = 0
    NEGATIVE = 1  # verify: different people; identify: nobody known
    USAGE = 2
    INVALID_IMAGE = 3
    NO_FACE = 4
    MULTIPLE_FACES = 5
    MODEL = 6
    DEVICE = 7
    DATASET = 8
    INTERNAL = 9
    GALLERY = 10
    NOT_FOUND = 11
    NAME_TAKEN = 12
    REJECTED = 13
    SOURCE = 14
    CONFLICT = 15
    INTERRUPTED = 130


# What each exit code means, as ``facegate --help`` and the README print it.
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success (verify: same person; identify: someone known)",
    ExitCode.NEGATIVE: "verify: different people; identify: nobody known",
    ExitCode.USAGE: "usage error (wrong argument, no calibrated FAR)",
    ExitCode.INVALID_IMAGE: "unreadable, too large or not an image",
    ExitCode.NO_FACE: "no face found",
    ExitCode.MULTIPLE_FACES: "several faces where one was needed",
    ExitCode.MODEL: "model missing or corrupt, or the gallery holds another model's embeddings",
    ExitCode.DEVICE: "requested device (GPU) not available",
    ExitCode.DATASET: "data set missing, malformed or too small (calibrate: too few pairs, or an unreliable site estimate)",
    ExitCode.INTERNAL: "unexpected internal error (run with -v)",
    ExitCode.GALLERY: "gallery or service store error",
    ExitCode.NOT_FOUND: "not found (a person, API key, access rule or group)",
    ExitCode.NAME_TAKEN: "name already taken",
    ExitCode.REJECTED: "enrolment rejected (every photo failed the quality gate)",
    ExitCode.SOURCE: "video source cannot be opened or was lost",
    ExitCode.CONFLICT: "enrolment refused: the face is another enrolled person, does not match the person's "
    "photos, or the photo is enrolled under another name (--force overrides)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_lines() -> list[str]:
    """``EXIT_CODES`` as aligned ``"  N  meaning"`` lines (for ``--help``)."""
    return [f"  {int(code):<3} {text}" for code, text in EXIT_CODES.items()]


class FacegateError(Exception):
    """Base class: anything facegate raises on purpose."""

    exit_code: ExitCode = ExitCode.NEGATIVE
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class UsageError(FacegateError):
    """A wrong argument or option combination."""

    exit_code = ExitCode.USAGE
    code = "usage"


class UncalibratedError(UsageError):
    """No calibrated threshold exists for the requested false-accept rate and model."""

    code = "uncalibrated"


class InvalidImageError(FacegateError):
    """The input is not a decodable image (corrupt, truncated, empty, wrong type, not a file)."""

    exit_code = ExitCode.INVALID_IMAGE
    code = "invalid_image"


class ImageTooLargeError(InvalidImageError):
    """The image (file size or pixel count) is over the configured limit (decompression-bomb guard)."""

    code = "image_too_large"


class NoFaceError(FacegateError):
    """No face was found where one was required."""

    exit_code = ExitCode.NO_FACE
    code = "no_face"


class MultipleFacesError(FacegateError):
    """Several faces were found where exactly one was required."""

    exit_code = ExitCode.MULTIPLE_FACES
    code = "multiple_faces"


class ModelError(FacegateError):
    """A model file is missing, corrupt (sha256 mismatch) or incompatible."""

    exit_code = ExitCode.MODEL
    code = "model"


class ModelMismatchError(ModelError):
    """Embeddings of two different models would be compared (the gallery's and the one in use).

    Scores between embeddings of different models are meaningless, so mixing is refused
    rather than returning confident nonsense; ``facegate reembed`` converts a gallery.
    Here, not in the gallery, because the decision layer's model check raises it.
    """

    code = "model_mismatch"


class DeviceError(FacegateError):
    """A requested execution device (e.g. CUDA) is not available. Never a silent CPU fallback."""

    exit_code = ExitCode.DEVICE
    code = "device"


class NotFoundError(FacegateError):
    """A record asked for by name or id does not exist: an API key, an access rule or group (a person's is
    the gallery's ``PersonNotFoundError``, with the same exit code)."""

    exit_code = ExitCode.NOT_FOUND
    code = "not_found"


class DatasetError(FacegateError):
    """An evaluation data set is missing or malformed."""

    exit_code = ExitCode.DATASET
    code = "dataset"
