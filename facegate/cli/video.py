"""Video command: ``facegate watch SOURCE``. A thin wrapper over :func:`facegate.track.watch`.

People are enrolled with the gallery's ``facegate enroll``; ``watch`` names tracks against
the same gallery (``--gallery``/``--home``), at a stated FPIR (``--fpir``) or an explicit threshold.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from facegate.cli.args import float_arg, int_arg, name_arg, text_arg
from facegate.cli.common import config_from_args, exit_codes_epilog
from facegate.cli.core import fpir_arg as _fpir
from facegate.cli.core import threshold_arg
from facegate.errors import ExitCode, UsageError
from facegate.timefmt import iso_time

log = logging.getLogger(__name__)

VIDEO_EXIT_CODES = exit_codes_epilog("watch exit codes", ExitCode.USAGE, ExitCode.SOURCE) + (
    "\n  (0: the source ended normally; usage: e.g. --gate without --server/--key, or no calibrated FAR: pass --threshold;"
    "\n   the source: cannot be opened, or a live source was lost for good)"
)

_positive = int_arg(1, 2**31 - 1)
_seconds = float_arg(0.0, 86_400.0)  # a duration: up to a day


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    try:
        from facegate.cli.gallery import gallery_options

        parents = [common, gallery_options()]
    except ImportError:  # pragma: no cover - the gallery CLI ships with the gallery
        parents = [common]
    p = sub.add_parser(
        "watch", parents=parents,
        help="follow and name faces in a video file, webcam or RTSP stream (JSONL events)",
        description="Follow the faces in a video file, webcam (0, 1, ...) or stream (rtsp://...), name each track "
        "against the gallery at a stated FPIR, write one JSON event per line, and say at the end who was seen.",
        example="facegate watch clip.mp4 --events events.jsonl --annotate annotated.mp4",
        epilog="Faces are detected every Nth frame and followed by a tracker; each track is named from its best "
        "shots by a\nquality-weighted vote against the gallery (enrol people with 'facegate enroll'). Events: start, "
        "identified,\nleft (and gate, source, end). A live stream that drops is reconnected; one that does not come "
        "back within\n--reconnect-timeout ends the run with exit code 14. At the end a summary lists who was seen, "
        "when, for how\nlong and in how many tracks (on standard error when events go to standard output).\n\n"
        "examples:\n"
        "  facegate enroll --name Ada ada1.jpg ada2.jpg\n"
        "  facegate watch clip.mp4 --events events.jsonl --annotate annotated.mp4\n"
        "  facegate watch 0                                   webcam, events on standard output\n"
        "  facegate watch rtsp://cam.local/stream --gate front-door --server http://facegate:8000 --key KEY\n\n"
        + VIDEO_EXIT_CODES,
    )
    p.add_argument("source", metavar="SOURCE", help="video file, webcam index or stream URL; rtsp://, http://, ...")
    p.add_argument("--events", type=Path, metavar="OUT.jsonl", help="write JSONL events here (default: standard output)")
    p.add_argument("--annotate", metavar="OUT.mp4", type=Path,
                   help="also write the video with boxes, track ids and names; H.264 where OpenCV can write it")
    p.add_argument("--snapshots", metavar="DIR", type=Path, help="also save annotated PNG frames here")
    d = p.add_mutually_exclusive_group()
    d.add_argument("--fpir", type=_fpir, help="share of strangers' tracks named (default 1e-2); the false-positive "
                   "identification rate, the threshold follows from the gallery's size")
    d.add_argument("--threshold", type=threshold_arg, help="explicit cosine threshold; the FAR/FPIR the calibrated "
                   "table gives for it is reported")
    p.add_argument("--min-face", type=_positive, default=None, metavar="PX",
                   help="smallest face to detect (default: the detector's); BlazeFace 16, HOG and MTCNN 40; "
                   "larger skips the small-face pass and costs less on large frames")
    p.add_argument("--max-frames", type=_positive, default=None, metavar="N", help="stop after N frames")
    gt = p.add_argument_group("gate mode: one access decision per person from the facegate service")
    gt.add_argument("--gate", type=name_arg, metavar="NAME",
                    help="ask this gate of the service; POST {server}/api/v1/gates/NAME/check")
    gt.add_argument("--server", metavar="URL", help="the service, e.g. http://127.0.0.1:8000")
    gt.add_argument("--key", type=text_arg(500, "an API key"), help="API key (sent as X-API-Key)")
    m = p.add_argument_group("more options: speed, tracking, gate mode")
    m.add_argument("--snapshot-every", type=_positive, default=50, metavar="N",
                   help="every Nth frame to --snapshots (default 50)")
    m.add_argument("--events-out", action="store_true",  # integrations (issue 24)
                   help="also send every identification to the hook targets added with --events watch.identified "
                   "('facegate hooks'), from this process")
    m.add_argument("--detect-every", type=_positive, default=3, metavar="N",
                   help="run the detector every Nth frame; the tracker predicts in between (default 3)")
    m.add_argument("--embed-every", type=_positive, default=6, metavar="N",
                   help="embed a track's best shot at most every N frames while naming it (default 6)")
    m.add_argument("--max-age", type=float_arg(0.0, 86_400.0, lo_open=True), default=1.0, metavar="S",
                   help="seconds a face may go undetected before its track ends (default 1)")
    m.add_argument("--no-scene-cuts", action="store_true", help="do not end tracks at shot cuts")
    m.add_argument("--no-progress", action="store_true", help="no progress bar for files")
    m.add_argument("--reconnect-timeout", type=_seconds, default=30.0, metavar="S",
                   help="live sources: seconds to keep reconnecting after a drop (default 30)")
    m.add_argument("--gate-cooldown", type=_seconds, default=10.0, metavar="S",
                   help="a named person is not asked about again for S seconds after their track ends (default 10)")
    m.add_argument("--gate-timeout", type=float_arg(0.0, 600.0, lo_open=True), default=5.0, metavar="S",
                   help="seconds per request (default 5)")
    m.add_argument("--gate-frames", type=int_arg(1, 8), default=3, metavar="N",
                   help="frames of the track sent with each request for the service's liveness check: its last N "
                   "detections within 2 s (default 3, at most 8; 1 sends the best shot alone)")
    p.set_defaults(func=cmd_watch)


def _config(args: argparse.Namespace):
    over: dict[str, Any] = {}
    for name in ("backend", "milvus_uri", "index", "ann_threshold"):
        if getattr(args, name, None) is not None:
            over[name] = getattr(args, name)
    if args.min_face is not None:
        over["min_face_size"] = args.min_face
    return config_from_args(args, **over)


def cmd_watch(args: argparse.Namespace) -> int:
    from facegate.gallery import open_gallery
    from facegate.pipeline import Pipeline
    from facegate.track import events as ev
    from facegate.track.annotate import VideoWriter, draw, save_png
    from facegate.track.gate import GateClient, GateDispatcher
    from facegate.track.sources import open_source
    from facegate.track.watch import Watcher, WatchOptions, single_threaded

    gate_args = [args.gate, args.server, args.key]
    if any(gate_args) and not all(gate_args):
        raise UsageError("gate mode needs all of --gate NAME, --server URL and --key KEY")
    if args.max_age <= 0 or args.reconnect_timeout < 0:
        raise UsageError("--max-age must be positive and --reconnect-timeout not negative")
    config = single_threaded(_config(args))
    options = WatchOptions(
        gate_burst=args.gate_frames,
        detect_every=args.detect_every,
        embed_every=args.embed_every,
        max_age_s=args.max_age,
        scene_cuts=not args.no_scene_cuts,
        max_frames=args.max_frames,
        progress=not args.no_progress,
    )
    pipeline = Pipeline(config)
    sink = ev.JsonlSink(args.events) if args.events else ev.JsonlSink(sys.stdout)
    if args.events_out:  # integrations (issue 24): identifications to webhooks / MQTT through the outbox
        from facegate.service.events_out import IdentificationSink
        from facegate.service.settings import default_service_db

        sink = ev.FanOut(sink, IdentificationSink(default_service_db(config), str(args.source)))
    writer: VideoWriter | None = None
    gate = None
    with open_gallery(config, pipeline=pipeline, rule=getattr(args, "rule", None)) as gallery:
        watcher = Watcher(pipeline, gallery, sink, options)  # checks threshold and model before opening the source
        source = open_source(args.source, reconnect_timeout=args.reconnect_timeout)
        try:
            if args.annotate:
                writer = VideoWriter(args.annotate, source.fps or 25.0)
            snaps: list[Path] = []

            def on_frame(frame, views) -> None:
                snap = args.snapshots is not None and frame.index % args.snapshot_every == 0
                if writer is None and not snap:
                    return
                img = draw(frame.image, views, caption=f"frame {frame.index}  t={frame.t:.2f}s")
                if writer is not None:
                    writer.write(img)
                if snap:
                    snaps.append(save_png(args.snapshots / f"frame_{frame.index:06d}.png", img))

            if args.annotate or args.snapshots:
                watcher.on_frame = on_frame
            if args.gate:
                gate = GateDispatcher(
                    GateClient(args.server, args.gate, args.key, timeout=args.gate_timeout), cooldown=args.gate_cooldown
                )
                watcher.gate = gate
            result = watcher.run(source)
        finally:
            source.close()
            if writer is not None:
                writer.close()
            sink.close()
    summary = result.to_dict()
    if args.annotate:
        summary["annotated"] = str(args.annotate)
        if writer is not None:
            summary["annotated_codec"] = writer.codec
            summary["annotated_browser_playable"] = writer.browser_playable
            if writer.note:
                summary["annotated_note"] = writer.note
    if args.snapshots:
        summary["snapshots"] = [str(s) for s in snaps]
    codec = f" ({'H.264' if writer.browser_playable else writer.codec})" if writer is not None and writer.codec else ""
    text = (
        f"{result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} frames/s), {result.tracks} track(s), "
        f"{result.switches} name switch(es)"
        + (f", {result.dropped} frame(s) dropped" if result.dropped else "")
        + (f", {result.reconnects} reconnect(s)" if result.reconnects else "")
        + (f"; annotated video{codec}: {args.annotate}" if args.annotate else "")
        + (f"; {len(snaps)} snapshot(s) in {args.snapshots}" if args.snapshots else "")
    )
    text += "\n" + "\n".join(seen_lines(result.sightings(), live=source.kind != "file"))
    if writer is not None and writer.note:
        text += f"\nnote: {args.annotate} {writer.note}"
    # With events on standard output the summary goes to standard error, keeping stdout pure JSONL.
    out = sys.stdout if args.events else sys.stderr
    print(json.dumps(summary) if getattr(args, "json", False) else text, file=out)
    return 0


def _clock(t: float) -> str:
    """Media seconds as m:ss.s (h:mm:ss past an hour)."""
    m, sec = divmod(max(0.0, t), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{sec:04.1f}" if h else f"{m}:{sec:04.1f}"


def seen_lines(sightings: list[Any], live: bool) -> list[str]:
    """Who was seen: one line per person (and one for the unknown tracks), first and last seen, how long."""
    if not sightings:
        return ["seen: nobody (no face was followed long enough to make a track)"]
    width = max(len(s.name or "unknown") for s in sightings)
    lines = ["seen:"]
    for s in sightings:
        if live:  # wall-clock times: when it happened
            when = f"{(iso_time(s.first_wall) or '?')[11:19]} - {(iso_time(s.last_wall) or '?')[11:19]}"
        else:  # positions in the video
            when = f"{_clock(s.first_t)} - {_clock(s.last_t)}"
        lines.append(f"  {s.name or 'unknown':<{width}}  {when}  {s.seconds:6.1f} s in {s.tracks} track(s)")
    return lines
