"""What the routes do, without HTTP: gate decisions, identification, enrolment, erasure.

Everything image-related goes through the shared :class:`~facegate.pipeline.Pipeline` and
the gallery facade (:func:`facegate.gallery.open_gallery`); this module adds only what a
multi-threaded server needs on top of them:

* the models are not thread-safe (a TFLite interpreter, a torch module), so detection and
  embedding each run under a lock (:class:`GuardedPipeline`) while decoding, gallery search
  and database writes of other requests proceed in parallel;
* at most ``max_busy`` requests hold decoded images at once, bounding memory under a flood
  of large (but legal) images; a gate burst shares one pixel budget between its frames;
* the gate check's liveness decision is :func:`facegate.liveness.check_presentation`, the one
  place that turns a liveness verdict into a refusal (``watch --gate`` asks this same check);
* deleting a person also erases the face images kept with access events: those of events
  that recognised them and those of their denied attempts (found by similarity, see
  :func:`erase_bar`); the gallery's own erase leaves no copy in its files (index included).

Only the gallery's public methods are used here (never its backend's store or index).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from facegate.config import Config
from facegate.errors import FacegateError, UsageError
from facegate.gallery.errors import UnsupportedError
from facegate.pipeline import DEFAULT_PICK, Pipeline, pick_face
from facegate.protocols import FacePipeline
from facegate.service.db import ServiceDB
from facegate.service.errors import ApiError, http_message, status_of
from facegate.service.metrics import Metrics
from facegate.service.settings import ServiceSettings
from facegate.types import Face, FaceChoice

if TYPE_CHECKING:
    from facegate.gallery import Gallery, GallerySnapshot
    from facegate.liveness import SamePersonRule

log = logging.getLogger(__name__)


class _Locked:
    """A proxy whose listed methods run under a lock; every other attribute passes through."""

    def __init__(
        self, inner: object, lock: threading.Lock, methods: Sequence[str], timer: Callable[[float], None] | None = None
    ) -> None:
        self._inner = inner
        self._lock = lock
        self._methods = frozenset(methods)
        self._timer = timer

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self._methods:
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                t0 = time.perf_counter()
                try:
                    return attr(*args, **kwargs)
                finally:
                    if self._timer is not None:
                        self._timer(time.perf_counter() - t0)

        return locked


class GuardedPipeline(Pipeline):
    """A :class:`Pipeline` over another pipeline's models, with the detector and the embedder each
    behind its own lock (so one request can embed while the next detects); every other step
    (load, chips, faces, face, threshold, ...) is the shared Pipeline code."""

    def __init__(self, inner: FacePipeline, metrics: Metrics | None = None, config: Config | None = None) -> None:
        self._inner = inner
        # the models are the inner pipeline's; the decision (far/threshold) and the input limits are the service's
        self.config: Config = inner.config if config is None else inner.config.replace(
            far=config.far, fpir=config.fpir, threshold=config.threshold, max_pixels=config.max_pixels
        )
        self._dlock = threading.Lock()
        self._elock = threading.Lock()
        self._det: _Locked | None = None
        self._emb: _Locked | None = None
        self._init = threading.Lock()
        self._metrics = metrics

    @property
    def detector(self) -> Any:
        if self._det is None:
            with self._init:
                if self._det is None:
                    timer = self._metrics.inference.labels("detect").observe if self._metrics else None
                    self._det = _Locked(self._inner.detector, self._dlock, ("detect", "detect_batch"), timer)
        return self._det

    @property
    def embedder(self) -> Any:
        if self._emb is None:
            with self._init:
                if self._emb is None:
                    timer = self._metrics.inference.labels("embed").observe if self._metrics else None
                    self._emb = _Locked(self._inner.embedder, self._elock, ("embed", "embed_plain", "embed_and_plain"),
                                        timer)
        return self._emb

    @property
    def operating_points(self) -> Any:
        return self._inner.operating_points

    @property
    def plain_operating_points(self) -> Any:
        return self._inner.plain_operating_points

    @property
    def template_points(self) -> Any:
        return getattr(self._inner, "template_points", None)

    @property
    def liveness_detector(self) -> Any:
        """The inner pipeline's liveness model in force (thread-safe: the cues keep no state)."""
        return self._inner.liveness_detector

    @liveness_detector.setter
    def liveness_detector(self, detector: Any) -> None:
        self._inner.liveness_detector = detector  # type: ignore[misc]

    @property
    def table_label(self) -> Any:
        return getattr(self._inner, "table_label", None)

    def tables(self) -> Any:
        inner = getattr(self._inner, "tables", None)
        return inner() if callable(inner) else super().tables()


