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
4. The device path (``facegate/bulk/device.py``: decode, MTCNN, dlib's five points, warps and
   embedding all on the device, fed by its threaded loader), in section 2's tables beside the
   anchor: photos/s and faces/s end to end, then one timed pass per size with the seconds per
   stage (decode, upload, detect, landmarks, warp, embed; the device synchronised after each,
   so the sum exceeds the pipelined wall time) and the GPU utilisation sampled during the
   untimed pass (torch.cuda.utilization, else nvidia-smi, every 0.2 s). With ``--lfw``: LFW View
   2 through the device path against the CPU path (MTCNN, run on the CPU), same protocol.

``--device cpu --smoke``: a few photos, one batch size, one anchor process, so the script can be
tried on a machine without a GPU (its figures mean nothing).

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


class GpuSampler:
    """GPU utilisation (percent) sampled in a thread while a pass runs: torch.cuda.utilization (NVML)
    when it works, else nvidia-smi; nothing on the CPU."""

    def __init__(self, device: str, every: float = 0.2) -> None:
        self.device, self.every, self.samples = device, every, []
        self._stop = None

    def _read(self) -> float | None:
        import subprocess

        import torch

        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:  # noqa: BLE001 - no pynvml: ask nvidia-smi
            index = self.device.split(":", 1)[1] if ":" in self.device else "0"
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", index], capture_output=True, text=True, timeout=5)
                return float(out.stdout.strip().splitlines()[0])
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return None

    def __enter__(self) -> GpuSampler:
        import threading

        if self.device.startswith("cuda"):
            self._stop = threading.Event()

            def loop() -> None:
                while not self._stop.wait(self.every):
                    v = self._read()
                    if v is not None:
                        self.samples.append(v)

            self._thread = threading.Thread(target=loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        return f"mean {np.mean(self.samples):.0f}%, median {np.median(self.samples):.0f}%"


def device_path_side(files: list[str], config, batch: int) -> tuple[float, list, dict, str]:
    """Photos/s of the device path with its loader (untimed stages), the boxes, then the seconds per
    stage of one timed pass, and the GPU utilisation during the untimed pass."""
    from facegate.bulk.device import DevicePath

    path = DevicePath(config)
    with path.loader(files[:batch], batch=batch) as loader:  # models loaded, kernels picked
        for decoded in loader:
            path.faces_batch([img for _, img, _ in decoded if img is not None])
    _sync(config.device)
    boxes: list = []
    with GpuSampler(config.device) as gpu:
        t = time.perf_counter()
        with path.loader(files, batch=batch) as loader:
            for decoded in loader:
                found = path.faces_batch([img for _, img, _ in decoded if img is not None])
                boxes += [[list(map(float, f.box)) for f in faces] for faces in found]
        _sync(config.device)
        wall = time.perf_counter() - t
    path.timed = True
    with path.loader(files, batch=batch) as loader:
        for decoded in loader:
            path.faces_batch([img for _, img, _ in decoded if img is not None])
    stages = {"decode": loader.decode_seconds, **path.timings}
    return len(files) / wall, boxes, stages, gpu.summary()


def e2e_section(folder: Path, meta: dict, device: str, batch_sizes: list[int], procs: int, home: Path,
                detectors: list[str], device_path: bool = True) -> None:
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
        print(f"{'side':<40s} {'photos/s':>9s} {'faces/s':>9s} {'recall':>7s} {'vs anchor':>10s}")
        per_photo = n_true / len(files)  # faces/s counts the faces in the photos, found or not
        print(f"{f'anchor x{procs} processes (CPU)':<40s} {a_rate:9.1f} {a_rate * per_photo:9.1f} {a_rec:7.3f} "
              f"{1.0:9.1f}x")
        for det in detectors:
            for bs in batch_sizes:
                cfg = Config(device=device, detector=det, batch_size=bs, home=home)
                rate, boxes = facegate_side(files, cfg, bs, decoders)
                rec = sum(_recall(b, meta[f]) for f, b in zip(files, boxes)) / n_true
                label = f"facegate {det}, batch {bs} photos"
                print(f"{label:<40s} {rate:9.1f} {rate * per_photo:9.1f} {rec:7.3f} {rate / a_rate:9.1f}x")
        stage_rows = []
        for bs in batch_sizes if device_path else []:
            cfg = Config(device=device, detector="mtcnn", batch_size=bs, home=home)
            rate, boxes, stages, util = device_path_side(files, cfg, bs)
            rec = sum(_recall(b, meta[f]) for f, b in zip(files, boxes)) / n_true
            label = f"device path, batch {bs} photos"
            print(f"{label:<40s} {rate:9.1f} {rate * per_photo:9.1f} {rec:7.3f} {rate / a_rate:9.1f}x")
            stage_rows.append((bs, stages, util))
        for bs, stages, util in stage_rows:
            print(f"device path, batch {bs}, one timed pass (synchronised per stage); GPU utilisation {util}:")
            print(f"  {'stage':<10s} {'seconds':>8s} {'photos/s':>9s} {'faces/s':>9s}")
            for name, sec in stages.items():
                r = len(files) / sec if sec > 0 else float("inf")
                print(f"  {name:<10s} {sec:8.3f} {r:9.1f} {r * per_photo:9.1f}")
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


def lfw_device_section(root: Path, device: str, home: Path, batch: int) -> None:
    """LFW View 2 through the device path vs the CPU path with the same detector (MTCNN), both with
    the protocol of ``facegate eval lfw`` (face nearest the centre; a centred box when none)."""
    import torch

    from facegate.bulk.device import DevicePath, to_device_image, warp_chips
    from facegate.config import Config
    from facegate.evaluate import metrics
    from facegate.evaluate.embedding import centre_box
    from facegate.evaluate.lfw import evaluate_lfw, read_pairs
    from facegate.pipeline import Pipeline, pick_face

    print("\n== 4b. LFW View 2: device path vs CPU path (both MTCNN + dlib's five points + dlib ResNet) ==")
    pairs = read_pairs(root, root / "pairs.txt")
    files = sorted({str(q) for pr in pairs for q in (pr.a, pr.b)})
    path = DevicePath(Config(device=device, detector="mtcnn", batch_size=batch, home=home))
    emb: dict[str, np.ndarray] = {}
    seen: list[np.ndarray] = []
    no_face = 0
    t = time.perf_counter()
    with path.loader(files, batch=batch) as loader:
        for decoded in loader:
            ok = [(name, img) for name, img, err in decoded if img is not None]
            for (name, img), faces in zip(ok, path.faces_batch([img for _, img in ok])):
                shape = tuple(img.shape) if isinstance(img, np.ndarray) else (img.shape[1], img.shape[2], 3)
                if faces:
                    face = pick_face(faces, shape, "center")
                    seen.append(face.box)
                    emb[name] = face.embedding
                    continue
                no_face += 1  # the CPU path's fallback: landmarks fitted on a centred box
                di = [to_device_image(img, path.device)]
                box = torch.from_numpy(centre_box(seen, shape)[None]).to(path.device)
                idx = torch.zeros(1, dtype=torch.long, device=path.device)
                lm = path.landmarker.fit(di, idx, box)
                chips = warp_chips(di, idx, lm, path.embedder.template)
                emb[name] = path.embedder.embed_tensor(chips)[0].cpu().numpy()
    dev_s = time.perf_counter() - t
    ia = np.array([emb[str(p.a)] for p in pairs])
    ib = np.array([emb[str(p.b)] for p in pairs])
    scores = np.einsum("ij,ij->i", ia, ib)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    dev_acc = np.array([r.accuracy for r in metrics.kfold_accuracy(scores, same, folds)])
    print(f"device path ({device}): {100 * dev_acc.mean():.2f}% +- {100 * dev_acc.std(ddof=1):.2f}, "
          f"no face {no_face}, {dev_s:.0f} s")
    cpu = evaluate_lfw(Pipeline(Config(detector="mtcnn", home=home)), root, root / "pairs.txt", progress=False)[0]
    print(f"CPU path (cpu):        {100 * cpu.accuracy_mean:.2f}% +- {100 * cpu.accuracy_std:.2f}, "
          f"no face {cpu.outcomes.get('fallback_centre', 0)}, {cpu.seconds:.0f} s")
    print(f"device - CPU: {100 * (dev_acc.mean() - cpu.accuracy_mean):+.3f} points")


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
    ap.add_argument("--skip", default="", help="comma list of sections to skip: embed,e2e,device")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny run to try the script (4 photos per size, batch 4, 1 anchor process, 1 repeat)")
    args = ap.parse_args()
    if args.smoke:
        args.photos, args.chips, args.repeats, args.anchor_procs = 4, 16, 1, 1
        args.batch_sizes = args.embed_batch_sizes = "4"
        args.detectors = "mtcnn"

    import torch

    from facegate.config import Config
    from facegate.onnxrt import resolve_torch_device

    resolve_torch_device(args.device)  # a missing GPU is an error here too
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    print(f"device: {args.device} ({name}); torch {torch.__version__}; {os.cpu_count()} CPU cores")
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"  # a fresh home: converted weights come from the model store (or this cache)
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
                        args.anchor_procs, home, args.detectors.split(","), device_path="device" not in skip)
        if args.lfw:
            lfw_section(args.lfw, args.device, home)
            if "device" not in skip:
                lfw_device_section(args.lfw, args.device, home, int(args.batch_sizes.split(",")[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
