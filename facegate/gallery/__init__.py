"""Gallery: enrol people from photos and identify faces among them (1:N), at a stated FPIR.

::

    from facegate.gallery import open_gallery
    with open_gallery(Config()) as g:                       # SQLite at <home>/gallery.sqlite
        result = g.enroll("Ada", ["ada1.jpg", "ada2.jpg"])   # quality-gated; rejections say why
        for who in g.identify("group.jpg"):                  # every face in the photo
            print(who.name, who.candidates[:3])              # "Ada" or "unknown", top-k people

Modules: :mod:`.gallery` (the :class:`Gallery` facade: images, quality, decisions),
:mod:`.backend` (the storage interface and the SQLite + FAISS backend: :mod:`.store`,
:mod:`.index`), :mod:`.milvus`, :mod:`.quality` (the enrolment gate), :mod:`.types`,
:mod:`.errors`, :mod:`.folders` (bulk enrolment from folders), :mod:`.cluster`,
:mod:`.identify` (1:N metrics). This file only re-exports.
"""

from facegate.gallery.backend import DEFAULT_RULE, GalleryBackend, SqliteBackend
from facegate.gallery.errors import (
    EnrolmentConflictError,
    EnrolmentRejectedError,
    GalleryError,
    ModelMismatchError,
    NameTakenError,
    PersonNotFoundError,
    UnsupportedError,
)
from facegate.gallery.gallery import (
    BACKENDS,
    Gallery,
    crop_points,
    face_crop,
    model_id,
    open_backend,
    open_gallery,
    photo_sha256,
)
from facegate.gallery.quality import QualityPolicy, QualityReport
from facegate.gallery.types import (
    EnrolResult,
    FaceRecord,
    GallerySnapshot,
    GalleryState,
    Identification,
    Match,
    Person,
    Rejection,
    StoredFace,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_RULE",
    "EnrolResult",
    "EnrolmentConflictError",
    "EnrolmentRejectedError",
    "FaceRecord",
    "Gallery",
    "GalleryBackend",
    "GalleryError",
    "GallerySnapshot",
    "GalleryState",
    "Identification",
    "Match",
    "ModelMismatchError",
    "NameTakenError",
    "Person",
    "PersonNotFoundError",
    "QualityPolicy",
    "QualityReport",
    "Rejection",
    "SqliteBackend",
    "StoredFace",
    "UnsupportedError",
    "crop_points",
    "face_crop",
    "model_id",
    "open_backend",
    "open_gallery",
    "photo_sha256",
]
