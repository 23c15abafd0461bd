"""Gallery benchmark: LFW identification, identity-level rules, quality gate, clustering, and
search at 10k / 100k / 1M identities against exact search and a NumPy linear scan. One run.

    .venv/bin/python benchmarks/bench_gallery.py                   # everything (~30-60 min on 2 cores)
    .venv/bin/python benchmarks/bench_gallery.py --scales 10000    # quick
    .venv/bin/python benchmarks/bench_gallery.py --skip-scale      # LFW parts only

LFW (``$FACEGATE_DATASETS/lfw``, default ``../shared/datasets/lfw``) is embedded once
through the shared pipeline (``facegate.evaluate.embedding.embed_files``: one face per
photo, the one nearest the centre, a centred-box fallback when no face is found) and
cached under ``<FACEGATE_HOME>/cache/embeddings`` (outside the repository: embeddings
of LFW must not be committed). Results go to ``--out`` (default ``results/``, ignored by git).

Protocols
---------
* Identification: gallery = the first photo (sorted by file name) of every person with
  at least two photos (1,680 people); mated probes = their other photos; non-mated probes
  = the one photo of each person who has exactly one (4,069 impostors). Rank-1/rank-5,
  and open-set DIR at FPIR = 1% (threshold set on the non-mated searches).
* Identity-level rule: people with >= 4 photos; the first three enrolled, the rest are
  probes; non-mated as above. single (first photo only) vs mean template vs best face.
* Scale: N identities = the first photo of all 5,749 LFW people + synthetic identities
  drawn from the LFW embedding distribution: identity centres ~ N(mu, Sigma_between)
  fitted to LFW person means, each photo = centre + N(0, Sigma_within) fitted to LFW
  within-person residuals, re-normalised. Queries = 500 real LFW mated probes + 500
  synthetic mated probes. Uniform random unit vectors (ANN's worst case) are run at
  100k for contrast.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

log = logging.getLogger("bench_gallery")

REPO = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Resident memory of this process (MB), from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pct(times: list[float]) -> dict[str, float]:
    a = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


# -- LFW ------------------------------------------------------------------------------------
def lfw_embeddings(root: Path, config) -> tuple[list[Path], np.ndarray, np.ndarray, list[str]]:
    from facegate.evaluate.embedding import embed_files
    from facegate.pipeline import Pipeline

    paths = sorted(root.glob("*/*.jpg"))
    if not paths:
        raise SystemExit(f"no LFW images under {root}")
    t0 = time.perf_counter()
    s = embed_files(Pipeline(config), paths, pick="center", fallback=("centre",), desc="LFW embeddings")
    log.info("LFW: %d images embedded/cached in %.1f s: %s", len(paths), time.perf_counter() - t0, s.counts())
    labels = np.array([p.parent.name for p in paths])
    return paths, s.embeddings, labels, s.status


def split_identification(labels: np.ndarray, enrol: int = 1, min_photos: int = 2, probe_from: int | None = None):
    """Indices: gallery (first ``enrol`` photos of people with >= min_photos), mated probes
    (their photos from ``probe_from`` on, default ``enrol``: the same probes whatever is
    enrolled), and non-mated probes (people with one photo)."""
    probe_from = enrol if probe_from is None else probe_from
    people: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        people.setdefault(lab, []).append(i)
    gallery: list[tuple[str, list[int]]] = []
    probes: list[tuple[int, str]] = []
    nonmated: list[int] = []
    for name in sorted(people):
        idx = people[name]
        if len(idx) >= min_photos:
            gallery.append((name, idx[:enrol]))
            probes += [(i, name) for i in idx[probe_from:]]
        elif len(idx) == 1:
            nonmated.append(idx[0])
    return gallery, probes, nonmated


def run_identification(
    emb, labels, status, config, enrol: int, min_photos: int, rule: str, tmp: Path, probe_from: int | None = None
) -> dict[str, Any]:
    """Enrol through the real Gallery (SQLite + FAISS), search every probe, score."""
    from facegate.gallery import open_gallery
    from facegate.gallery.identify import summarize

    ok = np.array([s != "failed" for s in status])
    gallery, probes, nonmated = split_identification(labels, enrol, min_photos, probe_from)
    path = tmp / f"lfw_{rule}_{enrol}_{min_photos}_{probe_from}.sqlite"
    cfg = config.replace(gallery=path, threshold=0.0)
    with open_gallery(cfg, rule=rule) as g:
        items = []
        for name, idx in gallery:
            keep = [i for i in idx if ok[i]]
            if keep:
                items.append((name, emb[keep]))
        g.import_embeddings(items, model="lfw-bench")
        ids = {p.name: p.id for p in g.people()}
        t0 = time.perf_counter()
        probe_idx = np.array([i for i, _ in probes])
        res = g.search(emb[probe_idx], k=5)
        non = g.search(emb[np.array(nonmated)], k=5)
        dt = time.perf_counter() - t0
        truth = [ids.get(name, -1) for _, name in probes]
        cands = [[(pid, s) for pid, _, s in row] for row in res]
        # failed probe embeddings are misses, not skipped
        for j, (i, _) in enumerate(probes):
            if not ok[i]:
                cands[j] = []
        out = summarize(cands, truth, [[(pid, s) for pid, _, s in row] for row in non], fpir=0.01)
        out.update(
            {
                "rule": rule,
                "enrolled_people": len(items),
                "enrolled_photos_per_person": enrol,
                "search_s": dt,
                "index": g.stats()["index"]["kind"],
            }
        )
        top_probe = np.array([c[0][1] if c else -1 for c in cands])
        top_non = np.array([row[0][2] if row else -1 for row in non])
        correct = np.array([bool(c) and c[0][0] == t for c, t in zip(cands, truth)])
        out["_scores"] = (correct, top_probe, top_non)
    return out


def quality_sample(root: Path, config, step: int) -> dict[str, Any]:
    """Share of LFW photos each quality check would refuse at enrolment (every ``step``-th photo)."""
    from facegate.gallery import Gallery, SqliteBackend
    from facegate.pipeline import Pipeline

    paths = sorted(root.glob("*/*.jpg"))[::step]
    pipe = Pipeline(config)
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(SqliteBackend(Path(tmp) / "q.sqlite"), config, pipeline=pipe)
        counts: dict[str, int] = {}
        refused = 0
        for p in tqdm(paths, desc="quality gate on LFW sample", unit="img"):
            *_, rep, rej = g.check_photo(p, pick="center")
            if rej is not None:
                refused += 1
                codes = rep.codes if rep is not None else [rej.code]
                for c in set(codes):
                    counts[c] = counts.get(c, 0) + 1
        g.close()
    n = len(paths)
    return {"photos": n, "refused": refused / n, "by_check": {k: v / n for k, v in sorted(counts.items())}}


def clustering_eval(emb, labels, status, thresholds: list[float], n_people: int = 150) -> dict[str, Any]:
    """Pairwise P/R on a labelled LFW subset: the first ``n_people`` people (by name) with >= 4 photos,
    all their photos, plus every 10th one-photo person as distractors."""
    from facegate.gallery.cluster import cluster_embeddings, pairwise_scores

    ok = np.array([s != "failed" for s in status])
    people: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        if ok[i]:
            people.setdefault(lab, []).append(i)
    multi = [n for n in sorted(people) if len(people[n]) >= 4][:n_people]
    singles = [n for n in sorted(people) if len(people[n]) == 1][::10]
    idx = [i for n in multi + singles for i in people[n]]
    x, y = emb[idx], labels[idx]
    rows = []
    for thr in thresholds:
        for method in ("cw", "components"):
            t0 = time.perf_counter()
            pred = cluster_embeddings(x, thr, method=method)
            s = pairwise_scores(pred, y)
            s.update({"threshold": thr, "method": method, "seconds": time.perf_counter() - t0})
            rows.append(s)
    return {"faces": len(idx), "people": len(multi) + len(singles), "multi_photo_people": len(multi), "runs": rows}


# -- scale ------------------------------------------------------------------------------------
class Synth:
    """Synthetic identities following LFW's embedding distribution (between- and within-person)."""

    def __init__(self, emb: np.ndarray, labels: np.ndarray, ok: np.ndarray, seed: int = 0) -> None:
        people: dict[str, list[int]] = {}
        for i, lab in enumerate(labels):
            if ok[i]:
                people.setdefault(lab, []).append(i)
        means = np.stack([emb[ix].mean(axis=0) for ix in people.values()])
        resid = np.concatenate(
            [
                (emb[ix] - emb[ix].mean(axis=0)) * np.sqrt(len(ix) / (len(ix) - 1))
                for ix in people.values()
                if len(ix) > 1
            ]
        )
        self.mu = means.mean(axis=0)
        self.lb = np.linalg.cholesky(np.cov(means.T) + 1e-8 * np.eye(means.shape[1]))
        self.lw = np.linalg.cholesky(np.cov(resid.T) + 1e-8 * np.eye(means.shape[1]))
        self.dim = means.shape[1]
        self.rng = np.random.default_rng(seed)

    def centres(self, n: int) -> np.ndarray:
        return (self.mu + self.rng.standard_normal((n, self.dim)) @ self.lb.T).astype(np.float32)

    def photos(self, centres: np.ndarray) -> np.ndarray:
        return unit(centres + self.rng.standard_normal(centres.shape) @ self.lw.T)


