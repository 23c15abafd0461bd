"""End-to-end photos/s: facegate vs face_recognition on the same photos, in one run.

Each side runs in its own subprocess (so peak memory is its own) over the same
JPEG files: decode + detect + align/landmarks + embed every face. Photos are
composed on the fly: 1-3 faces of 80-220 px pasted onto 640x480 or 1280x720
backgrounds. Faces come from LFW when ../shared/datasets is present (read at run
time, never stored), else from photos shipped by matplotlib and scikit-image.

    python benchmarks/bench_e2e.py --photos 40
    python benchmarks/bench_e2e.py --anchor-procs 2   # anchor with one process per core
    python benchmarks/bench_e2e.py --procs 2 --threads 1 --anchor-procs 2   # both sides one process per core

Prints per-photo times, photos/s, the facegate/anchor ratio, face recall and peak memory.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}


def face_sources(datasets: Path, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    from PIL import Image

    lfw = datasets / "lfw"
    if lfw.is_dir():
        people = sorted(p for p in lfw.iterdir() if p.is_dir())
        picks = rng.choice(len(people), size=n, replace=False)
        out = []
        for i in picks:
            f = sorted(people[i].glob("*.jpg"))[0]
            out.append(np.asarray(Image.open(f).convert("RGB"))[50:200, 55:195])  # the face region of a 250x250 LFW image
        return out
    import matplotlib.cbook
    import skimage.data

    hop = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    ast = skimage.data.astronaut()
    return [hop[60:360, 110:390], ast[20:230, 130:320]] * (n // 2 + 1)


def compose(size: tuple[int, int], faces: list[np.ndarray], rng: np.random.Generator):
    """A background with 1-3 non-overlapping pasted faces; returns (image, boxes)."""
    from PIL import Image

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = (rng.integers(60, 200, 3)[None, None, :] + 40 * np.sin(xx[..., None] / rng.uniform(20, 90))
            + 30 * np.cos(yy[..., None] / rng.uniform(20, 90)) + rng.normal(0, 8, (h, w, 3)))
    canvas = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, 4))):
        face = faces[int(rng.integers(len(faces)))]
        fw = int(rng.integers(80, min(221, h - 10)))
        fh = int(fw * face.shape[0] / face.shape[1])
        for _try in range(50):
            x, y = int(rng.integers(0, w - fw)), int(rng.integers(0, h - fh))
            if all(x + fw < b[0] or b[2] < x or y + fh < b[1] or b[3] < y for b in boxes):
                canvas.paste(Image.fromarray(face).resize((fw, fh)), (x, y))
                boxes.append((x, y, x + fw, y + fh))
                break
    return canvas, boxes


def make_photos(folder: Path, n: int, datasets: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    faces = face_sources(datasets, 60, rng)
    meta = {}
    for name, size in SIZES.items():
        d = folder / name
        d.mkdir(parents=True)
        for i in range(n):
            im, boxes = compose(size, faces, rng)
            p = d / f"{i:03d}.jpg"
            im.save(p, quality=90)
            meta[str(p)] = boxes
    return meta


def _recall(found: list[tuple[float, float, float, float]], truth: list) -> int:
    hit = 0
    for tb in truth:
        cx, cy = (tb[0] + tb[2]) / 2, (tb[1] + tb[3]) / 2
        hit += any(f[0] <= cx <= f[2] and f[1] <= cy <= f[3] for f in found)
    return hit


def worker(side: str, files: list[str], threads: int) -> dict:
    """Time one side over the files; returns per-photo seconds, boxes and peak RSS."""
    times, boxes = [], []
    if side == "facegate":
        from facegate import Config
        from facegate.pipeline import Pipeline

        pipe = Pipeline(Config(threads=threads))  # the default stack (mirror-averaged), as evaluated on LFW
        pipe.faces(files[0])  # load models outside the timing
        for f in files:
            t = time.perf_counter()
            faces = pipe.faces(f)
            times.append(time.perf_counter() - t)
            boxes.append([[float(v) for v in fc.box] for fc in faces])
    else:
        import face_recognition

        face_recognition.face_encodings(face_recognition.load_image_file(files[0]))
        for f in files:
            t = time.perf_counter()
            img = face_recognition.load_image_file(f)
            locs = face_recognition.face_locations(img)  # HOG, upsample 1 (its default)
            face_recognition.face_encodings(img, locs)
            times.append(time.perf_counter() - t)
            boxes.append([[left, t_, r, b] for (t_, r, b, left) in locs])
    return {"times": times, "boxes": boxes, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_side(side: str, files: list[str], threads: int, procs: int) -> dict:
    """Run a side in ``procs`` subprocesses over interleaved shares of the files."""
    shares = [files[i::procs] for i in range(procs)]
    ps = [subprocess.Popen([sys.executable, __file__, "--worker", side, "--threads", str(threads)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in shares]
    for p, share in zip(ps, shares):
        p.stdin.write(json.dumps(share))
        p.stdin.close()
    outs = [json.loads(p.stdout.read()) for p in ps]
    for p in ps:
        p.wait()
    # Throughput counts only timed work (model loading excluded): the slowest process decides.
    wall = max(sum(o["times"]) for o in outs)
    by_file = {}
    for share, o in zip(shares, outs):
        for f, t, b in zip(share, o["times"], o["boxes"]):
            by_file[f] = (t, b)
    return {"by_file": by_file, "peak_rss_mb": max(o["peak_rss_mb"] for o in outs), "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=30, help="photos per resolution")
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("FACEGATE_DATASETS", "../shared/datasets")))
    ap.add_argument("--threads", type=int, default=2, help="threads for facegate (torch/tflite)")
    ap.add_argument("--anchor-procs", type=int, default=1, help="face_recognition processes (1 per core is its best)")
    ap.add_argument("--procs", type=int, default=1, help="facegate processes (each with --threads threads)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        files = json.loads(sys.stdin.read())
        print(json.dumps(worker(args.worker, files, args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        meta = make_photos(Path(tmp), args.photos, args.datasets)
        print(f"{args.photos} photos per size, faces 80-220 px, from {'LFW' if (args.datasets / 'lfw').is_dir() else 'package photos'}; "
              f"facegate processes={args.procs} x threads={args.threads}, face_recognition processes={args.anchor_procs}\n")
        print(f"{'size':<9} {'side':<17} {'median ms':>9} {'mean ms':>8} {'photos/s':>8} {'recall':>7} {'peak MB':>8}")
        for size in SIZES:
            files = [f for f in meta if f"/{size}/" in f]
            n_true = sum(len(meta[f]) for f in files)
            res = {}
            for side, procs in (("facegate", args.procs), ("face_recognition", args.anchor_procs)):
                r = run_side(side, files, args.threads, procs)
                ts = [r["by_file"][f][0] for f in files]
                rec = sum(_recall(r["by_file"][f][1], meta[f]) for f in files) / n_true
                pps = len(files) / r["wall"]
                res[side] = pps
                label = side if procs == 1 else f"{side} x{procs}"
                print(f"{size:<9} {label:<17} {1000 * statistics.median(ts):>9.1f} {1000 * statistics.mean(ts):>8.1f} "
                      f"{pps:>8.2f} {rec:>7.3f} {r['peak_rss_mb']:>8.0f}")
            print(f"{size:<9} ratio facegate/face_recognition photos/s: {res['facegate'] / res['face_recognition']:.1f}x\n")


if __name__ == "__main__":
    main()
