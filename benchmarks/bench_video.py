"""``watch`` on the shared videos: who is named when, identity switches, frames per second.

    .venv/bin/python benchmarks/bench_video.py                 # both clips, figures on stdout
    .venv/bin/python benchmarks/bench_video.py --clips hamilton --far 1e-3 --far 1e-2

hamilton (640x360, 275 frames): the two reference photos are enrolled in a throw-away gallery
(in a temporary folder), the clip is watched, and per person the frames in which a track
carrying their name is on screen are printed, with the number of name switches inside tracks
and the throughput (tracks are named on their template against the template threshold for
its number of samples, :mod:`facegate.evaluate.templates`). street (1920x1080, 105 frames):
nobody is enrolled; tracks and throughput, and a few annotated frames saved as PNG for a
person to look at.

Timing: models are loaded and warmed up on a few frames first; the timed run writes no
video. frames/s is wall-clock for the whole loop (decode, scene-cut check, detection,
tracking, quality, embedding, gallery search); CPU ms/frame is the process's CPU time (all
threads) per frame, which, unlike wall time, does not grow when other programs share the
cores. The load average before and after each run is printed so figures from a busy machine
can be recognised as such.

Outputs (PNG frames, an annotated MP4 with --annotate, a JSON of the figures) go to
``--out`` (default ``results/video``, git-ignored): they show third-party footage and must
never be committed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from facegate.config import Config, datasets_dir
from facegate.gallery import open_gallery
from facegate.pipeline import Pipeline
from facegate.track.annotate import VideoWriter, draw, save_png
from facegate.track.events import IDENTIFIED, MemorySink, check_order
from facegate.track.metrics import frame_ranges, name_changes
from facegate.track.sources import open_source
from facegate.track.watch import Watcher, WatchOptions, single_threaded, tracking_detector

log = logging.getLogger("bench_video")

HAMILTON_PEOPLE = {"Lin-Manuel Miranda": "lin-manuel-miranda.png", "Alex Lacamoire": "alex-lacamoire.png"}


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def run_clip(
    pipe: Pipeline, gallery: Any, clip: Path, options: WatchOptions, *, png_frames: set[int] = frozenset(),
    out: Path | None = None, prefix: str = "", annotate: Path | None = None,
) -> dict[str, Any]:
    """One timed watch run; returns figures, per-frame labels and the events."""
    sink = MemorySink()
    views_by_frame: dict[int, list] = {}
    pngs: list[str] = []
    writer = VideoWriter(annotate, 25.0) if annotate else None

    def on_frame(frame, views) -> None:
        views_by_frame[frame.index] = [(v.id, v.label) for v in views]
        if frame.index in png_frames or writer is not None:
            img = draw(frame.image, views, caption=f"frame {frame.index}  t={frame.t:.2f}s")
            if writer is not None:
                writer.write(img)
            if frame.index in png_frames and out is not None:
                pngs.append(str(save_png(out / f"{prefix}frame_{frame.index:04d}.png", img)))

    # warm-up: load the models (one detector for both runs) and run a few frames, untimed
    detector = tracking_detector(pipe.config, options)
    src = open_source(clip)
    Watcher(pipe, gallery, MemorySink(), WatchOptions(max_frames=5, progress=False), detector=detector).run(src)
    src.close()

    src = open_source(clip)
    if writer is not None:
        writer.fps = src.fps
    load_before = loadavg()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    res = Watcher(pipe, gallery, sink, options, on_frame=on_frame, detector=detector).run(src)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    src.close()
    if writer is not None:
        writer.close()
    return {
        "result": res,
        "events": sink.events,
        "views": views_by_frame,
        "pngs": pngs,
        "fps": res.frames / wall,
        "cpu_ms_per_frame": 1000 * cpu / max(res.frames, 1),
        "load_before": load_before,
        "load_after": loadavg(),
    }


def hamilton(root: Path, config: Config, args: argparse.Namespace, far: float, out: Path) -> dict[str, Any]:
    folder = root / "video" / "hamilton"
    clip = folder / "short_hamilton_clip.mp4"
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        cfg = config.replace(gallery=Path(tmp) / "gallery.sqlite", far=far, min_face_size=args.hamilton_min_face)
        pipe = Pipeline(cfg)
        with open_gallery(cfg, pipeline=pipe) as g:
            for name, photo in HAMILTON_PEOPLE.items():
                g.enroll(name, [folder / photo], pick="largest")
            options = WatchOptions(detect_every=args.detect_every, embed_every=args.embed_every, progress=False)
            annotate = out / f"hamilton_far{far:g}.mp4" if args.annotate else None
            r = run_clip(pipe, g, clip, options, png_frames={10, 100, 240} if args.pngs else set(), out=out,
                         prefix=f"hamilton_far{far:g}_", annotate=annotate)
            policy = g.decision_policy()  # what watch named tracks at (facegate.decide: FPIR at this gallery's size)
    threshold = policy.threshold
    tt_ks = (1, 2, 4, 8, 16)
    res = r["result"]
    per_person: dict[str, list[int]] = defaultdict(list)
    for f, views in r["views"].items():
        for _tid, label in views:
            if label:
                per_person[label].append(f)
    switches = revisions = 0
    for labels in res.track_labels.values():
        s, v = name_changes([lab for _f, lab in labels])
        switches += s
        revisions += v
    named_tracks = defaultdict(list)
    for e in r["events"]:
        if e["event"] == IDENTIFIED:
            named_tracks[e["name"]].append((e["track"], e["frame"], e["score"]))
    return {
        "clip": "hamilton",
        "far": far,
        "threshold": threshold,
        "template_threshold": {f"{k:g}": policy.bar(k) for k in tt_ks},
        "policy": policy.describe(),
        "frames": res.frames,
        "fps": r["fps"],
        "cpu_ms_per_frame": r["cpu_ms_per_frame"],
        "load": [r["load_before"], r["load_after"]],
        "tracks": res.tracks,
        "name_switches": switches,
        "revisions": revisions,
        "event_order_problems": check_order(r["events"]),
        "identified_frames": {k: frame_ranges(v) for k, v in sorted(per_person.items())},
        "identified_frame_counts": {k: len(v) for k, v in sorted(per_person.items())},
        "decisions": dict(named_tracks),
        "stages_ms_per_frame": res.to_dict()["ms_per_frame"],
        "detector_calls": res.detections,
        "embeddings": res.embeddings,
        "pngs": r["pngs"],
        "annotated": str(annotate) if annotate else None,
    }


def street(root: Path, config: Config, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    folder = root / "video" / "street"
    clip = folder / "video.mp4"
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        cfg = config.replace(gallery=Path(tmp) / "gallery.sqlite", min_face_size=args.street_min_face)
        pipe = Pipeline(cfg)
        with open_gallery(cfg, pipeline=pipe) as g:
            options = WatchOptions(detect_every=args.detect_every, embed_every=args.embed_every, progress=False)
            annotate = out / "street.mp4" if args.annotate else None
            r = run_clip(pipe, g, clip, options, png_frames={15, 50, 95} if args.pngs else set(), out=out,
                         prefix="street_", annotate=annotate)
    res = r["result"]
    on_screen = [len(v) for v in r["views"].values()]
    return {
        "clip": "street",
        "frames": res.frames,
        "fps": r["fps"],
        "cpu_ms_per_frame": r["cpu_ms_per_frame"],
        "load": [r["load_before"], r["load_after"]],
        "tracks": res.tracks,
        "max_tracks_on_screen": max(on_screen) if on_screen else 0,
        "event_order_problems": check_order(r["events"]),
        "stages_ms_per_frame": res.to_dict()["ms_per_frame"],
        "detector_calls": res.detections,
        "faces_detected": res.faces,
        "embeddings": res.embeddings,
        "pngs": r["pngs"],
        "annotated": str(annotate) if annotate else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=Path, default=None, help="shared datasets folder (default $FACEGATE_DATASETS or ../shared/datasets)")
    p.add_argument("--clips", nargs="+", choices=["hamilton", "street"], default=["hamilton", "street"])
    p.add_argument("--far", type=float, action="append", help="FAR(s) of the naming threshold for hamilton (default 1e-3)")
    p.add_argument("--detect-every", type=int, default=3)
    p.add_argument("--embed-every", type=int, default=6)
    p.add_argument("--hamilton-min-face", type=int, default=30,
                   help="px; at 640x360 any value from 30 to 40 costs the same (one 360 px tile level), "
                   "30 keeps the wide shot's 40 px faces")
    p.add_argument("--street-min-face", type=int, default=40)
    p.add_argument("--threads", type=int, default=0, help="0: one per library (watch's default)")
    p.add_argument("--out", type=Path, default=Path("results/video"))
    p.add_argument("--annotate", action="store_true",
                   help="also write annotated MP4s (untimed runs are not separate: this slows the timed run)")
    p.add_argument("--no-pngs", dest="pngs", action="store_false")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = args.datasets or datasets_dir()
    if not (root / "video").is_dir():
        print(f"shared datasets not found at {root} (set FACEGATE_DATASETS)", file=sys.stderr)
        return 8
    args.out.mkdir(parents=True, exist_ok=True)
    config = single_threaded(Config(threads=args.threads))
    report: dict[str, Any] = {"cpu_count": os.cpu_count(), "settings": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    if "hamilton" in args.clips:
        for far in args.far or [1e-3]:
            h = hamilton(root, config, args, far, args.out)
            report["runs"].append(h)
            print(f"\n## hamilton (640x360, {h['frames']} frames), {h['policy']} (threshold {h['threshold']:.4f} per frame; "
                  f"for a track's template of n samples: "
                  + ", ".join(f"{t:.4f} at n={k}" for k, t in list(h["template_threshold"].items())[:4]) + ", ...)")
            print(f"frames/s {h['fps']:.1f} | CPU ms/frame {h['cpu_ms_per_frame']:.1f} | "
                  f"load avg before/after {h['load'][0]} / {h['load'][1]}")
            print(f"tracks {h['tracks']} | name switches within tracks {h['name_switches']} | revisions {h['revisions']} | "
                  f"detector calls {h['detector_calls']} | embeddings {h['embeddings']}")
            for who in list(HAMILTON_PEOPLE) + ["unknown"]:
                ranges = h["identified_frames"].get(who, [])
                txt = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges) or "never"
                print(f"  {who}: {h['identified_frame_counts'].get(who, 0)} frames: {txt}")
            for who, decs in h["decisions"].items():
                print(f"  decided {who}: " + ", ".join(f"track {t} at frame {f} (score {s:.3f})" for t, f, s in decs))
            print(f"  ms/frame by stage: {h['stages_ms_per_frame']}")
            if h["event_order_problems"]:
                print(f"  EVENT ORDER PROBLEMS: {h['event_order_problems']}")
            for png in h["pngs"]:
                print(f"  png: {png}")
    if "street" in args.clips:
        s = street(root, config, args, args.out)
        report["runs"].append(s)
        print(f"\n## street (1920x1080, {s['frames']} frames), nobody enrolled")
        print(f"frames/s {s['fps']:.1f} | CPU ms/frame {s['cpu_ms_per_frame']:.1f} | load avg before/after {s['load'][0]} / {s['load'][1]}")
        print(f"tracks {s['tracks']} | at most {s['max_tracks_on_screen']} on screen | detector calls {s['detector_calls']} | "
              f"faces detected {s['faces_detected']} | embeddings {s['embeddings']}")
        print(f"  ms/frame by stage: {s['stages_ms_per_frame']}")
        for png in s["pngs"]:
            print(f"  png: {png}")
    (args.out / "bench_video.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\nfigures: {args.out / 'bench_video.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
