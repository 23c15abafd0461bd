"""What liveness adds to a gate check: ms per still and per burst, beside the gate's own work.

The gate already decodes the frame and detects (and embeds) its face; liveness reuses the
image and the face's box and landmarks, so its cost is its cues and head only. This
script times, on the same 640x480 frames and the same threads:

* baseline: what a gate check does without liveness, per frame: detect + embed the face;
* still: ``check_still`` (one frame, the shipped model's still head);
* burst: ``check_burst`` of 5 consecutive frames (the shipped model's burst head).

Frames are nuaa_dev takes when ../shared/datasets is present (read at run time, never
stored), else generated: Grace Hopper's photo on a printed sheet moving over a still room
(scikit-image's coffee photo), as in tests/test_liveness.py.

    python benchmarks/bench_liveness.py --threads 2 --repeat 30

Prints median and 90th-percentile milliseconds and the ratios to the baseline. Not a test:
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _frames_nuaa(root: Path, n: int) -> list[np.ndarray] | None:
    from facegate.image import load_image

    take = sorted((root / "real" / "0001").glob("0001_00_00_01_*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if len(take) < n:
        return None
    return [load_image(p) for p in take[:n]]


def _frames_generated(n: int) -> list[np.ndarray]:
    import cv2
    import matplotlib.cbook
    import skimage.data

    from facegate.image import load_image

    room = cv2.resize(skimage.data.coffee(), (640, 480), interpolation=cv2.INTER_AREA)
    hopper = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    paper = cv2.copyMakeBorder(hopper, 70, 70, 70, 70, cv2.BORDER_CONSTANT, value=(245, 245, 240))
    out = []
    for t in range(n):
        c, s = np.cos(0.03 * t), np.sin(0.03 * t)
        h = np.array([[0.55 * c, -0.55 * s, 180 + 9 * t - 38.5], [0.55 * s, 0.55 * c, 60 + 4 * t - 38.5], [0, 0, 1.0]])
        warped = cv2.warpPerspective(paper, h, (640, 480))
        mask = cv2.warpPerspective(np.full(paper.shape[:2], 255, np.uint8), h, (640, 480)) > 0
        frame = room.copy()
        frame[mask] = warped[mask]
        out.append(frame)
    return out


def _time(fn, repeat: int) -> list[float]:
    fn()  # warm (lazy loads, first-call allocations)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t0))
    return out


def _row(name: str, ms: list[float], base: float | None) -> str:
    med = statistics.median(ms)
    p90 = float(np.percentile(ms, 90))
    ratio = f"  {med / base:5.2f}x the gate's detect+embed" if base else ""
    return f"{name:38s} median {med:7.2f} ms   p90 {p90:7.2f} ms{ratio}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for OpenCV and the models (default 2)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("FACEGATE_DATASETS", "../shared/datasets")))
    args = parser.parse_args(argv)

    import cv2

    cv2.setNumThreads(args.threads)
    from facegate.config import Config
    from facegate.liveness import load_liveness
    from facegate.pipeline import Pipeline, pick_face

    frames = _frames_nuaa(args.datasets / "nuaa_dev", 5) if (args.datasets / "nuaa_dev").is_dir() else None
    source = "nuaa_dev session-1 live take of person 0001 (640x480)"
    if frames is None:
        frames = _frames_generated(5)
        source = "generated: a printed photo moving over a still room (640x480)"
    pipe = Pipeline(Config(threads=args.threads))
    faces = []
    for f in frames:
        found = pipe.detector.detect(f)
        if not found:
            print("no face found in a benchmark frame", file=sys.stderr)
            return 1
        faces.append(pick_face(found, f.shape, "largest"))
    det = load_liveness(config=pipe.config)

    def gate_frame() -> None:
        image = frames[0]
        face = pick_face(pipe.detector.detect(image), image.shape, "largest")
        pipe.embed_faces(image, [face])

    base = _time(gate_frame, args.repeat)
    still = _time(lambda: det.check_still(frames[0], faces[0]), args.repeat)
    burst3 = _time(lambda: det.check_burst(frames[:3], faces[:3]), args.repeat)
    burst5 = _time(lambda: det.check_burst(frames, faces), args.repeat)
    b = statistics.median(base)
    print(f"liveness model {det.name} (sha256 {det.model.sha256[:12]}), {args.threads} threads, {args.repeat} runs each")
    print(f"frames: {source}")
    print(_row("gate without liveness: detect+embed", base, None))
    print(_row("added by liveness: still (1 frame)", still, b))
    print(_row("added by liveness: burst of 3", burst3, b))
    print(_row("added by liveness: burst of 5", burst5, b))
    print("budget (issue 21): <= 30 ms per still, <= 80 ms per burst of 5, on 2 cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
