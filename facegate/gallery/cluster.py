"""Photo-library clustering: group unlabelled faces by person.

Faces become nodes of a graph whose edges join faces more alike than a threshold (the
verification threshold at a FAR, so "same cluster" means what "same person" means in
``verify``); only each face's ``k`` nearest neighbours are considered (FAISS), so the
graph stays sparse for large libraries. The graph is then split with Chinese Whispers
(Biemann 2006; the algorithm dlib and face_recognition users cluster faces with): each
face repeatedly takes the label with the largest total edge weight among its neighbours.
Unlike plain connected components it does not chain two people together through one
ambiguous face. ``method="components"`` is kept for comparison; the benchmark prints both.

Quality is reported as pairwise precision/recall: of all face pairs put in one cluster,
how many are the same person; of all same-person pairs, how many share a cluster. On a
labelled LFW subset (``benchmarks/bench_gallery.py``: 2,010 faces of 557 people) at the
FAR 1e-4 threshold, Chinese Whispers gives precision 0.986 / recall 0.991, connected
components 0.921 / 0.992; at FAR 1e-3, 0.857 / 0.994 against 0.043 / 1.000 (one giant
chained cluster) - hence ``facegate cluster`` decides at FAR 1e-4 by default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from facegate.errors import FacegateError, UsageError
from facegate.files import private_dir
from facegate.gallery.index import normalize
from facegate.gallery.types import stack_embeddings
from facegate.protocols import FacePipeline
from facegate.types import Face

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
METHODS = ("cw", "components")


def knn_graph(emb: np.ndarray, threshold: float, k: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (i, j, weight) with i < j between faces among each other's ``k`` nearest and
    cosine above ``threshold``."""
    import faiss

    emb = np.ascontiguousarray(normalize(emb), dtype=np.float32)
    n = len(emb)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    kk = min(k + 1, n)
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    sims, nbrs = index.search(emb, kk)
    rows = np.repeat(np.arange(n), kk)
    cols = nbrs.reshape(-1)
    w = sims.reshape(-1)
    keep = (cols >= 0) & (cols != rows) & (w > threshold)
    i, j, w = rows[keep], cols[keep], w[keep]
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    key = lo * n + hi
    _, first = np.unique(key, return_index=True)
    return lo[first], hi[first], w[first].astype(np.float32)


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)])


