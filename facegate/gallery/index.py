"""The vector index: a FAISS accelerator over the SQLite store, rebuildable at any time.

Two layers:

* :class:`VectorIndex` - an append-only FAISS index (exact ``IndexFlatIP`` or
  ``IndexHNSWFlat`` with inner product) plus three parallel arrays: the entry key (face
  id or person id), its label (person id) and an ``alive`` flag. Removal is a tombstone
  (HNSW cannot delete); tombstoned entries are filtered inside the search with an
  ``IDSelectorBitmap`` and the index is compacted when they pass a quarter of it.
* :class:`IndexManager` - keeps one process's index equal to the store: it remembers the
  last applied change ``seq`` and, before every search, applies newer changes (re-reading
  only the people they name), or rebuilds when told to (``reset``) or when that is cheaper.
  A snapshot file (written atomically) makes opening a large gallery fast; a missing,
  stale or foreign snapshot is ignored and the index rebuilt from SQLite.

Identity-level matching ("rule"): ``mean`` indexes one entry per person, the
re-normalised mean of their face embeddings (a template); ``max`` indexes every face and
scores a person by their best face. ``benchmarks/bench_gallery.py`` measures both.

HNSW parameters (M 32, efConstruction 40, efSearch 64, re-search at 1024 when the best
two people are within 0.02) were chosen on 1M identities shaped like dlib embeddings of
LFW (2 CPU cores): one search at ef 64 finds the exact top-1 only 87% of the time there
(such embeddings have ~30 effective dimensions and no cluster structure, which is hard
for graph search), ef 1024 finds 99.6% but takes 9.7 ms; re-searching only the ambiguous
44% gives the same 99.6% at a median of 1.07 ms (p99 11.6 ms), against 55 ms for a NumPy
scan. Build: 410 s from SQLite; 801 MB of index.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from facegate.files import private_dir, restrict
from facegate.gallery.errors import GalleryError

log = logging.getLogger(__name__)

RULES = ("mean", "max")
KINDS = ("auto", "flat", "hnsw")
SNAPSHOT_VERSION = 1


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise GalleryError("the gallery needs faiss: pip install faiss-cpu") from exc
    return faiss


def normalize(vecs: np.ndarray) -> np.ndarray:
    vecs = np.asarray(vecs, dtype=np.float32)
    return vecs / np.maximum(np.linalg.norm(vecs, axis=-1, keepdims=True), 1e-12)


def _stack_parts(parts: list, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate the (face ids, person ids, vectors) chunks of ``Store.iter_embeddings``."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def person_templates(pids: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique person ids, unit mean embedding of each person's faces)."""
    if len(pids) == 0:
        return np.zeros(0, np.int64), np.zeros((0, vecs.shape[1] if vecs.ndim == 2 else 0), np.float32)
    order = np.argsort(pids, kind="stable")
    p = pids[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    sums = np.add.reduceat(vecs[order].astype(np.float64), starts, axis=0)
    return p[starts].astype(np.int64), normalize(sums.astype(np.float32))


class _Column:
    """A numpy array with amortised O(1) append (capacity doubling)."""

    def __init__(self, dtype: Any, data: np.ndarray | None = None) -> None:
        self.buf = np.zeros(max(16, 0 if data is None else len(data)), dtype=dtype)
        self.n = 0
        if data is not None:
            self.extend(data)

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self.buf.dtype)
        need = self.n + len(values)
        if need > len(self.buf):
            grown = np.zeros(max(need, 2 * len(self.buf)), dtype=self.buf.dtype)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.buf[: self.n]


