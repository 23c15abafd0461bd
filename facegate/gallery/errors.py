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


# A photo refused for one of these reasons alone is the same outcome as that error anywhere else (a verify
# of a photo without a face exits 4): an enrolment whose every photo was refused for the same one of them
# takes that error's code and exit code, so "no face" is exit 4 / HTTP 422 "no_face" on every command.
_SAME_AS: dict[str, ExitCode] = {
    "no_face": ExitCode.NO_FACE,
    "multiple_faces": ExitCode.MULTIPLE_FACES,
    "invalid_image": ExitCode.INVALID_IMAGE,
    "image_too_large": ExitCode.INVALID_IMAGE,
}

# Refusals of enrolment integrity (Gallery.enroll): the photo is fine, but storing it would poison the gallery.
INTEGRITY_CODES = frozenset({"duplicate_photo", "matches_other_person", "not_same_person"})


class EnrolmentRejectedError(GalleryError):
    """Every photo offered for enrolment was refused; nothing was stored.

    ``code`` / ``exit_code``: ``rejected`` (13) for quality refusals; when every photo was refused for the
    same reason that is an error of its own elsewhere (no face, several faces, not an image), that
    error's code and exit code."""

    exit_code = ExitCode.REJECTED
    code = "rejected"

    def __init__(self, message: str, rejected: list | None = None) -> None:
        super().__init__(message)
        self.rejected = rejected or []
        codes = {getattr(r, "code", None) for r in self.rejected}
        if len(codes) == 1 and type(self) is EnrolmentRejectedError:
            (only,) = codes
            if only in _SAME_AS:
                self.code = str(only)
                self.exit_code = _SAME_AS[str(only)]


class EnrolmentConflictError(EnrolmentRejectedError):
    """Enrolment refused for the gallery's integrity: a face that identifies as another enrolled person,
    a photo that does not verify against the person's own photos, or a photo already enrolled under
    another name. ``rejected`` lists every refused photo, with who it matched; ``force`` overrides."""

    exit_code = ExitCode.CONFLICT
    code = "enrolment_conflict"


__all__ = [
    "INTEGRITY_CODES",
    "EnrolmentConflictError",
    "EnrolmentRejectedError",
    "GalleryError",
    "ModelMismatchError",
    "NameTakenError",
    "PersonNotFoundError",
]


class UnsupportedError(GalleryError):
    """The gallery backend cannot do this operation (e.g. deleting single faces in Milvus)."""

    code = "unsupported"
