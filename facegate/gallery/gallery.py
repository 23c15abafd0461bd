"""The gallery facade: enrol people from photos and identify faces among them (1:N), at a stated FPIR.

This facade does images (detect, quality gate, align, embed through the shared
:class:`~facegate.pipeline.Pipeline`) and applies the decision policy of :mod:`facegate.decide`
(the FPIR at the gallery's size and templating, :meth:`Gallery.decision_policy`);
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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from facegate.config import Config
from facegate.decide import (
    OpenSetPolicy,
    agrees_with,
    check_model,
    choose,
    conflicting_match,
    consistency_threshold,
    enrolment_policy,
    open_set_policy,
    stack_points,
)
from facegate.errors import FacegateError, UsageError
from facegate.gallery.backend import GalleryBackend, SqliteBackend
from facegate.gallery.errors import (
    INTEGRITY_CODES,
    EnrolmentConflictError,
    EnrolmentRejectedError,
    GalleryError,
    PersonNotFoundError,
    UnsupportedError,
)
from facegate.gallery.quality import QualityPolicy, QualityReport, assess
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
    stack_embeddings,
)
from facegate.image import ImageInput
from facegate.pipeline import DEFAULT_PICK
from facegate.protocols import FacePipeline
from facegate.types import Face, FaceChoice

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


def face_crop(image: np.ndarray, face: Face) -> tuple[bytes, dict[str, list[list[float]]]]:
    """A JPEG of the face with a wide margin (4 eye distances square), at most ``CROP_EYE_PX``
    between the eyes, and every landmark scheme the detector gave, in the crop's pixels:
    enough to re-align the face for any embedder template later without keeping the photo."""
    from facegate.align import eye_centres

    left, right = eye_centres(face.landmarks, face.scheme)
    eyes = (left + right) / 2
    d = max(float(np.linalg.norm(left - right)), 1.0)
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
    schemes = {face.scheme: face.landmarks, **face.more_landmarks}
    crop_lm = {k: ((np.asarray(v, np.float64).reshape(5, 2) + 0.5) * scale - 0.5 - shift).round(3).tolist()
               for k, v in schemes.items()}
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:  # pragma: no cover - encoding a uint8 image does not fail
        raise GalleryError("could not encode the face crop")
    return buf.tobytes(), crop_lm


def crop_points(pipeline: Any, crop: np.ndarray, stored: Any) -> np.ndarray:
    """Five points in the pipeline embedder's scheme for a stored crop: the stored points of
    that scheme if the enrolling detector gave them; else the pipeline's detector run on the
    crop (the face nearest the stored points' centre: native points, as at enrolment); else
    points derived from the stored scheme through the mean face. ``stored`` is the crop's
    landmark record: ``{scheme: points}``, or a bare list (galleries before schemes: dlib5)."""
    from facegate.align import DLIB5, convert

    want = pipeline.embedder.template.scheme
    schemes = stored if isinstance(stored, dict) else {DLIB5: stored}
    if want in schemes:
        return np.asarray(schemes[want], np.float32)
    src, pts = next(iter(schemes.items()))
    pts = np.asarray(pts, np.float32)
    centre = pts.mean(axis=0)
    try:
        found = [f for f in pipeline.detector.detect(crop) if f.points(want) is not None]
    except FacegateError:
        found = []
    if found:
        best = min(found, key=lambda f: float(np.linalg.norm(np.asarray(f.points(want)).mean(axis=0) - centre)))
        return np.asarray(best.points(want), np.float32)
    return convert(pts, src, want)


def photo_sha256(src: Any) -> str | None:
    """sha256 of a photo's file bytes (path or bytes); None for in-memory arrays. Stored with each
    enrolled face (``quality["photo_sha256"]``) so bulk enrolment skips photos already enrolled."""
    import hashlib

    if isinstance(src, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(src)).hexdigest()
    if isinstance(src, (str, os.PathLike)):
        h = hashlib.sha256()
        try:
            with open(src, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return None  # unreadable: the enrolment itself reports why
        return h.hexdigest()
    return None


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
        self._decision: tuple[Any, OpenSetPolicy] | None = None

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            from facegate.pipeline import Pipeline

            self._pipeline = Pipeline(self.config)
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Any) -> None:
        """Use these models (a server wraps the gallery's in locks; the same embedder, or ``_check_model`` refuses)."""
        self._pipeline = pipeline

    @property
    def rule(self) -> str:
        return self.backend.rule

    def model(self) -> str | None:
        return self.backend.model()[0]

    def _check_model(self, model: str) -> None:
        check_model(self.model(), model)

    def snapshot(self, policy: OpenSetPolicy | None = None) -> GallerySnapshot:
        """The gallery read once for one request: its state (model, size, templating, in one read
        of the backend) and the policy decided at for that state (``policy`` if given, else
        :meth:`policy_for`). Identification decides with one snapshot throughout."""
        state = self.backend.state()
        return GallerySnapshot(state, policy if policy is not None else self.policy_for(state))

    def policy_for(self, state: GalleryState) -> OpenSetPolicy:
        """How identification decides at ``state`` (:func:`facegate.decide.open_set_policy`): the FPIR
        of ``config.fpir`` (or the explicit ``config.threshold``) at that size and templating.
        Recomputed when the number of people or faces or the table in force changes, so the bar rises
        as people are enrolled and falls as they are deleted; each new warning is logged once."""
        points, tpoints = stack_points(self.pipeline)  # the tables in force now (a site table adopted meanwhile applies)
        label = getattr(self.pipeline, "table_label", None)
        key = ((state.people, state.faces), self.rule, self.config.fpir, self.config.threshold, label,
               tuple((p.far, p.threshold) for p in points), len(tpoints))
        cached = self._decision
        if cached is not None and cached[0] == key:
            return cached[1]
        policy = open_set_policy(self.config, points, tpoints, state.face_counts, rule=self.rule, table_label=label)
        for w in policy.warnings:
            if cached is None or w not in cached[1].warnings:
                log.warning("%s", w)
        self._decision = (key, policy)
        return policy

    def decision_policy(self) -> OpenSetPolicy:
        """How identification decides now: the policy of a fresh :meth:`snapshot`."""
        return self.snapshot().policy

    def threshold(self) -> tuple[float, float | None]:
        """(threshold of a one-photo identity, per-comparison FAR) of :meth:`decision_policy`;
        people with several photos are held to higher bars (``policy.bar(k)``)."""
        p = self.decision_policy()
        return p.threshold, (None if p.explicit else p.far)

    # -- enrolment --------------------------------------------------------------------------
    def _check(
        self, src: ImageInput, *, pick: str, policy: QualityPolicy | None, label: str
    ) -> tuple[np.ndarray | None, FaceChoice | None, np.ndarray | None, QualityReport | None, Rejection | None]:
        """Load, detect, choose the face (the one face-choice rule, :func:`facegate.pipeline.choose_face`)
        and quality-check one enrolment photo: (image, choice, chip, report, rejection)."""
        from facegate.errors import InvalidImageError, MultipleFacesError, NoFaceError
        from facegate.pipeline import choose_face

        pipe = self.pipeline
        try:
            image = pipe.load(src)
        except InvalidImageError as exc:
            return None, None, None, None, Rejection(label, str(exc), exc.code)
        faces = pipe.detector.detect(image)
        try:
            choice = choose_face(faces, image.shape, pick, label)
        except NoFaceError:
            return image, None, None, None, Rejection(label, f"{label}: no face found", "no_face")
        except MultipleFacesError:
            return image, None, None, None, Rejection(
                label,
                f"{label}: {len(faces)} faces found; an enrolment photo must show only the person "
                "(crop it, or pick the largest face)",
                "multiple_faces",
                {"faces": len(faces)},
            )
        face = choice.face
        chip = pipe.chips(image, [face])[0]
        report = assess(face.landmarks, chip, face.score, policy or self.policy, scheme=face.scheme)
        if not report.ok:
            return image, choice, chip, report, Rejection(label, f"{label}: {report.reason}", report.code, report.metrics())
        return image, choice, chip, report, None

    def check_photo(
        self, src: ImageInput, *, pick: str = DEFAULT_PICK, policy: QualityPolicy | None = None, label: str | None = None
    ) -> tuple[np.ndarray | None, Face | None, np.ndarray | None, QualityReport | None, Rejection | None]:
        """Load, detect and quality-check one enrolment photo: (image, face, chip, report, rejection)."""
        image, choice, chip, report, rej = self._check(src, pick=pick, policy=policy, label=label or _label(src, 0))
        return image, (choice.face if choice is not None else None), chip, report, rej

    def person_named(self, name: str) -> Person | None:
        """The person with exactly this name, or None (a digit string is a name here, never an id)."""
        try:
            p = self.backend.person(name)
        except PersonNotFoundError:
            return None
        return p if p.name == name else None

    def enroll(
        self,
        name: str,
        photos: Sequence[Any],
        *,
        pick: str = DEFAULT_PICK,
        policy: QualityPolicy | None = None,
        create: bool = True,
        keep_crops: bool = True,
        note: dict[str, Any] | None = None,
        force: bool = False,
        labels: Sequence[str] | None = None,
    ) -> EnrolResult:
        """Enrol ``name`` from several photos (added to the person if they exist).

        Each photo's face is chosen by the one face-choice rule (``pick``, default the largest; the
        result's ``faces`` says which) and goes through the quality gate; refused photos come back in
        ``result.rejected`` with the reason. Then the gallery's integrity (:mod:`facegate.decide.enrolment`):

        * the same photo (same bytes, sha256) already enrolled for this person is skipped and said
          (``result.skipped``); enrolled for somebody else, it is refused (``duplicate_photo``);
        * a face the gallery identifies as another enrolled person, at its 1:N operating point (the
          per-comparison FAR capped at 1e-4: :func:`facegate.decide.enrolment_policy`), is refused with
          who it matched (``matches_other_person``);
        * a face added to an existing person must verify against their photos at FAR 1e-3
          (``not_same_person`` otherwise).

        ``force`` stores such photos anyway, recorded as forced: the refusals overridden are kept with the
        face (``quality["forced"]``, shown by ``people show``) and listed in ``result.forced``. The accepted
        faces are stored in ONE transaction, so the person appears with all of them or not at all. If no
        photo is stored, :class:`EnrolmentConflictError` is raised when an integrity rule refused one,
        :class:`EnrolmentRejectedError` otherwise, unless every photo not refused was already enrolled
        for this person (a result with no new faces). ``keep_crops`` stores a small face crop per face so
        ``reembed`` can convert the gallery to another model without the original photos. ``note``: see
        :meth:`notes`. ``labels``: how to name each photo in the answer (default: its path, or "photo N").
        """
        if not photos:
            raise UsageError("enrolment needs at least one photo")
        model = model_id(self.pipeline)
        self._check_model(model)  # fail before the slow part
        target = self.person_named(name)
        if target is None and not create:
            raise PersonNotFoundError(f"no enrolled person named {name!r} (and creating was not allowed)")
        labels = list(labels) if labels is not None else [_label(src, i) for i, src in enumerate(photos)]
        shas = [photo_sha256(src) for src in photos]
        known = [s for s in shas if s is not None]
        owners = self.backend.photo_owners(known) if known else {}

        refused: list[tuple[int, Rejection]] = []
        skipped: list[dict[str, Any]] = []
        overridden: dict[int, list[Rejection]] = {}
        todo: list[int] = []
        first_of: dict[str, str] = {}
        for i, (label, sha) in enumerate(zip(labels, shas)):
            if sha is not None and sha in first_of:
                skipped.append({"source": label, "code": "same_photo",
                                "reason": f"{label}: the same photo as {first_of[sha]} in this enrolment"})
                continue
            if sha is not None:
                first_of[sha] = label
            holders = owners.get(sha, []) if sha is not None else []
            mine = [h for h in holders if target is not None and h[0] == target.id]
            if mine:
                skipped.append({"source": label, "code": "already_enrolled", "face_id": mine[0][2],
                                "reason": f"{label}: already enrolled for {target.name if target else name} "
                                f"(face {mine[0][2]}); skipped"})
                continue
            if holders:
                pid, who, fid = holders[0]
                rej = Rejection(label, f"{label}: this photo (the same bytes) is already enrolled for {who} "
                                f"(id {pid}, face {fid})", "duplicate_photo",
                                {"person_id": pid, "name": who, "face_id": fid})
                if not force:
                    refused.append((i, rej))
                    continue
                overridden.setdefault(i, []).append(rej)
            todo.append(i)

        accepted: list[tuple[int, np.ndarray, FaceChoice, np.ndarray, QualityReport]] = []
        for i in todo:
            image, choice, chip, report, bad = self._check(photos[i], pick=pick, policy=policy, label=labels[i])
            if bad is not None:
                log.info("enrol %s: rejected %s", name, bad.reason)
                refused.append((i, bad))
                continue
            assert image is not None and choice is not None and chip is not None and report is not None
            accepted.append((i, image, choice, chip, report))

        checks: dict[str, Any] = {}
        kept: list[tuple[int, np.ndarray, FaceChoice, QualityReport, np.ndarray, list[Rejection]]] = []
        if accepted:
            emb = self.pipeline.embedder.embed(np.stack([a[3] for a in accepted]))
            found = self._integrity(target, emb, [labels[a[0]] for a in accepted], model, checks)
            for (i, image, choice, _chip, report), vec, refusals in zip(accepted, emb, found):
                if refusals and not force:
                    refused.extend((i, r) for r in refusals)
                    continue
                kept.append((i, image, choice, report, vec, overridden.get(i, []) + refusals))
        refused.sort(key=lambda x: x[0])
        rejected = [r for _, r in refused]
        if not kept:
            if any(r.code in INTEGRITY_CODES for r in rejected):
                reasons = "; ".join(r.reason for r in rejected)
                raise EnrolmentConflictError(f"nothing enrolled for {name!r}: {reasons}", rejected)
            if skipped and target is not None and not rejected:
                return EnrolResult(person=target, face_ids=[], rejected=[], created=False, skipped=skipped,
                                   checks=checks)
            if not rejected:  # every photo was a copy of one refused... cannot happen; say so plainly
                raise EnrolmentRejectedError(f"nothing enrolled for {name!r}: no photo to store", rejected)
            reasons = "; ".join(r.reason for r in rejected)
            raise EnrolmentRejectedError(f"nothing enrolled for {name!r}: {reasons}", rejected)

        records = []
        for i, image, choice, report, vec, forced in kept:
            face = choice.face
            face.embedding = vec
            crop, crop_lm = face_crop(image, face) if keep_crops else (None, None)
            extra: dict[str, Any] = {"faces_found": choice.found}
            if shas[i]:
                extra["photo_sha256"] = shas[i]
            if forced:
                extra["forced"] = [{"code": r.code, "reason": r.reason, **r.metrics} for r in forced]
            records.append(
                FaceRecord(
                    embedding=vec,
                    quality=report.metrics() | {"detector": face.detector} | extra,
                    source=labels[i],
                    box=[round(float(v), 2) for v in face.box],
                    crop_jpeg=crop,
                    crop_landmarks=crop_lm,
                )
            )
        forced_all = [{"source": labels[i], "code": r.code, "reason": r.reason, **r.metrics}
                      for i, _, _, _, _, forced in kept for r in forced]
        if note is not None and forced_all:  # committed with the write: a crash cannot lose that it was forced
            note = {**note, "detail": {**note.get("detail", {}), "forced": forced_all}}
        person, ids, created = self.backend.add_faces(
            name, records, model, int(len(kept[0][4])), create=create, **self._with_note(note)
        )
        faces = [{"source": labels[i], "face_id": fid, **choice.to_dict()}
                 for (i, _, choice, _, _, _), fid in zip(kept, ids)]
        forced_out = []
        for (i, _, _, _, _, forced), fid in zip(kept, ids):
            forced_out += [{"source": labels[i], "face_id": fid, "code": r.code, "reason": r.reason, **r.metrics}
                           for r in forced]
        if forced_out:
            log.warning("enrolled %s with %d forced photo(s): %s", person.name, len(forced_out),
                        "; ".join(f["reason"] for f in forced_out))
        log.info("enrolled %d face(s) for %s (id %d)", len(ids), person.name, person.id)
        return EnrolResult(person=person, face_ids=ids, rejected=rejected, created=created, skipped=skipped,
                           forced=forced_out, faces=faces, checks=checks)

    def _integrity(
        self, target: Person | None, emb: np.ndarray, labels: Sequence[str], model: str, checks: dict[str, Any]
    ) -> list[list[Rejection]]:
        """The integrity refusals of each new face (see :meth:`enroll`), decided by :mod:`facegate.decide`;
        ``checks`` is filled with the rates they were decided at, or why a rule could not be applied
        (a stack without calibration and without an explicit threshold has no stated rate to decide at)."""
        out: list[list[Rejection]] = [[] for _ in labels]
        try:
            snap = self.snapshot()
        except UsageError as exc:
            checks["identification"] = f"not checked: {exc}"
            snap = None
        if snap is not None and snap.state.people == 0:
            checks["identification"] = "nobody enrolled yet"
        elif snap is not None:
            points, tpoints = stack_points(self.pipeline)
            policy = enrolment_policy(self.config, points, tpoints, snap.state.face_counts, rule=self.rule)
            checks["identification"] = policy.describe()
            for j, ident in enumerate(self.identify_embeddings(emb, model=model, snapshot=snap, policy=policy)):
                m = conflicting_match(ident.identity, target.id if target is not None else None)
                if m is not None:
                    out[j].append(Rejection(
                        labels[j],
                        f"{labels[j]}: this face is already enrolled as {m.name} (id {m.person_id}): score "
                        f"{m.score:.4f} > {m.threshold:.4f} ({policy.describe()})",
                        "matches_other_person",
                        {"person_id": int(m.person_id), "name": m.name, "score": round(float(m.score), 6),
                         "threshold": round(float(m.threshold), 6)},
                    ))
        if target is None:
            return out
        try:
            thr, far = consistency_threshold(self.config, self.pipeline.operating_points)
        except UsageError as exc:
            if self.config.threshold is None:
                checks["verification"] = f"not checked: {exc}"
                return out
            thr, far = float(self.config.threshold), None  # stated: no calibrated FAR for this stack
        try:
            stored = self.backend.embeddings(target.id)
        except (UnsupportedError, PersonNotFoundError) as exc:
            checks["verification"] = f"not checked: {exc}"
            return out
        if not len(stored):
            return out
        at = f"FAR {far:g}" if far is not None else "explicit threshold, no calibrated FAR for this stack"
        checks["verification"] = f"against {target.name}'s {len(stored)} photo(s): threshold {thr:.4f} ({at})"
        for j, vec in enumerate(emb):
            v = agrees_with(vec, stored, thr, far)
            if not v.same:
                out[j].append(Rejection(
                    labels[j],
                    f"{labels[j]}: this face does not match {target.name} (id {target.id}): best score against "
                    f"their {len(stored)} photo(s) {v.score:.4f} <= {thr:.4f} ({at})",
                    "not_same_person",
                    {"person_id": int(target.id), "name": target.name, "score": round(v.score, 6),
                     "threshold": round(thr, 6)},
                ))
        return out

    def enrolled_photos(self, name: str) -> set[str]:
        """sha256s of the photos already enrolled for ``name`` (empty if nobody has that name)."""
        try:
            faces = self.backend.faces(name)
        except PersonNotFoundError:
            return set()
        return {str(f.quality["photo_sha256"]) for f in faces if f.quality and f.quality.get("photo_sha256")}

    def enroll_new(
        self, name: str, photos: Sequence[tuple[str, Any]], *, pick: str = DEFAULT_PICK, keep_crops: bool = True,
        force: bool = False,
    ) -> tuple[EnrolResult | None, list[str]]:
        """Bulk enrolment's step: :meth:`enroll` of (label, photo) pairs, answering (result, or None when no
        new face was stored; labels of the photos skipped as already enrolled). Refusals as in :meth:`enroll`."""
        result = self.enroll(name, [src for _, src in photos], pick=pick, keep_crops=keep_crops, force=force,
                             labels=[label for label, _ in photos])
        skipped = [s["source"] for s in result.skipped]
        return (result if result.face_ids else None), skipped

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
        faces: Sequence[Face] | None = None,
        policy: OpenSetPolicy | None = None,
        snapshot: GallerySnapshot | None = None,
    ) -> list[Identification]:
        """Top-``k`` candidates and the decision for each embedding, at one :meth:`snapshot` (taken
        here unless given; ``policy`` overrides its policy). ``model`` (if given) is checked against
        the snapshot's.

        Each candidate is held to the bar for their templating (``policy.bar``: under the ``mean``
        rule a person enrolled with several faces needs a higher score for the same FAR; under
        ``max`` the best of k faces gets a k times smaller FAR), and carries that bar; only the
        best candidate can name the face. The candidates' face counts are read once, right after
        the search, so each bar matches the template that was searched.
        """
        snap = snapshot if snapshot is not None else self.snapshot(policy)
        policy = policy or snap.policy
        if model is not None:
            check_model(snap.model, model)
        emb = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if snap.model is None:  # empty gallery: everyone is unknown
            hits: list[list[tuple[int, str, float]]] = [[] for _ in range(len(emb))]
        else:
            hits = self.backend.search(emb, k or self.config.top_k)
        bar = self._bars(policy, [pid for row in hits for pid, _, _ in row])
        out = []
        for i, row in enumerate(hits):
            cands = [Match(pid, name, s, ok, t) for pid, name, s, t, ok in choose(row, bar)]
            out.append(Identification(face=faces[i] if faces else None, candidates=cands, policy=policy))
        return out

    def _bars(self, policy: OpenSetPolicy, candidates: Sequence[int]) -> Callable[[int], float]:
        """The threshold for a person id under ``policy``. Where the bar depends on the person's face
        count, the counts of all ``candidates`` are read in one call (a person deleted since the
        search counts as one photo)."""
        if policy.explicit:
            return lambda pid: policy.threshold
        counts = self.backend.face_counts(candidates) if candidates else {}
        bars: dict[int, float] = {}

        def bar(pid: int) -> float:
            if pid not in bars:
                bars[pid] = policy.bar(max(1, counts.get(int(pid), 1)))
            return bars[pid]

        return bar

    def face_count(self, pid: int) -> int:
        """Faces enrolled for person ``pid`` (1 if they were deleted meanwhile)."""
        try:
            return int(self.backend.person(pid).faces)
        except PersonNotFoundError:  # deleted between search and lookup: treat as one photo
            log.debug("person %s vanished during identification", pid)
            return 1

    def identify(
        self, photo: ImageInput, *, k: int | None = None, snapshot: GallerySnapshot | None = None
    ) -> list[Identification]:
        """For every face in ``photo``: the top-``k`` people and the decision at the gallery's
        FPIR (or explicit threshold); ``identification.name`` is "unknown" below it. No faces: [].
        Decided at one :meth:`snapshot`, taken before the models run (a missing calibration fails
        first) unless the caller passes the one it reports."""
        return self._identify(photo, k, snapshot)[0]

    def identify_photo(
        self, photo: ImageInput, *, k: int | None = None, snapshot: GallerySnapshot | None = None,
        pick: str = DEFAULT_PICK, name: str = "image",
    ) -> tuple[list[Identification], FaceChoice]:
        """:meth:`identify` of every face, and the face the one face-choice rule picks among them (what a
        one-face decision, the gate's, is taken on: :func:`facegate.pipeline.choose_face`). No face:
        :class:`~facegate.errors.NoFaceError`; ``pick="single"`` with several:
        :class:`~facegate.errors.MultipleFacesError`."""
        from facegate.pipeline import choose_face

        found, shape = self._identify(photo, k, snapshot)
        choice = choose_face([x.face for x in found if x.face is not None], shape, pick, name)
        return found, choice

    def _identify(
        self, photo: ImageInput, k: int | None, snapshot: GallerySnapshot | None
    ) -> tuple[list[Identification], tuple[int, ...]]:
        snap = snapshot if snapshot is not None else self.snapshot()
        model = model_id(self.pipeline)
        check_model(snap.model, model)
        image = self.pipeline.load(photo)
        faces = self.pipeline.embed_faces(image, self.pipeline.detector.detect(image))
        shape = tuple(image.shape)
        del image
        if not faces:
            return [], shape
        emb = stack_embeddings(faces)
        return self.identify_embeddings(emb, k=k, faces=faces, snapshot=snap), shape

    # -- people -----------------------------------------------------------------------------
    def people(self, limit: int | None = None, offset: int = 0) -> list[Person]:
        return self.backend.people(limit, offset)

    def person(self, ref: str | int) -> Person:
        return self.backend.person(ref)

    def faces(self, ref: str | int) -> list[StoredFace]:
        return self.backend.faces(ref)

    def _with_note(self, note: dict[str, Any] | None) -> dict[str, Any]:
        return {"note": note} if note is not None and self.backend.notes_atomic else {}

    def rename(self, ref: str | int, new_name: str, *, note: dict[str, Any] | None = None) -> Person:
        return self.backend.rename(ref, new_name, **self._with_note(note))

    def delete(self, ref: str | int) -> Person:
        """Delete a person with all their faces, leaving no copy of their face data in the gallery's
        files (see :meth:`erase`)."""
        return self.erase(ref)[0]

    def erase(self, ref: str | int, *, note: dict[str, Any] | None = None) -> tuple[Person, dict[str, Any]]:
        """Delete a person as :meth:`delete`; also returns what the backend scrubbed (index vectors
        zeroed, snapshot removed)."""
        return self.backend.erase(ref, **self._with_note(note))

    def delete_face(self, ref: str | int, face_id: int, *, note: dict[str, Any] | None = None) -> dict[str, Any]:
        """Delete one face of a person (the person too, with their last face)."""
        pid = self.person(ref).id
        if not any(f.id == face_id for f in self.faces(pid)):
            raise PersonNotFoundError(f"person {pid} has no face with id {face_id}")
        return self.backend.delete_face(int(face_id), **self._with_note(note))

    # -- notes committed with writes -------------------------------------------------------
    # A caller that records gallery changes elsewhere (the service's audit trail, another file)
    # passes ``note={"token": ..., ...}`` to a write; where the backend supports it (``notes_atomic``)
    # the note is committed in the write's own transaction with the write's result, and stays in
    # ``notes()`` until the caller has recorded it and calls ``clear_notes``: after a crash
    # between the two commits, the caller finishes its record from here.
    def notes(self) -> list[tuple[str, float, dict[str, Any]]]:
        return self.backend.notes()

    def clear_notes(self, tokens: Sequence[str]) -> None:
        self.backend.clear_notes(tokens)

    def face_crop(self, ref: str | int, face_id: int) -> bytes:
        """The stored JPEG crop of one face of a person."""
        return self.backend.face_crop(self.person(ref).id, int(face_id))

    def embeddings(self, ref: str | int) -> np.ndarray:
        """The stored embeddings of a person's faces (one row per face)."""
        return self.backend.embeddings(ref)

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
                    chips.append(norm_crops(img, [crop_points(pipeline, img, lm)], emb_.template)[0])
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

    def consistency(self, *, progress: bool = False, k: int = 3) -> dict[str, Any]:
        """Whether the gallery agrees with itself (``facegate gallery check``), decided by
        :mod:`facegate.decide.enrolment`: ``disagreeing`` lists people with two faces that do not verify
        against each other at FAR 1e-3 (a wrong photo under their name), ``lookalikes`` pairs of people whose
        templates clear the 1:N bar of the gallery's operating point (one person enrolled twice, or two the
        gallery cannot tell apart). Each person's template is searched among the ``k`` nearest people."""
        from facegate.decide import disagreeing_pairs, lookalike
        from facegate.gallery.index import normalize

        out: dict[str, Any] = {"consistent": True, "people_checked": 0, "disagreeing": [], "lookalikes": []}
        thr: float | None = None
        far: float | None = None
        try:
            thr, far = consistency_threshold(self.config, self.pipeline.operating_points)
            out["verification"] = f"threshold {thr:.4f} (FAR {far:g})"
        except UsageError as exc:
            out["verification"] = f"not checked: {exc}"
        try:
            policy: OpenSetPolicy | None = self.snapshot().policy
            out["identification"] = policy.describe() if policy is not None else ""
        except UsageError as exc:
            policy = None
            out["identification"] = f"not checked: {exc}"
        ids: list[int] = []
        counts: list[int] = []
        names: list[str] = []
        templates: list[np.ndarray] = []
        people = self.people()
        for p in tqdm(people, desc="checking", unit="person", disable=not progress, dynamic_ncols=True):
            try:
                emb = self.embeddings(p.id)
            except PersonNotFoundError:  # deleted meanwhile
                continue
            if not len(emb):
                continue
            out["people_checked"] += 1
            if thr is not None and len(emb) > 1:
                pairs = disagreeing_pairs(emb, thr, far)
                if pairs:
                    faces = self.faces(p.id)
                    out["disagreeing"].append({
                        "person_id": p.id, "name": p.name, "faces": len(emb),
                        "pairs": [{"face_ids": [faces[i].id, faces[j].id], "sources": [faces[i].source, faces[j].source],
                                   "score": round(sc, 6)} for i, j, sc in pairs],
                    })
            ids.append(int(p.id))
            counts.append(len(emb))
            names.append(p.name)
            templates.append(normalize(emb.mean(axis=0, keepdims=True))[0])
        if policy is not None and len(templates) > 1:
            tmpl = np.stack(templates).astype(np.float32)
            row = {pid: i for i, pid in enumerate(ids)}
            seen: set[tuple[int, int]] = set()
            for i, hits in enumerate(self.backend.search(tmpl, min(k + 1, len(ids)))):
                for pid, _, _ in hits:
                    j = row.get(int(pid))
                    if j is None or j == i or (min(i, j), max(i, j)) in seen:
                        continue
                    seen.add((min(i, j), max(i, j)))
                    score = float(tmpl[i] @ tmpl[j])
                    same, bar = lookalike(score, policy, counts[i], counts[j])
                    if same:
                        a, b = sorted((i, j), key=lambda x: ids[x])
                        out["lookalikes"].append({
                            "people": [{"person_id": ids[a], "name": names[a], "faces": counts[a]},
                                       {"person_id": ids[b], "name": names[b], "faces": counts[b]}],
                            "score": round(score, 6), "bar": round(bar, 6),
                        })
        out["lookalikes"].sort(key=lambda x: -x["score"])
        out["consistent"] = not out["disagreeing"] and not out["lookalikes"]
        return out

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
