"""Measure the body of the shipped impostor distribution that site calibration moves (facegate/data/impostor_stats.json).

    .venv/bin/python benchmarks/impostor_stats.py                                  # print
    .venv/bin/python benchmarks/impostor_stats.py --write facegate/data/impostor_stats.json
    .venv/bin/python benchmarks/impostor_stats.py --embedder dlib_resnet --write facegate/data/impostor_stats.json

Embeds every LFW photo with the stack the operating-point table was calibrated with (the same
cache as ``facegate eval lfw`` and ``benchmarks/calibrate_templates.py``), then over *all*
cross-identity pairs (87M) accumulates a histogram of 1e-4 wide bins and records the thresholds
that 95% ... 1% of impostor pairs exceed (:data:`facegate.calibrate.stats.SURVIVAL_GRID`), the
mean and the standard deviation; and the same for k-photo templates (built as the template table
builds them: :func:`facegate.evaluate.templates.make_templates`, two per person, seed 0) against
every photo of another person. The entry records the table point it belongs to (the threshold at
FAR 1e-3), so a site table is only ever built on the table these numbers describe.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from facegate.calibrate.stats import SURVIVAL_GRID, ImpostorBody, ShippedStats
from facegate.config import Config, datasets_dir
from facegate.decide.tables import load_operating_points, merge_table_entry, stack_key
from facegate.evaluate.calibration import labelled_images
from facegate.evaluate.embedding import FAILED, embed_files
from facegate.evaluate.templates import make_templates
from facegate.pipeline import Pipeline

EDGES = np.linspace(-1.0, 1.0, 20001)  # bins of 1e-4
KS = (2, 3, 4, 5, 6, 8)


class Accumulator:
    def __init__(self) -> None:
        self.counts = np.zeros(len(EDGES) - 1, np.int64)
        self.total = 0.0
        self.total_sq = 0.0

    def add(self, s: np.ndarray) -> None:
        s = np.clip(s.astype(np.float64), -1.0, 1.0 - 1e-9)
        self.counts += np.histogram(s, EDGES)[0]
        self.total += float(s.sum())
        self.total_sq += float((s * s).sum())

    def body(self, k: int) -> ImpostorBody:
        return ImpostorBody.from_histogram(self.counts, EDGES, self.total, self.total_sq, SURVIVAL_GRID, k)


def single_body(emb: np.ndarray, codes: np.ndarray, chunk: int = 2048) -> ImpostorBody:
    acc = Accumulator()
    n = len(emb)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        s = emb[start:stop] @ emb[start:].T
        upper = np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]
        acc.add(s[upper & (codes[start:stop, None] != codes[None, start:])])
    return acc.body(1)


def template_body(emb: np.ndarray, codes: np.ndarray, k: int, seed: int = 0, per_person: int = 2) -> ImpostorBody | None:
    temps, owners, _ = make_templates(emb, codes, k, per_person, np.random.default_rng(seed))
    if not len(temps):
        return None
    acc = Accumulator()
    for start in range(0, len(temps), 256):
        s = temps[start : start + 256] @ emb.T
        acc.add(s[owners[start : start + 256, None] != codes[None, :]])
    return acc.body(k)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=None, help="LFW folder (default $FACEGATE_DATASETS/lfw)")
    p.add_argument("--embedder", default="", help="embedder (default: the default stack's)")
    p.add_argument("--write", type=Path, metavar="STATS.json", help="merge the entry into this file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = args.root or datasets_dir() / "lfw"
    if not root.is_dir():
        print(f"LFW not found at {root}", file=sys.stderr)
        return 8
    config = Config(embedder=args.embedder) if args.embedder else Config()
    key = stack_key(config)
    points = load_operating_points(config)
    at = [q for q in points if abs(q.far - 1e-3) < 1e-12]
    if not at:
        print(f"no shipped operating point at FAR 1e-3 for {key}", file=sys.stderr)
        return 6
    paths, labels = labelled_images(root)
    emb = embed_files(Pipeline(config), paths, pick="center", fallback=(), progress=True, desc="LFW")
    ok = np.array([s != FAILED for s in emb.status])
    e = np.ascontiguousarray(emb.embeddings[ok], np.float32)
    codes = np.unique(np.asarray(labels)[ok], return_inverse=True)[1]
    single = single_body(e, codes)
    templates = {k: b for k in KS if (b := template_body(e, codes, k)) is not None}
    stats = ShippedStats(
        stack=key, dataset=f"LFW deep-funneled ({int(ok.sum())} photos, {codes.max() + 1} people): every cross-identity pair",
        single=single, templates=templates, table_far=1e-3, table_threshold=at[0].threshold,
        provenance=("measured by benchmarks/impostor_stats.py on the same LFW embeddings as the shipped operating points "
                    "(research-licensed images; only these summary numbers are kept)"),
    )
    print(f"{key}: {single.pairs:,} impostor pairs, mean {single.mean:.4f}, sd {single.sd:.4f}")
    print("  " + "  ".join(f"p={pp:g}:{t:.4f}" for pp, t in zip(single.probs, single.thresholds)))
    for k, b in templates.items():
        print(f"  k={k}: {b.pairs:,} pairs, mean {b.mean:.4f}, sd {b.sd:.4f}; "
              + "  ".join(f"{pp:g}:{t:.4f}" for pp, t in zip(b.probs, b.thresholds)))
    if args.write:
        merge_table_entry(str(args.write), key, stats.to_dict())
        print(f"written: {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
