"""Does the denied-score drift check see a camera change, and does it state its size truly?

    .venv/bin/python benchmarks/site_drift.py SITES_DIR                 # SITES_DIR from benchmarks/make_sites.py
    .venv/bin/python benchmarks/site_drift.py SITES_DIR --pairs lfw:lfw_cctv lfw_grey:lfw_cctv --seeds 1 2

For each pair ``A:B`` of renderings of the same LFW photos: a site table is calibrated on a gallery of
50 people with 1-3 photos of rendering A (as ``calibrate --site --adopt`` would), then the same people
are re-enrolled from rendering B (the camera changed) while A's table stays in force. B's photos of
everyone else are probed as strangers at FPIR 1e-2: the share really named is measured, and the best
scores of those denied (the first 100, and 1,000) go to :func:`facegate.calibrate.drift.denied_score_drift`,
whose warning states the score shift it found and the share of strangers that shift names at the bar.
Embeddings come from ``facegate.evaluate.far.embed_labelled`` (cached in ``<home>/cache`` like
``eval far``'s). Prints one line per (pair, seed, number of checks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facegate.calibrate import calibrate_site, drift_warnings
from facegate.config import Config
from facegate.decide import open_set_policy
from facegate.evaluate.far import Gallery, embed_labelled
from facegate.pipeline import Pipeline


def face_counts(people: dict[str, np.ndarray]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in people.values():
        out[len(v)] = out.get(len(v), 0) + 1
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sites", type=Path, help="the folder benchmarks/make_sites.py wrote")
    p.add_argument("--pairs", nargs="+", default=["lfw:lfw_grey_small", "lfw:lfw_blur", "lfw:lfw_night", "lfw:lfw_cctv",
                                                  "lfw_grey:lfw_cctv"], help="calibrated-on:camera-now")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    p.add_argument("--people", type=int, default=50)
    args = p.parse_args(argv)
    pipe = Pipeline(Config())
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def site(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in cache:
            emb, lab, _ = embed_labelled(pipe, args.sites / name, pick="center", progress=False)
            cache[name] = (emb, lab)
        return cache[name]

    print("calibrated on -> camera now, seed, denied checks: strangers named / stated; the check's warning")
    for pair in args.pairs:
        before, after = pair.split(":")
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            e0, lab0 = site(before)
            chosen = rng.choice(np.unique(lab0), args.people, replace=False)
            people = {}
            for name in chosen:
                idx = np.flatnonzero(lab0 == name)
                people[str(name)] = e0[idx[: min(len(idx), int(rng.integers(1, 4)))]]
            table, _ = calibrate_site(pipe, people=people, face_counts=face_counts(people), by="benchmark")
            e1, lab1 = site(after)
            now = {n: e1[lab1 == n][: len(people[n])] for n in people if (lab1 == n).any()}
            counts = face_counts(now)
            gallery = Gallery.of(now)
            policy = open_set_policy(Config(fpir=1e-2), table.operating_points(), table.template_points, counts)
            bars = np.asarray([policy.bar(k) for k in gallery.faces])
            strangers = e1[~np.isin(lab1, chosen)]
            strangers = strangers[rng.permutation(len(strangers))[:3000]]
            scores = strangers @ gallery.templates.T
            best, best_score = scores.argmax(1), scores.max(1)
            named = best_score > bars[best]
            for n in (100, 1000):
                ws = drift_warnings(table, people=len(now), faces=sum(len(v) for v in now.values()),
                                    denied_best=best_score[~named][:n], face_counts=counts, bars=bars[best][~named][:n])
                d = [w.details for w in ws if w.code == "impostor_drift"]
                said = "no warning" if not d else (f"shift {d[0]['shift']:+.3f}: names {d[0]['implied_fpir']:.4f} = "
                                                   f"{d[0]['fpir_factor']:.1f}x (p {d[0]['p_value']:.2g})")
                print(f"{before:>9} -> {after:<14} seed {seed} n {n:>4}: {named.mean():.4f} = {named.mean() / 1e-2:5.1f}x; "
                      f"{said}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
