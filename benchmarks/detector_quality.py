"""Detector quality and speed on the shared evaluation data (a script, not a test).

For each detector (blazeface, hog, and any other name in ``facegate.models.detectors.DETECTORS``
whose module imports), it reports on a sample of LFW (250x250, one centred face per
image) the share of images with exactly one face found, containing the image centre,
the share with none and with several; the number of faces found in
``video/street/multiface.jpg`` and in each ``people_small/test`` photo; and the mean
time per image. ``--paste N`` adds a synthetic test: LFW faces pasted at known places
(face boxes 40-220 px) into N 1280x720 images, reporting recall and false positives.

``--calibrate`` instead measures the box adjustment of BlazeFace relative to HOG
(``facegate.detect.blazeface.BOX_ADJUST_BLAZEFACE``) on LFW and prints the constants.

The images are research-use only: nothing derived from them is written anywhere.

Usage:
    .venv/bin/python benchmarks/detector_quality.py [--datasets DIR] [--lfw-limit 2000|all]
        [--detectors blazeface,hog] [--paste 50] [--calibrate]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from facegate.config import Config
from facegate.detect import get_detector
from facegate.models.detectors import DETECTORS

ROOT = Path(__file__).resolve().parents[1]


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def datasets_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("FACEGATE_DATASETS")
    return Path(env) if env else (ROOT / ".." / "shared" / "datasets").resolve()


def lfw_sample(root: Path, limit: int | None) -> list[Path]:
    files = sorted((root / "lfw").glob("*/*.jpg"))
    if not files:
        sys.exit(f"no LFW images under {root / 'lfw'}")
    if limit is None or limit >= len(files):
        return files
    idx = np.linspace(0, len(files) - 1, limit).round().astype(int)  # spread over all names
    return [files[i] for i in idx]


def available_detectors(names: list[str], config: Config):
    out = []
    for name in names:
        try:
            det = get_detector(config.replace(detector=name))
            det.detect(np.zeros((64, 64, 3), np.uint8))  # loads weights: fail here, not mid-run
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"  {name}: not available ({type(exc).__name__}: {exc})")
            continue
        out.append((name, det))
    return out


def contains(box: np.ndarray, x: float, y: float) -> bool:
    return bool(box[0] <= x <= box[2] and box[1] <= y <= box[3])


def eval_lfw(det, files: list[Path]) -> dict[str, float]:
    one = none = several = centre_any = 0
    t = 0.0
    for f in files:
        img = load_rgb(f)
        t0 = time.perf_counter()
        faces = det.detect(img)
        t += time.perf_counter() - t0
        cx, cy = img.shape[1] / 2, img.shape[0] / 2
        hits = [fc for fc in faces if contains(fc.box, cx, cy)]
        if not faces:
            none += 1
        elif len(faces) > 1:
            several += 1
        elif hits:
            one += 1
        centre_any += bool(hits)
    n = len(files)
    return {
        "one_centre": one / n,
        "none": none / n,
        "several": several / n,
        "centre_any": centre_any / n,
        "ms": 1000 * t / n,
    }


def eval_photos(det, paths: list[Path]) -> list[tuple[str, int, float]]:
    out = []
    for p in paths:
        img = load_rgb(p)
        det.detect(img)  # warm caches for this size
        t0 = time.perf_counter()
        faces = det.detect(img)
        out.append((p.name, len(faces), 1000 * (time.perf_counter() - t0)))
    return out


# The HOG box of the centred face in (deep-funneled) LFW images: median over 150 images
# x 67-176, y 80-188, so about 108 px around (121, 134). Pasted crops are that box grown
# 1.4 times, so a pasted face of f px is a crop of 1.4 f px whose central f x f square is
# the ground-truth face box (comparable to HOG boxes and facegate's dlib-like boxes).
LFW_FACE_CENTRE = (121, 134)
LFW_FACE_SIDE = 108
PASTE_CONTEXT = 1.4


def paste_scenes(files: list[Path], n: int, seed: int = 0, sizes: tuple[int, int] = (40, 220)):
    """N 1280x720 scenes with 2-5 LFW faces each (face box sizes 40-220 px) and their face boxes.

    Backgrounds are smooth random colour fields with a little noise.
    """
    import cv2

    rng = np.random.default_rng(seed)
    cx, cy = LFW_FACE_CENTRE
    half = round(LFW_FACE_SIDE * PASTE_CONTEXT / 2)
    scenes = []
    for _ in range(n):
        bg = rng.integers(0, 256, (9, 16, 3)).astype(np.uint8)
        img = cv2.resize(bg, (1280, 720), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img.astype(np.int16) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        boxes: list[list[float]] = []
        taken: list[tuple[int, int, int]] = []
        for _ in range(int(rng.integers(2, 6))):
            f = int(rng.integers(sizes[0], sizes[1] + 1))
            s = round(f * PASTE_CONTEXT)
            for _try in range(50):
                x, y = int(rng.integers(0, 1280 - s)), int(rng.integers(0, 720 - s))
                if all(x + s < tx or tx + ts < x or y + s < ty or ty + ts < y for tx, ty, ts in taken):
                    break
            else:
                continue
            crop = load_rgb(files[int(rng.integers(len(files)))])[cy - half : cy + half, cx - half : cx + half]
            interp = cv2.INTER_AREA if s < crop.shape[0] else cv2.INTER_LINEAR
            img[y : y + s, x : x + s] = cv2.resize(crop, (s, s), interpolation=interp)
            taken.append((x, y, s))
            m = (s - f) / 2
            boxes.append([x + m, y + m, x + m + f, y + m + f])
        scenes.append((img, np.array(boxes, dtype=np.float32).reshape(-1, 4)))
    return scenes


def eval_paste(det, scenes) -> dict[str, float]:
    from facegate.detect.boxes import iou_matrix

    found = total = fp = 0
    by_size: dict[str, list[int]] = {}
    t = 0.0
    for img, gt in scenes:
        t0 = time.perf_counter()
        faces = det.detect(img)
        t += time.perf_counter() - t0
        pred = np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4)
        iou = iou_matrix(gt, pred)
        matched_pred = set()
        for g in range(len(gt)):
            j = int(np.argmax(iou[g])) if iou.shape[1] else -1
            ok = j >= 0 and iou[g, j] > 0.4
            if ok:
                matched_pred.add(j)
            side = gt[g, 2] - gt[g, 0]
            bucket = "40-49" if side < 50 else "50-59" if side < 60 else "60-99" if side < 100 else "100+"
            by_size.setdefault(bucket, [0, 0])
            by_size[bucket][0] += ok
            by_size[bucket][1] += 1
            found += ok
            total += 1
        fp += len(pred) - len(matched_pred)
    out = {"recall all": found / max(total, 1), "fp_per_img": fp / len(scenes), "ms": 1000 * t / len(scenes)}
    for k, (a, b) in sorted(by_size.items()):
        out[f"recall {k}"] = a / b
    return out


def calibrate(files: list[Path], config: Config) -> None:
    """BlazeFace-to-HOG box mapping from the centre faces of LFW, and the landmark error with it."""
    from facegate.detect.blazeface import BOX_ADJUST_BLAZEFACE, BlazeFaceDetector
    from facegate.detect.boxes import iou_matrix
    from facegate.detect.hog import HogDetector

    hog = HogDetector(config.replace(detector="hog"))
    bf = BlazeFaceDetector(config.replace(detector="blazeface"))
    ratios = []
    pairs = []
    for f in files:
        img = load_rgb(f)
        hb, _ = hog.detect_boxes(img)
        faces = bf.detect(img)
        if len(hb) == 0 or not faces:
            continue
        cx, cy = img.shape[1] / 2, img.shape[0] / 2
        hb = [b for b in hb if contains(b, cx, cy)]
        raw = [fc.extra["detector_box"] for fc in faces if contains(fc.extra["detector_box"], cx, cy)]
        if len(hb) != 1 or len(raw) != 1:
            continue
        h, b = hb[0].astype(np.float64), raw[0].astype(np.float64)
        if iou_matrix(h, b)[0, 0] < 0.3:
            continue
        bw, bh = b[2] - b[0], b[3] - b[1]
        ratios.append(
            (
                (h[2] - h[0]) / bw,
                (h[3] - h[1]) / bh,
                ((h[0] + h[2]) - (b[0] + b[2])) / 2 / bw,
                ((h[1] + h[3]) - (b[1] + b[3])) / 2 / bh,
            )
        )
        pairs.append((img, h, b))
    r = np.array(ratios)
    med = np.median(r, axis=0)
    q1, q3 = np.percentile(r, 25, axis=0), np.percentile(r, 75, axis=0)
    print(f"{len(r)} HOG/BlazeFace pairs from {len(files)} LFW images")
    for name, m, a, b in zip(("sx", "sy", "dx", "dy"), med, q1, q3):
        print(f"  {name} = {m:+.4f}   (IQR {a:+.4f} .. {b:+.4f})")
    print(f"  in use: {BOX_ADJUST_BLAZEFACE}")
    # Landmark agreement with the adjustment now in use vs. with the raw box.
    errs_adj, errs_raw = [], []
    for img, h, b in pairs:
        lm_h = hog.landmarker.fit(img, h[None])[0]
        lm_a = bf.landmarker.fit(img, BOX_ADJUST_BLAZEFACE.apply(b[None]))[0]
        lm_r = bf.landmarker.fit(img, b[None])[0]
        side = h[2] - h[0]
        errs_adj.append(np.linalg.norm(lm_a - lm_h, axis=1).mean() / side)
        errs_raw.append(np.linalg.norm(lm_r - lm_h, axis=1).mean() / side)
    print(
        "  landmark distance to HOG-box landmarks, mean over 5 points / HOG box side: "
        f"adjusted median {np.median(errs_adj):.4f} p90 {np.percentile(errs_adj, 90):.4f}; "
        f"unadjusted median {np.median(errs_raw):.4f} p90 {np.percentile(errs_raw, 90):.4f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", help="shared data folder (default: $FACEGATE_DATASETS or ../shared/datasets)")
    ap.add_argument("--lfw-limit", default="2000", help="LFW images to sample, or 'all' (13,233)")
    ap.add_argument("--detectors", default=",".join(DETECTORS), help="comma-separated detector names")
    ap.add_argument("--paste", type=int, default=0, help="also run N synthetic 1280x720 pasted-face scenes")
    ap.add_argument("--calibrate", action="store_true", help="measure BlazeFace->HOG box adjustment and exit")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)

    root = datasets_dir(args.datasets)
    if not root.is_dir():
        sys.exit(f"datasets folder not found: {root} (use --datasets or FACEGATE_DATASETS)")
    limit = None if args.lfw_limit == "all" else int(args.lfw_limit)
    config = Config(threads=args.threads)
    files = lfw_sample(root, limit)
    if args.calibrate:
        calibrate(files, config)
        return

    print(f"datasets: {root}; LFW sample: {len(files)} images")
    dets = available_detectors([n.strip() for n in args.detectors.split(",") if n.strip()], config)
    photos = [root / "video" / "street" / "multiface.jpg"] + sorted((root / "people_small" / "test").glob("*.jpg"))
    photos = [p for p in photos if p.exists()]
    scenes = paste_scenes(lfw_sample(root, None), args.paste) if args.paste else []

    rows = []
    for name, det in dets:
        t0 = time.perf_counter()
        lfw = eval_lfw(det, files)
        ph = eval_photos(det, photos)
        paste = eval_paste(det, scenes) if scenes else {}
        rows.append((name, lfw, ph, paste))
        print(f"  {name}: done in {time.perf_counter() - t0:.0f} s", flush=True)

    print()
    print(f"LFW ({len(files)} images, 250x250, face centred)")
    print(f"{'detector':<10} {'one@centre':>10} {'none':>7} {'several':>8} {'centre(any)':>11} {'ms/img':>8}")
    for name, lfw, _, _ in rows:
        print(
            f"{name:<10} {lfw['one_centre']:>10.2%} {lfw['none']:>7.2%} {lfw['several']:>8.2%} "
            f"{lfw['centre_any']:>11.2%} {lfw['ms']:>8.1f}"
        )
    print()
    print("faces found per photo (ms)")
    header = f"{'photo':<34}" + "".join(f"{name:>16}" for name, *_ in rows)
    print(header)
    for i, p in enumerate(photos):
        size = Image.open(p).size
        label = f"{p.name} {size[0]}x{size[1]}"
        print(f"{label:<34}" + "".join(f"{ph[i][1]:>7d} ({ph[i][2]:>6.0f})" for _, _, ph, _ in rows))
    if scenes:
        print()
        print(f"pasted LFW faces (40-220 px), {len(scenes)} scenes 1280x720, {sum(len(g) for _, g in scenes)} faces, IoU > 0.4")
        keys = sorted({k for *_, p in rows for k in p})
        print(f"{'detector':<10}" + "".join(f"{k:>16}" for k in keys))
        for name, _, _, p in rows:
            print(f"{name:<10}" + "".join(f"{p.get(k, float('nan')):>16.3f}" for k in keys))


if __name__ == "__main__":
    main()
