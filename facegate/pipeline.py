"""``Pipeline``: the one data path every front end shares.

image -> Detector.detect -> [Face] -> align.norm_crop(embedder template) -> chips
-> Embedder.embed (batched) -> Face.embedding -> decide (1:1 here; 1:N in the gallery) / track.
Models load lazily on first use and once per Pipeline; nothing loads at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cached_property
from typing import Any, Literal

import numpy as np

from facegate.align import norm_crops, points_for
from facegate.config import Config
from facegate.decide.scores import cosine
from facegate.decide.site import store_path, store_signature
from facegate.decide.tables import StackTables, in_force
from facegate.decide.verification import decide, decision_threshold
from facegate.errors import MultipleFacesError, NoFaceError, UsageError
from facegate.image import ImageInput, load_image
from facegate.types import Face, Verdict

log = logging.getLogger(__name__)

Pick = Literal["single", "largest", "center"]


def pick_face(faces: list[Face], image_shape: tuple[int, ...], pick: Pick, name: str = "image") -> Face:
    """Choose the face a one-face operation should use.

    ``single`` refuses zero or several faces (the safe default for verification),
    ``largest`` takes the biggest box, ``center`` the face nearest the image centre
    (the LFW convention: its photos are centred on the labelled person).
    """
    if not faces:
        raise NoFaceError(f"{name}: no face found")
    if len(faces) == 1:
        return faces[0]
    if pick == "single":
        raise MultipleFacesError(
            f"{name}: {len(faces)} faces found where one was needed; crop the photo or choose one face"
        )
    if pick == "largest":
        return max(faces, key=lambda f: f.width * f.height)
    if pick == "center":
        cy, cx = image_shape[0] / 2, image_shape[1] / 2
        return min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)
    raise UsageError(f"unknown pick rule {pick!r}; use single, largest or center")


class _InForce:
    """A pipeline's view of its tables in force (:meth:`Pipeline.tables`), read on every access so a
    newly adopted site table applies; an instance attribute of the same name (a test's or a
    synthetic pipeline's fixed table) takes precedence, as it did over the cached property this was."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        tables = obj.tables()
        if self.name == "table_label":
            return tables.label
        return list(getattr(tables, self.name))


class Pipeline:
    """Detect, align and embed faces with the models named in one ``Config``."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()

    # -- lazily built stages -------------------------------------------------------------
    @cached_property
    def detector(self):  # -> Detector
        from facegate.detect import get_detector

        return get_detector(self.config)

    @cached_property
    def embedder(self):  # -> Embedder
        from facegate.embed import get_embedder

        return get_embedder(self.config)

    def tables(self) -> StackTables:
        """The tables in force for this stack (:func:`facegate.decide.tables.in_force`): read once, and
        again when the site-table store changes, so a site table adopted (or reverted) while this
        pipeline lives, by another process too, decides from its next decision on."""
        sig = store_signature(store_path(self.config))
        cached = self.__dict__.get("_tables")
        if cached is None or cached[0] != sig:
            cached = (sig, in_force(self.config))
            self.__dict__["_tables"] = cached
        return cached[1]

    operating_points = _InForce()  # the per-comparison points in force (:mod:`facegate.decide.tables`)
    template_points = _InForce()  # the k-photo template points in force (measured by :mod:`facegate.evaluate.templates`)
    table_label = _InForce()  # which table decides, in words (:attr:`facegate.decide.tables.StackTables.label`)

    # -- single images -------------------------------------------------------------------
    def load(self, src: ImageInput) -> np.ndarray:
        return load_image(src, self.config)

    def detect(self, src: ImageInput) -> list[Face]:
        """Faces (box, score, landmarks) without embeddings."""
        return self.detector.detect(self.load(src))

    def chips(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Aligned chips for the embedder: (N, S, S, 3) uint8, from each face's points in the
        scheme of the embedder's template (derived from another scheme only where the detector
        gave none; such faces are marked ``extra["derived_landmarks"]``)."""
        tmpl = self.embedder.template
        pts = []
        for f in faces:
            p, derived = points_for(f, tmpl.scheme)
            if derived:
                f.extra["derived_landmarks"] = True
            pts.append(p)
        return norm_crops(image, pts, tmpl)

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Fill in ``Face.embedding`` for faces already detected in ``image``."""
        if faces:
            emb = self.embedder.embed(self.chips(image, faces))
            for face, e in zip(faces, emb):
                face.embedding = e
        return faces

    def faces(self, src: ImageInput) -> list[Face]:
        """Every face in the image, detected, aligned and embedded."""
        image = self.load(src)
        return self.embed_faces(image, self.detector.detect(image))

    def face(self, src: ImageInput, pick: Pick = "single", name: str | None = None) -> Face:
        """The one face of an image (see :func:`pick_face`), embedded."""
        image = self.load(src)
        label = name or (str(src) if isinstance(src, (str,)) else "image")
        chosen = pick_face(self.detector.detect(image), image.shape, pick, label)
        return self.embed_faces(image, [chosen])[0]

    # -- batches ---------------------------------------------------------------------------
    def faces_batch(self, images: Iterable[np.ndarray]) -> list[list[Face]]:
        """Faces of several decoded images; detection batched by the detector, every chip of
        every image embedded in shared batches of ``config.batch_size``."""
        images = list(images)
        detections = self.detector.detect_batch(images)
        chips = [self.chips(img, faces) for img, faces in zip(images, detections)]
        flat = [c for c in chips if len(c)]
        if flat:
            emb = self.embedder.embed(np.concatenate(flat))
            i = 0
            for faces in detections:
                for face in faces:
                    face.embedding = emb[i]
                    i += 1
        return detections

    # -- decisions -------------------------------------------------------------------------
    def threshold(self) -> tuple[float, float | None]:
        """(cosine threshold, FAR it stands for) from the config and the calibrated table."""
        return decision_threshold(self.config, self.operating_points)

    def compare(self, a: Face, b: Face) -> Verdict:
        if a.embedding is None or b.embedding is None:
            raise UsageError("both faces need embeddings; use Pipeline.face() or faces() first")
        thr, far = self.threshold()
        return decide(cosine(a.embedding, b.embedding), thr, far, table=self.table_label)

    def verify(self, a: ImageInput, b: ImageInput, pick: Pick = "single") -> Verdict:
        """Are the faces in ``a`` and ``b`` the same person? At the configured FAR or threshold."""
        self.threshold()  # fail on a bad FAR before spending time on models
        fa = self.face(a, pick, name=str(a) if isinstance(a, str) else "first image")
        fb = self.face(b, pick, name=str(b) if isinstance(b, str) else "second image")
        return self.compare(fa, fb)
