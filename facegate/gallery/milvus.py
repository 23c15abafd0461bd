"""Milvus backend: the same gallery interface on a distributed vector database.

Point a gallery at a Milvus server or cluster with::

    Config(backend="milvus", milvus_uri="http://milvus.example:19530")
    # CLI: facegate --backend milvus --milvus-uri http://milvus.example:19530 identify photo.jpg
    # (token/database via FACEGATE_MILVUS_TOKEN / FACEGATE_MILVUS_DB, see ``MilvusBackend``)

A local file path as ``milvus_uri`` runs milvus-lite (embedded, same client API), which
is what the tests use. Three collections, prefixed (default ``facegate``):

* ``<prefix>_meta``   key/value: model id, dimension, matching rule;
* ``<prefix>_people`` id, name, timestamps, face count and the person's *template*
  (unit mean of their faces), indexed HNSW/IP: searched under rule ``mean``;
* ``<prefix>_faces``  one row per face embedding, indexed HNSW/IP: searched under rule ``max``.

What differs from SQLite, stated rather than hidden: Milvus has no transaction across
collections, so an enrolment writes the faces first and the person row last. A crash in
between leaves faces without a person row; they are invisible (searches only report
people that have a row; rule ``mean`` searches the people collection) and :meth:`repair`
deletes them. Names are unique by check-then-write, which two concurrent writers of the
same new name could race; the SQLite backend enforces both with transactions.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from facegate.gallery.backend import DEFAULT_RULE, GalleryBackend
from facegate.gallery.errors import (
    GalleryError,
    ModelMismatchError,
    NameTakenError,
    PersonNotFoundError,
)
from facegate.gallery.index import RULES, normalize
from facegate.gallery.types import Person, StoredFace

log = logging.getLogger(__name__)

_META_DIM = 2  # Milvus collections need a vector field; the meta collection's is a placeholder


def _quote(s: str) -> str:
    """A Milvus filter string literal."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class MilvusBackend(GalleryBackend):
    """Gallery storage and search in Milvus (``uri``: ``http://host:19530`` or a milvus-lite file)."""

    name = "milvus"

    def __init__(
        self,
        uri: str,
        *,
        rule: str | None = None,
        prefix: str = "facegate",
        token: str = "",
        db_name: str = "",
        index_type: str = "HNSW",
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 128,
        **_ignored: Any,
    ) -> None:
        import os

        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise GalleryError(
                "the milvus backend needs pymilvus: pip install pymilvus (and milvus-lite for local files)"
            ) from exc
        self.uri = uri
        token = token or os.environ.get("FACEGATE_MILVUS_TOKEN", "")
        db_name = db_name or os.environ.get("FACEGATE_MILVUS_DB", "")
        if "://" not in uri:  # a local file: milvus-lite
            from pathlib import Path

            Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
            uri = str(Path(uri).expanduser())
        kwargs: dict[str, Any] = {"uri": uri}
        if token:
            kwargs["token"] = token
        if db_name:
            kwargs["db_name"] = db_name
        try:
            self.client = MilvusClient(**kwargs)
        except Exception as exc:
            raise GalleryError(f"cannot connect to Milvus at {uri}: {exc}") from exc
        self.prefix = prefix
        self.meta_c, self.people_c, self.faces_c = f"{prefix}_meta", f"{prefix}_people", f"{prefix}_faces"
        self.index_type = index_type
        self.index_params = {"M": hnsw_m, "efConstruction": ef_construction} if index_type == "HNSW" else {}
        self.search_params = {"params": {"ef": ef_search}} if index_type == "HNSW" else {}
        self._ensure_meta()
        meta = self._meta()
        self.rule = rule or meta.get("rule") or DEFAULT_RULE
        if self.rule not in RULES:
            raise GalleryError(f"unknown matching rule {self.rule!r}; use one of {', '.join(RULES)}")
        if meta.get("rule") != self.rule:
            self._set_meta(rule=self.rule)

    # -- schema -----------------------------------------------------------------------------
    def _ensure_meta(self) -> None:
        from pymilvus import DataType, MilvusClient

        if self.client.has_collection(self.meta_c):
            return
        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        s.add_field("value", DataType.VARCHAR, max_length=4096)
        s.add_field("v", DataType.FLOAT_VECTOR, dim=_META_DIM)
        ip = self.client.prepare_index_params()
        ip.add_index(field_name="v", index_type="FLAT", metric_type="L2")
        self.client.create_collection(self.meta_c, schema=s, index_params=ip, consistency_level="Strong")

    def _ensure_data(self, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        if not self.client.has_collection(self.people_c):
            s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("name", DataType.VARCHAR, max_length=1024)
            s.add_field("created", DataType.DOUBLE)
            s.add_field("updated", DataType.DOUBLE)
            s.add_field("faces", DataType.INT64)
            s.add_field("template", DataType.FLOAT_VECTOR, dim=dim)
            ip = self.client.prepare_index_params()
            ip.add_index(field_name="template", index_type=self.index_type, metric_type="IP", params=self.index_params)
            self.client.create_collection(self.people_c, schema=s, index_params=ip, consistency_level="Strong")
        if not self.client.has_collection(self.faces_c):
            s = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("person_id", DataType.INT64)
            s.add_field("model", DataType.VARCHAR, max_length=256)
            s.add_field("quality", DataType.VARCHAR, max_length=4096)
            s.add_field("source", DataType.VARCHAR, max_length=2048)
            s.add_field("created", DataType.DOUBLE)
            s.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
            ip = self.client.prepare_index_params()
            ip.add_index(field_name="embedding", index_type=self.index_type, metric_type="IP", params=self.index_params)
            self.client.create_collection(self.faces_c, schema=s, index_params=ip, consistency_level="Strong")

    def _meta(self) -> dict[str, str]:
        rows = self.client.query(self.meta_c, filter='key != ""', output_fields=["key", "value"], limit=100)
        return {r["key"]: r["value"] for r in rows}

    def _set_meta(self, **values: Any) -> None:
        self.client.upsert(
            self.meta_c, [{"key": k, "value": str(v), "v": [0.0] * _META_DIM} for k, v in values.items()]
        )

    # -- helpers ----------------------------------------------------------------------------
    def model(self) -> tuple[str | None, int | None]:
        m = self._meta()
        return m.get("model"), int(m["dim"]) if "dim" in m else None

    def _check_model(self, model: str, dim: int) -> None:
        stored, _ = self.model()
        if stored is None:
            self._set_meta(model=model, dim=dim)
        elif stored != model:
            raise ModelMismatchError(
                f"this gallery holds embeddings from model {stored!r}, not {model!r}; scores across models are "
                "meaningless. Use the gallery's model, or enrol into a new collection prefix"
            )
        self._ensure_data(dim)

    def _has_data(self) -> bool:
        return self.client.has_collection(self.people_c)

    def _row_person(self, r: dict[str, Any], model: str | None) -> Person:
        return Person(int(r["id"]), r["name"], float(r["created"]), float(r["updated"]), int(r["faces"]), model)

    def _find(
        self, ref: str | int, fields: Sequence[str] = ("id", "name", "created", "updated", "faces")
    ) -> dict[str, Any]:
        if not self._has_data():
            raise PersonNotFoundError(f"no enrolled person {ref!r}; the gallery is empty")
        if isinstance(ref, str):
            rows = self.client.query(
                self.people_c, filter=f"name == {_quote(ref)}", output_fields=list(fields), limit=2
            )
            if rows:
                return rows[0]
            if not ref.strip().isdigit():
                raise PersonNotFoundError(f"no enrolled person named {ref!r}")
            ref = int(ref)
        if not 0 <= int(ref) < 2**63:  # no such id can be stored (Milvus INT64 keys)
            raise PersonNotFoundError(f"no enrolled person with id {ref}")
        rows = self.client.query(self.people_c, filter=f"id == {int(ref)}", output_fields=list(fields), limit=1)
        if not rows:
            raise PersonNotFoundError(f"no enrolled person with id {ref}")
        return rows[0]

    def _face_vectors(self, pid: int) -> np.ndarray:
        rows = self.client.query(self.faces_c, filter=f"person_id == {pid}", output_fields=["embedding"], limit=16384)
        return np.array([r["embedding"] for r in rows], dtype=np.float32)

    # -- writes -----------------------------------------------------------------------------
    def add_faces(self, name, records, model, dim, *, create=True):
        if not name or not name.strip():
            raise GalleryError("a person needs a non-empty name")
        if not records:
            raise GalleryError("nothing to enrol: no faces")
        self._check_model(model, dim)
        now = time.time()
        rows = self.client.query(
            self.people_c, filter=f"name == {_quote(name)}", output_fields=["id", "created"], limit=1
        )
        if rows:
            pid, created_at, created = int(rows[0]["id"]), float(rows[0]["created"]), False
        elif create:
            pid, created_at, created = secrets.randbits(62) or 1, now, True
        else:
            raise PersonNotFoundError(f"no enrolled person named {name!r} (and creating was not allowed)")
        data = []
        for r in records:
            vec = np.asarray(r.embedding, dtype=np.float32).reshape(-1)
            if vec.shape[0] != dim:
                raise GalleryError(f"embedding has {vec.shape[0]} dimensions, the gallery's model has {dim}")
            data.append(
                {
                    "person_id": pid,
                    "model": model,
                    "quality": json.dumps(r.quality or {})[:4000],
                    "source": (r.source or "")[:2000],
                    "created": now,
                    "embedding": vec.tolist(),
                }
            )
        ids = [int(i) for i in self.client.insert(self.faces_c, data)["ids"]]
        vecs = self._face_vectors(pid)  # faces first, person row last (see module docstring)
        template = normalize(vecs.sum(axis=0))
        self.client.upsert(
            self.people_c,
            [
                {
                    "id": pid,
                    "name": name,
                    "created": created_at,
                    "updated": now,
                    "faces": len(vecs),
                    "template": template.tolist(),
                }
            ],
        )
        return Person(pid, name, created_at, now, len(vecs), model), ids, created

    def add_many(self, items, model, dim):
        out = []
        for name, records in items:
            person, ids, _ = self.add_faces(name, records, model, dim)
            out.append((person.id, ids))
        return out

    def rename(self, ref, new_name):
        if not new_name or not new_name.strip():
            raise GalleryError("a person needs a non-empty name")
        row = self._find(ref, ("id", "name", "created", "updated", "faces", "template"))
        if row["name"] != new_name:
            if self.client.query(self.people_c, filter=f"name == {_quote(new_name)}", output_fields=["id"], limit=1):
                raise NameTakenError(f"another person is already named {new_name!r}")
            row = dict(row, name=new_name, updated=time.time())
            row["template"] = [float(x) for x in row["template"]]
            self.client.upsert(self.people_c, [row])
        return self._row_person(row, self.model()[0])

    def delete(self, ref):
        row = self._find(ref)
        pid = int(row["id"])
        self.client.delete(self.people_c, ids=[pid])  # person row first: the person disappears at once
        self.client.delete(self.faces_c, filter=f"person_id == {pid}")
        return self._row_person(row, self.model()[0])

    # -- reads ------------------------------------------------------------------------------
    def embeddings(self, ref: str | int) -> np.ndarray:
        return self._face_vectors(int(self._find(ref)["id"]))

    def people(self, limit=None, offset=0):
        if not self._has_data():
            return []
        model = self.model()[0]
        it = self.client.query_iterator(
            self.people_c,
            batch_size=1000,
            filter="id >= 0",
            output_fields=["id", "name", "created", "updated", "faces"],
        )
        rows: list[dict[str, Any]] = []
        try:
            while True:
                batch = it.next()
                if not batch:
                    break
                rows.extend(batch)
        finally:
            it.close()
        people = sorted((self._row_person(r, model) for r in rows), key=lambda p: p.name)
        return people[offset : None if limit is None else offset + limit]

    def person(self, ref):
        return self._row_person(self._find(ref), self.model()[0])

    def faces(self, ref):
        pid = int(self._find(ref)["id"])
        rows = self.client.query(
            self.faces_c,
            filter=f"person_id == {pid}",
            output_fields=["id", "person_id", "model", "quality", "source", "created"],
            limit=16384,
        )
        out = [
            StoredFace(
                int(r["id"]),
                int(r["person_id"]),
                r["model"],
                json.loads(r["quality"] or "{}"),
                r["source"] or None,
                float(r["created"]),
            )
            for r in rows
        ]
        return sorted(out, key=lambda f: f.id)

    def counts(self) -> tuple[int, int]:
        if not self._has_data():
            return 0, 0
        p = self.client.query(self.people_c, filter="", output_fields=["count(*)"])[0]["count(*)"]
        f = self.client.query(self.faces_c, filter="", output_fields=["count(*)"])[0]["count(*)"]
        return int(p), int(f)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, str, float]]]:
        q = normalize(np.atleast_2d(queries))
        if not self._has_data():
            return [[] for _ in range(len(q))]
        data = [v.tolist() for v in q]
        if self.rule == "mean":
            res = self.client.search(
                self.people_c,
                data=data,
                limit=k,
                anns_field="template",
                output_fields=["name"],
                search_params=self.search_params,
            )
            return [[(int(h["id"]), h["entity"]["name"], float(h["distance"])) for h in hits] for hits in res]
        res = self.client.search(
            self.faces_c,
            data=data,
            limit=k * 4,
            anns_field="embedding",
            output_fields=["person_id"],
            search_params=self.search_params,
        )
        best: list[dict[int, float]] = []
        for hits in res:
            row: dict[int, float] = {}
            for h in hits:
                pid = int(h["entity"]["person_id"])
                row.setdefault(pid, float(h["distance"]))
            best.append(row)
        pids = sorted({p for row in best for p in row})
        names: dict[int, str] = {}
        for s in range(0, len(pids), 1000):
            chunk = pids[s : s + 1000]
            for r in self.client.query(
                self.people_c, filter=f"id in {chunk}", output_fields=["id", "name"], limit=len(chunk)
            ):
                names[int(r["id"])] = r["name"]
        return [[(p, names[p], s) for p, s in row.items() if p in names][:k] for row in best]

    # -- maintenance ------------------------------------------------------------------------
    def check(self) -> dict[str, Any]:
        """Faces whose person row is missing (an enrolment interrupted between the two writes)."""
        if not self._has_data():
            return {"ok": True, "orphan_faces": 0}
        people = {p.id for p in self.people()}
        it = self.client.query_iterator(
            self.faces_c, batch_size=1000, filter="id >= 0", output_fields=["id", "person_id"]
        )
        orphans = []
        try:
            while True:
                batch = it.next()
                if not batch:
                    break
                orphans += [int(r["id"]) for r in batch if int(r["person_id"]) not in people]
        finally:
            it.close()
        return {"ok": not orphans, "orphan_faces": len(orphans), "orphan_face_ids": orphans[:100]}

    def repair(self) -> int:
        """Delete faces left without a person row; returns how many."""
        ids = self.check().get("orphan_face_ids", [])
        n = 0
        while ids:
            self.client.delete(self.faces_c, ids=ids)
            n += len(ids)
            ids = self.check().get("orphan_face_ids", [])
        return n

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(
            {"uri": self.uri, "collections": [self.meta_c, self.people_c, self.faces_c], "index_type": self.index_type}
        )
        return out

    def drop(self) -> None:
        """Delete the gallery's collections (tests, teardown)."""
        for c in (self.faces_c, self.people_c, self.meta_c):
            if self.client.has_collection(c):
                self.client.drop_collection(c)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception as exc:  # pragma: no cover  # noqa: BLE001 - closing a dead connection
            log.debug("milvus: close failed: %s", exc)