def numpy_scan(G: np.ndarray, queries: np.ndarray, k: int = 5) -> tuple[list[float], np.ndarray]:
    """What face_recognition users do: scores against every row, then the best k."""
    times, top = [], []
    for q in queries:
        t0 = time.perf_counter()
        s = G @ q
        part = np.argpartition(-s, k)[:k]
        best = part[np.argsort(-s[part])]
        times.append(time.perf_counter() - t0)
        top.append(best[0])
    return times, np.array(top)


def run_scale(
    n: int,
    real_gallery: np.ndarray,
    real_probes: np.ndarray,
    real_truth: np.ndarray,
    synth: Synth | None,
    config,
    tmp: Path,
    n_queries: int,
    ef_values: list[int],
    adaptive: list[tuple[int, int]],
    hnsw_m: int,
    ef_construction: int,
    label: str,
    keep: bool = False,
) -> dict[str, Any]:
    from facegate.gallery import open_gallery
    from facegate.gallery.index import VectorIndex

    rng = np.random.default_rng(n)
    n_real = len(real_gallery) if synth is not None else 0
    n_syn = n - n_real
    log.info("[%s N=%d] generating %d synthetic identities", label, n, n_syn)
    if synth is not None:
        cen = synth.centres(n_syn)
        G = np.concatenate([real_gallery, synth.photos(cen)]).astype(np.float32)
        pick = rng.choice(n_syn, n_queries // 2, replace=False)
        syn_q = synth.photos(cen[pick])
        rq = rng.choice(len(real_probes), n_queries - n_queries // 2, replace=False)
        Q = np.concatenate([real_probes[rq], syn_q])
        truth = np.concatenate([real_truth[rq], n_real + pick])
        n_real_q = len(rq)
        del cen
    else:  # uniform random unit vectors: ANN's worst case
        G = unit(rng.standard_normal((n, real_gallery.shape[1])))
        pick = rng.choice(n, n_queries, replace=False)
        Q = unit(G[pick] + 0.3 * rng.standard_normal((n_queries, G.shape[1])) / np.sqrt(G.shape[1]))
        truth = pick
        n_real_q = 0
    out: dict[str, Any] = {
        "label": label,
        "identities": n,
        "real_identities": n_real,
        "queries": len(Q),
        "raw_vectors_mb": G.nbytes / 1e6,  # what a NumPy scan holds
    }

    # exact (FAISS flat, the gallery's exact kind) and the NumPy scan baseline
    flat = VectorIndex(G.shape[1], "flat")
    flat.add(np.arange(n), np.arange(n), G)
    n_lat = min(len(Q), 200 if n >= 500_000 else 1000)
    _, lab, _ = flat.search(Q, 5)  # ground truth for every query, batched (BLAS)
    exact_top = lab[:, 0].copy()
    t_exact = []
    for q in Q[:n_lat]:  # latency of single queries, as a gate or a CLI call sees them
        t0 = time.perf_counter()
        flat.search(q[None], 5)
        t_exact.append(time.perf_counter() - t0)
    out["exact_faiss_flat"] = pct(t_exact)
    t_np, np_top = numpy_scan(G, Q[:n_lat])
    out["numpy_scan"] = pct(t_np)
    out["numpy_agrees_with_exact"] = float((np_top == exact_top[:n_lat]).mean())
    if n_real_q:
        out["real_probe_rank1_exact"] = float((exact_top[:n_real_q] == truth[:n_real_q]).mean())
    out["synthetic_probe_rank1_exact"] = float((exact_top[n_real_q:] == truth[n_real_q:]).mean())
    del flat
    gc.collect()

    # the real system: SQLite import, HNSW built from SQLite, snapshot, gallery-level search
    path = tmp / f"scale_{label}_{n}.sqlite"
    cfg = config.replace(gallery=path, threshold=0.0, index="hnsw")
    # snapshot_min high: the build is timed on its own, the snapshot written (and timed) explicitly below
    opts = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "durable": False, "snapshot_min": 10**12}
    t0 = time.perf_counter()
    with open_gallery(cfg, **opts) as g:
        g.import_embeddings(((f"id{i}", G[i : i + 1]) for i in range(n)), model="bench", batch=50_000, progress=True)
    out["sqlite_import_s"] = time.perf_counter() - t0
    out["sqlite_file_mb"] = path.stat().st_size / 1e6 + (
        Path(str(path) + "-wal").stat().st_size / 1e6 if Path(str(path) + "-wal").exists() else 0
    )
    del G
    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    g = open_gallery(cfg, **opts)
    g.backend.index.sync()
    out["index_build_from_sqlite_s"] = time.perf_counter() - t0
    mgr = g.backend.index
    out["index_hnsw_build_s"] = mgr.last_build_s
    out["index_memory_mb"] = mgr.index.memory_bytes() / 1e6
    out["rss_delta_after_build_mb"] = rss_mb() - rss0
    out["hnsw"] = {"M": hnsw_m, "efConstruction": ef_construction}
    t0 = time.perf_counter()
    g.save_index(force=True)
    out["snapshot_write_s"] = time.perf_counter() - t0
    out["snapshot_mb"] = path.with_name(path.name + ".index").stat().st_size / 1e6
    Qn = unit(Q)

    def measure(ef: int, ef_retry: int) -> dict[str, Any]:
        idx = mgr.index
        idx.ef_search, idx.ef_retry, idx.retries = ef, ef_retry, 0
        times, top = [], np.empty(len(Q), np.int64)
        for j, q in enumerate(Qn):
            t0 = time.perf_counter()
            hit = idx.search_people(q[None], 5)[0]
            times.append(time.perf_counter() - t0)
            top[j] = hit[0][0] - 1 if hit else -1  # person ids are 1.. in import order
        row = {
            "ef_search": ef,
            "ef_retry": ef_retry if ef_retry > ef else None,
            **pct(times),
            "recall_at_1_vs_exact": float((top == exact_top).mean()),
            "retried": idx.retries / len(Q),
        }
        if n_real_q:
            row["real_probe_rank1"] = float((top[:n_real_q] == truth[:n_real_q]).mean())
        return row

    ef_rows = [measure(ef, 0) for ef in ef_values]  # plain HNSW, one search per query
    adaptive_rows = [measure(ef, retry) for ef, retry in adaptive]  # re-search ambiguous answers
    out["hnsw_search"] = ef_rows
    out["hnsw_adaptive"] = adaptive_rows
    out["retry_margin"] = mgr.index.retry_margin
    ef_rows = ef_rows + adaptive_rows
    # gallery-level (index catch-up check + search + names from SQLite), at the defaults
    mgr.index.ef_search, mgr.index.ef_retry = mgr.hnsw["ef_search"], mgr.hnsw["ef_retry"]
    out["gallery_defaults"] = {k: mgr.hnsw[k] for k in ("ef_search", "ef_retry", "retry_margin")}
    times = []
    for q in Qn[:n_lat]:
        t0 = time.perf_counter()
        g.search(q[None], k=5)
        times.append(time.perf_counter() - t0)
    out["gallery_search"] = pct(times)
    g.backend.store.close()  # no second snapshot write
    del g
    gc.collect()
    t0 = time.perf_counter()
    g2 = open_gallery(cfg, **opts)
    g2.backend.index.sync()
    out["reopen_with_snapshot_s"] = time.perf_counter() - t0
    out["reopen_loaded_snapshot"] = g2.backend.index.loaded_snapshot
    g2.backend.store.close()
    if not keep:
        for p in path.parent.glob(path.name + "*"):
            p.unlink()
    best = min((r for r in ef_rows if r["recall_at_1_vs_exact"] >= 0.99), key=lambda r: r["p50_ms"], default=None)
    out["best_ef_with_recall_0.99"] = best
    out["speedup_p50_vs_numpy"] = (out["numpy_scan"]["p50_ms"] / best["p50_ms"]) if best else None
    return out


# -- report ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=None, help="LFW folder (default $FACEGATE_DATASETS/lfw)")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bench_gallery.json")
    ap.add_argument("--scales", default="10000,100000,1000000")
    ap.add_argument("--uniform-scale", type=int, default=100_000, help="N for the uniform-random worst case (0: skip)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--ef", default="32,64,128,256,512,1024")
    ap.add_argument(
        "--adaptive",
        default="32:512,64:512,64:1024,128:1024",
        help="ef_search:ef_retry pairs for the adaptive (re-search when ambiguous) HNSW runs",
    )
    ap.add_argument("--keep", action="store_true", help="keep the scale galleries and index snapshots in --tmp")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--quality-step", type=int, default=10, help="quality gate on every Nth LFW photo (0: skip)")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder for galleries (default: system temp)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    from facegate.config import Config
    from facegate.errors import FacegateError
    from facegate.gallery.identify import dir_at_threshold
    from facegate.pipeline import Pipeline

    datasets = Path(os.environ.get("FACEGATE_DATASETS", REPO.parent / "shared" / "datasets"))
    root = args.lfw or datasets / "lfw"
    config = Config()
    import faiss

    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "numpy": np.__version__,
            "faiss_threads": faiss.omp_get_max_threads(),
            "load_average_at_start": os.getloadavg(),
        },
        "config": {"detector": config.detector, "embedder": config.embedder, "flip": config.flip},
    }
    try:
        thr_far, far = Pipeline(config).threshold()
        report["operating_point"] = {"far": far, "threshold": thr_far}
    except FacegateError as exc:
        thr_far = None
        report["operating_point"] = {"error": str(exc)}

    tmp_ctx = tempfile.TemporaryDirectory(dir=args.tmp)
    tmp = Path(tmp_ctx.name)
    if args.keep and args.tmp:
        tmp = args.tmp
    paths, emb, labels, status = lfw_embeddings(root, config)
    ok = np.array([s != "failed" for s in status])
    report["lfw"] = {
        "images": len(paths),
        "people": int(len(set(labels))),
        "status": {s: status.count(s) for s in set(status)},
    }

    # identification (protocol of the issue)
    ident = run_identification(emb, labels, status, config, enrol=1, min_photos=2, rule="mean", tmp=tmp)
    correct, top_probe, top_non = ident.pop("_scores")
    if thr_far is not None:
        ident["at_configured_far"] = {"far": far, **dir_at_threshold(correct, top_probe, top_non, thr_far)}
    report["identification"] = ident

    # identity-level rule
    rules = {}
    for name, enrol, rule in (("single photo", 1, "mean"), ("mean template", 3, "mean"), ("best face (max)", 3, "max")):
        r = run_identification(emb, labels, status, config, enrol=enrol, min_photos=4, rule=rule, tmp=tmp, probe_from=3)
        r.pop("_scores")
        rules[name] = r
    report["identity_rule"] = rules

    if args.quality_step:
        report["quality_gate"] = quality_sample(root, config, args.quality_step)

    from facegate.decide.tables import load_operating_points

    op_thr = [p.threshold for p in load_operating_points(config.embedder) if p.far in (1e-2, 1e-3, 1e-4)]
    report["clustering_thresholds_from_far"] = {
        f"{p.far:g}": p.threshold for p in load_operating_points(config.embedder) if p.far in (1e-2, 1e-3, 1e-4)
    }
    thresholds = sorted({round(t, 4) for t in op_thr + [0.94, 0.95]})
    report["clustering"] = clustering_eval(emb, labels, status, thresholds)

    if not args.skip_scale:
        gallery_rows, probe_idx, truth_rows = [], [], []
        people: dict[str, list[int]] = {}
        for i, lab in enumerate(labels):
            if ok[i]:
                people.setdefault(lab, []).append(i)
        for row, name in enumerate(sorted(people)):
            gallery_rows.append(people[name][0])
            for i in people[name][1:]:
                probe_idx.append(i)
                truth_rows.append(row)
        real_g = emb[gallery_rows]
        real_p = emb[probe_idx]
        real_t = np.array(truth_rows)
        synth = Synth(emb, labels, ok)
        # realism check: genuine / impostor score means, real vs synthetic
        cen = synth.centres(2000)
        a, b = synth.photos(cen), synth.photos(cen)
        report["synthetic_realism"] = {
            "synthetic_genuine_mean": float((a * b).sum(1).mean()),
            "synthetic_impostor_mean": float((a[:1000] @ b[1000:].T).mean()),
            "lfw_genuine_mean": float((real_p[:2000] * real_g[real_t[:2000]]).sum(1).mean()),
            "lfw_impostor_mean": float((real_g[:1000] @ real_g[1000:2000].T).mean()),
        }
        ef_values = [int(x) for x in args.ef.split(",")]
        adaptive = [(int(a), int(b)) for a, b in (x.split(":") for x in args.adaptive.split(",") if x)]
        # (identities, synthetic source or None for uniform-random vectors, label)
        runs = [(int(x), synth, "lfw+synthetic") for x in args.scales.split(",") if x]
        if args.uniform_scale:
            runs.append((args.uniform_scale, None, "uniform-random"))
        scale = []
        for n, source, label in runs:
            scale.append(
                run_scale(
                    n,
                    real_g,
                    real_p,
                    real_t,
                    source,
                    config,
                    tmp,
                    args.queries,
                    ef_values,
                    adaptive,
                    args.hnsw_m,
                    args.ef_construction,
                    label,
                    args.keep,
                )
            )
            log.info("scale %d: %s", n, json.dumps(scale[-1], default=str))
        report["scale"] = scale
    tmp_ctx.cleanup()
    report["machine"]["load_average_at_end"] = os.getloadavg()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(render(report))
    print(f"\n(full results: {args.out})")
    return 0


