"""GPU throughput: faces/s and photos/s on CUDA, beside the anchor on the same machine's CPU, in one run.

    python benchmarks/bench_gpu.py                       # device cuda, batch 64 and 256
    python benchmarks/bench_gpu.py --lfw ../shared/datasets/lfw   # also LFW accuracy, fp32 vs fp16

1. Embedding: the same 150x150 chips (facegate's own alignment of faces it found in the
   composed photos below) through facegate's PyTorch port of dlib's ResNet on the GPU, in
   fp32 and fp16, at each batch size, against dlib-bin's ``compute_face_descriptor`` on the
   CPU (one process, one chip at a time, its fastest form in bench_embed.py). The lowest
   cosine between fp16 and fp32 embeddings of the same chip is printed.
2. End to end (decode + detect + align + embed): photos composed as in bench_e2e.py
   (1-3 faces of 80-220 px on 640x480 and 1280x720 backgrounds, faces from LFW when present).
   facegate decodes in a thread pool that runs ahead of the GPU and calls ``faces_batch`` on
   batches of B photos, with each detector (BlazeFace runs on the CPU with its boxes refined by
   O-Net on the GPU; MTCNN runs on the GPU). The anchor is face_recognition's pipeline (HOG
   upsample 1, dlib landmarks, dlib ResNet), one process per CPU core, its best arrangement.
   face_recognition itself loads dlib's 68-point model at import (non-commercial, 100 MB,
   not carried to the GPU machine), so when it cannot be imported its calls are made with
   dlib directly and the 5-point model (face_recognition's ``model="small"``); the output
   says which ran.
3. With ``--lfw``: LFW View 2 (10 folds, the standard protocol of ``facegate eval lfw``) with
   the default stack on the GPU in fp32 and in fp16, and the accuracy delta.

Peak memory: the process's resident set and PyTorch's peak GPU allocation. Not a test:
the numbers depend on the machine. Results go to benchmarks/RESULTS.md with the device named.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import SIZES, _recall, make_photos


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gpu_mib(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_rate(fn, items: int, repeats: int, device: str) -> float:
    """Items per second of the best of ``repeats`` passes (other load only ever slows a pass)."""
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return items / best


# --------------------------------------------------------------------------- 1. embedding
def embedding_section(chips: np.ndarray, device: str, batch_sizes: list[int], repeats: int, home: Path) -> None:
    import dlib

    from facegate.config import Config
    from facegate.embed.dlib_resnet import DlibResNetEmbedder
    from facegate.models.registry import REGISTRY, verified_path

    print(f"\n== 1. embedding: {len(chips)} chips of 150x150 ==")
    rates: dict[str, float] = {}
    outs: dict[bool, np.ndarray] = {}
    for half in (False, True):
        if half and not device.startswith("cuda"):
            continue
        base = Config(device=device, runtime="torch", flip=False, home=home)
        emb = DlibResNetEmbedder(base, half=half)
        emb.load()
        for bs in batch_sizes:
            emb.config = base.replace(batch_size=bs)
            emb.embed(chips[: max(bs, 1)])  # warm-up at this shape (cuDNN picks its kernels)
            rates[f"facegate {'fp16' if half else 'fp32'} batch {bs}"] = best_rate(
                lambda e=emb: e.embed(chips), len(chips), repeats, device)
        outs[half] = emb.embed(chips)
    rec = dlib.face_recognition_model_v1(str(verified_path(REGISTRY["dlib_resnet"])))
    few = list(chips[:64])
    rec.compute_face_descriptor(few[0])
    rates["dlib-bin CPU, one by one"] = best_rate(lambda: [rec.compute_face_descriptor(c) for c in few],
                                                  len(few), 1, "cpu")
    ref = np.array([np.array(d) for d in (rec.compute_face_descriptor(c) for c in few)], dtype=np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    anchor = rates["dlib-bin CPU, one by one"]
    print(f"{'':28s} {'faces/s':>10s} {'vs dlib':>9s}")
    for name, r in rates.items():
        print(f"{name:28s} {r:10.1f} {r / anchor:8.1f}x")
    print(f"min cosine fp32 vs dlib-bin: {float((outs[False][:64] * ref).sum(1).min()):.6f}")
    if True in outs:
        print(f"min cosine fp16 vs fp32:     {float((outs[True] * outs[False]).sum(1).min()):.6f}")
    print(f"peak RSS {_rss_mib():.0f} MiB, peak GPU allocation {_gpu_mib(device):.0f} MiB")


# --------------------------------------------------------------------------- 2. end to end
_ANCHOR: dict = {}


def _anchor_init() -> None:
    try:
        import face_recognition

        _ANCHOR["fr"] = face_recognition
        _ANCHOR["kind"] = "face_recognition 1.3.0 (HOG upsample 1, 68-point landmarks, ResNet)"
    except Exception:  # noqa: BLE001 - its import loads the 68-point model; see the module docstring
        import dlib
        import face_recognition_models as m

        _ANCHOR["det"] = dlib.get_frontal_face_detector()
        _ANCHOR["sp"] = dlib.shape_predictor(m.pose_predictor_five_point_model_location())
        _ANCHOR["rec"] = dlib.face_recognition_model_v1(m.face_recognition_model_location())
        _ANCHOR["kind"] = "face_recognition's calls via dlib (HOG upsample 1, 5-point landmarks, ResNet)"


def _anchor_photo(path: str) -> tuple[float, list, str]:
    from PIL import Image

    t = time.perf_counter()
    if "fr" in _ANCHOR:
        fr = _ANCHOR["fr"]
        img = fr.load_image_file(path)
        locs = fr.face_locations(img)
        fr.face_encodings(img, locs)
        boxes = [[left, t_, r, b] for (t_, r, b, left) in locs]
    else:
        img = np.asarray(Image.open(path).convert("RGB"))  # what face_recognition.load_image_file does
        rects = _ANCHOR["det"](img, 1)
        for r in rects:
            _ANCHOR["rec"].compute_face_descriptor(img, _ANCHOR["sp"](img, r), 1)
        boxes = [[r.left(), r.top(), r.right(), r.bottom()] for r in rects]
    return time.perf_counter() - t, boxes, _ANCHOR["kind"]


def anchor_side(files: list[str], procs: int) -> tuple[float, list, str]:
    ctx = mp.get_context("spawn")
    with ctx.Pool(procs, initializer=_anchor_init) as pool:
        pool.map(_anchor_photo, files[:procs])  # warm-up: models loaded in every worker
        t = time.perf_counter()
        out = pool.map(_anchor_photo, files, chunksize=1)
        wall = time.perf_counter() - t
    return len(files) / wall, [o[1] for o in out], out[0][2]


def facegate_side(files: list[str], config, batch: int, decoders: int) -> tuple[float, list]:
    from facegate.pipeline import Pipeline

    pipe = Pipeline(config)
    pipe.faces_batch([pipe.load(f) for f in files[:batch]])  # models loaded, kernels picked, outside the timing
    _sync(config.device)
    boxes: list = []
    with ThreadPoolExecutor(decoders) as pool:
        t = time.perf_counter()
        decoded = pool.map(pipe.load, files)  # runs ahead of the batches below
        chunk: list[np.ndarray] = []
        for img in decoded:
            chunk.append(img)
            if len(chunk) == batch:
                boxes += [[list(map(float, f.box)) for f in faces] for faces in pipe.faces_batch(chunk)]
                chunk = []
        if chunk:
            boxes += [[list(map(float, f.box)) for f in faces] for faces in pipe.faces_batch(chunk)]
        _sync(config.device)
        wall = time.perf_counter() - t
    return len(files) / wall, boxes


def e2e_section(folder: Path, meta: dict, device: str, batch_sizes: list[int], procs: int, home: Path,
                detectors: list[str]) -> None:
    from facegate.config import Config

    decoders = max(2, (os.cpu_count() or 2))
    print("\n== 2. end to end: decode + detect + align + embed (mirror-averaged, the default) ==")
    print(f"facegate decodes with {decoders} threads; the anchor runs in {procs} processes")
    for size in SIZES:
        files = sorted(f for f in meta if f"/{size}/" in f)
        n_true = sum(len(meta[f]) for f in files)
        a_rate, a_boxes, kind = anchor_side(files, procs)
        a_rec = sum(_recall(b, meta[f]) for f, b in zip(files, a_boxes)) / n_true
        print(f"\n{size}, {len(files)} photos, {n_true} faces; anchor: {kind}")
        print(f"{'side':<40s} {'photos/s':>9s} {'recall':>7s} {'vs anchor':>10s}")
        print(f"{f'anchor x{procs} processes (CPU)':<40s} {a_rate:9.1f} {a_rec:7.3f} {1.0:9.1f}x")
        for det in detectors:
            for bs in batch_sizes:
                cfg = Config(device=device, detector=det, batch_size=bs, home=home)
                rate, boxes = facegate_side(files, cfg, bs, decoders)
                rec = sum(_recall(b, meta[f]) for f, b in zip(files, boxes)) / n_true
                label = f"facegate {det}, batch {bs} photos"
                print(f"{label:<40s} {rate:9.1f} {rec:7.3f} {rate / a_rate:9.1f}x")
    print(f"\npeak RSS {_rss_mib():.0f} MiB, peak GPU allocation {_gpu_mib(device):.0f} MiB")


# --------------------------------------------------------------------------- 3. LFW fp32 vs fp16
def lfw_section(root: Path, device: str, home: Path) -> None:
    from facegate.config import Config
    from facegate.evaluate.lfw import evaluate_lfw
    from facegate.pipeline import Pipeline

    print("\n== 3. LFW View 2, default stack on the GPU: fp32 vs fp16 ==")
    acc = {}
    for fp16 in (False, True):
        cfg = Config(device=device, fp16=fp16, home=home)
        t = time.perf_counter()
        res = evaluate_lfw(Pipeline(cfg), root, root / "pairs.txt", progress=False)[0]
        acc[fp16] = res
        print(f"{'fp16' if fp16 else 'fp32'}: {100 * res.accuracy_mean:.2f}% +- {100 * res.accuracy_std:.2f}, "
              f"{res.n_errors} errors of {res.n_pairs}, AUC {res.auc:.5f}, TAR {100 * res.tar_at_far_1e3:.2f}% "
              f"at FAR 1e-3, no face {res.outcomes.get('fallback_centre', 0)}, {time.perf_counter() - t:.0f} s")
    d = acc[True].accuracy_mean - acc[False].accuracy_mean
    print(f"fp16 - fp32: {100 * d:+.3f} points ({acc[True].n_errors - acc[False].n_errors:+d} errors)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda[:N] (cpu works, for trying the script out)")
    ap.add_argument("--photos", type=int, default=256, help="photos per size (default 256)")
    ap.add_argument("--chips", type=int, default=1024, help="chips per embedding pass (default 1024)")
    ap.add_argument("--batch-sizes", default="64,256", help="batch sizes (default 64,256)")
    ap.add_argument("--embed-batch-sizes", default="1,16,64,256", help="embedding batch sizes (default 1,16,64,256)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--anchor-procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--detectors", default="blazeface,mtcnn")
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("FACEGATE_DATASETS", "../shared/datasets")))
    ap.add_argument("--lfw", type=Path, help="LFW root (with pairs.txt): also measure fp16's accuracy delta")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: embed,e2e")
    args = ap.parse_args()

    import torch

    from facegate.config import Config
    from facegate.embed.base import resolve_torch_device

    resolve_torch_device(args.device)  # a missing GPU is an error here too
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    print(f"device: {args.device} ({name}); torch {torch.__version__}; {os.cpu_count()} CPU cores")
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"  # fresh weight caches: nothing from another machine is reused
        folder = Path(tmp) / "photos"
        meta = make_photos(folder, args.photos, args.datasets)
        if "embed" not in skip:
            from facegate.pipeline import Pipeline

            pipe = Pipeline(Config(home=home))
            chips = []
            for f in sorted(meta):
                img = pipe.load(f)
                chips.append(pipe.chips(img, pipe.detector.detect(img)))
                if sum(len(c) for c in chips) >= args.chips:
                    break
            all_chips = np.concatenate(chips)
            reps = -(-args.chips // len(all_chips))
            embedding_section(np.tile(all_chips, (reps, 1, 1, 1))[: args.chips], args.device,
                              [int(b) for b in args.embed_batch_sizes.split(",")], args.repeats, home)
        if "e2e" not in skip:
            e2e_section(folder, meta, args.device, [int(b) for b in args.batch_sizes.split(",")],
                        args.anchor_procs, home, args.detectors.split(","))
        if args.lfw:
            lfw_section(args.lfw, args.device, home)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
