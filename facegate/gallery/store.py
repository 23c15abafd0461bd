"""SQLite: the gallery's source of truth.

Everything a gallery knows lives here (people, faces, embeddings, the model that made
them, quality metrics, crops for re-embedding, timestamps). The vector index is only an
accelerator rebuilt or caught up from this file, so its loss costs time, never data.

Durability and concurrency come from SQLite itself rather than from code of ours (the
connection, WAL, transactions and migrations are :class:`facegate.sqlite_db.SqliteDatabase`'s):

* WAL journal with ``synchronous=FULL``: a transaction is on disk when COMMIT returns,
  so anything acknowledged to a caller survives ``kill -9`` (and power loss).
* ``BEGIN IMMEDIATE`` for every write: writers from several processes queue on the
  database lock (``busy_timeout``) instead of failing on a lock upgrade.
* One transaction per enrolment: a person and all their faces appear together or not at all.
* ``changes``: every write appends a row with an AUTOINCREMENT ``seq``. Writers are
  serialised, so ``seq`` order is commit order and an index that has applied every change
  up to ``seq`` is exactly the store as of that change.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facegate.gallery.errors import (
    GalleryError,
    ModelMismatchError,
    NameTakenError,
    PersonNotFoundError,
)
from facegate.gallery.types import FaceRecord, GalleryState, Person, StoredFace
from facegate.sqlite_db import SqliteDatabase, apply_migrations

log = logging.getLogger(__name__)

_IN_CHUNK = 500  # ids per "IN (...)" list: well under SQLite's variable limit


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of the shipped migrations, in order."""
    return Store.migrations()


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending gallery migrations to ``conn`` and return the version (see :func:`apply_migrations`)."""
    return apply_migrations(conn, migrations(), label=Store.label, error=GalleryError, logger=log)


def to_blob(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)


def _person_row(row: Sequence[Any], model: str | None) -> Person:
    """A Person from a row of ``Store._PEOPLE_SQL`` (id, name, created, updated, faces)."""
    pid, name, created, updated, faces = row
    return Person(id=pid, name=name, created=created, updated=updated, faces=faces, model=model)


def _rowid(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just made (SQLite always sets it for an INSERT)."""
    if cur.lastrowid is None:  # pragma: no cover - not after an INSERT
        raise GalleryError("the store did not return the new row's id")
    return int(cur.lastrowid)