def _ef(row: dict[str, Any]) -> str:
    return f"{row['ef_search']}->{row['ef_retry']}" if row.get("ef_retry") else str(row["ef_search"])


def render(r: dict[str, Any]) -> str:
    L: list[str] = []
    m = r["machine"]
    L.append(f"# Gallery benchmark ({m['cpus']} CPUs, faiss {m['faiss']}, numpy {m['numpy']})")
    L.append(
        f"load average (1/5/15 min) at start {m.get('load_average_at_start')}, at end {m.get('load_average_at_end')}: "
        "other jobs on the machine inflate latencies, p99 most"
    )
    op = r.get("operating_point", {})
    L.append(f"operating point: {op}")
    lf = r["lfw"]
    L.append(f"\nLFW: {lf['images']} images, {lf['people']} people, embedding status {lf['status']}")
    i = r["identification"]
    os_ = i["open_set"]
    L.append("\n## Identification on LFW (gallery: 1 photo of each of the people with >= 2; impostors: 1-photo people)")
    L.append(
        f"enrolled {i['enrolled_people']}, mated searches {i['mated_searches']}, non-mated {i['nonmated_searches']}"
    )
    L.append(
        f"rank-1 {i['rank1']:.4f}  rank-5 {i['rank5']:.4f}  DIR@FPIR=1% {os_['dir']:.4f} "
        f"(threshold {os_['threshold']:.4f}, actual FPIR {os_['fpir']:.4f})"
    )
    if "at_configured_far" in i:
        a = i["at_configured_far"]
        L.append(
            f"at the verification threshold for FAR {a['far']:g} ({a['threshold']:.4f}): DIR {a['dir']:.4f}, FPIR {a['fpir']:.4f}"
        )
    L.append("\n## Identity-level rule (people with >= 4 photos: 3 enrolled, rest probes)")
    L.append("| rule | people | rank-1 | rank-5 | DIR@FPIR=1% |")
    L.append("|---|---|---|---|---|")
    for name, x in r["identity_rule"].items():
        L.append(
            f"| {name} | {x['enrolled_people']} | {x['rank1']:.4f} | {x['rank5']:.4f} | {x['open_set']['dir']:.4f} |"
        )
    if "quality_gate" in r:
        q = r["quality_gate"]
        L.append(
            f"\n## Quality gate on {q['photos']} LFW photos: refused {q['refused']:.3%}; by check "
            + ", ".join(f"{k} {v:.2%}" for k, v in q["by_check"].items())
        )
    c = r["clustering"]
    L.append(
        f"\n## Clustering: {c['faces']} LFW faces of {c['people']} people ({c['multi_photo_people']} with >= 4 photos)"
    )
    L.append("| threshold | method | precision | recall | F1 | clusters |")
    L.append("|---|---|---|---|---|---|")
    for x in c["runs"]:
        L.append(
            f"| {x['threshold']:.4f} | {x['method']} | {x['precision']:.4f} | {x['recall']:.4f} | {x['f1']:.4f} | {x['clusters']} |"
        )
    if "scale" in r:
        if "synthetic_realism" in r:
            L.append(f"\nsynthetic vs LFW scores: {r['synthetic_realism']}")
        L.append("\n## Search at scale (single query, top-5; latency in ms)")
        L.append(
            "| data | N | numpy p50/p99 | exact flat p50/p99 | HNSW ef | HNSW p50/p99 | recall@1 vs exact | x numpy (p50) "
            "| build s | index MB | RSS +MB | gallery search p50/p99 |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in r["scale"]:
            b = s.get("best_ef_with_recall_0.99") or max(
                s["hnsw_search"] + s.get("hnsw_adaptive", []), key=lambda x: x["recall_at_1_vs_exact"]
            )
            sp = s["numpy_scan"]["p50_ms"] / b["p50_ms"]
            L.append(
                f"| {s['label']} | {s['identities']:,} | {s['numpy_scan']['p50_ms']:.2f}/{s['numpy_scan']['p99_ms']:.2f} | "
                f"{s['exact_faiss_flat']['p50_ms']:.2f}/{s['exact_faiss_flat']['p99_ms']:.2f} | {_ef(b)} | "
                f"{b['p50_ms']:.3f}/{b['p99_ms']:.3f} | {b['recall_at_1_vs_exact']:.4f} | {sp:.0f}x | "
                f"{s['index_hnsw_build_s']:.1f} | {s['index_memory_mb']:.0f} | {s['rss_delta_after_build_mb']:.0f} | "
                f"{s['gallery_search']['p50_ms']:.3f}/{s['gallery_search']['p99_ms']:.3f} |"
            )
        L.append(
            "\nHNSW efSearch sweep (recall@1 vs exact @ p50 ms / p99 ms); 'a->b': search at a, re-search at b "
            "when the best two are within the retry margin (share re-searched in brackets):"
        )
        for s in r["scale"]:
            L.append(
                f"  {s['label']} N={s['identities']:,}: "
                + "; ".join(
                    f"ef {_ef(x)}: {x['recall_at_1_vs_exact']:.4f} @ {x['p50_ms']:.3f}/{x['p99_ms']:.2f}"
                    + (f" [{x['retried']:.0%}]" if x.get("ef_retry") else "")
                    for x in s["hnsw_search"] + s.get("hnsw_adaptive", [])
                )
            )
            extra = [
                f"SQLite import {s['sqlite_import_s']:.1f} s ({s['sqlite_file_mb']:.0f} MB)",
                f"build from SQLite {s['index_build_from_sqlite_s']:.1f} s",
                f"snapshot {s['snapshot_mb']:.0f} MB written in {s['snapshot_write_s']:.1f} s",
                f"reopen with snapshot {s['reopen_with_snapshot_s']:.1f} s",
            ]
            if "real_probe_rank1_exact" in s:
                extra.append(f"LFW probes rank-1 among N (exact) {s['real_probe_rank1_exact']:.4f}")
            L.append("    " + ", ".join(extra))
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
