"""Stated vs measured FPIR: does identification at ``--fpir`` name strangers as rarely as it says?

For each gallery size N and photos per person k (one and three by default), enrol N LFW people
(k photos each) into a real gallery, decide at the gallery's policy (``facegate.decide``: each
identity gets the per-comparison FAR FPIR / N, held to the threshold for its templating), then

* probe another photo of each enrolled person (mated searches: TPIR = share named correctly),
* probe one photo of every LFW person *not* enrolled (non-mated: FPIR = share named at all),

and print the stated FPIR beside the measured one with its Clopper-Pearson 95% interval, and the
expected TPIR (from the calibrated TAR) beside the measured one. The FPIR is "held" when the
interval's lower end is at or under the stated rate (the union bound makes the stated rate an upper
bound, so the measured one is usually below it).

    .venv/bin/python benchmarks/bench_fpir.py                           # N = 100 .. 5000, k = 1, 3
    .venv/bin/python benchmarks/bench_fpir.py --sizes 100,1000 --fpir 1e-3
    .venv/bin/python benchmarks/bench_fpir.py --detector hog --embedder ...   # another stack

LFW is embedded once through the shared pipeline and cached (``bench_gallery.lfw_embeddings``:
``facegate.evaluate.embedding``, under ``<FACEGATE_HOME>/cache``), so every N reuses the same
embeddings; nothing derived from LFW is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gallery import REPO, lfw_embeddings

log = logging.getLogger("bench_fpir")
SIZES = (100, 200, 500, 1000, 2000, 5000)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials."""
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def measure(
    emb: np.ndarray, labels: np.ndarray, ok: np.ndarray, pipeline: Any, *, sizes=SIZES, ks=(1, 3), fpir: float = 1e-2,
    rule: str = "mean", seed: int = 0, tmp: Path | None = None,
) -> list[dict[str, Any]]:
    """One row per (N, k): stated and measured FPIR and TPIR. ``pipeline`` supplies the calibrated
    curve of the stack that made ``emb`` (its ``operating_points`` and template points); no model runs."""
    from facegate.gallery import open_gallery

    rng = np.random.default_rng(seed)
    people: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        if ok[i]:
            people.setdefault(str(lab), []).append(i)
    names = sorted(people)
    rows = []
    tmp = Path(tmp or tempfile.mkdtemp(prefix="bench_fpir_"))
    for k in ks:
        eligible = [n for n in names if len(people[n]) >= k + 1]
        order = [eligible[i] for i in rng.permutation(len(eligible))]
        for n in sizes:
            if n > len(eligible):
                log.warning("k=%d: only %d people have %d+ photos; N=%d skipped", k, len(eligible), k + 1, n)
                continue
            enrolled = order[:n]
            chosen = set(enrolled)
            strangers = np.array([people[x][0] for x in names if x not in chosen])
            cfg = pipeline.config.replace(gallery=tmp / f"g_{k}_{n}.sqlite", fpir=fpir, threshold=None, index="flat")
            with open_gallery(cfg, pipeline=pipeline, rule=rule) as g:
                g.import_embeddings(((x, emb[people[x][:k]]) for x in enrolled), model="bench-fpir")
                policy = g.decision_policy()
                mated = np.array([people[x][k] for x in enrolled])
                ident = g.identify_embeddings(emb[mated], k=1, policy=policy)
                named_right = sum(r.name == x for r, x in zip(ident, enrolled))
                non = g.identify_embeddings(emb[strangers], k=1, policy=policy)
                named = sum(r.identity is not None for r in non)
            lo, hi = clopper_pearson(named, len(strangers))
            rows.append({
                "N": n, "k": k, "rule": rule, "fpir_stated": fpir, "far": policy.far, "threshold_1": policy.threshold,
                "threshold_k": policy.bar(k), "strangers": int(len(strangers)), "strangers_named": int(named),
                "fpir_measured": named / max(len(strangers), 1), "fpir_ci": [lo, hi], "held": lo <= fpir,
                "tpir_expected": policy.tpir, "tpir_measured": named_right / n, "warnings": list(policy.warnings),
            })
            log.info("N=%d k=%d: %s", n, k, rows[-1])
    return rows


def render(rows: list[dict[str, Any]], stack: str) -> str:
    out = [f"FPIR stated vs measured ({stack}); 95% Clopper-Pearson interval; TPIR expected from the calibrated TAR",
           "", "| N | photos | FAR per comparison | bar (k photos) | strangers named | measured FPIR [95% CI] | stated | "
           "held | TPIR expected | TPIR measured |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["fpir_ci"]
        exp = "n/a" if r["tpir_expected"] is None else f"{100 * r['tpir_expected']:.1f}%"
        out.append(
            f"| {r['N']:,} | {r['k']} | {r['far']:.2g} | {r['threshold_k']:.4f} | {r['strangers_named']}/{r['strangers']:,} | "
            f"{100 * r['fpir_measured']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}] | {100 * r['fpir_stated']:g}% | "
            f"{'yes' if r['held'] else 'NO'} | {exp} | {100 * r['tpir_measured']:.1f}% |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from facegate.cli import common_options, config_from_args
    from facegate.config import datasets_dir
    from facegate.pipeline import Pipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[common_options()])
    ap.add_argument("--root", type=Path, default=None, help="LFW images (default $FACEGATE_DATASETS/lfw)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="gallery sizes N (comma-separated)")
    ap.add_argument("--ks", default="1,3", help="photos enrolled per person (comma-separated)")
    ap.add_argument("--fpir", type=float, default=1e-2, help="the rate to decide at (default 1e-2)")
    ap.add_argument("--rule", choices=["mean", "max"], default="mean")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bench_fpir.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", 0) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    root = args.root or datasets_dir() / "lfw"
    _paths, emb, labels, status = lfw_embeddings(root, config)
    ok = np.array([s != "failed" for s in status])
    rows = measure(emb, labels, ok, Pipeline(config), sizes=[int(x) for x in args.sizes.split(",")],
                   ks=[int(x) for x in args.ks.split(",")], fpir=args.fpir, rule=args.rule)
    stack = f"detector {config.detector}, embedder {config.embedder}, rule {args.rule}"
    print(render(rows, stack))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"stack": stack, "rows": rows}, indent=2))
    return 0 if all(r["held"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
