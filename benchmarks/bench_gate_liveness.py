"""What liveness costs a REST gate check, end to end: the gate without liveness and with it, side by side.

The real service (``create_app`` over the real models, in-process through FastAPI's TestClient:
parsing, decoding, detection, embedding, the gallery search, the access list and the audit
event all included) answers ``POST /api/v1/gates/{gate}/check`` for one enrolled person, on
gates that differ only in their liveness setting (``off``, ``still``, ``burst``):

* ``off, 1 frame``     the gate without liveness, given one frame;
* ``still, 1 frame``   the still check on that frame;
* ``off, N frames``    **the baseline of a burst**: the same N frames sent to a gate with liveness
                       off, answered as that gate answers them: every frame decoded and detected,
                       the person identified from the frame whose face the detector is surest of
                       (the gate's rule for any request of several frames, liveness or not);
* ``burst, N frames``  the burst check: the same, plus the frames' faces compared with the
                       identified one (plain embeddings, at the 1:1 threshold the shipped table
                       calibrates for them at the service's FAR) and the burst cues;
* ``burst, N, mirrored`` (``--mirrored``) the burst check with the frames compared by
                       mirror-averaged embeddings at the configured rule: what a stack without a
                       plain table gets, and what every burst cost before the plain rule.

What liveness adds to a burst is ``burst, N`` minus ``off, N`` (and their ratio); what it adds to a
still is ``still, 1`` minus ``off, 1``. Requests are interleaved round by round (every mode once per
round), and so are the in-process timings of the burst's parts (the identity embeddings, the cues),
so a busy machine slows every number alike. Frames are a nuaa_dev live take when
../shared/datasets is present (read at run time, never stored), else generated: Grace Hopper's
photo moving in front of a pale room (as in tests/test_gate_liveness.py).

    python benchmarks/bench_gate_liveness.py --threads 2 --repeat 30 [--frames 5] [--mirrored]

Prints the median and 90th-percentile ms per mode; what liveness adds in ms (the median over rounds of
the difference within a round, which a changing load does not skew) and as a ratio of the medians;
and the split. Budget (issue 21): at most 30 ms added for a still, 80 ms for a burst of 5, on 2 cores. Not a
test: numbers depend on the machine and its load (``os.getloadavg`` is printed with them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _nuaa(root: Path, n: int) -> tuple[bytes, list[bytes]] | None:
    take = sorted((root / "real" / "0001").glob("0001_00_00_01_*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if len(take) < n + 1:
        return None
    return take[0].read_bytes(), [p.read_bytes() for p in take[1 : n + 1]]


def _generated(n: int) -> tuple[bytes, list[bytes]]:
    import cv2
    import matplotlib.cbook
    import skimage.data

    from facegate.image import load_image
    from facegate.service.synthetic import encode

    room = cv2.resize(skimage.data.coffee(), (640, 480), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = room.mean(axis=2, keepdims=True)
    room = np.clip(grey + 0.15 * (room - grey), 0, 255).astype(np.uint8)
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = load_image(path)
    ell = np.zeros(hopper.shape[:2], np.uint8)
    cv2.ellipse(ell, (262, 218), (120, 150), 0, 0, 360, 255, -1)
    frames = []
    for t in range(n):
        c, s = np.cos(0.03 * t), np.sin(0.03 * t)
        h = np.array([[0.55 * c, -0.55 * s, 180 + 9 * t], [0.55 * s, 0.55 * c, 60 + 4 * t], [0, 0, 1.0]])
        warped = cv2.warpPerspective(hopper, h, (640, 480))
        mask = cv2.warpPerspective(ell, h, (640, 480)) > 0
        frame = room.copy()
        frame[mask] = warped[mask]
        frames.append(encode(frame, quality=92))
    return Path(path).read_bytes(), frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for OpenCV and the models (default 2)")
    parser.add_argument("--repeat", type=int, default=30, help="requests per mode (default 30)")
    parser.add_argument("--frames", type=int, default=5, help="frames of the burst (default 5)")
    parser.add_argument("--mirrored", action="store_true",
                        help="also time the burst with its frames compared by mirror-averaged embeddings")
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("FACEGATE_DATASETS", "../shared/datasets")))
    args = parser.parse_args(argv)

    import cv2

    cv2.setNumThreads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from facegate.config import Config
    from facegate.liveness import SamePersonRule
    from facegate.pipeline import Pipeline
    from facegate.service import ServiceSettings, create_app
    from facegate.service import gates as gate_settings
    from facegate.service.auth import create_key

    data = _nuaa(args.datasets / "nuaa_dev", args.frames) if (args.datasets / "nuaa_dev").is_dir() else None
    source = "nuaa_dev session-1 live take of person 0001 (640x480), enrolled from its first frame"
    if data is None:
        data = _generated(args.frames)
        source = "generated: Grace Hopper's photo as a head moving in front of a pale room (640x480)"
    enrol_photo, frames = data
    n = args.frames
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(home=Path(tmp), gallery=Path(tmp) / "g.sqlite", threads=args.threads)
        apps = {"plain": create_app(cfg, ServiceSettings(warmup=False), pipeline=Pipeline(cfg))}
        if args.mirrored:  # the same service on its own models, its stack without a plain table
            tmp2 = Path(tmp) / "mirrored"
            tmp2.mkdir()
            cfg2 = Config(home=tmp2, gallery=tmp2 / "g.sqlite", threads=args.threads)
            mirrored = Pipeline(cfg2)
            mirrored.__dict__["plain_operating_points"] = []
            apps["mirrored"] = create_app(cfg2, ServiceSettings(warmup=False), pipeline=mirrored)
        clients, keys = {}, {}
        for label, app in apps.items():
            db = app.state.svc.db
            admin = {"X-API-Key": create_key(db, "admin")["key"]}
            keys[label] = {"X-API-Key": create_key(db, "gate")["key"]}
            for name, mode in (("g-off", "off"), ("g-still", "still"), ("g-burst", "burst")):
                gate_settings.set_liveness(db, name, mode, client="bench")
            client = TestClient(app)
            client.__enter__()
            clients[label] = client
            r = client.post("/api/v1/people", headers=admin, data={"name": "probe"},
                            files=[("images", ("e.jpg", enrol_photo, "image/jpeg"))])
            if r.status_code >= 300:
                print(f"enrolment refused: {r.text}", file=sys.stderr)
                return 1

        def check(label: str, name: str, k: int) -> dict:
            files = [("image", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames[:k])]
            r = clients[label].post(f"/api/v1/gates/{name}/check", headers=keys[label], files=files)
            if r.status_code != 200:
                raise SystemExit(f"gate check failed: {r.status_code} {r.text}")
            return r.json()

        modes = {"off, 1 frame": ("plain", "g-off", 1), "still, 1 frame": ("plain", "g-still", 1),
                 f"off, {n} frames": ("plain", "g-off", n), f"burst, {n} frames": ("plain", "g-burst", n)}
        if args.mirrored:
            modes[f"burst, {n}, mirrored"] = ("mirrored", "g-burst", n)
        answers = {m: check(*v) for m, v in modes.items()}  # warm: lazy loads, first-call allocations
        for m, a in answers.items():
            lv = a.get("liveness") or {}
            ident = lv.get("identity") or {}
            print(f"  {m:20s} -> {a['decision']} ({a['reason']}; liveness {lv.get('mode')}, score {lv.get('score')}"
                  + (f"; frames compared {'mirrored' if ident['mirrored'] else 'plain'}, lowest {ident['lowest']:.3f}"
                     f" vs {ident['threshold']:.4f} at FAR {ident['far']}" if ident else "") + ")", file=sys.stderr)
        # the burst's parts, in process on the service's own models and in the same rounds
        pipe = apps["plain"].state.svc.engine.pipeline
        images = [pipe.load(f) for f in frames]
        faces, _, probe = pipe.frame_subjects(images)
        assert probe is not None, "no face in the burst"
        with_face = [i for i, f in enumerate(faces) if f is not None]
        det = pipe.liveness_detector
        plain_rule = pipe.frame_rule()
        mirrored_rule = SamePersonRule(*pipe.threshold(), mirrored=True)

        def identity(rule: SamePersonRule) -> Callable[[], float]:
            def run() -> float:  # seconds for the frames' comparison embeddings beyond the identified face's own
                for f in faces:
                    if f is not None:
                        f.embedding = None
                known = pipe.embed_frames(images, faces, [probe])  # what the gate computes without liveness too
                t0 = time.perf_counter()
                pipe.frame_embeddings(images, faces, with_face, rule, known)
                return time.perf_counter() - t0
            return run

        def cues() -> float:
            t0 = time.perf_counter()
            det.check_burst(images, faces)
            return time.perf_counter() - t0

        parts = {f"frames compared, plain ({len(with_face) - 1} more faces)": identity(plain_rule),
                 f"frames compared, mirrored ({len(with_face) - 1} more faces)": identity(mirrored_rule),
                 "burst cues": cues}
        times: dict[str, list[float]] = {m: [] for m in [*modes, *parts]}
        load0 = os.getloadavg()
        for _ in range(args.repeat):
            for m, v in modes.items():
                t0 = time.perf_counter()
                check(*v)
                times[m].append(1000 * (time.perf_counter() - t0))
            for name, fn in parts.items():
                times[name].append(1000 * fn())
        load1 = os.getloadavg()
        for client in clients.values():
            client.__exit__(None, None, None)

    med = {m: statistics.median(v) for m, v in times.items()}
    base = med["off, 1 frame"]
    print(f"REST gate check, real models, {args.threads} threads, {args.repeat} requests per mode, interleaved")
    print(f"frames: {source}")
    print(f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end (of {os.cpu_count()} CPUs)")
    for m in modes:
        v = times[m]
        print(f"  {m:20s} median {med[m]:7.1f} ms   p90 {float(np.percentile(v, 90)):7.1f} ms   {med[m] / base:5.2f}x off-1")
    off_n, burst_n = med[f"off, {n} frames"], med[f"burst, {n} frames"]

    def paired(mode: str, baseline: str) -> float:
        """Median over rounds of (mode - baseline) within the round: the two requests ran moments apart, so
        a load that changes during the run cancels (the difference of the two medians does not)."""
        return statistics.median(a - b for a, b in zip(times[mode], times[baseline]))

    print(f"baseline of a burst: the same {n} frames to the gate with liveness off ({off_n:.1f} ms: it decodes and "
          "detects every frame and identifies from the surest)")
    print(f"added by liveness, still: {paired('still, 1 frame', 'off, 1 frame'):+.1f} ms per round "
          f"({med['still, 1 frame'] / base:.2f}x off-1) [budget <= 30 ms]")
    print(f"added by liveness, burst of {n}: {paired(f'burst, {n} frames', f'off, {n} frames'):+.1f} ms per round "
          f"({burst_n / off_n:.2f}x off-{n}; difference of the medians {burst_n - off_n:+.1f} ms) "
          "[budget <= 80 ms for 5]")
    if args.mirrored:
        mir = med[f"burst, {n}, mirrored"]
        print(f"  frames compared mirrored: {paired(f'burst, {n}, mirrored', f'off, {n} frames'):+.1f} ms per round "
              f"({mir / off_n:.2f}x off-{n})")
    print(f"a burst of {n} against one frame without liveness: {burst_n - base:+.1f} ms ({burst_n / base:.2f}x), "
          f"of which {off_n - base:+.1f} ms is decoding and detecting the extra frames")
    print("split (in process, same models, same rounds): " + "; ".join(
        f"{name} {med[name]:.1f} ms" for name in parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
