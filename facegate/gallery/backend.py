"""The storage interface every gallery backend implements, and the embedded one (SQLite + FAISS).

The :class:`~facegate.gallery.Gallery` facade does images, quality and decisions; a
backend only stores people and embeddings and finds the nearest people to a vector.
Two implementations share this interface: :class:`SqliteBackend` (one machine, SQLite
as the source of truth, FAISS as a rebuildable accelerator) and
:class:`facegate.gallery.milvus.MilvusBackend` (a Milvus server or cluster, or
milvus-lite for tests).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facegate.gallery.errors import GalleryError, UnsupportedError
from facegate.gallery.index import IndexManager
from facegate.gallery.store import Store
from facegate.gallery.types import FaceRecord, GalleryState, Person, StoredFace

log = logging.getLogger(__name__)

DEFAULT_RULE = "mean"


class GalleryBackend(ABC):
    """People and their face embeddings, searchable by vector. Implementations must make each
    ``add_faces`` call all-or-nothing and refuse embeddings from a model other than the stored one."""

    name: str = ""
    rule: str = DEFAULT_RULE

    @abstractmethod
    def model(self) -> tuple[str | None, int | None]:
        """(model id, dimension) of the stored embeddings; (None, None) while empty of any model."""

    @abstractmethod
    def add_faces(
        self, name: str, records: Sequence[FaceRecord], model: str, dim: int, *, create: bool = True
    ) -> tuple[Person, list[int], bool]:
        """Store faces for ``name`` (created if new and ``create``). Returns (person, face ids, created)."""

    @abstractmethod
    def add_many(
        self, items: Sequence[tuple[str, Sequence[FaceRecord]]], model: str, dim: int
    ) -> list[tuple[int, list[int]]]:
        """Bulk import of (name, faces) pairs; returns (person id, face ids) per item."""

    @abstractmethod
    def people(self, limit: int | None = None, offset: int = 0) -> list[Person]: ...

    @abstractmethod
    def person(self, ref: str | int) -> Person: ...

    @abstractmethod
    def faces(self, ref: str | int) -> list[StoredFace]: ...

    @abstractmethod
    def rename(self, ref: str | int, new_name: str) -> Person: ...

    @abstractmethod
    def delete(self, ref: str | int) -> Person: ...

    # -- notes committed with writes: optional ---------------------------------------------------
    #: whether add_faces / rename / erase / delete_face accept ``note=`` and commit it with the write
    notes_atomic: bool = False

    def notes(self) -> list[tuple[str, float, dict[str, Any]]]:
        """Notes committed with writes and not yet cleared: (token, time, note with ``result``)."""
        return []

    def clear_notes(self, tokens: Sequence[str]) -> None:  # noqa: B027 - optional: backends without notes
        """Forget these notes (their caller has recorded them)."""

    def erase(self, ref: str | int) -> tuple[Person, dict[str, Any]]:
        """Delete a person leaving no copy of their face data behind in this backend's files
        (derived indexes and their snapshots included); returns (person, what was scrubbed).
        The default is :meth:`delete`, for backends whose storage keeps no such copies of its own."""
        return self.delete(ref), {}

    def delete_face(self, face_id: int) -> dict[str, Any]:
        """Delete one face (the person too, with their last one), leaving no copy behind as :meth:`erase`;
        returns ``{"person_id", "person_deleted", ...what was scrubbed}``."""
        raise UnsupportedError(f"the {self.name} backend cannot delete single faces; delete the person")

    def face_crop(self, person_id: int, face_id: int) -> bytes:
        """The stored JPEG crop of one face of a person (PersonNotFoundError when there is none)."""
        raise UnsupportedError(f"the {self.name} backend keeps no face crops")

    def embeddings(self, ref: str | int) -> np.ndarray:
        """The stored embeddings of one person's faces (one row per face)."""
        raise UnsupportedError(f"the {self.name} backend cannot list a person's embeddings")

    def photo_owners(self, shas: Sequence[str]) -> dict[str, list[tuple[int, str, int]]]:
        """sha256 of a photo's bytes -> [(person id, name, face id)] of the faces enrolled from it, so
        enrolment notices the same photo offered again. This default reads every person's faces
        (cost grows with the gallery); a backend with a query language overrides it."""
        want = set(shas)
        out: dict[str, list[tuple[int, str, int]]] = {}
        if not want:
            return out
        offset, page = 0, 10_000
        while True:
            people = self.people(page, offset)
            for p in people:
                for f in self.faces(p.id):
                    sha = (f.quality or {}).get("photo_sha256")
                    if sha in want:
                        out.setdefault(str(sha), []).append((int(p.id), p.name, int(f.id)))
            if len(people) < page:
                return out
            offset += page

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, str, float]]]:
        """Top-``k`` people per query as (person id, name, cosine score), best first."""

    @abstractmethod
    def counts(self) -> tuple[int, int]:
        """(people, faces)."""

    def face_count_histogram(self) -> dict[int, int]:
        """Number of faces -> number of people enrolled with that many: how the identities are
        templated, which the 1:N decision policy needs (``facegate.decide``). Backends with a
        query language override this page-by-page default."""
        hist: dict[int, int] = {}
        offset, page = 0, 10_000
        while True:
            people = self.people(page, offset)
            for p in people:
                hist[int(p.faces)] = hist.get(int(p.faces), 0) + 1
            if len(people) < page:
                return hist
            offset += page

    def state(self) -> GalleryState:
        """Model, dimension, counts and templating read together: what one request decides with
        (:meth:`facegate.gallery.Gallery.snapshot`). This default reads them one after another;
        a backend with transactions reads them in one (:class:`SqliteBackend`)."""
        model, dim = self.model()
        people, faces = self.counts()
        return GalleryState(model, dim, people, faces, self.face_count_histogram())

    def face_counts(self, person_ids: Sequence[int]) -> dict[int, int]:
        """Faces enrolled per person, for the given ids, in one read where the backend can (people
        deleted meanwhile are left out). The bar of a candidate depends on it (``mean`` rule)."""
        from facegate.gallery.errors import PersonNotFoundError

        out: dict[int, int] = {}
        for pid in dict.fromkeys(int(p) for p in person_ids):
            try:
                out[pid] = int(self.person(pid).faces)
            except PersonNotFoundError:
                continue
        return out

    def stats(self) -> dict[str, Any]:
        people, faces = self.counts()
        model, dim = self.model()
        return {"backend": self.name, "people": people, "faces": faces, "model": model, "dim": dim, "rule": self.rule}

    def check(self) -> dict[str, Any]:
        return {"ok": True}

    def rebuild_index(self) -> None:  # noqa: B027 - optional: a backend without a derived index has nothing to do
        """Rebuild any derived index from the stored data (no-op where there is none)."""

    def save_index(self, force: bool = False) -> bool:
        return False

    # -- re-embedding: optional --------------------------------------------------------------
    def crops_to_reembed(self, model: str) -> Iterator[list[tuple[int, bytes, list]]]:
        raise GalleryError(f"the {self.name} backend cannot re-embed; enrol the photos again into a new gallery")

    def count_without_crops(self) -> int:
        return 0

    def stage(self, model: str, dim: int, face_ids: Sequence[int], vecs: np.ndarray) -> None:
        raise GalleryError(f"the {self.name} backend cannot re-embed")

    def swap_model(self, model: str, dim: int, drop_missing: bool) -> dict[str, int]:
        raise GalleryError(f"the {self.name} backend cannot re-embed")

    def close(self) -> None:  # noqa: B027 - optional: nothing to release by default
        """Release connections (and write the index snapshot where there is one)."""


