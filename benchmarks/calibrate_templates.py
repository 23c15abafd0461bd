"""Calibrate the template thresholds that ``watch`` names tracks with (facegate/data/template_points.json).

    .venv/bin/python benchmarks/calibrate_templates.py                       # print the table
    .venv/bin/python benchmarks/calibrate_templates.py --write facegate/data/template_points.json

Embeds every LFW photo with the default stack (BlazeFace with O-Net boxes and points,
mirror-averaged MobileFaceNet, the face nearest the centre, photos without a face skipped;
embeddings come from the same cache as ``facegate eval lfw``), then runs
:func:`facegate.evaluate.templates.calibrate_templates`: for k = 2 ... 16, templates of k
photos of one person against every photo of everyone else. See that module for why tracks
need thresholds of their own.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from facegate.config import Config, datasets_dir
from facegate.decide.tables import load_operating_points, save_template_points, stack_key
from facegate.evaluate.calibration import labelled_images
from facegate.evaluate.embedding import FAILED, embed_files
from facegate.evaluate.templates import TEMPLATE_FARS, TEMPLATE_KS, calibrate_templates
from facegate.models.detectors import box_refinement
from facegate.pipeline import Pipeline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=None, help="LFW folder (default $FACEGATE_DATASETS/lfw)")
    p.add_argument("--per-person", type=int, default=2, help="templates per person and k (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", type=Path, metavar="TABLE.json", help="merge the points into this table")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = args.root or datasets_dir() / "lfw"
    if not root.is_dir():
        print(f"LFW not found at {root}", file=sys.stderr)
        return 8
    config = Config()
    pipe = Pipeline(config)
    paths, labels = labelled_images(root)
    emb = embed_files(pipe, paths, pick="center", fallback=(), progress=True, desc="LFW")
    ok = np.array([s != FAILED for s in emb.status])
    labels_ok = np.asarray(labels)[ok]
    t0 = time.perf_counter()
    points = calibrate_templates(emb.embeddings[ok], labels_ok, per_person=args.per_person, seed=args.seed)
    single = {p.far: p.threshold for p in load_operating_points(config)}
    print(f"{int(ok.sum())} photos of {len(set(labels_ok))} people ({int((~ok).sum())} without a face); "
          f"{time.perf_counter() - t0:.1f} s\n")
    print(f"  {'k':>3}  {'FAR':>7}  {'threshold':>9}  {'TAR':>7}  {'templates':>9}  {'people':>6}  "
          f"{'impostor pairs':>14}  single-photo threshold")
    for pt in points:
        print(f"  {pt.k:>3}  {pt.far:>7g}  {pt.threshold:>9.4f}  {100 * (pt.tar or 0):>6.2f}%  {pt.templates:>9}  {pt.people:>6}  "
              f"{pt.impostor_pairs:>14,}  {single.get(pt.far, float('nan')):.4f}")
    if args.write:
        save_template_points(str(args.write), stack_key(config), points, {
            "embedder": config.embedder,
            "dataset": "LFW deep-funneled: k-photo templates against every photo of other people",
            "detector": config.detector, "flip": config.flip, "pick": "center",
            "refine_boxes": box_refinement(config), "photos": int(ok.sum()),
            "people": len(set(labels_ok)), "skipped_no_face_or_unreadable": int((~ok).sum()),
            "per_person": args.per_person, "seed": args.seed, "ks": list(TEMPLATE_KS), "fars": list(TEMPLATE_FARS),
        })
        print(f"\nwritten: {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
