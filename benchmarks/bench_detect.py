"""Detection benchmark: recall and false positives per face-size band and pose, landmark error, ms per photo.

Frames are composited in memory (``facegate.evaluate.detection``) from LFW faces and the package
photos (Grace Hopper, the astronaut): 1-4 faces of 20-320 px per 640x480 or 1280x720 frame, rolled
30/60/90 degrees, mirrored or grey; frames filled by one face; crops tighter than the head. Nothing
generated is written to disk. With ``--cfp`` also the share of cfp_dev images (frontal, profile)
with a face found, and the face counts on the multi-face photos in ../shared.

Detectors: every name in ``facegate.models.detectors.DETECTORS``, ``blazeface-2026-11`` (the tile plan
without the padded pass and fallbacks: the default before this benchmark) and
``blazeface+mtcnn`` (MTCNN on images where BlazeFace found nothing).

``--calibrate`` runs each detector with a low candidate cut and fits the logistic map from its
raw score to P(true face) (each detector's ``score`` in ``facegate.models.detectors``), printing the constants.

Usage:
    .venv/bin/python benchmarks/bench_detect.py [--datasets DIR] [--frames 40] [--detectors a,b]
        [--cfp] [--cfp-step 1] [--calibrate] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facegate.config import Config  # noqa: E402
from facegate.detect import get_detector  # noqa: E402
from facegate.evaluate import detection as D  # noqa: E402
from facegate.models.detectors import DETECTORS  # noqa: E402

VARIANTS = ("blazeface-2026-11", "blazeface+mtcnn")


def make_detector(name: str, config: Config):
    """A callable image -> faces for a detector name or one of ``VARIANTS``."""
    if name == "blazeface-2026-11":
        det = get_detector(config.replace(detector="blazeface", min_face_size=40))
        det.padded_pass = det.prune_levels = det.small_faces = det.turned_refine = False
        return lambda img: det.detect_tiles([img])[0]
    if name == "blazeface+mtcnn":
        bf = get_detector(config.replace(detector="blazeface"))
        mt = get_detector(config.replace(detector="mtcnn"))
        return lambda img: bf.detect(img) or mt.detect(img)
    det = get_detector(config.replace(detector=name))
    return det.detect


def datasets_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("FACEGATE_DATASETS")
    return Path(env) if env else (ROOT / ".." / "shared" / "datasets").resolve()


def build_frames(args, root: Path):
    from facegate.detect.landmarks import DlibLandmarker

    fit = DlibLandmarker(Config()).fit
    sources = D.package_sources(fit)
    if (root / "lfw").is_dir() and args.lfw > 0:
        sources += D.lfw_sources(root / "lfw", args.lfw, fit)
    poses = tuple(args.poses.split(",")) if args.poses else D.POSES
    return D.make_frames(sources, args.frames, seed=args.seed, poses=poses, frame_filling=args.frame_filling, tight=args.tight)


def table(results: dict[str, dict[str, D.Tally]], runs: dict | None = None, frames: list | None = None) -> str:
    names = list(results)
    keys = ["all"] + [f"band:{b}" for b, _, _ in D.BANDS] + ["band:frame", "band:tight"]
    keys += [f"band:{b}@1280x720" for b, _, _ in D.BANDS]
    keys += [f"band:{b}@1280x720~roll{D.WITHIN_ROLL:.0f}" for b, _, _ in D.BANDS]
    keys += [f"pose:{p}" for p in D.POSES] + [f"size:{s}" for s in ("640x480", "1280x720")]
    lines = ["| group | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in keys:
        cells = []
        for n in names:
            t = results[n].get(k)
            if t is None or not t.faces:
                cells.append("-")
                continue
            lm = f", lm {100 * np.mean(t.lm_err):.1f}%" if t.lm_err else ""
            cells.append(f"{t.recall:.3f} ({t.found}/{t.faces}{lm})")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    for s in ("640x480", "1280x720"):
        cells = []
        for n in names:
            t = results[n].get(f"size:{s}")
            cells.append("-" if t is None else f"{1000 * t.seconds / t.frames:.1f} ms, FP {t.false_pos / t.frames:.2f}/frame")
        lines.append(f"| {s} time, false pos. | " + " | ".join(cells) + " |")
    if runs is not None and frames is not None:
        # Per-frame time over the first detector's on the same frame (timed in turn), the median:
        # steadier than a ratio of means on a shared machine.
        for s in ("640x480", "1280x720"):
            idx = [i for i, f in enumerate(frames) if f.kind == s]
            base = np.array([runs[names[0]][i][1] for i in idx])
            cells = [f"{np.median(np.array([runs[n][i][1] for i in idx]) / base):.2f}x" if idx else "-" for n in names]
            lines.append(f"| {s} time / {names[0]} (median per frame) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets")
    ap.add_argument("--frames", type=int, default=40, help="composited frames per frame size")
    ap.add_argument("--frame-filling", type=int, default=40)
    ap.add_argument("--tight", type=int, default=40)
    ap.add_argument("--lfw", type=int, default=200, help="LFW photos used as face sources (0: package photos only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detectors", default=",".join(DETECTORS + VARIANTS))
    ap.add_argument("--cfp", action="store_true", help="also cfp_dev (share of images with a face) and the multi-face photos")
    ap.add_argument("--cfp-step", type=int, default=1, help="every n-th cfp_dev image")
    ap.add_argument("--calibrate", action="store_true", help="fit each detector's score calibration")
    ap.add_argument("--poses", default="", help="comma-separated poses of the pasted faces (default: all)")
    ap.add_argument("--min-face-size", type=int, help="override Config.min_face_size for every detector")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    base = Config() if args.min_face_size is None else Config(min_face_size=args.min_face_size)
    logging.basicConfig(level=logging.WARNING)
    root = datasets_dir(args.datasets)
    frames = build_frames(args, root)
    names = [n for n in args.detectors.split(",") if n]
    print(f"{len(frames)} frames, {sum(len(f.faces) for f in frames)} faces")
    out: dict[str, object] = {}
    if args.calibrate:
        from facegate.detect.scores import raw_feature

        for n in (n for n in names if n in DETECTORS):
            det = get_detector(Config(detector=n, detection_threshold=0.2, min_score=0.0))
            _, scored = D.evaluate(det.detect, frames)
            raw = np.array([raw_feature(n, s) for s, _ in scored])
            lab = np.array([ok for _, ok in scored])
            a, b = D.fit_logistic(raw, lab)
            print(f"calibration {n}: a={a:.4f} b={b:.4f} ({lab.sum()} true, {(~lab).sum()} false detections)")
            out[f"calibration:{n}"] = {"a": a, "b": b, "true": int(lab.sum()), "false": int((~lab).sum())}
    detectors = {n: make_detector(n, base) for n in names}
    for detect in detectors.values():
        detect(frames[0].image)  # load the weights outside the timing
    runs = D.run_interleaved(detectors, frames)  # frame by frame, every detector in turn
    results = {n: D.evaluate(None, frames, runs[n])[0] for n in names}
    print(table(results, runs, frames))
    out["frames"] = {n: {k: vars(t) | {"recall": t.recall} for k, t in r.items()} for n, r in results.items()}
    if args.cfp and (root / "cfp_dev").is_dir():
        from facegate.image import load_image

        print("\n| detector | cfp_dev frontal | profile | ms/image |\n|---|---|---|---|")
        for n in names:
            detect = make_detector(n, base)
            r = D.cfp_found(detect, root / "cfp_dev", args.cfp_step)
            (ff, fn, fms), (pf, pn, pms) = r["frontal"], r["profile"]
            print(f"| {n} | {ff / fn:.4f} ({fn - ff} of {fn} missed) | {pf / pn:.4f} ({pn - pf} of {pn} missed) | "
                  f"{(fms * fn + pms * pn) / (fn + pn):.1f} |", flush=True)
            out[f"cfp:{n}"] = r
        photos = sorted((root / "people_small" / "test").glob("*.jpg")) + [root / "video" / "street" / "multiface.jpg"]
        print("\n| photo | " + " | ".join(names) + " |\n|---" * 1 + "|---" * len(names) + "|")
        dets = {n: make_detector(n, base) for n in names}
        for p in photos:
            if p.is_file():
                img = load_image(p)
                print(f"| {p.name} | " + " | ".join(str(len(dets[n](img))) for n in names) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