class SqliteBackend(GalleryBackend):
    """SQLite file as the source of truth + a FAISS index kept caught up from its change log.

    The index snapshot sits next to the database (``<gallery>.index``); deleting it is
    always safe (the next open rebuilds it).
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        rule: str | None = None,
        index: str = "auto",
        ann_threshold: int = 50_000,
        snapshot_min: int = 20_000,
        durable: bool = True,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 64,
        ef_retry: int = 1024,
        retry_margin: float = 0.02,
    ) -> None:
        self.path = Path(path)
        self.store = Store(self.path, durable=durable)
        stored_rule = self.store.meta().get("rule")
        self.rule = rule or stored_rule or DEFAULT_RULE
        if self.rule != stored_rule:
            with self.store.write() as conn:
                self.store.set_meta(conn, rule=self.rule)
        self.index = IndexManager(
            self.store,
            rule=self.rule,
            kind=index,
            ann_threshold=ann_threshold,
            snapshot=self.path.with_name(self.path.name + ".index"),
            snapshot_min=snapshot_min,
            hnsw_m=hnsw_m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            ef_retry=ef_retry,
            retry_margin=retry_margin,
        )

    def model(self) -> tuple[str | None, int | None]:
        return self.store.model()

    notes_atomic = True

    def notes(self) -> list[tuple[str, float, dict[str, Any]]]:
        return self.store.notes()

    def clear_notes(self, tokens: Sequence[str]) -> None:
        self.store.clear_notes(tokens)

    def add_faces(self, name, records, model, dim, *, create=True, note=None):
        return self.store.add_faces(name, records, model, dim, create=create, note=note)

    def add_many(self, items, model, dim):
        return self.store.add_many(items, model, dim)

    def people(self, limit=None, offset=0):
        return self.store.people(limit, offset)

    def person(self, ref):
        return self.store.person(ref)

    def faces(self, ref):
        return self.store.faces(ref)

    def rename(self, ref, new_name, *, note=None):
        return self.store.rename(ref, new_name, note=note)

    def delete(self, ref):
        return self.store.delete(ref)

    def erase(self, ref, *, note=None):
        """The store's delete (cascade; secure_delete zeroes the freed rows), then the index's copies
        (tombstoned vectors zeroed, snapshot removed) and the old pages in the WAL (checkpointed)."""
        person = self.store.delete(ref, note=note)
        scrub = self.index.erase(person.id)
        self.store.checkpoint()
        return person, scrub

    def delete_face(self, face_id: int, *, note: dict[str, Any] | None = None) -> dict[str, Any]:
        pid, person_deleted = self.store.delete_face(face_id, note=note)
        scrub = self.index.erase(pid)  # the person's old template still averaged the deleted face
        self.store.checkpoint()
        return {"person_id": pid, "person_deleted": person_deleted, **scrub}

    def face_crop(self, person_id: int, face_id: int) -> bytes:
        return self.store.face_crop(person_id, face_id)

    def embeddings(self, ref: str | int) -> np.ndarray:
        return self.store.person_embeddings(ref)

    def photo_owners(self, shas: Sequence[str]) -> dict[str, list[tuple[int, str, int]]]:
        return self.store.photo_owners(shas)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, str, float]]]:
        hits = self.index.search(queries, k)
        names = self.store.names([pid for row in hits for pid, _ in row])
        # a person deleted by another process after our sync has no name: drop them
        return [[(pid, names[pid], score) for pid, score in row if pid in names] for row in hits]

    def counts(self) -> tuple[int, int]:
        return self.store.counts()

    def face_count_histogram(self) -> dict[int, int]:
        return self.store.face_count_histogram()

    def state(self) -> GalleryState:
        return self.store.state()

    def face_counts(self, person_ids: Sequence[int]) -> dict[int, int]:
        return self.store.face_counts(person_ids)

    def stats(self) -> dict[str, Any]:
        self.index.sync()
        out = super().stats()
        out.update({"path": str(self.path), "schema_version": self.store.version, "index": self.index.stats()})
        return out

    def check(self) -> dict[str, Any]:
        store = self.store.integrity()
        index = self.index.check()
        ok = (
            index["ok"]
            and store["people_without_faces"] == 0
            and store["faces_without_person"] == 0
            and store["models_in_use"] <= 1
            and store["sqlite_quick_check_ok"] == 1
        )
        return {"ok": ok, "store": store, "index": index}

    def rebuild_index(self) -> None:
        self.index.rebuild()

    def save_index(self, force: bool = False) -> bool:
        self.index.sync()
        return self.index.save(force=force)

    def crops_to_reembed(self, model):
        return self.store.crops_to_reembed(model)

    def count_without_crops(self) -> int:
        return self.store.count_without_crops()

    def stage(self, model, dim, face_ids, vecs):
        self.store.stage(model, dim, face_ids, vecs)

    def swap_model(self, model, dim, drop_missing):
        out = self.store.swap_model(model, dim, drop_missing)
        self.index.sync()
        return out

    def close(self) -> None:
        try:
            self.index.save()
        except Exception as exc:  # noqa: BLE001 - the snapshot is an optimisation; never fail a close for it
            log.warning("gallery index: could not write snapshot: %s", exc)
        self.store.close()
