"""Gallery: enrol people from photos and identify faces among them (1:N), at a stated FAR.

::

    from facegate.gallery import open_gallery
    with open_gallery(Config()) as g:                       # SQLite at <home>/gallery.sqlite
        result = g.enroll("Ada", ["ada1.jpg", "ada2.jpg"])   # quality-gated; rejections say why
        for who in g.identify("group.jpg"):                  # every face in the photo
            print(who.name, who.candidates[:3])              # "Ada" or "unknown", top-k people

Layers: this facade does images (detect, quality gate, align, embed through the shared
:class:`~facegate.pipeline.Pipeline`) and decisions (threshold at the configured FAR);
a backend (:mod:`.backend`: SQLite + FAISS, or :mod:`.milvus`) stores people and
embeddings and finds nearest people. Embeddings are tied to the model that made them:
a gallery holds one model, and using another is refused until ``reembed`` converts it.

Identity-level matching: a person is scored by the cosine between the probe and their
*template*, the re-normalised mean of all their enrolled face embeddings (rule
``mean``, the default); rule ``max`` (best single face) is available per gallery.
Measured on LFW (``benchmarks/bench_gallery.py``: the 610 people with >= 4 photos, three
enrolled, the rest as probes, the 4,069 one-photo people as impostors), rank-1 / DIR at
FPIR 1%: one photo 0.967 / 0.649, best face 0.983 / 0.812, mean template 0.988 / 0.874.
The template also keeps the index at one entry per person, whatever the photo count.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from facegate.config import Config
from facegate.errors import FacegateError, UsageError
from facegate.gallery.backend import DEFAULT_RULE, GalleryBackend, SqliteBackend
from facegate.gallery.errors import (
    EnrolmentRejectedError,
    GalleryError,
    ModelMismatchError,
    NameTakenError,
    PersonNotFoundError,
)
from facegate.gallery.quality import QualityPolicy, QualityReport, assess
from facegate.gallery.types import (
    EnrolResult,
    FaceRecord,
    Identification,
    Match,
    Person,
    Rejection,
    StoredFace,
    stack_embeddings,
)
from facegate.image import ImageInput
from facegate.protocols import FacePipeline
from facegate.types import Face

log = logging.getLogger(__name__)

BACKENDS = ("sqlite", "milvus")
CROP_EYE_PX = 60.0  # eye distance in stored crops: above any embedder's chip (dlib's 150 px chip has 52)


def model_id(pipeline: FacePipeline) -> str:
    """The identity of the embedding model: registry name plus the start of its weights' sha256,
    so a changed file under the same name counts as another model."""
    explicit = getattr(pipeline.embedder, "model_id", None)
    if explicit:
        return str(explicit)
    name = pipeline.embedder.name or pipeline.config.embedder
    try:
        from facegate.models.registry import get_spec

        spec = get_spec(pipeline.config.embedder, pipeline.config)
        return f"{spec.name}@{spec.sha256[:12]}"
    except FacegateError:
        return str(name)


def face_crop(image: np.ndarray, landmarks: np.ndarray) -> tuple[bytes, list[list[float]]]:
    """A JPEG of the face with a wide margin (4 eye distances square), at most ``CROP_EYE_PX``
    between the eyes, and the landmarks in its pixels: enough to re-align the face for any
    embedder template later without keeping the original photo."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eyes = (lm[0:2].mean(axis=0) + lm[2:4].mean(axis=0)) / 2
    d = max(float(np.linalg.norm(lm[0:2].mean(axis=0) - lm[2:4].mean(axis=0))), 1.0)
    s = min(1.0, CROP_EYE_PX / d)
    side = max(8, int(round(4 * d * s)))
    origin = eyes - np.array([2 * d, 1.6 * d])  # eyes sit ~40% from the top
    if s < 1.0:  # shrink with area averaging first (a bilinear warp alone would alias)
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        scale = np.array([small.shape[1] / w, small.shape[0] / h])
    else:
        small, scale = image, np.ones(2)
    shift = (origin + 0.5) * scale - 0.5  # cv2.resize maps x to (x + 0.5) * scale - 0.5
    m = np.array([[1, 0, -shift[0]], [0, 1, -shift[1]]], dtype=np.float64)
    crop = cv2.warpAffine(small, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    crop_lm = (lm + 0.5) * scale - 0.5 - shift
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:  # pragma: no cover - encoding a uint8 image does not fail
        raise GalleryError("could not encode the face crop")
    return buf.tobytes(), crop_lm.round(3).tolist()


def _label(src: ImageInput, i: int) -> str:
    return str(src) if isinstance(src, (str, os.PathLike)) else f"photo {i + 1}"


class Gallery:
    """Enrol, identify and manage people over one backend. Use as a context manager or call ``close``."""

    def __init__(
        self,
        backend: GalleryBackend,
        config: Config | None = None,
        pipeline: FacePipeline | None = None,
        policy: QualityPolicy | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or Config()
        self._pipeline = pipeline
        self.policy = policy or QualityPolicy()

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            from facegate.pipeline import Pipeline

            self._pipeline = Pipeline(self.config)
        return self._pipeline

    @property
    def rule(self) -> str:
        return self.backend.rule

    def model(self) -> str | None:
        return self.backend.model()[0]

    def _check_model(self, model: str) -> None:
        stored = self.model()
        if stored is not None and stored != model:
            raise ModelMismatchError(
                f"this gallery holds embeddings from model {stored!r}, but the current model is {model!r}; "
                f"scores across models are meaningless. Use the gallery's model, or convert the gallery "
                f"with 'facegate reembed --embedder {self.config.embedder}'"
            )

    def threshold(self) -> tuple[float, float | None]:
        """(cosine threshold, FAR it stands for): ``config.threshold`` if set, else the calibrated
        operating point of the embedder at ``config.far``.

        Note for 1:N: a FAR is per comparison; searching N people, an impostor clears the
        threshold against someone with probability about N x FAR (the FPIR).
        """
        if self.config.threshold is not None:
            return float(self.config.threshold), None
        return self.pipeline.threshold()

    # -- enrolment --------------------------------------------------------------------------
    def check_photo(
        self, src: ImageInput, *, pick: str = "single", policy: QualityPolicy | None = None, label: str | None = None
    ) -> tuple[np.ndarray | None, Face | None, np.ndarray | None, QualityReport | None, Rejection | None]:
        """Load, detect and quality-check one enrolment photo: (image, face, chip, report, rejection)."""
        from facegate.errors import InvalidImageError
        from facegate.pipeline import pick_face

        label = label or _label(src, 0)
        pipe = self.pipeline
        try:
            image = pipe.load(src)
        except InvalidImageError as exc:
            return None, None, None, None, Rejection(label, str(exc), exc.code)
        faces = pipe.detector.detect(image)
        if not faces:
            return image, None, None, None, Rejection(label, f"{label}: no face found", "no_face")
        if len(faces) > 1 and pick == "single":
            return (
                image,
                None,
                None,
                None,
                Rejection(
                    label,
                    f"{label}: {len(faces)} faces found; an enrolment photo must show only the person "
                    "(crop it, or pick the largest face)",
                    "multiple_faces",
                    {"faces": len(faces)},
                ),
            )
        face = pick_face(faces, image.shape, pick, label)  # type: ignore[arg-type]
        chip = pipe.chips(image, [face])[0]
        report = assess(face.landmarks, chip, face.score, policy or self.policy)
        if not report.ok:
            return (
                image,
                face,
                chip,
                report,
                Rejection(label, f"{label}: {report.reason}", report.code, report.metrics()),
            )
        return image, face, chip, report, None

    def enroll(
        self,
        name: str,
        photos: Sequence[Any],
        *,
        pick: str = "single",
        policy: QualityPolicy | None = None,
        create: bool = True,
        keep_crops: bool = True,
    ) -> EnrolResult:
        """Enrol ``name`` from several photos (added to the person if they exist).

        Every photo goes through the quality gate; refused ones come back in
        ``result.rejected`` with the reason. The accepted faces are stored in ONE
        transaction, so the person appears with all of them or not at all. If every
        photo is refused, nothing is stored and :class:`EnrolmentRejectedError` is raised.
        ``keep_crops`` stores a small face crop per face so ``reembed`` can convert the
        gallery to another model without the original photos.
        """
        if not photos:
            raise UsageError("enrolment needs at least one photo")
        model = model_id(self.pipeline)
        self._check_model(model)  # fail before the slow part
        rejected: list[Rejection] = []
        accepted: list[tuple[str, np.ndarray, Face, np.ndarray, QualityReport]] = []
        for i, src in enumerate(photos):
            label = _label(src, i)
            image, face, chip, report, rej = self.check_photo(src, pick=pick, policy=policy, label=label)
            if rej is not None:
                log.info("enrol %s: rejected %s", name, rej.reason)
                rejected.append(rej)
                continue
            assert image is not None and face is not None and chip is not None and report is not None
            accepted.append((label, image, face, chip, report))
        if not accepted:
            reasons = "; ".join(r.reason for r in rejected)
            raise EnrolmentRejectedError(f"nothing enrolled for {name!r}: {reasons}", rejected)
        emb = self.pipeline.embedder.embed(np.stack([a[3] for a in accepted]))
        records = []
        for (label, image, face, _chip, report), vec in zip(accepted, emb):
            face.embedding = vec
            crop, crop_lm = face_crop(image, face.landmarks) if keep_crops else (None, None)
            records.append(
                FaceRecord(
                    embedding=vec,
                    quality=report.metrics() | {"detector": face.detector},
                    source=label,
                    box=[round(float(v), 2) for v in face.box],
                    crop_jpeg=crop,
                    crop_landmarks=crop_lm,
                )
            )
        person, ids, created = self.backend.add_faces(name, records, model, int(emb.shape[1]), create=create)
        log.info("enrolled %d face(s) for %s (id %d)", len(ids), person.name, person.id)
        return EnrolResult(person=person, face_ids=ids, rejected=rejected, created=created)

    def enroll_embeddings(
        self,
        name: str,
        embeddings: np.ndarray,
        *,
        model: str,
        qualities: Sequence[dict] | None = None,
        sources: Sequence[str | None] | None = None,
        create: bool = True,
    ) -> EnrolResult:
        """Enrol precomputed embeddings (imports, tests, benchmarks). ``model`` must name the model
        that made them; a gallery of another model refuses them."""
        emb = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if not np.all(np.isfinite(emb)):
            raise GalleryError("embeddings contain NaN or infinity")
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.maximum(norms, 1e-12)
        records = [
            FaceRecord(
                embedding=v,
                quality=(qualities[i] if qualities else {}),
                source=(sources[i] if sources else None),
            )
            for i, v in enumerate(emb)
        ]
        person, ids, created = self.backend.add_faces(name, records, model, int(emb.shape[1]), create=create)
        return EnrolResult(person=person, face_ids=ids, rejected=[], created=created)

    def import_embeddings(
        self, items: Iterable[tuple[str, np.ndarray]], *, model: str, batch: int = 10_000, progress: bool = False
    ) -> int:
        """Bulk enrolment of (name, embeddings) pairs, ``batch`` people per transaction."""
        n = 0
        buf: list[tuple[str, list[FaceRecord]]] = []
        dim = 0  # set from the first embeddings; flush() runs only after some
        bar = tqdm(desc="importing", unit="person", disable=not progress, dynamic_ncols=True)

        def flush() -> None:
            nonlocal n
            if buf:
                self.backend.add_many(buf, model, dim)
                n += len(buf)
                bar.update(len(buf))
                buf.clear()

        try:
            for name, emb in items:
                emb = np.atleast_2d(np.asarray(emb, dtype=np.float32))
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
                dim = int(emb.shape[1])
                buf.append((name, [FaceRecord(embedding=v) for v in emb]))
                if len(buf) >= batch:
                    flush()
            flush()
        finally:
            bar.close()
        return n

    # -- identification ---------------------------------------------------------------------
    def search(
        self, embeddings: np.ndarray, k: int | None = None, *, model: str | None = None
    ) -> list[list[tuple[int, str, float]]]:
        """Raw top-``k`` people per embedding: (person id, name, score). ``model`` (if given) is checked."""
        if model is not None:
            self._check_model(model)
        return self.backend.search(np.atleast_2d(np.asarray(embeddings, dtype=np.float32)), k or self.config.top_k)

    def identify_embeddings(
        self,
        embeddings: np.ndarray,
        *,
        model: str | None = None,
        k: int | None = None,
        threshold: float | None = None,
        far: float | None = None,
        faces: Sequence[Face] | None = None,
    ) -> list[Identification]:
        """Top-``k`` candidates and the decision for each embedding.

        ``threshold`` defaults to :meth:`threshold` (config threshold or calibrated FAR).
        Under the ``mean`` rule and a calibrated FAR, a person enrolled with several faces is
        held to the *template* threshold for that many photos (:meth:`_bars`), so that the FAR
        stays what it says; an explicit threshold (``far`` None) applies to everyone as given.
        """
        if threshold is None:
            threshold, far = self.threshold()
        emb = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if self.model() is None:  # empty gallery: everyone is unknown
            hits: list[list[tuple[int, str, float]]] = [[] for _ in range(len(emb))]
        else:
            hits = self.search(emb, k, model=model)
        bar = self._bars(threshold, far)
        out = []
        for i, row in enumerate(hits):
            cands = []
            for pid, name, s in row:
                t = bar(pid)
                cands.append(Match(pid, name, float(s), bool(s > t), t))
            out.append(Identification(face=faces[i] if faces else None, candidates=cands, threshold=threshold, far=far))
        return out

    def _bars(self, threshold: float, far: float | None):  # -> Callable[[int], float]
        """The threshold for a person id (see :meth:`identify_embeddings`).

        A mean template of n photos scores higher against *everybody* than one photo does:
        on LFW the single-photo threshold at FAR 1e-3 lets through 2.6e-3 of impostor photos
        against 2-photo templates and 5.3e-3 against 8-photo ones (``facegate.evaluate.templates``).
        Face counts are looked up only when the bar depends on them, once per person per call.
        """
        if far is None or self.rule != "mean":
            return lambda pid: float(threshold)
        from facegate.evaluate.templates import template_threshold

        tt = template_threshold(self.config.embedder, float(threshold), far)
        bars: dict[int, float] = {}

        def bar(pid: int) -> float:
            if pid not in bars:
                bars[pid] = tt(max(1, self._face_count(pid)))
            return bars[pid]

        return bar

    def _face_count(self, pid: int) -> int:
        try:
            return int(self.backend.person(pid).faces)
        except PersonNotFoundError:  # deleted between search and lookup: treat as one photo
            log.debug("person %s vanished during identification", pid)
            return 1

    def identify(self, photo: ImageInput, *, k: int | None = None) -> list[Identification]:
        """For every face in ``photo``: the top-``k`` people and the decision at the configured
        FAR (or threshold); ``identification.name`` is "unknown" below it. No faces: []."""
        threshold, far = self.threshold()
        model = model_id(self.pipeline)
        self._check_model(model)
        faces = self.pipeline.faces(photo)
        if not faces:
            return []
        emb = stack_embeddings(faces)
        return self.identify_embeddings(emb, model=model, k=k, threshold=threshold, far=far, faces=faces)

    # -- people -----------------------------------------------------------------------------
    def people(self, limit: int | None = None, offset: int = 0) -> list[Person]:
        return self.backend.people(limit, offset)

    def person(self, ref: str | int) -> Person:
        return self.backend.person(ref)

    def faces(self, ref: str | int) -> list[StoredFace]:
        return self.backend.faces(ref)

    def rename(self, ref: str | int, new_name: str) -> Person:
        return self.backend.rename(ref, new_name)

    def delete(self, ref: str | int) -> Person:
        return self.backend.delete(ref)

    # -- model changes ----------------------------------------------------------------------
    def reembed(self, pipeline: Any, *, drop_missing: bool = False, progress: bool = True) -> dict[str, Any]:
        """Convert the gallery to ``pipeline``'s embedder, from the stored face crops.

        New embeddings are staged in batches (an interrupted run resumes) and swapped in
        with one transaction: the gallery is never a mix of models. Faces without a crop
        (enrolled with ``keep_crops=False`` or by embedding) cannot be converted: the swap
        is refused unless ``drop_missing``.
        """
        from facegate.align import norm_crops

        new_model = model_id(pipeline)
        old_model = self.model()
        if old_model == new_model:
            return {"model": new_model, "reembedded": 0, "dropped": 0, "unchanged": True}
        if not drop_missing:
            missing = self.backend.count_without_crops()
            if missing:
                raise GalleryError(
                    f"{missing} stored face(s) have no crop to re-embed from; nothing was changed. "
                    "Re-run with --drop-missing to delete them, or re-enrol those people"
                )
        emb_ = pipeline.embedder
        dim = int(emb_.dim)
        done = 0
        bar = tqdm(desc="re-embedding", unit="face", disable=not progress, dynamic_ncols=True)
        try:
            for chunk in self.backend.crops_to_reembed(new_model):
                ids, chips = [], []
                for fid, jpeg, lm in chunk:
                    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                    if img is None:
                        log.warning("face %d: stored crop is unreadable; skipped", fid)
                        continue
                    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
                    chips.append(norm_crops(img, [np.asarray(lm, np.float32)], emb_.template)[0])
                    ids.append(fid)
                if ids:
                    vecs = emb_.embed(np.stack(chips))
                    dim = int(vecs.shape[1])
                    self.backend.stage(new_model, dim, ids, vecs)
                done += len(ids)
                bar.update(len(chunk))
        finally:
            bar.close()
        out = self.backend.swap_model(new_model, dim, drop_missing)
        self._pipeline = pipeline
        log.info("gallery re-embedded from %s to %s: %s", old_model, new_model, out)
        return {"model": new_model, "previous_model": old_model, **out}

    # -- maintenance ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self.backend.stats()

    def check(self) -> dict[str, Any]:
        return self.backend.check()

    def rebuild_index(self) -> None:
        self.backend.rebuild_index()

    def save_index(self, force: bool = False) -> bool:
        return self.backend.save_index(force)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_backend(config: Config, *, rule: str | None = None, **options: Any) -> GalleryBackend:
    """The storage backend named by ``config.backend``."""
    if config.backend == "sqlite":
        opts = {"index": config.index, "ann_threshold": config.ann_threshold, **options}
        return SqliteBackend(config.gallery_path, rule=rule, **opts)
    if config.backend == "milvus":
        from facegate.gallery.milvus import MilvusBackend

        uri = config.milvus_uri or str(config.home / "milvus.db")
        return MilvusBackend(uri, rule=rule, **options)
    raise UsageError(f"unknown gallery backend {config.backend!r}; use one of {', '.join(BACKENDS)}")


def open_gallery(
    config: Config | None = None,
    *,
    pipeline: FacePipeline | None = None,
    rule: str | None = None,
    policy: QualityPolicy | None = None,
    **options: Any,
) -> Gallery:
    """Open (creating if needed) the gallery described by ``config``.

    ``config.backend``: ``"sqlite"`` (default; file ``config.gallery_path``) or ``"milvus"``
    (``config.milvus_uri``: ``http://host:19530`` for a server/cluster, or a local path
    for milvus-lite). ``rule``: identity-level matching, ``"mean"`` (default) or ``"max"``;
    stored with the gallery. ``options`` go to the backend (e.g. ``ef_search``).
    """
    config = config or Config()
    return Gallery(open_backend(config, rule=rule, **options), config, pipeline=pipeline, policy=policy)


__all__ = [
    "DEFAULT_RULE",
    "EnrolResult",
    "EnrolmentRejectedError",
    "FaceRecord",
    "Gallery",
    "GalleryBackend",
    "GalleryError",
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
    "face_crop",
    "model_id",
    "open_backend",
    "open_gallery",
]