class Store(SqliteDatabase):
    """One connection to a gallery file. Thread-safe (one lock); use one Store per process.

    ``durable=False`` (``synchronous=NORMAL``) is for bulk benchmarks only: in WAL mode it
    still survives a killed process, but not a power cut.
    """

    migrations_package = "facegate.gallery"
    label = "gallery"
    error = GalleryError

    def __init__(self, path: str | Path, *, timeout: float = 60.0, durable: bool = True) -> None:
        # secure_delete: a deleted person's rows are overwritten, not left in free pages of the file
        super().__init__(path, timeout=timeout, durable=durable, pragmas={"secure_delete": "ON"})

    # -- meta -----------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, conn: sqlite3.Connection, **values: Any) -> None:
        for k, v in values.items():
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (k, str(v)))

    def model(self) -> tuple[str | None, int | None]:
        m = self.meta()
        return m.get("model"), int(m["dim"]) if "dim" in m else None

    def _check_model(self, conn: sqlite3.Connection, model: str, dim: int) -> None:
        """Within a write transaction: the first enrolment fixes the model; any other is refused."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        if row is None:
            self.set_meta(conn, model=model, dim=dim)
            return
        if row[0] != model:
            raise ModelMismatchError(
                f"this gallery holds embeddings from model {row[0]!r}, not {model!r}; scores across models "
                f"are meaningless. Use the gallery's model (--embedder), or convert the gallery with "
                f"'facegate reembed --embedder <new>'"
            )

    # -- people ---------------------------------------------------------------------------
    def _resolve(self, conn: sqlite3.Connection, ref: str | int) -> tuple[int, str]:
        """A person by exact name first, then by numeric id."""
        if isinstance(ref, str):
            row = conn.execute("SELECT id, name FROM people WHERE name = ?", (ref,)).fetchone()
            if row:
                return int(row[0]), row[1]
            if not ref.strip().isdigit():
                raise PersonNotFoundError(f"no enrolled person named {ref!r}")
            ref = int(ref)
        if not 0 <= int(ref) < 2**63:  # no such id can be stored; the driver would raise OverflowError
            raise PersonNotFoundError(f"no enrolled person with id {ref}")
        row = conn.execute("SELECT id, name FROM people WHERE id = ?", (int(ref),)).fetchone()
        if not row:
            raise PersonNotFoundError(f"no enrolled person with id {ref}")
        return int(row[0]), row[1]

    _PEOPLE_SQL = (
        "SELECT p.id, p.name, p.created, p.updated, "
        "(SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id) FROM people p"
    )

    def _person(self, conn: sqlite3.Connection, pid: int) -> Person:
        row = conn.execute(self._PEOPLE_SQL + " WHERE p.id = ?", (pid,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no enrolled person with id {pid}")
        model = conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        return _person_row(row, model[0] if model else None)

    def person(self, ref: str | int) -> Person:
        with self.read() as conn:
            pid, _ = self._resolve(conn, ref)
            return self._person(conn, pid)

    def people(self, limit: int | None = None, offset: int = 0) -> list[Person]:
        with self.read() as conn:
            model = conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
            sql = self._PEOPLE_SQL + " ORDER BY p.name"
            if limit is not None:
                sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
            return [_person_row(r, model[0] if model else None) for r in conn.execute(sql)]

    def names(self, ids: Sequence[int]) -> dict[int, str]:
        """id -> name for search results (one query per 500 ids)."""
        ids = list({int(i) for i in ids})
        out: dict[int, str] = {}
        with self._lock:
            for s in range(0, len(ids), _IN_CHUNK):
                chunk = ids[s : s + _IN_CHUNK]
                q = f"SELECT id, name FROM people WHERE id IN ({','.join('?' * len(chunk))})"
                out.update(self.conn.execute(q, chunk).fetchall())
        return out

    def faces(self, ref: str | int) -> list[StoredFace]:
        with self.read() as conn:
            pid, _ = self._resolve(conn, ref)
            rows = conn.execute(
                "SELECT id, person_id, model, quality, source, created FROM faces WHERE person_id = ? ORDER BY id",
                (pid,),
            ).fetchall()
        return [StoredFace(r[0], r[1], r[2], json.loads(r[3] or "{}"), r[4], r[5]) for r in rows]

    def photo_owners(self, shas: Sequence[str]) -> dict[str, list[tuple[int, str, int]]]:
        """sha256 of a photo's bytes -> [(person id, name, face id)] of the faces enrolled from it
        (index of migration 004)."""
        shas = list(dict.fromkeys(str(s) for s in shas))
        out: dict[str, list[tuple[int, str, int]]] = {}
        with self.read() as conn:
            for s in range(0, len(shas), _IN_CHUNK):
                chunk = shas[s : s + _IN_CHUNK]
                q = ("SELECT json_extract(f.quality, '$.photo_sha256'), p.id, p.name, f.id FROM faces f "
                     "JOIN people p ON p.id = f.person_id "
                     f"WHERE json_extract(f.quality, '$.photo_sha256') IN ({','.join('?' * len(chunk))}) ORDER BY f.id")
                for sha, pid, name, fid in conn.execute(q, chunk):
                    out.setdefault(str(sha), []).append((int(pid), str(name), int(fid)))
        return out

    def counts(self) -> tuple[int, int]:
        with self._lock:
            p = self.conn.execute("SELECT COUNT(*) FROM people").fetchone()[0]
            f = self.conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        return int(p), int(f)

    _HISTOGRAM_SQL = "SELECT n, COUNT(*) FROM (SELECT COUNT(*) AS n FROM faces GROUP BY person_id) GROUP BY n"

    def face_count_histogram(self) -> dict[int, int]:
        """Number of faces -> number of people enrolled with that many."""
        with self.read() as conn:
            return {int(n): int(c) for n, c in conn.execute(self._HISTOGRAM_SQL).fetchall()}

    def state(self) -> GalleryState:
        """Model, dimension, counts and face-count histogram in one read transaction (one snapshot
        of the file: a write committed by another connection meanwhile is either in all or in none)."""
        with self.read() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('model', 'dim')").fetchall())
            people = int(conn.execute("SELECT COUNT(*) FROM people").fetchone()[0])
            faces = int(conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0])
            hist = {int(n): int(c) for n, c in conn.execute(self._HISTOGRAM_SQL).fetchall()}
        dim = meta.get("dim")
        return GalleryState(meta.get("model"), None if dim is None else int(dim), people, faces, hist)

    def face_counts(self, ids: Sequence[int]) -> dict[int, int]:
        """person id -> faces enrolled, for the given ids (one read; people not found are left out)."""
        ids = list(dict.fromkeys(int(i) for i in ids))
        out: dict[int, int] = {}
        with self.read() as conn:
            for s in range(0, len(ids), _IN_CHUNK):
                chunk = ids[s : s + _IN_CHUNK]
                q = f"SELECT person_id, COUNT(*) FROM faces WHERE person_id IN ({','.join('?' * len(chunk))}) GROUP BY person_id"
                out.update((int(p), int(n)) for p, n in conn.execute(q, chunk).fetchall())
        return out

    # -- writes ---------------------------------------------------------------------------
    def _insert_faces(
        self, conn: sqlite3.Connection, pid: int, records: Sequence[FaceRecord], model: str, dim: int, now: float
    ) -> list[int]:
        ids = []
        for r in records:
            vec = np.asarray(r.embedding, dtype=np.float32).reshape(-1)
            if vec.shape[0] != dim:
                raise GalleryError(f"embedding has {vec.shape[0]} dimensions, the gallery's model has {dim}")
            cur = conn.execute(
                "INSERT INTO faces (person_id, model, dim, embedding, quality, source, box, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pid,
                    model,
                    dim,
                    to_blob(vec),
                    json.dumps(r.quality or {}),
                    r.source,
                    json.dumps(r.box) if r.box is not None else None,
                    now,
                ),
            )
            fid = _rowid(cur)
            ids.append(fid)
            if r.crop_jpeg is not None and r.crop_landmarks is not None:
                conn.execute(
                    "INSERT INTO face_crops (face_id, jpeg, landmarks) VALUES (?, ?, ?)",
                    (fid, r.crop_jpeg, json.dumps(r.crop_landmarks)),
                )
        return ids

    def _enrol_one(
        self, conn: sqlite3.Connection, name: str, records: Sequence[FaceRecord], model: str, dim: int, create: bool
    ) -> tuple[int, list[int], bool]:
        now = time.time()
        row = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        created = False
        if row is None:
            if not create:
                raise PersonNotFoundError(f"no enrolled person named {name!r} (and creating was not allowed)")
            pid = _rowid(conn.execute("INSERT INTO people (name, created, updated) VALUES (?, ?, ?)", (name, now, now)))
            created = True
        else:
            pid = int(row[0])
            conn.execute("UPDATE people SET updated = ? WHERE id = ?", (now, pid))
        ids = self._insert_faces(conn, pid, records, model, dim, now)
        conn.execute("INSERT INTO changes (person_id, kind, at) VALUES (?, 'person', ?)", (pid, now))
        return pid, ids, created

    def add_faces(
        self, name: str, records: Sequence[FaceRecord], model: str, dim: int, *, create: bool = True,
        note: Mapping[str, Any] | None = None,
    ) -> tuple[Person, list[int], bool]:
        """Store faces for ``name`` (created if new) in one transaction. Returns (person, face ids, created).

        When this returns, the faces are committed (durable); the caller may acknowledge them.
        ``note`` (with a ``token``) is committed with them, see :meth:`notes`.
        """
        if not name or not name.strip():
            raise GalleryError("a person needs a non-empty name")
        if not records:
            raise GalleryError("nothing to enrol: no faces")
        with self.write() as conn:
            self._check_model(conn, model, dim)
            pid, ids, created = self._enrol_one(conn, name, records, model, dim, create)
            person = self._person(conn, pid)
            self._note(conn, note, pid, person.name, {"faces": ids, "created": created})
        return person, ids, created

    def add_many(
        self, items: Sequence[tuple[str, Sequence[FaceRecord]]], model: str, dim: int
    ) -> list[tuple[int, list[int]]]:
        """Bulk enrolment (imports, benchmarks): all of ``items`` in one transaction."""
        out = []
        with self.write() as conn:
            self._check_model(conn, model, dim)
            for name, records in items:
                pid, ids, _ = self._enrol_one(conn, name, records, model, dim, True)
                out.append((pid, ids))
        return out

    def rename(self, ref: str | int, new_name: str, *, note: Mapping[str, Any] | None = None) -> Person:
        if not new_name or not new_name.strip():
            raise GalleryError("a person needs a non-empty name")
        with self.write() as conn:
            pid, old = self._resolve(conn, ref)
            if old != new_name:
                if conn.execute("SELECT 1 FROM people WHERE name = ?", (new_name,)).fetchone():
                    raise NameTakenError(f"another person is already named {new_name!r}")
                conn.execute("UPDATE people SET name = ?, updated = ? WHERE id = ?", (new_name, time.time(), pid))
            self._note(conn, note, pid, new_name, {"from": old})
            return self._person(conn, pid)

    def delete(self, ref: str | int, *, note: Mapping[str, Any] | None = None) -> Person:
        """Delete a person and (cascade) all their faces and crops."""
        with self.write() as conn:
            pid, _ = self._resolve(conn, ref)
            person = self._person(conn, pid)
            conn.execute("DELETE FROM people WHERE id = ?", (pid,))
            conn.execute("INSERT INTO changes (person_id, kind, at) VALUES (?, 'person', ?)", (pid, time.time()))
            self._note(conn, note, pid, person.name, {"faces": person.faces})
        return person

    # -- notes committed with writes (migration 003) ----------------------------------------------
    def _note(self, conn: sqlite3.Connection, note: Mapping[str, Any] | None, pid: int, name: str | None,
              detail: dict[str, Any]) -> None:
        if note is None:
            return
        result = {"person_id": pid, "name": name, "detail": detail}
        conn.execute("INSERT INTO outbox (token, at, note) VALUES (?, ?, ?)",
                     (str(note["token"]), time.time(), json.dumps({**note, "result": result})))

    def notes(self) -> list[tuple[str, float, dict[str, Any]]]:
        """(token, commit time, note with its write's ``result``) of every note not yet cleared, oldest first."""
        return [(t, float(at), json.loads(n)) for t, at, n in self.query("SELECT token, at, note FROM outbox ORDER BY at")]

    def clear_notes(self, tokens: Sequence[str]) -> None:
        with self.write() as conn:
            conn.executemany("DELETE FROM outbox WHERE token = ?", [(str(t),) for t in tokens])

    def delete_face(self, face_id: int, *, note: Mapping[str, Any] | None = None) -> tuple[int, bool]:
        """Delete one face; the person goes too when it was their last (no empty people).
        Returns (person id, whether the person was deleted)."""
        with self.write() as conn:
            row = conn.execute("SELECT person_id FROM faces WHERE id = ?", (face_id,)).fetchone()
            if row is None:
                raise PersonNotFoundError(f"no stored face with id {face_id}")
            pid = int(row[0])
            conn.execute("DELETE FROM faces WHERE id = ?", (face_id,))
            last = not conn.execute("SELECT 1 FROM faces WHERE person_id = ? LIMIT 1", (pid,)).fetchone()
            if last:
                conn.execute("DELETE FROM people WHERE id = ?", (pid,))
            conn.execute("INSERT INTO changes (person_id, kind, at) VALUES (?, 'person', ?)", (pid, time.time()))
            self._note(conn, note, pid, None, {"face": int(face_id), "person_deleted": last})
        return pid, last

    def face_crop(self, person_id: int, face_id: int) -> bytes:
        """The stored JPEG crop of one face of one person."""
        rows = self.query(
            "SELECT c.jpeg FROM face_crops c JOIN faces f ON f.id = c.face_id WHERE c.face_id = ? AND f.person_id = ?",
            (int(face_id), int(person_id)),
        )
        if not rows:
            raise PersonNotFoundError(f"no stored crop for face {face_id} of person {person_id}")
        return bytes(rows[0][0])

    def person_embeddings(self, ref: str | int) -> np.ndarray:
        """The stored embeddings of one person's faces, one row per face."""
        with self.read() as conn:
            pid, _ = self._resolve(conn, ref)
            rows = conn.execute("SELECT dim, embedding FROM faces WHERE person_id = ? ORDER BY id", (pid,)).fetchall()
        return from_blobs([r[1] for r in rows], int(rows[0][0])) if rows else np.zeros((0, 0), np.float32)

    def reset_index(self, conn: sqlite3.Connection) -> None:
        """Within a write transaction: tell every index to rebuild from scratch."""
        conn.execute("INSERT INTO changes (person_id, kind, at) VALUES (NULL, 'reset', ?)", (time.time(),))

    # -- what indexes read (call inside ``read()`` for a consistent snapshot) -------------------
    def max_seq(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])

    def changes_after(self, seq: int) -> list[tuple[int, int | None, str]]:
        with self._lock:
            return [
                (int(s), None if p is None else int(p), k)
                for s, p, k in self.conn.execute(
                    "SELECT seq, person_id, kind FROM changes WHERE seq > ? ORDER BY seq", (seq,)
                )
            ]

    def embeddings_of(self, person_ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(face ids, person ids, embeddings) of the given people's faces."""
        fids: list[int] = []
        pids: list[int] = []
        blobs: list[bytes] = []
        ids = sorted({int(p) for p in person_ids})
        with self._lock:
            for s in range(0, len(ids), _IN_CHUNK):
                chunk = ids[s : s + _IN_CHUNK]
                q = (
                    "SELECT id, person_id, embedding FROM faces "
                    f"WHERE person_id IN ({','.join('?' * len(chunk))}) ORDER BY id"
                )
                for fid, pid, blob in self.conn.execute(q, chunk):
                    fids.append(fid)
                    pids.append(pid)
                    blobs.append(blob)
        return np.array(fids, dtype=np.int64), np.array(pids, dtype=np.int64), from_blobs(blobs, dim)

    def iter_embeddings(self, dim: int, chunk: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every face, in id order, in chunks of (face ids, person ids, embeddings)."""
        with self._lock:
            cur = self.conn.execute("SELECT id, person_id, embedding FROM faces ORDER BY id")
            while True:
                rows = cur.fetchmany(chunk)
                if not rows:
                    return
                fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                pids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
                yield fids, pids, from_blobs([r[2] for r in rows], dim)

    # -- re-embedding -----------------------------------------------------------------------
    def crops_to_reembed(self, model: str, chunk: int = 256) -> Iterator[list[tuple[int, bytes, list]]]:
        """Faces with a crop and no staged embedding for ``model`` yet, in chunks (resumable)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT c.face_id FROM face_crops c LEFT JOIN reembed_staging s "
                "ON s.face_id = c.face_id AND s.model = ? WHERE s.face_id IS NULL ORDER BY c.face_id",
                (model,),
            ).fetchall()
        todo = [r[0] for r in rows]
        for s in range(0, len(todo), chunk):
            ids = todo[s : s + chunk]
            with self._lock:
                got = self.conn.execute(
                    f"SELECT face_id, jpeg, landmarks FROM face_crops WHERE face_id IN ({','.join('?' * len(ids))})",
                    ids,
                ).fetchall()
            yield [(int(f), bytes(j), json.loads(lm)) for f, j, lm in got]

    def count_without_crops(self) -> int:
        with self._lock:
            return int(
                self.conn.execute(
                    "SELECT COUNT(*) FROM faces f LEFT JOIN face_crops c ON c.face_id = f.id WHERE c.face_id IS NULL"
                ).fetchone()[0]
            )

    def stage(self, model: str, dim: int, face_ids: Sequence[int], vecs: np.ndarray) -> None:
        with self.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO reembed_staging (face_id, model, dim, embedding) VALUES (?, ?, ?, ?)",
                [(int(f), model, dim, to_blob(v)) for f, v in zip(face_ids, vecs)],
            )

    def swap_model(self, model: str, dim: int, drop_missing: bool) -> dict[str, int]:
        """Replace every embedding by its staged one for ``model`` in ONE transaction.

        Faces with no staged embedding (no crop, or the crop had no usable face) are deleted
        when ``drop_missing``, otherwise the swap is refused: a gallery is one model or none.
        """
        with self.write() as conn:
            missing = conn.execute(
                "SELECT COUNT(*) FROM faces f LEFT JOIN reembed_staging s ON s.face_id = f.id AND s.model = ? "
                "WHERE s.face_id IS NULL",
                (model,),
            ).fetchone()[0]
            if missing and not drop_missing:
                raise GalleryError(
                    f"{missing} stored face(s) could not be re-embedded (no crop kept, or no face found in it); "
                    "nothing was changed. Re-run with --drop-missing to delete them, or re-enrol those people"
                )
            conn.execute(
                "DELETE FROM faces WHERE id NOT IN (SELECT face_id FROM reembed_staging WHERE model = ?)", (model,)
            )
            conn.execute("DELETE FROM people WHERE id NOT IN (SELECT DISTINCT person_id FROM faces)")
            n = conn.execute(
                "UPDATE faces SET model = ?, dim = ?, embedding = "
                "(SELECT s.embedding FROM reembed_staging s WHERE s.face_id = faces.id AND s.model = ?)",
                (model, dim, model),
            ).rowcount
            conn.execute("DELETE FROM reembed_staging")
            self.set_meta(conn, model=model, dim=dim)
            self.reset_index(conn)
        return {"reembedded": int(n), "dropped": int(missing)}

    # -- integrity ------------------------------------------------------------------------
    def integrity(self) -> dict[str, int]:
        """Counts that must be zero in a healthy gallery (used by tests and ``check``)."""
        with self.read() as conn:
            empty = conn.execute(
                "SELECT COUNT(*) FROM people p WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id)"
            ).fetchone()[0]
            orphans = conn.execute(
                "SELECT COUNT(*) FROM faces f WHERE NOT EXISTS (SELECT 1 FROM people p WHERE p.id = f.person_id)"
            ).fetchone()[0]
            models = conn.execute("SELECT COUNT(DISTINCT model) FROM faces").fetchone()[0]
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        return {
            "people_without_faces": int(empty),
            "faces_without_person": int(orphans),
            "models_in_use": int(models),
            "sqlite_quick_check_ok": int(ok == "ok"),
        }
