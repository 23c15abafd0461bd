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
from facegate.cli.help import width as help_width
from facegate.errors import ExitCode, FacegateError, UsageError, exit_code_lines

log = logging.getLogger("facegate")


def build_parser() -> argparse.ArgumentParser:
    from facegate.cli import core

    parser = ArgumentParser(
        prog="facegate",
        description=(
            "Find faces in photos and video, decide whether two faces are the same person (1:1) and who a face is "
            "among enrolled people (1:N), every decision at a stated error rate; run it as an access-control "
            "service. Offline: models come from installed packages."
        ),
        example="facegate verify alice1.jpg alice2.jpg          same person? (exit 0 yes, 1 no)\n"
        "facegate enroll --name Alice alice1.jpg         add Alice to the gallery\n"
        "facegate identify door.jpg                      who is it? (at FPIR 1e-2)\n"
        "facegate serve                                  REST API and web page on :8000",
        footer="exit codes:\n" + "\n".join(exit_code_lines()),
        epilog="examples:\n"
        "  facegate verify alice1.jpg alice2.jpg          same person? (exit 0 yes, 1 no)\n"
        "  facegate verify a.jpg b.jpg --far 1e-4         stricter: 1 impostor in 10,000 accepted\n"
        "  facegate detect group.jpg --draw boxes.png     find faces and draw them\n"
        "  facegate embed photos/*.jpg --out faces.jsonl  embeddings for every face\n"
        "  facegate models                                models, licences, sha256 check\n"
        "  facegate eval lfw --root LFW --pairs pairs.txt the standard 10-fold LFW protocol\n"
        "  facegate help pipeline                         the options every command shares\n\n"
        "exit codes:\n" + "\n".join(exit_code_lines()),
        parents=[common_options()],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    core.register(sub, common_options())
    try:
        from facegate.cli import site
    except ImportError:  # site calibration not installed in this build
        site = None  # type: ignore[assignment]
    if site is not None:
        site.register(sub, common_options())
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
    register_help(sub, parser)
    return parser


def register_help(sub: argparse._SubParsersAction, root: argparse.ArgumentParser) -> None:
    """``facegate help [TOPIC]``: ``pipeline`` (the options every command shares), ``exit-codes``, or a
    command's full help (as ``COMMAND --help-all``)."""
    p = sub.add_parser("help", help="the options every command shares (help pipeline), exit codes, or a "
                       "command's full help",
                       description="Help on a topic: 'pipeline' lists the options every command accepts (detector, "
                       "embedder, device, ...), 'exit-codes' the exit codes, and a command's name prints its full help.",
                       example="facegate help pipeline")
    p.add_argument("topic", nargs="*", metavar="TOPIC", help="pipeline, exit-codes, or a command (e.g. people list)")

    def cmd_help(args: argparse.Namespace) -> int:
        topic = list(args.topic)
        if not topic:
            root.print_help()
        elif topic == ["pipeline"]:
            print(shared_options_help(), end="")
        elif topic in (["exit-codes"], ["exit"]):
            print("exit codes:\n" + "\n".join(exit_code_lines()))
        else:
            parser = root
            for word in topic:
                choices = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
                if not isinstance(choices, dict) or word not in choices:
                    raise UsageError(f"no help topic {' '.join(topic)!r}; try 'facegate help pipeline', "
                                     "'facegate help exit-codes' or 'facegate help COMMAND'")
                parser = choices[word]
            print(parser.format_full_help() if isinstance(parser, ArgumentParser) else parser.format_help(), end="")
        return 0

    p.set_defaults(func=cmd_help)


def shared_options_help() -> str:
    """The options every command accepts (pipeline), and those of the gallery and service commands."""
    import textwrap

    formatter = argparse.RawDescriptionHelpFormatter("facegate", width=help_width())
    formatter.add_text(textwrap.fill(
        "Options every command accepts, before or after its name (e.g. facegate --detector mtcnn verify a.jpg "
        "b.jpg). The gallery options apply to enroll, identify, people, cluster, reembed, gallery and watch; the "
        "service options to serve, keys and access.", help_width(), break_on_hyphens=False))
    groups = [common_options()]
    try:
        from facegate.cli.gallery import gallery_options

        groups.append(gallery_options())
    except ImportError:  # pragma: no cover - the gallery CLI ships with facegate
        pass
    try:
        from facegate.cli.service import service_options

        groups.append(service_options())
    except ImportError:  # pragma: no cover
        pass
    for parent in groups:
        for group in parent._action_groups:
            if group._group_actions:
                formatter.start_section(group.title)
                formatter.add_arguments(group._group_actions)
                formatter.end_section()
    return formatter.format_help()


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
    except UnicodeEncodeError as exc:
        if "surrogates" in str(exc):  # argv bytes that are not UTF-8 (a file name, usually) reached stored text
            return _fail(json_out, "usage", ExitCode.USAGE,
                         f"an argument is not valid UTF-8 text ({exc.object[max(0, exc.start - 20):exc.end + 20]!r}); "
                         "rename the file or retype the name")
        return _internal(json_out, verbosity, exc)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        return _internal(json_out, verbosity, exc)


def _internal(json_out: bool, verbosity: int, exc: BaseException) -> int:
    if verbosity:
        log.error("internal error", exc_info=exc)
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return _fail(json_out, "internal", ExitCode.INTERNAL,
                 f"{type(exc).__name__}: {msg} (run with -v for details)", "facegate: internal error")


if __name__ == "__main__":
    sys.exit(main())