def _chinese_whispers(n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    adj: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for a, b, x in zip(i.tolist(), j.tolist(), w.tolist()):
        adj[a].append((b, x))
        adj[b].append((a, x))
    labels = np.arange(n)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = 0
        for node in rng.permutation(n).tolist():
            if not adj[node]:
                continue
            votes: dict[int, float] = {}
            for nb, x in adj[node]:
                lab = int(labels[nb])
                votes[lab] = votes.get(lab, 0.0) + x
            best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
            if best != labels[node]:
                labels[node] = best
                changed += 1
        if not changed:
            break
    return labels


def cluster_embeddings(
    emb: np.ndarray,
    threshold: float,
    *,
    method: str = "cw",
    k: int = 30,
    iterations: int = 30,
    seed: int = 0,
) -> np.ndarray:
    """Cluster labels 0..C-1 for each embedding, numbered by cluster size (0 = largest)."""
    if method not in METHODS:
        raise UsageError(f"unknown clustering method {method!r}; use one of {', '.join(METHODS)}")
    n = len(emb)
    if n == 0:
        return np.zeros(0, np.int64)
    i, j, w = knn_graph(emb, threshold, k)
    raw = _components(n, i, j) if method == "components" else _chinese_whispers(n, i, j, w, iterations, seed)
    uniq, inv, counts = np.unique(raw, return_inverse=True, return_counts=True)
    order = np.lexsort((uniq, -counts))  # by size desc, then first label
    rank = np.empty(len(uniq), np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inv]


def pairwise_scores(pred: Sequence[int], truth: Sequence[Any]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a clustering against true labels (O(n))."""
    labels = np.asarray(pred)
    truth_codes = np.unique(np.asarray(truth), return_inverse=True)[1]

    def pairs(counts: np.ndarray) -> int:
        counts = counts.astype(np.int64)
        return int((counts * (counts - 1) // 2).sum())

    _, cell = np.unique(labels.astype(np.int64) * (int(truth_codes.max()) + 1) + truth_codes, return_counts=True)
    tp = pairs(cell)
    pp = pairs(np.unique(labels, return_counts=True)[1])
    tt = pairs(np.unique(truth_codes, return_counts=True)[1])
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_pairs": tt,
        "predicted_pairs": pp,
        "correct_pairs": tp,
        "clusters": int(len(np.unique(labels))),
        "people": int(len(np.unique(truth_codes))),
        "faces": int(len(labels)),
    }


@dataclass
class ClusteredFace:
    path: str
    face: Face
    cluster: int


@dataclass
class ClusterResult:
    faces: list[ClusteredFace]
    threshold: float
    far: float | None
    method: str
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def clusters(self, min_size: int = 1) -> list[list[ClusteredFace]]:
        groups: dict[int, list[ClusteredFace]] = {}
        for f in self.faces:
            groups.setdefault(f.cluster, []).append(f)
        return [groups[c] for c in sorted(groups) if len(groups[c]) >= min_size]

    def to_dict(self, min_size: int = 2) -> dict[str, Any]:
        big = self.clusters(min_size)
        singles = [f for g in self.clusters() if len(g) < min_size for f in g]
        return {
            "threshold": round(self.threshold, 6),
            "far": self.far,
            "method": self.method,
            "clusters": [
                {"id": i, "size": len(g), "faces": [{"path": f.path, "box": f.face.to_dict()["box"]} for f in g]}
                for i, g in enumerate(big)
            ],
            "unclustered": [{"path": f.path, "box": f.face.to_dict()["box"]} for f in singles],
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
        }


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursive), sorted, by suffix."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def embed_photos(
    pipeline: FacePipeline, paths: Iterable[Path], progress: bool = True
) -> tuple[list[tuple[str, Face]], list[tuple[str, str]]]:
    """Every face of every photo, embedded: ([(path, face)], [(path, reason) for failures])."""
    paths = list(paths)
    faces: list[tuple[str, Face]] = []
    failed: list[tuple[str, str]] = []
    for p in tqdm(paths, desc="embedding faces", unit="photo", disable=not progress, dynamic_ncols=True):
        try:
            found = pipeline.faces(p)
        except FacegateError as exc:
            failed.append((str(p), str(exc)))
            continue
        if not found:
            failed.append((str(p), "no face found"))
        faces.extend((str(p), f) for f in found)
    return faces, failed


def cluster_photos(
    pipeline: FacePipeline,
    paths: Iterable[Path],
    threshold: float,
    far: float | None = None,
    *,
    method: str = "cw",
    progress: bool = True,
) -> ClusterResult:
    """Detect and embed every face in ``paths`` and cluster them."""
    faces, failed = embed_photos(pipeline, paths, progress)
    emb = stack_embeddings([f for _, f in faces]) if faces else np.zeros((0, 1), np.float32)
    labels = cluster_embeddings(emb, threshold, method=method)
    return ClusterResult(
        faces=[ClusteredFace(p, f, int(c)) for (p, f), c in zip(faces, labels)],
        threshold=threshold,
        far=far,
        method=method,
        failed=failed,
    )


def write_folders(result: ClusterResult, out: str | os.PathLike, min_size: int = 2) -> dict[str, int]:
    """``out/person_001/`` ... with symlinks to the photos of each cluster (largest first), and
    ``out/unclustered/`` for photos none of whose faces is in a cluster of ``min_size`` or more.
    A photo with several people appears in each of their folders, and then not in
    ``unclustered/`` even if it also holds a stranger. Existing files in ``out`` are not touched."""
    out = private_dir(out)
    groups = result.clusters()
    width = max(3, len(str(len(groups))))
    folders: list[tuple[Path, list[str]]] = []
    placed: set[str] = set()
    for i, g in enumerate(groups):
        if len(g) >= min_size:
            paths = [f.path for f in g]
            folders.append((out / f"person_{i + 1:0{width}d}", paths))
            placed.update(paths)
    stray = [f.path for g in groups if len(g) < min_size for f in g if f.path not in placed]
    if stray:
        folders.append((out / "unclustered", stray))
    links = 0
    for folder, paths in folders:
        private_dir(folder)
        for path in dict.fromkeys(paths):  # a photo once per folder, in order
            links += _link(Path(path).resolve(), folder)
    return {"folders": sum(f.name != "unclustered" for f, _ in folders), "links": links}


def _link(src: Path, folder: Path) -> int:
    """Symlink ``src`` into ``folder`` under a free name; 0 if it is linked there already."""
    dst = folder / src.name
    k = 1
    while dst.exists() or dst.is_symlink():
        if dst.is_symlink() and dst.resolve() == src:
            return 0
        dst = folder / f"{src.stem}_{k}{src.suffix}"
        k += 1
    os.symlink(src, dst)
    return 1
