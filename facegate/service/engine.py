"""What the routes do, without HTTP: gate decisions, identification, enrolment, erasure.

Everything image-related goes through the shared :class:`~facegate.pipeline.Pipeline` and
the gallery facade (:func:`facegate.gallery.open_gallery`); this module adds only what a
multi-threaded server needs on top of them:

* the models are not thread-safe (a TFLite interpreter, a torch module), so detection and
  embedding each run under a lock (:class:`GuardedPipeline`) while decoding, gallery search
  and database writes of other requests proceed in parallel;
* at most ``max_busy`` requests hold decoded images at once, bounding memory under a flood
  of large (but legal) images;
* deleting a person also scrubs what the gallery's normal delete leaves behind for speed:
  the tombstoned vectors in the in-memory index and its snapshot file, and freed SQLite pages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facegate.config import Config
from facegate.errors import FacegateError, UsageError
from facegate.image import load_image
from facegate.pipeline import Pipeline, pick_face
from facegate.protocols import FacePipeline
from facegate.service.db import ServiceDB
from facegate.service.errors import ApiError, http_message
from facegate.service.metrics import Metrics
from facegate.service.settings import ServiceSettings
from facegate.types import Face

if TYPE_CHECKING:
    from facegate.gallery import Gallery

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
            far=config.far, threshold=config.threshold, max_pixels=config.max_pixels
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
                    self._emb = _Locked(self._inner.embedder, self._elock, ("embed",), timer)
        return self._emb

    @property
    def operating_points(self) -> Any:
        return self._inner.operating_points


def _area(face: Face) -> float:
    return face.width * face.height


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
        self.metrics = metrics
        inner = pipeline if pipeline is not None else (gallery.pipeline if gallery is not None else Pipeline(config))
        self.pipeline = GuardedPipeline(inner, metrics, config)
        if gallery is None:
            gallery = open_gallery(config, pipeline=self.pipeline)
            self._owns_gallery = True
        else:
            gallery._pipeline = self.pipeline  # the gallery must use the locked models too
            self._owns_gallery = False
        self.gallery = gallery
        self._busy = threading.BoundedSemaphore(max_busy)
        self._thr: tuple[float, float | None] | None = None
        self._model: str | None = None
        self.warm = threading.Event()
        self.warm_error: str | None = None
        store = getattr(gallery.backend, "store", None)
        if store is not None:  # freed pages are zeroed, so erased faces do not linger in the file
            store.pragma("secure_delete", "ON")

    # -- readiness -----------------------------------------------------------------------------
    def warmup(self) -> None:
        """Load the models and run them once, so the first real request is not the slow one."""
        try:
            self.decision_threshold()
            self.pipeline.detector.detect(np.zeros((64, 64, 3), np.uint8))
            emb = self.pipeline.embedder
            emb.embed(np.zeros((1, emb.template.size, emb.template.size, 3), np.uint8))
            self.model_id()
            self.warm_error = None
            log.info("service: models ready (model %s)", self._model)
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
        try:
            self.decision_threshold()
        except ApiError as exc:
            reasons.append(exc.message)
        return not reasons, reasons

    def decision_threshold(self) -> tuple[float, float | None]:
        """(cosine threshold, FAR), resolved once; a missing calibration is a server problem (503)."""
        if self._thr is None:
            try:
                self._thr = self.gallery.threshold()
            except UsageError as exc:
                raise ApiError(503, "not_configured", str(exc)) from exc
        return self._thr

    def model_id(self) -> str:
        if self._model is None:
            from facegate.gallery import model_id

            self._model = model_id(self.pipeline)
        return self._model

    # -- image operations ------------------------------------------------------------------------
    def _decode(self, data: bytes) -> np.ndarray:
        return load_image(data, self.config)

    def detect(self, data: bytes) -> tuple[tuple[int, int], list[Face]]:
        """((width, height), faces) of an image: boxes, landmarks, scores, no embeddings."""
        with self._busy:
            image = self._decode(data)
            return (int(image.shape[1]), int(image.shape[0])), self.pipeline.detector.detect(image)

    def identify(self, data: bytes, k: int | None = None) -> list[Any]:
        thr, far = self.decision_threshold()
        with self._busy:
            image = self._decode(data)
            faces = self.pipeline.detector.detect(image)
            if not faces:
                return []
            self.pipeline.embed_faces(image, faces)
        emb = np.stack([f.embedding for f in faces])
        return self.gallery.identify_embeddings(emb, model=self.model_id(), k=k, threshold=thr, far=far, faces=faces)

    def verify(self, a: bytes, b: bytes, pick: str = "single") -> Any:
        from facegate.gallery.types import stack_embeddings
        from facegate.verify import cosine, decide

        thr, far = self.decision_threshold()
        out = []
        for data, label in ((a, "image1"), (b, "image2")):
            with self._busy:
                image = self._decode(data)
                face = pick_face(self.pipeline.detector.detect(image), image.shape, pick, label)  # type: ignore[arg-type]
                self.pipeline.embed_faces(image, [face])
            out.append(face)
        a_emb, b_emb = stack_embeddings(out)
        return decide(cosine(a_emb, b_emb), thr, far), out

    def gate_check(self, gate: str, data: bytes, *, key_id: str | None, client: str | None) -> dict[str, Any]:
        """allow/deny for the largest face in the image (the person nearest the camera), logged."""
        from facegate.gallery import face_crop

        thr, far = self.decision_threshold()
        crop = None
        with self._busy:
            image = self._decode(data)
            faces = self.pipeline.detector.detect(image)
            face = max(faces, key=_area) if faces else None
            if face is not None:
                self.pipeline.embed_faces(image, [face])
                if self.settings.keep_event_images:
                    crop = face_crop(image, face.landmarks)[0]
            del image
        person_id = name = score = None
        decision = "deny"
        if face is not None:
            (ident,) = self.gallery.identify_embeddings(
                face.embedding[None, :], model=self.model_id(), k=1, threshold=thr, far=far
            )
            if ident.candidates:
                score = float(ident.candidates[0].score)
            match = ident.identity
            if match is not None:
                decision, person_id, name = "allow", int(match.person_id), match.name
        event_id = self.db.add_event(
            "access", gate=gate, decision=decision, person_id=person_id, name=name, score=score,
            threshold=thr, far=far, faces=len(faces), key_id=key_id, client=client,
            image=crop,
        )
        self.metrics.decisions.labels(gate, decision).inc()
        log.debug("gate %s: %s %s (score %s, %d face(s), event %d)", gate, decision, name or "-",
                 None if score is None else round(score, 4), len(faces), event_id)
        return {
            "gate": gate, "decision": decision, "person_id": person_id, "name": name,
            "score": None if score is None else round(score, 6), "threshold": round(float(thr), 6),
            "far": far, "event_id": event_id, "faces": len(faces),
        }

    # -- people ------------------------------------------------------------------------------------
    def enrol(
        self,
        name: str,
        photos: list[tuple[str, bytes]],
        *,
        create: bool = True,
        pick: str = "single",
        key_id: str | None = None,
        client: str | None = None,
    ) -> dict[str, Any]:
        """Enrol photos through the gallery's quality gate; rejections carry the uploaded file name."""
        from facegate.gallery import EnrolmentRejectedError

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

        with self._busy:
            try:
                result = self.gallery.enroll(name, [d for _, d in photos], create=create, pick=pick)
            except EnrolmentRejectedError as exc:
                self.metrics.enrolments.labels("rejected").inc()
                rejected = with_names(exc.rejected)
                raise ApiError(
                    422, "rejected",
                    f"nothing enrolled for {name!r}: " + "; ".join(r["reason"] for r in rejected),
                    {"rejected": rejected},
                ) from exc
        self.metrics.enrolments.labels("created" if result.created else "added").inc()
        assert result.person is not None  # an enrolment that did not raise stored someone
        out = result.to_dict()
        out["rejected"] = with_names(result.rejected)
        self.db.add_event(
            "audit", action="enrol", person_id=result.person.id, name=result.person.name, key_id=key_id,
            client=client, detail={"faces": result.face_ids, "rejected": len(result.rejected), "created": result.created},
        )
        return out

    def delete_person(self, pid: int, *, key_id: str | None = None, client: str | None = None) -> dict[str, Any]:
        """Delete a person with everything biometric of theirs: faces, embeddings, crops (cascade in the
        gallery), index entries (scrubbed, see :meth:`_scrub`), and face images kept with access events.
        Their access events stay (decision, score, name at the time): that is the audit trail."""
        person = self.gallery.delete(int(pid))
        scrub = self._scrub(int(pid))
        images = self.db.erase_person_images(int(pid))
        self.db.add_event(
            "audit", action="delete_person", person_id=person.id, name=person.name, key_id=key_id, client=client,
            detail={"faces": person.faces, "event_images_erased": images, **scrub},
        )
        log.info("deleted person %d (%s): %d face(s), %d event image(s)", person.id, person.name, person.faces, images)
        return {"person": person.to_dict(), "faces_deleted": person.faces, "event_images_deleted": images, **scrub}

    def delete_face(self, pid: int, fid: int, *, key_id: str | None = None, client: str | None = None) -> dict[str, Any]:
        from facegate.gallery import PersonNotFoundError

        faces = self.gallery.faces(int(pid))
        if not any(f.id == fid for f in faces):
            raise PersonNotFoundError(f"person {pid} has no face with id {fid}")
        backend = self.gallery.backend
        if not hasattr(backend, "delete_face"):
            raise ApiError(409, "unsupported", f"the {backend.name} backend cannot delete single faces; delete the person")
        backend.delete_face(int(fid))
        person_deleted = len(faces) == 1
        images = self.db.erase_person_images(int(pid)) if person_deleted else 0
        scrub = self._scrub(int(pid))
        self.db.add_event(
            "audit", action="delete_face", person_id=pid, key_id=key_id, client=client,
            detail={"face": fid, "person_deleted": person_deleted},
        )
        return {"face_id": fid, "person_id": pid, "person_deleted": person_deleted, "event_images_deleted": images, **scrub}

    def _scrub(self, pid: int) -> dict[str, Any]:
        """Remove what a gallery delete leaves for speed: the person's tombstoned vectors (zeroed in the
        in-memory FAISS index, HNSW or flat), the index snapshot file holding them (removed; it is
        rewritten from the scrubbed index on close), and the old pages in the WAL (checkpointed)."""
        out: dict[str, Any] = {"index_vectors_zeroed": 0, "snapshot_removed": False}
        backend = self.gallery.backend
        mgr = getattr(backend, "index", None)
        if mgr is not None:
            try:
                import faiss

                mgr.sync()
                with mgr._lock:
                    idx = mgr.index
                    if idx is not None and idx.ntotal:
                        hit = (idx.labels.view == pid) & ~idx.alive.view
                        if hit.any():
                            flat: Any = idx.faiss if idx.kind == "flat" else faiss.downcast_index(idx.faiss.storage)
                            vecs = faiss.rev_swig_ptr(flat.get_xb(), idx.ntotal * idx.dim).reshape(idx.ntotal, idx.dim)
                            vecs[hit] = 0.0
                            out["index_vectors_zeroed"] = int(hit.sum())
                            mgr.dirty = True
                    snap = getattr(mgr, "snapshot", None)
                    if snap is not None and snap.exists():
                        snap.unlink()
                        out["snapshot_removed"] = True
            except Exception as exc:  # noqa: BLE001 - the delete itself succeeded; report, do not fail
                log.warning("could not scrub the index after deleting person %d: %s", pid, exc)
        store = getattr(backend, "store", None)
        if store is not None:
            store.checkpoint()
        return out

    def thumbnail(self, pid: int, fid: int) -> bytes:
        """The stored face crop (JPEG) of one face of a person."""
        from facegate.gallery import PersonNotFoundError

        store = getattr(self.gallery.backend, "store", None)
        if store is None:
            raise ApiError(404, "not_found", "this gallery backend keeps no face crops")
        with store.read() as conn:
            row = conn.execute(
                "SELECT c.jpeg FROM face_crops c JOIN faces f ON f.id = c.face_id WHERE c.face_id = ? AND f.person_id = ?",
                (int(fid), int(pid)),
            ).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no stored crop for face {fid} of person {pid}")
        return bytes(row[0])

    def stats(self) -> dict[str, Any]:
        thr, far = self.decision_threshold()
        people, faces = self.gallery.backend.counts()
        model, dim = self.gallery.backend.model()
        return {
            "backend": self.gallery.backend.name, "people": people, "faces": faces, "model": model, "dim": dim,
            "rule": self.gallery.rule, "threshold": round(float(thr), 6), "far": far, "events": self.db.counts(),
        }

    def close(self) -> None:
        if self._owns_gallery:
            try:
                self.gallery.close()
            except FacegateError as exc:
                log.warning("closing the gallery: %s", exc)


def _photo_index(source: str) -> int | None:
    """The gallery labels in-memory photos "photo N" (1-based); map back to the upload's position."""
    if source.startswith("photo "):
        try:
            return int(source.split()[1]) - 1
        except (IndexError, ValueError):
            return None
    return None
