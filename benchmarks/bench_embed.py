"""Embedding speed: facegate's embedders (dlib's ResNet rebuilt in PyTorch/ONNX, MobileFaceNet
translated from TFLite) versus dlib itself, on the same faces.

    .venv/bin/python benchmarks/bench_embed.py               # sample photos, augmented
    .venv/bin/python benchmarks/bench_embed.py --lfw DIR     # chips from real photos under DIR

Both sides get the same 150x150 chips (dlib's own ``get_face_chip``) and neither
mirrors them (facegate's ``flip`` would double its cost). facegate is timed at batch
sizes 1, 16 and 64; dlib's ``compute_face_descriptor`` one chip at a time and with its
list (batch) form. Each measurement is the best of ``--repeats`` passes over all chips,
since other processes on a shared machine only ever make a pass slower. Peak memory is
the process's maximum resident size (``getrusage``) after each phase, so it only grows.
The cosine between the two outputs is printed as a sanity check; parity itself is
asserted in tests/test_embed.py. Nothing here is a test: the numbers depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _peak_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024  # bytes on macOS


def _sample_images() -> list[np.ndarray]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.asarray(im.convert("RGB"))
    return [np.ascontiguousarray(skimage.data.astronaut()), np.ascontiguousarray(hopper)]


def _lfw_images(root: Path, limit: int) -> list[np.ndarray]:
    from PIL import Image

    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"no .jpg/.png images under {root}")
    step = max(1, len(paths) // limit)  # spread over the whole set, not just the first names
    out = []
    for p in paths[::step][:limit]:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def make_chips(images: list[np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    """dlib chips of every detected face, topped up to ``n`` with jittered copies
    (landmarks nudged by a pixel or two, mirrored, brightness/contrast changed)."""
    import dlib
    import face_recognition_models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    faces = []
    for img in images:
        for rect in detector(img, 1):
            faces.append((img, predictor(img, rect)))
    if not faces:
        raise SystemExit("no faces found in the input images")
    rng = np.random.default_rng(seed)
    chips = [dlib.get_face_chip(img, shape, 150, 0.25) for img, shape in faces[:n]]
    while len(chips) < n:
        img, shape = faces[int(rng.integers(len(faces)))]
        parts = [dlib.point(int(p.x + rng.integers(-2, 3)), int(p.y + rng.integers(-2, 3))) for p in shape.parts()]
        jittered = dlib.full_object_detection(shape.rect, parts)
        chip = dlib.get_face_chip(img, jittered, 150, 0.25).astype(np.float32)
        chip = chip * rng.uniform(0.7, 1.2) + rng.uniform(-30, 30)
        if rng.random() < 0.5:
            chip = chip[:, ::-1]
        chips.append(np.clip(chip, 0, 255).astype(np.uint8))
    return np.ascontiguousarray(np.stack(chips[:n]))


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, help="take chips from the photos under this folder (e.g. LFW)")
    ap.add_argument("--images", type=int, default=40, help="photos to read from --lfw (default 40)")
    ap.add_argument("-n", "--chips", type=int, default=64, help="chips per pass (default 64)")
    ap.add_argument("--repeats", type=int, default=2, help="passes per measurement; the best counts (default 2)")
    ap.add_argument("--batch-sizes", default="1,16,64", help="facegate batch sizes (default 1,16,64)")
    ap.add_argument("--threads", type=int, default=0, help="threads (0 = all usable CPUs)")
    ap.add_argument("--device", default="cpu", help="facegate device: cpu or cuda[:N] (dlib-bin is CPU-only)")
    args = ap.parse_args(argv)

    import dlib
    import torch

    from facegate.config import Config
    from facegate.embed.dlib_resnet import DlibResNetEmbedder
    from facegate.models.registry import REGISTRY, verified_path

    images = _lfw_images(args.lfw, args.images) if args.lfw else _sample_images()
    chips = make_chips(images, args.chips)
    del images
    source = f"LFW-style photos under {args.lfw}" if args.lfw else "skimage astronaut + matplotlib grace_hopper, augmented"
    print(f"chips: {len(chips)} x 150x150 from {source}")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, dlib {dlib.__version__}")
    print(f"peak RSS after making chips: {_peak_mib():.0f} MiB")

    results: dict[str, float] = {}
    ours = None
    for runtime in ("onnxruntime", "torch"):
        base = Config(flip=False, device=args.device, threads=args.threads, runtime=runtime)
        t = time.perf_counter()
        try:
            embedder = DlibResNetEmbedder(base)
        except Exception as exc:  # noqa: BLE001 - e.g. no CUDA provider in this onnxruntime
            print(f"facegate {runtime}: skipped ({exc})")
            continue
        embedder.load()
        print(f"facegate {runtime}: weights from {embedder.loaded_from} in {time.perf_counter() - t:.2f} s, "
              f"{torch.get_num_threads()} torch threads, device {embedder.device}")
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            embedder.config = base.replace(batch_size=bs)
            embedder.embed(chips[: min(bs, len(chips))])  # warm-up at this shape
            seconds = best_time(lambda e=embedder: e.embed(chips), args.repeats)
            results[f"facegate {runtime} batch {bs}"] = len(chips) / seconds
            if ours is None:
                ours = embedder.embed(chips)
    import cv2

    from facegate.embed import get_embedder

    chips112 = np.stack([cv2.resize(c, (112, 112), interpolation=cv2.INTER_AREA) for c in chips])
    for runtime in ("litert", "onnxruntime", "torch"):
        base = Config(embedder="mobilefacenet", flip=False, device=args.device, threads=args.threads, runtime=runtime)
        try:
            mfn = get_embedder(base)
        except Exception as exc:  # noqa: BLE001 - a runtime this machine lacks is reported, not fatal
            print(f"mobilefacenet {runtime}: skipped ({exc})")
            continue
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            mfn.config = base.replace(batch_size=bs)
            mfn.embed(chips112[: min(bs, len(chips112))])
            seconds = best_time(lambda m=mfn: m.embed(chips112), args.repeats)
            results[f"mobilefacenet {runtime} batch {bs}"] = len(chips112) / seconds
    print(f"peak RSS after facegate: {_peak_mib():.0f} MiB")

    rec = dlib.face_recognition_model_v1(str(verified_path(REGISTRY["dlib_resnet"])))
    chip_list = list(chips)
    rec.compute_face_descriptor(chip_list[0])  # warm-up
    results["dlib one by one"] = len(chips) / best_time(
        lambda: [rec.compute_face_descriptor(c) for c in chip_list], args.repeats
    )
    results["dlib batch (list)"] = len(chips) / best_time(lambda: rec.compute_face_descriptor(chip_list), args.repeats)
    theirs = np.array([np.array(d) for d in rec.compute_face_descriptor(chip_list)], dtype=np.float32)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    print(f"peak RSS after dlib: {_peak_mib():.0f} MiB")

    dlib_best = max(results["dlib one by one"], results["dlib batch (list)"])
    print(f"\n{'':34s} {'faces/s':>9s} {'vs dlib':>8s}")
    for name, fps in results.items():
        print(f"{name:34s} {fps:9.1f} {fps / dlib_best:7.2f}x")
    print(f"\n(vs dlib = against dlib's faster mode; min cosine facegate vs dlib: {float((ours * theirs).sum(1).min()):.6f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
