"""What every ``facegate`` sub-command shares: the common options, the one Config built from them,
output (text or ``--json``), the argparse that raises typed errors, and this front end's hints.

Exit codes come from :data:`facegate.errors.EXIT_CODES` (``facegate --help`` prints them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from facegate.cli.args import float_arg, int_arg
from facegate.cli.help import HelpAllAction, compact_help
from facegate.cli.help import width as help_width
from facegate.config import Config
from facegate.errors import EXIT_CODES, ExitCode, UsageError
from facegate.models.detectors import DETECTORS
from facegate.timefmt import iso_times

# How to act on an error in this front end's terms, by the error's code: the library's message
# says what is wrong in words every front end shares (the service has its own HTTP_HINTS).
CLI_HINTS: dict[str, str] = {
    "multiple_faces": "choose one with --pick largest or --pick center",
    "not_found": "see 'facegate people list'",
    "uncalibrated": "pass --threshold, or run 'facegate calibrate' on your own photos",
    "enrolment_conflict": "--force enrols it anyway, recorded as forced",
    "duplicate_photo": "--force enrols it anyway, recorded as forced",
    "matches_other_person": "--force enrols it anyway, recorded as forced",
    "not_same_person": "--force enrols it anyway, recorded as forced",
}


def exit_codes_epilog(title: str, *codes: ExitCode) -> str:
    """An epilog block naming some of the exit codes, worded as in :data:`EXIT_CODES`."""
    return f"{title}:\n" + "\n".join(f"  {int(c):<3} {EXIT_CODES[c]}" for c in codes)


def cli_message(message: str, code: str) -> str:
    """``message`` with this front end's hint for ``code`` appended, if there is one."""
    hint = CLI_HINTS.get(code)
    return f"{message}; {hint}" if hint and "; see '" not in message else message


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`ArgumentError` instead of printing and exiting, so that
    ``main`` reports a wrong argument like any other error (JSON with ``--json``), and whose
    ``--help`` fits a screen (:mod:`facegate.cli.help`): purpose, own options, ``example``;
    ``--help-all`` prints argparse's full help. Sub-parsers are made with the parser's own
    class, so they do both too."""

    def __init__(self, *args: Any, example: str | None = None, footer: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.example = example  # one example command line (or a few lines) for the compact help
        self.footer = footer  # text the compact help always shows (the top level: exit codes)
        if self.add_help:
            self.add_argument("--help-all", action=HelpAllAction)

    def error(self, message: str) -> NoReturn:
        raise ArgumentError(self, message)

    def format_help(self) -> str:
        return compact_help(self)

    def format_full_help(self) -> str:
        """argparse's help with every group, under the compact usage line (argparse's would list every option)."""
        formatter = self._get_formatter()
        formatter.add_usage(self.format_usage().removeprefix("usage: ").strip(), [], [])
        if self.description:  # wrapped here: the raw formatter keeps the epilog's own line breaks
            import textwrap

            formatter.add_text("\n\n".join(textwrap.fill(" ".join(para.split()), help_width(), break_on_hyphens=False)
                                           for para in self.description.split("\n\n")))
        for group in self._action_groups:
            formatter.start_section(group.title)
            formatter.add_text(group.description)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
        formatter.add_text(self.epilog)
        return formatter.format_help()

    def print_full_help(self) -> None:
        self._print_message(self.format_full_help(), sys.stdout)

    def format_usage(self) -> str:
        return compact_help(self).split("\n", 1)[0] + "\n"


class ArgumentError(UsageError):
    """A command line argparse refused; keeps the parser whose usage line goes with it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command name."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("pipeline options")
    g.add_argument("--detector", choices=DETECTORS, default=argparse.SUPPRESS, help="face detector (default: blazeface)")
    g.add_argument("--embedder", default=argparse.SUPPRESS,
                   help="embedding model name from 'facegate models' (default mobilefacenet; dlib_resnet under "
                   "--licence-policy permissive)")
    g.add_argument("--device", default=argparse.SUPPRESS,
                   help="cpu (default) or cuda[:N] for the embedder, MTCNN and O-Net (BlazeFace, HOG and "
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
    g.add_argument("--batch-size", type=int_arg(1, 4096), default=argparse.SUPPRESS, help="faces per network batch (default 32)")
    g.add_argument("--threads", type=int_arg(0, 1024), default=argparse.SUPPRESS, help="CPU threads (default: all)")
    g.add_argument("--home", default=argparse.SUPPRESS, help="facegate's data/cache folder (default ~/.cache/facegate)")
    g.add_argument("--gallery", default=argparse.SUPPRESS, help="gallery SQLite file (default <home>/gallery.sqlite)")
    g.add_argument("--no-flip", action="store_true", default=argparse.SUPPRESS, help="do not average with the mirror image")
    g.add_argument("--no-refine", action="store_true", default=argparse.SUPPRESS,
                   help="BlazeFace: skip the O-Net box refinement before landmarks (faster, less accurate)")
    g.add_argument("--min-score", type=float_arg(0.0, 1.0), default=argparse.SUPPRESS,
                   help="calibrated face score 0..1 (the same scale for every detector) a face must reach (default 0)")
    g.add_argument("--detect-budget", type=int_arg(0, 1_000_000), default=argparse.SUPPRESS,
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
    """Print JSON with --json (times as ISO 8601 with offset), else the human text."""
    if getattr(args, "json", False):
        print(json.dumps(iso_times(payload), indent=None, default=str))
    else:
        print(text() if callable(text) else text)


def format_mapping(data: dict[str, Any], indent: int = 0) -> str:
    """A nested dict as aligned ``key  value`` lines, sub-dicts indented under their key."""
    width = max((len(str(k)) for k in data), default=0)
    lines = []
    pad = " " * indent
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(format_mapping(value, indent + 2))
        else:
            if isinstance(value, float):
                value = f"{value:.4g}"
            elif value is None:
                value = "-"
            lines.append(f"{pad}{str(key) + ':':<{width + 1}}  {value}")
    return "\n".join(line for line in lines if line)


def error_payload(code: str, exit_code: int, message: str) -> dict[str, Any]:
    """The ``--json`` form of an error (the service's REST errors carry the same code and message)."""
    return {"error": {"code": code, "exit": int(exit_code), "message": message}}