class Engine:
    """The service's operations over one gallery, one pipeline and the service database."""

    def __init__(
        self,
        config: Config,
        settings: ServiceSettings,
        db: ServiceDB,
        metrics: Metrics,
        *,
        pipeline: FacePipeline | None = None,
        gallery: Gallery | None = None,
        max_busy: int = 4,
    ) -> None:
        from facegate.gallery import open_gallery
        from facegate.pipeline import Pipeline

        self.config = config
        self.settings = settings
        self.db = db
        db.time_zone = settings.time_zone  # access rules made without a zone get the site's
        self.metrics = metrics
        inner = pipeline if pipeline is not None else (gallery.pipeline if gallery is not None else Pipeline(config))
        self.pipeline = GuardedPipeline(inner, metrics, config)
        if gallery is None:
            gallery = open_gallery(config, pipeline=self.pipeline)
            self._owns_gallery = True
        else:
            gallery.pipeline = self.pipeline  # the gallery must use the locked models too
            self._owns_gallery = False
        self.gallery = gallery
        self._busy = threading.BoundedSemaphore(max_busy)
        self._frame_rule: SamePersonRule | None = None
        self._model: str | None = None
        self.warm = threading.Event()
        self.warm_error: str | None = None
        self.reconcile()

    # -- the audit trail of gallery writes --------------------------------------------------------
    # The gallery and the service database are two files, so one transaction cannot hold both. Each
    # write passes a note that the gallery commits with the write itself (Gallery.notes); the audit
    # event is then written from it (idempotent by token) and the note cleared. A crash in between
    # leaves the note, and the next start records it: audit and gallery agree after any crash.
    def _note(self, action: str, key_id: str | None, client: str | None, **detail: Any) -> dict[str, Any]:
        return {"token": uuid.uuid4().hex, "action": action, "key_id": key_id, "client": client, "detail": detail}

    def _record(self, note: dict[str, Any], result: dict[str, Any], at: float | None = None) -> int:
        """Write the audit event of a committed gallery write (once per token), then drop the gallery's note."""
        eid = self.db.add_event(
            "audit", op=note["token"], at=at, action=note["action"], person_id=result.get("person_id"),
            name=result.get("name"), key_id=note.get("key_id"), client=note.get("client"),
            detail={**note.get("detail", {}), **result.get("detail", {})},
        )
        self.gallery.clear_notes([note["token"]])
        return eid

    def reconcile(self) -> int:
        """Record the gallery writes whose audit event a crash cut off; returns how many."""
        pending = self.gallery.notes()
        for _token, at, note in pending:
            self._record(note, note.get("result", {}), at)
        if pending:
            log.warning("audit: recorded %d gallery change(s) whose audit event was cut off by a crash", len(pending))
        return len(pending)

    # -- readiness -----------------------------------------------------------------------------
    def warmup(self) -> None:
        """Load the models and run them once, so the first real request is not the slow one."""
        try:
            self.decision_threshold()
            self.decision_policy()
            self.pipeline.detector.detect(np.zeros((64, 64, 3), np.uint8))
            emb = self.pipeline.embedder
            emb.embed(np.zeros((1, emb.template.size, emb.template.size, 3), np.uint8))
            self.model_id()
            self.warm_error = None
            log.info("service: models ready (model %s)", self._model)
            try:
                det = self.pipeline.liveness_detector
                log.info("service: liveness model in force: %s", det.name)
            except FacegateError as exc:  # gates with liveness on refuse (fail closed), the others work
                log.warning("service: no liveness model may be used (%s); gates with liveness on will refuse every "
                            "check with liveness_unavailable", exc)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz; requests then fail with the same message
            self.warm_error = " ".join(str(exc).split()) or type(exc).__name__
            log.error("service: warm-up failed: %s", self.warm_error)
        finally:
            self.warm.set()

    def readiness(self) -> tuple[bool, list[str]]:
        reasons = []
        if not self.warm.is_set():
            reasons.append("models are loading")
        elif self.warm_error:
            reasons.append(f"models: {self.warm_error}")
        if not self.db.ping():
            reasons.append("service database unreachable")
        try:
            self.gallery.model()
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure as a reason
            reasons.append(f"gallery unreachable: {exc}")
        for check in (self.decision_threshold, self.decision_policy):
            try:
                check()
            except ApiError as exc:
                reasons.append(exc.message)
        return not reasons, reasons

    def decision_policy(self) -> Any:
        """The gallery's 1:N policy now (FPIR at its current size, :mod:`facegate.decide`); a missing
        calibration is a server problem (503)."""
        return self.snapshot().policy

    def snapshot(self) -> GallerySnapshot:
        """The gallery read once for one request (model, size, templating and the policy at that
        size): a request decides and reports with one snapshot. A missing calibration is a 503."""
        try:
            return self.gallery.snapshot()
        except UsageError as exc:
            raise ApiError(503, "not_configured", str(exc)) from exc

    def decision_threshold(self) -> tuple[float, float | None]:
        """(threshold, FAR) for 1:1 verify from the table in force now (a site table adopted while the
        server runs applies at once); a missing calibration is a 503."""
        try:
            return self.pipeline.threshold()
        except UsageError as exc:
            raise ApiError(503, "not_configured", str(exc)) from exc

    def frame_rule(self) -> SamePersonRule:
        """The 1:1 rule a burst's frames are compared by (:meth:`Pipeline.frame_rule`), resolved
        once like :meth:`decision_threshold`; a missing calibration is a 503."""
        if self._frame_rule is None:
            try:
                self._frame_rule = self.pipeline.frame_rule()
            except UsageError as exc:
                raise ApiError(503, "not_configured", str(exc)) from exc
        return self._frame_rule

    def model_id(self) -> str:
        if self._model is None:
            from facegate.gallery import model_id

            self._model = model_id(self.pipeline)
        return self._model

    # -- image operations ------------------------------------------------------------------------
    def detect(self, data: bytes) -> tuple[tuple[int, int], list[Face]]:
        """((width, height), faces) of an image: boxes, landmarks, scores, no embeddings."""
        with self._busy:
            image = self.pipeline.load(data)
            return (int(image.shape[1]), int(image.shape[0])), self.pipeline.detector.detect(image)

    def largest_face(self, data: bytes, label: str = "image") -> Face | None:
        """The largest face of an image, embedded; None when there is none (site calibration's strangers)."""
        with self._busy:
            image = self.pipeline.load(data)
            faces = self.pipeline.detector.detect(image)
            if not faces:
                return None
            return self.pipeline.embed_faces(image, [pick_face(faces, image.shape, "largest", label)])[0]

    def identify(self, data: bytes, k: int | None = None) -> tuple[list[Any], Any]:
        """(identifications, the policy they were decided at): the gallery's own identify, at one snapshot."""
        snap = self.snapshot()
        with self._busy:
            return self.gallery.identify(data, k=k, snapshot=snap), snap.policy

    def identify_photo(self, data: bytes, k: int | None = None, pick: str = DEFAULT_PICK) -> tuple[list[Any], Any, FaceChoice]:
        """(identifications, policy, the face the one face-choice rule picks): :meth:`Gallery.identify_photo`."""
        snap = self.snapshot()
        with self._busy:
            found, choice = self.gallery.identify_photo(data, k=k, snapshot=snap, pick=pick, name="image")
        return found, snap.policy, choice

    def verify(self, a: bytes, b: bytes, pick: str = DEFAULT_PICK) -> Any:
        """1:1 at the configured FAR: the pipeline's own face choice and comparison (the verdict's
        ``faces`` say which face of each image was used)."""
        self.decision_threshold()
        out = []
        for data, label in ((a, "image1"), (b, "image2")):
            with self._busy:
                out.append(self.pipeline.choose(data, pick, name=label))  # type: ignore[arg-type]
        return replace(self.pipeline.compare(out[0].face, out[1].face), faces=tuple(out)), out

    def gate_check(
        self, gate: str, frames: Sequence[bytes] | bytes, *, key_id: str | None, client: str | None,
        when: float | None = None, pick: str = DEFAULT_PICK,
    ) -> dict[str, Any]:
        """allow/deny for the person in front of a gate, logged: one image, or a burst of
        consecutive frames of them (at most ``MAX_GATE_FRAMES``).

        Each frame's face is the one face-choice rule's (:func:`~facegate.pipeline.choose_face`,
        ``largest`` by default: the person nearest the camera; ``pick="single"`` refuses a frame with
        several, 422); the person is identified from the frame whose face the detector is surest of
        (the answer's ``faces_found``, ``face_used`` with its ``frame``). Then, in order: the gate's
        liveness setting (:mod:`facegate.service.gates`) through the one liveness decision, :func:`facegate.liveness.check_presentation`; a
        refused presentation answers deny with its reason, its liveness score and threshold and
        the APCER/BPCER of that operating point, and names nobody to the caller (the audit event
        records whom it resembled). Otherwise a recognised person is allowed when the gate has no
        access list, or when a rule of its list permits them now (:mod:`facegate.service.access`);
        the event records the rule."""
        from facegate.gallery import face_crop
        from facegate.liveness import check_presentation
        from facegate.service import gates
        from facegate.service.access import check_access

        frames = [bytes(frames)] if isinstance(frames, (bytes, bytearray)) else list(frames)
        self.check_frame_limits(frames)
        setting = gates.get(self.db, gate).liveness
        snap = self.snapshot()
        policy = snap.policy
        same_person = self.frame_rule() if setting == "burst" and len(frames) > 1 else None
        crop = probe = None
        face = choice = None
        presentation = None
        with self._busy:
            images = [self._load_frame(data, i, len(frames)) for i, data in enumerate(frames)]
            choices, at_frame = self.pipeline.frame_choices(images, pick)  # type: ignore[arg-type]
            subjects = [c.face if c is not None else None for c in choices]
            counts = [c.found if c is not None else 0 for c in choices]
            if at_frame is not None:
                choice = choices[at_frame]
                face = subjects[at_frame]
                plain = self.pipeline.embed_frames(images, subjects, [at_frame])
                presentation = check_presentation(
                    setting, images, subjects, at_frame, lambda: self.pipeline.liveness_detector,
                    partial(self.pipeline.frame_embeddings, images, subjects, known=plain),
                    same_person,
                )
                if self.settings.keep_event_images and face is not None:
                    crop, probe = face_crop(images[at_frame], face)[0], face.embedding
            del images
        n_faces = counts[at_frame] if at_frame is not None else 0
        without_face = sum(1 for f in subjects if f is None)
        person_id = name = score = None
        threshold = policy.threshold
        if face is not None and face.embedding is not None:
            (ident,) = self.gallery.identify_embeddings(face.embedding[None, :], model=self.model_id(), k=1, snapshot=snap)
            threshold = ident.threshold
            if ident.candidates:
                score = float(ident.candidates[0].score)
            match = ident.identity
            if match is not None:
                person_id, name = int(match.person_id), match.name
        at = time.time() if when is None else float(when)
        refused = presentation is not None and not presentation.passed
        access = None if refused else check_access(self.db, gate, person_id, at, face=face is not None)
        decision = "allow" if access is not None and access.allowed else "deny"
        reason = presentation.reason if refused and presentation is not None else access.reason if access else None
        liveness = presentation.to_dict() if presentation is not None else None
        event_id = self.db.add_event(
            "access", at=at, gate=gate, decision=decision, person_id=person_id, name=name, score=score,
            threshold=threshold, far=policy.far, faces=n_faces, key_id=key_id, client=client, image=crop,
            image_embedding=probe,
            detail={"fpir": policy.fpir, "tpir": policy.tpir, "identities": policy.identities,
                    "rule": access.to_dict() if access else None, "reason": reason,
                    "liveness": liveness, "frames": len(frames), "frames_without_face": without_face,
                    # an attack's answer names nobody; this event (the audit trail) keeps whom it resembled
                    "named_to_caller": not refused, "table": policy.table_label},
        )
        self.metrics.decisions.labels(gate, decision).inc()
        log.debug("gate %s: %s %s (score %s, %d frame(s), %d face(s), %s, event %d)", gate, decision, name or "-",
                  None if score is None else round(score, 4), len(frames), n_faces, reason, event_id)
        if refused:  # nothing that reveals whom the presentation resembled: no id, name, score or their own bar
            person_id = name = score = None
            threshold = policy.threshold
        return {
            "gate": gate, "decision": decision, "person_id": person_id, "name": name,
            "score": None if score is None else round(score, 6), "threshold": round(float(threshold), 6),
            "far": policy.far, "fpir": policy.fpir, "tpir": None if policy.tpir is None else round(policy.tpir, 4),
            "rule": access.to_dict() if access else None, "warnings": list(policy.warnings), "event_id": event_id,
            "faces": n_faces, "reason": reason, "message": gates.reason_text(reason), "liveness": liveness,
            "frames": len(frames), "frames_without_face": without_face,
            "table": policy.table_label,
            **(_face_used(choice, at_frame) if choice is not None else {"faces_found": 0, "face_used": None, "pick": pick}),
        }

    def check_frame_limits(self, frames: Sequence[bytes]) -> None:
        """A gate check's bounds, checked before any decoding: at most ``MAX_GATE_FRAMES`` frames (422
        beyond, as for any body the schema refuses) and, for a burst, at most ``settings.max_burst_bytes``
        of them together (413 beyond)."""
        from facegate.liveness import MAX_GATE_FRAMES

        if not frames:
            raise ApiError(422, "validation", "a gate check needs one image, or a burst of frames")
        if len(frames) > MAX_GATE_FRAMES:
            raise ApiError(422, "too_many_frames",
                           f"a gate check takes at most {MAX_GATE_FRAMES} frames (one image or a burst); got {len(frames)}")
        total = sum(len(f) for f in frames)
        if len(frames) > 1 and total > self.settings.max_burst_bytes:
            raise ApiError(413, "burst_too_large",
                           f"the burst's {len(frames)} frames hold {total:,} bytes, over the limit of "
                           f"{self.settings.max_burst_bytes:,}: send smaller frames (a gate needs about 640x480)")

    def _load_frame(self, data: bytes, i: int, n: int) -> np.ndarray:
        """Decode frame ``i`` of ``n``; a burst shares ``settings.max_burst_pixels`` between its frames,
        checked from each header before any pixel is decoded (so a burst costs what one big image may)."""
        from facegate.errors import ImageTooLargeError, InvalidImageError
        from facegate.image import load_image

        if n == 1:
            return self.pipeline.load(data)
        cap = min(self.pipeline.config.max_pixels, self.settings.max_burst_pixels // n)
        try:
            return load_image(data, self.pipeline.config.replace(max_pixels=cap))
        except ImageTooLargeError as exc:
            raise ImageTooLargeError(f"burst frame {i + 1} of {n}: {exc} (a burst of {n} frames may use "
                                     f"{cap:,} pixels a frame)") from None
        except InvalidImageError as exc:
            raise InvalidImageError(f"burst frame {i + 1} of {n}: {exc}") from None

    # -- people ------------------------------------------------------------------------------------
    def enrol(
        self,
        name: str,
        photos: list[tuple[str, bytes]],
        *,
        create: bool = True,
        pick: str = DEFAULT_PICK,
        force: bool = False,
        key_id: str | None = None,
        client: str | None = None,
    ) -> dict[str, Any]:
        """Enrol photos through the gallery's quality gate and integrity checks (:meth:`Gallery.enroll`);
        rejections carry the uploaded file name. Every photo refused: 422 (quality; the code of the one
        reason when all share it, as anywhere else), 409 ``enrolment_conflict`` when an integrity rule
        refused one (``force`` overrides; forced photos are in the answer and the audit event)."""
        from facegate.gallery import EnrolmentConflictError, EnrolmentRejectedError

        names = [fn for fn, _ in photos]

        def with_names(rejected: list[Any]) -> list[dict[str, Any]]:
            out = []
            for r in rejected:
                d = r.to_dict()
                idx = _photo_index(r.source)
                if idx is not None and idx < len(names):
                    d["filename"] = names[idx]
                    d["reason"] = d["reason"].replace(r.source, names[idx], 1)
                d["reason"] = http_message(d["reason"], r.code)
                out.append(d)
            return out

        def renamed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for d in items:
                idx = _photo_index(str(d.get("source", "")))
                if idx is not None and idx < len(names):
                    d = {**d, "filename": names[idx], "reason": str(d.get("reason", "")).replace(d["source"], names[idx], 1)}
                out.append(d)
            return out

        note = self._note("enrol", key_id, client)
        with self._busy:
            try:
                result = self.gallery.enroll(name, [d for _, d in photos], create=create, pick=pick, note=note,
                                             force=force)
            except EnrolmentRejectedError as exc:
                self.metrics.enrolments.labels("rejected").inc()
                rejected = with_names(exc.rejected)
                message = f"nothing enrolled for {name!r}: " + "; ".join(r["reason"] for r in rejected)
                if isinstance(exc, EnrolmentConflictError):
                    message = http_message(message, exc.code)
                raise ApiError(status_of(exc), exc.code, message, {"rejected": rejected}) from exc
        assert result.person is not None  # an enrolment that did not raise stored someone (or had them already)
        out = result.to_dict()
        out["rejected"] = with_names(result.rejected)
        out["skipped"] = renamed(result.skipped)
        out["forced"] = renamed(result.forced)
        out["faces"] = renamed(result.faces)
        if not result.face_ids:  # every photo already enrolled for them: nothing written, nothing to audit
            return out
        self.metrics.enrolments.labels("created" if result.created else "added").inc()
        detail: dict[str, Any] = {"faces": result.face_ids, "rejected": len(result.rejected), "created": result.created}
        if result.forced:
            detail["forced"] = out["forced"]
        self._record(note, {"person_id": result.person.id, "name": result.person.name, "detail": detail})
        return out

    def enrol_batch(
        self, by_person: dict[str, list[tuple[str, bytes]]], *, pick: str = DEFAULT_PICK, force: bool = False,
        key_id: str | None = None, client: str | None = None,
    ) -> dict[str, Any]:
        """Bulk enrolment: each person's photos through :meth:`Gallery.enroll_new` (photos already
        enrolled for that name are skipped; integrity refusals are reported per photo, like quality ones),
        one transaction and one audit event per person."""
        from facegate.gallery import EnrolmentRejectedError

        people, enrolled, skipped_n, rejected_n, forced_n = [], 0, 0, 0, 0
        for name, photos in by_person.items():
            with self._busy:
                try:
                    result, skipped = self.gallery.enroll_new(name, photos, pick=pick, force=force)
                    rejected = result.rejected if result is not None else []
                except EnrolmentRejectedError as exc:
                    result, skipped, rejected = None, [], exc.rejected
            skipped_n += len(skipped)
            rejected_n += len(rejected)
            entry: dict[str, Any] = {"name": name, "skipped": skipped, "rejected": [r.to_dict() for r in rejected]}
            if result is not None and result.person is not None:
                enrolled += len(result.face_ids)
                forced_n += len(result.forced)
                entry.update(status="enrolled", person_id=result.person.id, face_ids=result.face_ids,
                             forced=result.forced)
                self.metrics.enrolments.labels("created" if result.created else "added").inc()
                detail: dict[str, Any] = {"faces": result.face_ids, "rejected": len(rejected), "skipped": len(skipped),
                                          "created": result.created, "batch": True}
                if result.forced:
                    detail["forced"] = result.forced
                self.db.add_event(
                    "audit", action="enrol", person_id=result.person.id, name=result.person.name, key_id=key_id,
                    client=client, detail=detail,
                )
            else:
                entry["status"] = "rejected" if rejected else "skipped"
                if rejected:
                    self.metrics.enrolments.labels("rejected").inc()
            people.append(entry)
        return {"people": people, "enrolled_faces": enrolled, "skipped_photos": skipped_n, "rejected_photos": rejected_n,
                "forced_photos": forced_n}

    def erase_bar(self) -> float:
        """See :func:`erase_bar`."""
        thr, _ = self.decision_threshold()
        return erase_bar(thr, self.pipeline.operating_points)

    def delete_person(self, pid: int, *, key_id: str | None = None, client: str | None = None) -> dict[str, Any]:
        """Delete a person with everything biometric of theirs: the face images kept with access events
        (first: if the gallery delete then fails, nothing of theirs is left that a retry cannot reach),
        then faces, embeddings, crops and index entries (:meth:`Gallery.erase`).
        Their access events stay (decision, score, name at the time): that is the audit trail."""
        from facegate.service.access import forget_person

        pid = int(pid)
        images = self._erase_event_images(pid)
        note = self._note("delete_person", key_id, client, event_images_erased=images)
        person, scrub = self.gallery.erase(pid, note=note)
        self._record(note, {"person_id": person.id, "name": person.name, "detail": {"faces": person.faces, **scrub}})
        forget_person(self.db, pid)
        log.info("deleted person %d (%s): %d face(s), %d event image(s)", person.id, person.name, person.faces, images)
        return {"person": person.to_dict(), "faces_deleted": person.faces, "event_images_deleted": images, **scrub}

    def delete_face(self, pid: int, fid: int, *, key_id: str | None = None, client: str | None = None) -> dict[str, Any]:
        pid, fid = int(pid), int(fid)
        faces = self.gallery.faces(pid)
        last = len(faces) == 1 and faces[0].id == fid
        images = self._erase_event_images(pid) if last else 0  # their last face: the person goes
        note = self._note("delete_face", key_id, client)
        out = self.gallery.delete_face(pid, fid, note=note)
        self._record(note, {"person_id": pid, "detail": {"face": fid, "person_deleted": out["person_deleted"]}})
        return {"face_id": fid, "person_id": pid, "person_deleted": out["person_deleted"],
                "event_images_deleted": images, "index_vectors_zeroed": out.get("index_vectors_zeroed", 0),
                "snapshot_removed": out.get("snapshot_removed", False)}

    def _erase_event_images(self, pid: int) -> int:
        try:
            emb = self.gallery.embeddings(pid)
        except UnsupportedError:
            emb = None
        return self.db.erase_person_images(pid, emb, self.erase_bar() if emb is not None else None)

    def rename(self, pid: int, name: str, *, key_id: str | None = None, client: str | None = None) -> Any:
        note = self._note("rename_person", key_id, client)
        before = self.gallery.person(int(pid))
        person = self.gallery.rename(int(pid), name, note=note)
        self._record(note, {"person_id": person.id, "name": person.name, "detail": {"from": before.name}})
        return person

    def thumbnail(self, pid: int, fid: int) -> bytes:
        """The stored face crop (JPEG) of one face of a person."""
        from facegate.gallery import UnsupportedError

        try:
            return self.gallery.face_crop(int(pid), int(fid))
        except UnsupportedError as exc:
            raise ApiError(404, "not_found", "this gallery backend keeps no face crops") from exc

    def stats(self) -> dict[str, Any]:
        snap = self.snapshot()
        policy, state = snap.policy, snap.state
        return {
            "backend": self.gallery.backend.name, "people": state.people, "faces": state.faces, "model": state.model,
            "dim": state.dim,
            "rule": self.gallery.rule, "threshold": round(float(policy.threshold), 6), "far": policy.far,
            "fpir": policy.fpir, "tpir": None if policy.tpir is None else round(policy.tpir, 4),
            "warnings": list(policy.warnings), "events": self.db.counts(), "table": policy.table_label,
            "site_calibration": self.site_status(state),
        }

    def site_status(self, state: Any = None) -> dict[str, Any]:
        """The table in force and the drift warnings (:func:`facegate.calibrate.site_status`), the
        denied-score check reading the gate checks since the site table was adopted."""
        from facegate.calibrate.status import adopted_at, adopted_site_table, site_status

        state = state if state is not None else self.gallery.backend.state()
        tables = self.pipeline.tables()
        site = adopted_site_table(self.config, tables)
        denied, bars = self.db.denied_best_scores(adopted_at(site)) if site is not None else (None, None)
        return site_status(self.config, people=state.people, faces=state.faces, face_counts=state.face_counts,
                           denied_best=denied, bars=bars, tables=tables)

    def close(self) -> None:
        if self._owns_gallery:
            try:
                self.gallery.close()
            except FacegateError as exc:
                log.warning("closing the gallery: %s", exc)


def erase_bar(threshold: float, operating_points: Sequence[Any]) -> float:
    """How similar a kept probe image must be to a deleted person's faces to be erased with them.

    Not an access decision: erring towards erasing costs at most an audit image of a lookalike,
    while keeping one keeps a deleted person's face. So the bar is the loosest calibrated operating
    point of the embedder (its highest FAR), never stricter than the decision threshold in use.
    """
    return float(min([float(threshold)] + [float(p.threshold) for p in operating_points]))


def _face_used(choice: FaceChoice, frame: int | None) -> dict[str, Any]:
    """A gate answer's ``faces_found``, ``face_used`` (with the burst frame it is in) and ``pick``."""
    d = choice.to_dict()
    d["face_used"]["frame"] = frame
    return d


def _photo_index(source: str) -> int | None:
    """The gallery labels in-memory photos "photo N" (1-based); map back to the upload's position."""
    if source.startswith("photo "):
        try:
            return int(source.split()[1]) - 1
        except (IndexError, ValueError):
            return None
    return None