class VectorIndex:
    """Unit vectors searched by inner product (= cosine), each tagged with a key and a person label."""

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 64,
        ef_retry: int = 1024,
        retry_margin: float = 0.02,
        _faiss_index: Any = None,
    ) -> None:
        if kind not in ("flat", "hnsw"):
            raise GalleryError(f"unknown index kind {kind!r}; use flat or hnsw")
        faiss = _faiss()
        self.dim = int(dim)
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.ef_retry = ef_retry
        self.retry_margin = retry_margin
        self.retries = 0  # queries that needed the second, wider search (diagnostics)
        if _faiss_index is not None:
            self.faiss = _faiss_index
        elif kind == "flat":
            self.faiss = faiss.IndexFlatIP(self.dim)
        else:
            self.faiss = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.faiss.hnsw.efConstruction = ef_construction
            self.faiss.hnsw.efSearch = ef_search
        self.keys = _Column(np.int64)
        self.labels = _Column(np.int64)
        self.alive = _Column(np.bool_)
        self.n_dead = 0
        self._bitmap: np.ndarray | None = None
        self._selector: Any = None

    # -- size -----------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return self.keys.n

    @property
    def n_alive(self) -> int:
        return self.ntotal - self.n_dead

    def memory_bytes(self) -> int:
        """Bytes held by the FAISS structures and our id arrays (not Python overhead)."""
        n = self.ntotal
        total = n * self.dim * 4 + n * (8 + 8 + 1)
        if self.kind == "hnsw":
            h = self.faiss.hnsw
            total += h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4
        return int(total)

    # -- changes --------------------------------------------------------------------------
    def add(self, keys: np.ndarray, labels: np.ndarray, vecs: np.ndarray) -> None:
        if len(keys) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(keys), self.dim)
        self.faiss.add(vecs)
        self.keys.extend(keys)
        self.labels.extend(labels)
        self.alive.extend(np.ones(len(keys), dtype=bool))
        self._selector = None

    def remove_labels(self, labels: Iterable[int]) -> int:
        """Tombstone every live entry of these people; returns how many."""
        labels = np.fromiter((int(x) for x in labels), dtype=np.int64)
        if not len(labels) or not self.ntotal:
            return 0
        hit = np.isin(self.labels.view, labels) & self.alive.view
        n = int(hit.sum())
        if n:
            self.alive.view[hit] = False
            self.n_dead += n
            self._selector = None
            self.zero_labels(labels)
        return n

    def zero_labels(self, labels: Iterable[int]) -> int:
        """Overwrite with zeros the stored vectors of these labels' tombstoned entries; returns how many.

        A tombstone keeps its vector in FAISS's storage until the next compaction, and with it in
        every snapshot: a deleted person's template, or a template that still averages a deleted
        face. Zeroed, a tombstone scores 0 against everything (it is never returned anyway).
        """
        labels = np.fromiter((int(x) for x in labels), dtype=np.int64)
        n = self.ntotal
        if not len(labels) or not n:
            return 0
        hit = np.isin(self.labels.view, labels) & ~self.alive.view
        if hit.any():
            faiss = _faiss()
            flat = self.faiss if self.kind == "flat" else faiss.downcast_index(self.faiss.storage)
            faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)[hit] = 0.0
        return int(hit.sum())

    def vectors(self) -> np.ndarray:
        """All stored vectors, dead ones included, in position order."""
        faiss = _faiss()
        n = self.ntotal
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        flat = self.faiss if self.kind == "flat" else faiss.downcast_index(self.faiss.storage)
        return faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim).copy()

    def rebuilt(self, kind: str | None = None) -> VectorIndex:
        """A new index of the live entries only (compaction and flat<->HNSW switches)."""
        out = VectorIndex(
            self.dim,
            kind or self.kind,
            hnsw_m=self.hnsw_m,
            ef_construction=self.ef_construction,
            ef_search=self.ef_search,
            ef_retry=self.ef_retry,
            retry_margin=self.retry_margin,
        )
        keep = self.alive.view
        out.add(self.keys.view[keep], self.labels.view[keep], self.vectors()[keep])
        return out

    # -- search ---------------------------------------------------------------------------
    def _params(self, ef: int | None = None) -> Any:
        faiss = _faiss()
        params = faiss.SearchParametersHNSW() if self.kind == "hnsw" else faiss.SearchParameters()
        if self.kind == "hnsw":
            params.efSearch = int(ef or self.ef_search)
        if self.n_dead:
            if self._selector is None:
                self._bitmap = np.packbits(self.alive.view, bitorder="little")
                self._selector = faiss.IDSelectorBitmap(self.ntotal, faiss.swig_ptr(self._bitmap))
            params.sel = self._selector
        return params

    def search(self, queries: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-``k`` live entries per query: (scores, labels, keys), padded with -inf / -1.
        ``ef``: HNSW search breadth for this call (default ``ef_search``)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        nq = len(q)
        k = int(min(k, self.n_alive))
        if k <= 0:
            empty = np.zeros((nq, 0))
            return empty.astype(np.float32), empty.astype(np.int64), empty.astype(np.int64)
        faiss = _faiss()
        one_thread = nq <= 4 and self.kind == "flat"
        if one_thread:  # OpenMP threads only add overhead to a single exact query (measured: ~2x slower)
            prev = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
        try:
            scores, pos = self.faiss.search(q, k, params=self._params(ef))
        finally:
            if one_thread:
                faiss.omp_set_num_threads(prev)
        valid = pos >= 0
        safe = np.where(valid, pos, 0)
        labels = np.where(valid, self.labels.buf[safe], -1)
        keys = np.where(valid, self.keys.buf[safe], -1)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        return scores, labels, keys

    def search_people(self, queries: np.ndarray, k: int, oversample: int = 1) -> list[list[tuple[int, float]]]:
        """Top-``k`` distinct people per query, each scored by their best entry.

        With one entry per person this is the plain search. With several (rule ``max``),
        entries are fetched ``k * oversample`` at a time, widening until ``k`` distinct
        people are found, so for exact search the answer is exact.

        HNSW answers are re-searched with ``ef_retry`` when they are ambiguous: when the
        best two people are within ``retry_margin`` of each other. A confident answer (a
        clear best match) is almost always the exact one; the ambiguous ones are where a
        narrow search misses the true nearest (measured on LFW-like data at 1M people:
        ef 64 alone finds the exact top-1 for 86.9%, with the retry at 1024 99.6%, for a
        median cost of 1.07 ms; see benchmarks/bench_gallery.py and the module docstring).
        """
        q = np.atleast_2d(queries)
        out = self._search_people(q, k, oversample, None)
        if self.kind == "hnsw" and self.ef_retry > self.ef_search and k >= 1:
            runner_up = min(2, self.n_alive)
            redo = [
                i
                for i, row in enumerate(out)
                if len(row) < runner_up or (len(row) >= 2 and row[0][1] - row[1][1] < self.retry_margin)
            ]
            if redo:
                self.retries += len(redo)
                kk = max(k, 2)
                wide = self._search_people(q[redo], kk, oversample, self.ef_retry)
                for i, row in zip(redo, wide):
                    out[i] = row
        return [row[:k] for row in out]

    def _search_people(self, q: np.ndarray, k: int, oversample: int, ef: int | None) -> list[list[tuple[int, float]]]:
        out: list[list[tuple[int, float]] | None] = [None] * len(q)
        todo = np.arange(len(q))
        want = max(k, 2) * max(1, oversample)  # at least two people: the retry rule needs a runner-up
        while len(todo):
            want = min(max(want, k), self.n_alive)
            scores, labels, _ = self.search(q[todo], want, ef)
            again = []
            for row, qi in enumerate(todo):
                seen: dict[int, float] = {}
                for s, lab in zip(scores[row], labels[row]):
                    if lab < 0:
                        break
                    if int(lab) not in seen:
                        seen[int(lab)] = float(s)
                        if len(seen) == max(k, 2):
                            break
                if len(seen) < k and want < self.n_alive:
                    again.append(qi)
                else:
                    out[qi] = list(seen.items())
            todo = np.array(again, dtype=np.int64)
            want *= 4
        return [o or [] for o in out]

    # -- persistence ----------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        faiss = _faiss()
        return {
            "faiss": faiss.serialize_index(self.faiss),
            "keys": self.keys.view,
            "labels": self.labels.view,
            "alive": self.alive.view,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> VectorIndex:
        faiss = _faiss()
        fi = faiss.deserialize_index(np.asarray(arrays["faiss"], dtype=np.uint8))
        out = cls(
            int(info["dim"]),
            info["kind"],
            hnsw_m=int(info.get("hnsw_m", 32)),
            ef_construction=int(info.get("ef_construction", 40)),
            ef_search=int(info.get("ef_search", 64)),
            ef_retry=int(info.get("ef_retry", 1024)),
            retry_margin=float(info.get("retry_margin", 0.02)),
            _faiss_index=fi,
        )
        out.keys.extend(arrays["keys"])
        out.labels.extend(arrays["labels"])
        out.alive.extend(arrays["alive"])
        out.n_dead = int((~out.alive.view).sum())
        if fi.ntotal != out.ntotal:
            raise GalleryError("index snapshot is inconsistent (vector count != id count)")
        return out


class IndexManager:
    """One process's index over a :class:`~facegate.gallery.store.Store`, kept caught up.

    ``kind="auto"`` is exact (flat) below ``ann_threshold`` entries and HNSW above (with
    hysteresis: back to flat only below half the threshold). Snapshots are written when
    the index has at least ``snapshot_min`` entries (smaller ones rebuild in milliseconds).
    """

    def __init__(
        self,
        store: Any,
        *,
        rule: str = "mean",
        kind: str = "auto",
        ann_threshold: int = 50_000,
        snapshot: Path | None = None,
        snapshot_min: int = 20_000,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 64,
        ef_retry: int = 1024,
        retry_margin: float = 0.02,
    ) -> None:
        if rule not in RULES:
            raise GalleryError(f"unknown matching rule {rule!r}; use one of {', '.join(RULES)}")
        if kind not in KINDS:
            raise GalleryError(f"unknown index kind {kind!r}; use one of {', '.join(KINDS)}")
        self.store = store
        self.rule = rule
        self.kind = kind
        self.ann_threshold = int(ann_threshold)
        self.snapshot = snapshot
        self.snapshot_min = int(snapshot_min)
        self.hnsw: dict[str, Any] = {  # VectorIndex's HNSW parameters (ints and a float margin)
            "hnsw_m": hnsw_m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "ef_retry": ef_retry,
            "retry_margin": retry_margin,
        }
        self.index: VectorIndex | None = None
        self.seq = 0
        self.model: str | None = None
        self.dirty = False
        self.last_build_s: float | None = None
        self.loaded_snapshot = False
        self._lock = threading.RLock()
        if snapshot is not None:
            self._load_snapshot()

    # -- building -------------------------------------------------------------------------
    def _want_kind(self, n: int, current: str | None = None) -> str:
        if self.kind != "auto":
            return self.kind
        if current == "hnsw":
            return "hnsw" if n >= self.ann_threshold // 2 else "flat"
        return "hnsw" if n >= self.ann_threshold else "flat"

    def _entries(
        self, fids: np.ndarray, pids: np.ndarray, vecs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keys, labels, vectors) for the index from faces, by the matching rule."""
        if self.rule == "max":
            return fids, pids, normalize(vecs)
        people, templates = person_templates(pids, vecs)
        return people, people, templates

    def _full_build(self, dim: int) -> None:
        t0 = time.perf_counter()
        parts = list(self.store.iter_embeddings(dim))
        fids, pids, vecs = _stack_parts(parts, dim)
        del parts
        keys, labels, vecs = self._entries(fids, pids, vecs)
        index = VectorIndex(dim, self._want_kind(len(keys)), **self.hnsw)
        index.add(keys, labels, vecs)
        self.index = index
        self.last_build_s = time.perf_counter() - t0
        self.dirty = True
        log.info(
            "gallery index: built %s over %d entries (rule %s) in %.2f s",
            index.kind,
            index.ntotal,
            self.rule,
            self.last_build_s,
        )

    def _refresh(self, people: set[int], dim: int) -> None:
        assert self.index is not None
        self.index.remove_labels(people)
        fids, pids, vecs = self.store.embeddings_of(sorted(people), dim)
        keys, labels, vecs = self._entries(fids, pids, vecs)
        self.index.add(keys, labels, vecs)
        self.dirty = True

    def _maintain(self) -> bool:
        """Compact when tombstones pile up; switch flat <-> HNSW when the size crosses the threshold."""
        idx = self.index
        if idx is None:
            return False
        want = self._want_kind(idx.n_alive, idx.kind)
        if want != idx.kind or (idx.n_dead > 1000 and idx.n_dead > idx.ntotal // 4):
            t0 = time.perf_counter()
            self.index = idx.rebuilt(want)
            self.last_build_s = time.perf_counter() - t0
            self.dirty = True
            log.info("gallery index: rebuilt as %s (%d entries) in %.2f s", want, self.index.ntotal, self.last_build_s)
            return True
        return False

    def sync(self) -> int:
        """Apply every change committed since the last sync; returns how many (-1: full rebuild).

        Reads happen in one SQLite read transaction, so the index equals the store exactly
        as of the newest ``seq`` it read (writers commit in ``seq`` order).
        """
        with self._lock:
            if self.index is not None and self.store.max_seq() == self.seq:
                return 0
            with self.store.read():
                meta = self.store.meta()
                model = meta.get("model")
                dim = int(meta["dim"]) if "dim" in meta else None
                target = self.store.max_seq()
                changes = self.store.changes_after(self.seq) if self.index is not None else []
                if dim is None:  # empty gallery: nothing to index yet
                    self.index, self.model, self.seq = None, None, target
                    return 0
                people = {p for _, p, kind in changes if kind == "person" and p is not None}
                full = (
                    self.index is None
                    or model != self.model
                    or self.index.dim != dim
                    or any(kind == "reset" for _, _, kind in changes)
                    or len(people) > max(5_000, self.index.n_alive // 10)
                )
                if full:
                    self._full_build(dim)
                else:
                    self._refresh(people, dim)
                self.model = model
                self.seq = target
            rebuilt = self._maintain() or full
            if rebuilt and self.index is not None and self.index.ntotal >= max(self.snapshot_min, 1):
                # a large build is worth keeping: the next process opens in seconds, not minutes
                try:
                    self.save()
                except OSError as exc:
                    log.warning("gallery index: could not write snapshot: %s", exc)
            return -1 if full else len(changes)

    def rebuild(self) -> None:
        """Drop the in-memory index and build it again from SQLite."""
        with self._lock:
            self.index = None
            self.seq = 0
            self.sync()

    def erase(self, label: int) -> dict[str, Any]:
        """After a person's data left the store: catch up (tombstoning and zeroing their entries, see
        :meth:`VectorIndex.zero_labels`) and remove the snapshot file, which still holds their vectors
        (the next save or open writes or rebuilds a clean one)."""
        with self._lock:
            self.sync()
            zeroed = self.index.zero_labels([label]) if self.index is not None else 0
            removed = False
            if self.snapshot is not None and self.snapshot.exists():
                self.snapshot.unlink()
                removed = True
                self.dirty = True
            return {"index_vectors_zeroed": zeroed, "snapshot_removed": removed}

    # -- search ---------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-``k`` people (id, score) per query, after catching up with the store."""
        self.sync()
        with self._lock:
            if self.index is None or self.index.n_alive == 0:
                return [[] for _ in range(len(np.atleast_2d(queries)))]
            oversample = 4 if self.rule == "max" else 1
            return self.index.search_people(normalize(np.atleast_2d(queries)), k, oversample)

    # -- snapshots ------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        assert self.index is not None
        return {
            "version": SNAPSHOT_VERSION,
            "store_id": self.store.meta().get("store_id"),
            "seq": self.seq,
            "model": self.model,
            "rule": self.rule,
            "dim": self.index.dim,
            "kind": self.index.kind,
            **self.hnsw,
        }

    def save(self, force: bool = False) -> bool:
        """Write the snapshot atomically (temp file, fsync, rename). Returns whether it wrote."""
        with self._lock:
            if self.snapshot is None or self.index is None:
                return False
            if not force and (not self.dirty or self.index.ntotal < self.snapshot_min):
                return False
            t0 = time.perf_counter()
            arrays: dict[str, Any] = self.index.to_arrays()
            arrays["info"] = np.array(json.dumps(self._info()))
            private_dir(self.snapshot.parent)  # the file itself is mkstemp's: 0600
            fd, tmp = tempfile.mkstemp(prefix=self.snapshot.name + ".", suffix=".tmp", dir=self.snapshot.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **arrays)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.snapshot)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            self.dirty = False
            log.info(
                "gallery index: snapshot of %d entries written in %.2f s", self.index.ntotal, time.perf_counter() - t0
            )
            return True

    def _load_snapshot(self) -> None:
        path = self.snapshot
        if path is None or not path.exists():
            return
        restrict(path)  # written world-readable by an older facegate
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                meta = self.store.meta()
                reason = None
                if info.get("version") != SNAPSHOT_VERSION:
                    reason = "format version"
                elif info.get("store_id") != meta.get("store_id"):
                    reason = "it belongs to another gallery file"
                elif info.get("rule") != self.rule:
                    reason = f"rule {info.get('rule')} != {self.rule}"
                elif info.get("model") != meta.get("model"):
                    reason = "model changed"
                elif int(info["seq"]) > self.store.max_seq():
                    reason = "it is newer than the store (restored backup?)"
                elif self.kind != "auto" and info.get("kind") != self.kind:
                    reason = f"kind {info.get('kind')} != {self.kind}"
                if reason:
                    log.info("gallery index: ignoring snapshot %s: %s", path, reason)
                    return
                self.index = VectorIndex.from_arrays({k: z[k] for k in ("faiss", "keys", "labels", "alive")}, info)
                self.index.ef_search = self.hnsw["ef_search"]
                self.index.ef_retry = self.hnsw["ef_retry"]
                self.index.retry_margin = self.hnsw["retry_margin"]
            self.seq = int(info["seq"])
            self.model = info.get("model")
            self.loaded_snapshot = True
            log.info("gallery index: loaded snapshot at seq %d (%d entries)", self.seq, self.index.ntotal)
        except Exception as exc:  # noqa: BLE001 - a damaged snapshot only costs a rebuild
            log.warning("gallery index: unreadable snapshot %s (%s); rebuilding from SQLite", path, exc)
            self.index, self.seq, self.model = None, 0, None

    # -- diagnostics ----------------------------------------------------------------------
    def check(self) -> dict[str, Any]:
        """Compare the index with the store entry by entry (after a sync). Costs a full read."""
        self.sync()
        with self._lock, self.store.read():
            meta = self.store.meta()
            if "dim" not in meta:
                return {"ok": self.index is None or self.index.n_alive == 0, "entries": 0}
            dim = int(meta["dim"])
            parts = list(self.store.iter_embeddings(dim))
        fids, pids, vecs = _stack_parts(parts, dim)
        keys, labels, want = self._entries(fids, pids, vecs)
        idx = self.index
        if idx is None:
            return {"ok": len(keys) == 0, "entries": 0, "missing": int(len(keys)), "extra": 0, "stale": 0}
        alive = idx.alive.view
        have_keys = idx.keys.view[alive]
        have_labels = idx.labels.view[alive]
        have_vecs = idx.vectors()[alive]
        pos = {int(k): i for i, k in enumerate(have_keys)}
        missing = [int(k) for k in keys if int(k) not in pos]
        extra = len(set(pos) - {int(k) for k in keys})
        stale = 0
        for k, lab, v in zip(keys, labels, want):
            i = pos.get(int(k))
            if i is not None and (have_labels[i] != lab or not np.allclose(have_vecs[i], v, atol=1e-5)):
                stale += 1
        return {
            "ok": not missing and not extra and not stale and len(have_keys) == len(keys),
            "entries": int(len(have_keys)),
            "missing": len(missing),
            "extra": int(extra),
            "stale": int(stale),
            "duplicates": int(len(have_keys) - len(pos)),
        }

    def stats(self) -> dict[str, Any]:
        idx = self.index
        return {
            "rule": self.rule,
            "kind": idx.kind if idx else None,
            "kind_policy": self.kind,
            "ann_threshold": self.ann_threshold,
            "entries": idx.n_alive if idx else 0,
            "tombstones": idx.n_dead if idx else 0,
            "memory_bytes": idx.memory_bytes() if idx else 0,
            "seq": self.seq,
            "last_build_s": self.last_build_s,
            "snapshot": str(self.snapshot) if self.snapshot else None,
            "loaded_snapshot": self.loaded_snapshot,
        }
