"""Gallery errors. Each carries an exit code and a machine-readable ``code`` like the core errors.

Codes 10-13 continue the table in :mod:`facegate.cli` (0-9 and 130 are taken there).
"""

from __future__ import annotations

from facegate.errors import FacegateError, ModelError


class GalleryError(FacegateError):
    """The gallery cannot do what was asked (corrupt store, unsupported operation, backend down)."""

    exit_code = 10
    code = "gallery"


class PersonNotFoundError(GalleryError):
    """No enrolled person has that name or id."""

    exit_code = 11
    code = "not_found"


class NameTakenError(GalleryError):
    """Renaming onto a name another person already has (names are unique handles)."""

    exit_code = 12
    code = "name_taken"


class EnrolmentRejectedError(GalleryError):
    """Every photo offered for enrolment was rejected by the quality gate; nothing was stored."""

    exit_code = 13
    code = "rejected"

    def __init__(self, message: str, rejected: list | None = None) -> None:
        super().__init__(message)
        self.rejected = rejected or []


class ModelMismatchError(ModelError):
    """The gallery's embeddings come from another model than the one in use.

    Scores between embeddings of different models are meaningless, so mixing is refused
    rather than returning confident nonsense; ``facegate reembed`` converts a gallery.
    """

    code = "model_mismatch"


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
