"""The ``facegate`` command line: one thin function per command over the Python API.

Exit codes (also in ``facegate --help``):
  0  success (verify: same person)      5  several faces where one was needed
  1  verify: different person           6  model missing or corrupt
  2  usage error                        7  requested device (GPU) not available
  3  unreadable or too-large image      8  data set missing or malformed
  4  no face found                      9  unexpected internal error (run with -v)
  10 gallery/service store error        11 person not found
  12 name already taken                 13 enrolment rejected (every photo failed the quality gate)
  14 video source cannot be opened or was lost
  130 interrupted
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from facegate.config import DETECTORS, Config
from facegate.errors import FacegateError

EXIT_CODES = __doc__.split("Exit codes (also in ``facegate --help``):\n", 1)[1]
INTERNAL_ERROR = 9

log = logging.getLogger("facegate")


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command name."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("pipeline options")
    g.add_argument("--detector", choices=DETECTORS, default=argparse.SUPPRESS, help="face detector (default: blazeface)")
    g.add_argument("--embedder", default=argparse.SUPPRESS,
                   help="embedding model name from 'facegate models' (default mobilefacenet; dlib_resnet under "
                   "--licence-policy permissive)")
    g.add_argument("--device", default=argparse.SUPPRESS, help="cpu (default) or cuda[:N] for the embedder, MTCNN and O-Net (BlazeFace, HOG and "
                   "landmarks stay on the CPU; 'embed' runs its whole device path there: MTCNN, "
                   "landmarks, warps, embedding); a missing GPU is an error")
    g.add_argument("--runtime", choices=("auto", "litert", "onnxruntime", "torch"), default=argparse.SUPPRESS,
                   help="engine for the built-in embedder (default auto: the fastest measured on the CPU — litert "
                   "for mobilefacenet, onnxruntime for dlib_resnet — and torch on CUDA)")
    g.add_argument("--licence-policy", choices=("any", "permissive"), default=argparse.SUPPRESS,
                   help="permissive: only models whose weights carry an explicit permissive licence (the default "
                   "embedder becomes dlib_resnet); default any, or $FACEGATE_LICENCE_POLICY")
    g.add_argument("--fp16", action="store_true", default=argparse.SUPPRESS,
                   help="embed in half precision (CUDA, torch runtime; LFW delta in benchmarks/RESULTS.md)")
    g.add_argument("--batch-size", type=int, default=argparse.SUPPRESS, help="faces per network batch (default 32)")
    g.add_argument("--threads", type=int, default=argparse.SUPPRESS, help="CPU threads (default: all)")
    g.add_argument("--home", default=argparse.SUPPRESS, help="facegate's data/cache folder (default ~/.cache/facegate)")
    g.add_argument("--gallery", default=argparse.SUPPRESS, help="gallery SQLite file (default <home>/gallery.sqlite)")
    g.add_argument("--no-flip", action="store_true", default=argparse.SUPPRESS, help="do not average with the mirror image")
    g.add_argument("--no-refine", action="store_true", default=argparse.SUPPRESS,
                   help="BlazeFace: skip the O-Net box refinement before landmarks (faster, less accurate)")
    g.add_argument("--min-score", type=float, default=argparse.SUPPRESS,
                   help="calibrated face score 0..1 (the same scale for every detector) a face must reach (default 0)")
    g.add_argument("--detect-budget", type=int, default=argparse.SUPPRESS,
                   help="most detector windows one image may cost over all passes (default 64; 0: unbounded)")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON output")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging; -vv for debug")
    return p


def config_from_args(args: argparse.Namespace, **overrides: Any) -> Config:
    from pathlib import Path

    fields: dict[str, Any] = {}
    for name in ("detector", "embedder", "device", "runtime", "batch_size", "threads", "licence_policy", "min_score",
                 "detect_budget"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    if getattr(args, "home", None):
        fields["home"] = Path(args.home)
    if getattr(args, "gallery", None):
        fields["gallery"] = Path(args.gallery)
    if getattr(args, "no_flip", False):
        fields["flip"] = False
    if getattr(args, "no_refine", False):
        fields["refine_boxes"] = False
    if getattr(args, "fp16", False):
        fields["fp16"] = True
    if getattr(args, "far", None) is not None:
        fields["far"] = args.far
    if getattr(args, "fpir", None) is not None:
        fields["fpir"] = args.fpir
    if getattr(args, "threshold", None) is not None:
        fields["threshold"] = args.threshold
    fields.update(overrides)
    if not 0.0 <= float(fields.get("min_score", 0.0)) <= 1.0:
        from facegate.errors import UsageError

        raise UsageError(f"--min-score is a calibrated score between 0 and 1, got {fields['min_score']}")
    return Config(**fields)


def emit(args: argparse.Namespace, payload: Any, text: str | Callable[[], str]) -> None:
    """Print JSON with --json, else the human text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=None, default=str))
    else:
        print(text() if callable(text) else text)


def build_parser() -> argparse.ArgumentParser:
    from facegate.cli import core

    parser = argparse.ArgumentParser(
        prog="facegate",
        description=(
            "Find faces in photos, decide whether two faces are the same person at a stated "
            "false-accept rate, and measure it on LFW. Runs offline: models come from installed packages."
        ),
        epilog="examples:\n"
        "  facegate verify alice1.jpg alice2.jpg          same person? (exit 0 yes, 1 no)\n"
        "  facegate verify a.jpg b.jpg --far 1e-4         stricter: 1 impostor in 10,000 accepted\n"
        "  facegate detect group.jpg --draw boxes.png     find faces and draw them\n"
        "  facegate embed photos/*.jpg --out faces.jsonl  128-d embeddings for every face\n"
        "  facegate models                                models, licences, sha256 check\n"
        "  facegate eval lfw --root LFW --pairs pairs.txt the standard 10-fold LFW protocol\n\n"
        "exit codes:\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options()],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    core.register(sub, common_options())
    try:
        from facegate.cli import gallery
    except ImportError:  # gallery commands not installed in this build
        gallery = None  # type: ignore[assignment]
    if gallery is not None:
        gallery.register(sub, common_options())
    try:
        from facegate.cli import video
    except ImportError:  # video commands not installed in this build
        video = None  # type: ignore[assignment]
    if video is not None:
        video.register(sub, common_options())
    try:
        from facegate.cli import service
    except ImportError:  # service commands not installed in this build
        service = None  # type: ignore[assignment]
    if service is not None:
        service.register(sub, common_options())
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = getattr(args, "verbose", 0) or 0
    _setup_logging(verbosity)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FacegateError as exc:
        print(f"facegate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facegate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if verbosity:
            log.exception("internal error")
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"facegate: internal error: {type(exc).__name__}: {msg} (run with -v for details)", file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
