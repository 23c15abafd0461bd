"""``facegate``: the parser (every sub-command module registers its own) and ``main``.

Exit codes come from :data:`facegate.errors.EXIT_CODES` (``facegate --help`` prints them).
Every error is one line on standard error; with ``--json`` it is also a JSON object
``{"error": {"code", "exit", "message"}}`` on standard output, with the same exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from facegate.cli.common import ArgumentError, ArgumentParser, cli_message, common_options, error_payload
from facegate.errors import ExitCode, FacegateError, exit_code_lines

log = logging.getLogger("facegate")


def build_parser() -> argparse.ArgumentParser:
    from facegate.cli import core

    parser = ArgumentParser(
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
        "exit codes:\n" + "\n".join(exit_code_lines()),
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
        from facegate.cli import hooks

        hooks.register(sub, common_options())
    from facegate.cli import liveness  # after core (it adds `eval pad`) and service (its options)

    liveness.register(sub, common_options(), service.service_options() if service is not None else None)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _fail(json_out: bool, code: str, exit_code: int, message: str, prefix: str = "facegate: error") -> int:
    """Report an error: one line on stderr, and with --json the JSON object on stdout."""
    if json_out:
        print(json.dumps(error_payload(code, exit_code, message)), flush=True)
    print(f"{prefix}: {message}", file=sys.stderr)
    return int(exit_code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Known before parsing, so that a wrong argument is reported as JSON too.
    json_out = "--json" in argv[: argv.index("--") if "--" in argv else len(argv)]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentError as exc:
        if not json_out:
            exc.parser.print_usage(sys.stderr)
        return _fail(json_out, exc.code, exc.exit_code, str(exc), f"{exc.parser.prog}: error")
    json_out = bool(getattr(args, "json", False))
    verbosity = getattr(args, "verbose", 0) or 0
    _setup_logging(verbosity)
    if not getattr(args, "func", None):
        if json_out:
            return _fail(True, "usage", ExitCode.USAGE, "no command given; see 'facegate --help'")
        parser.print_help()
        return ExitCode.USAGE
    try:
        return int(args.func(args) or 0)
    except FacegateError as exc:
        return _fail(json_out, exc.code, exc.exit_code, cli_message(str(exc), exc.code))
    except KeyboardInterrupt:
        return _fail(json_out, "interrupted", ExitCode.INTERRUPTED, "interrupted", "facegate")
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if verbosity:
            log.exception("internal error")
        msg = " ".join(str(exc).split()) or type(exc).__name__
        return _fail(json_out, "internal", ExitCode.INTERNAL,
                     f"{type(exc).__name__}: {msg} (run with -v for details)", "facegate: internal error")


if __name__ == "__main__":
    sys.exit(main())
