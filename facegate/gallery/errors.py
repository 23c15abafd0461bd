"""Gallery errors. Each carries an exit code and a machine-readable ``code`` like the core errors.

Their exit codes come from the one table in :mod:`facegate.errors`. ``ModelMismatchError`` lives
there too (the decision layer raises it) and is re-exported here with the gallery's own.
"""

from __future__ import annotations

from facegate.errors import ExitCode, FacegateError, ModelMismatchError


class GalleryError(FacegateError):
    """The gallery cannot do what was asked (corrupt store, unsupported operation, backend down)."""

    exit_code = ExitCode.GALLERY
    code = "gallery"


class PersonNotFoundError(GalleryError):
    """No enrolled person has that name or id."""

    exit_code = ExitCode.NOT_FOUND
    code = "not_found"


class NameTakenError(GalleryError):
    """Renaming onto a name another person already has (names are unique handles)."""

    exit_code = ExitCode.NAME_TAKEN
    code = "name_taken"


class EnrolmentRejectedError(GalleryError):
    """Every photo offered for enrolment was rejected by the quality gate; nothing was stored."""

    exit_code = ExitCode.REJECTED
    code = "rejected"

    def __init__(self, message: str, rejected: list | None = None) -> None:
        super().__init__(message)
        self.rejected = rejected or []


__all__ = [
    "EnrolmentRejectedError",
    "GalleryError",
    "ModelMismatchError",
    "NameTakenError",
    "PersonNotFoundError",
]


class UnsupportedError(GalleryError):
    """The gallery backend cannot do this operation (e.g. deleting single faces in Milvus)."""

    code = "unsupported"
