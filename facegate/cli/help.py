"""Help that fits a screen: ``facegate COMMAND --help`` shows the command's purpose, its own options (one line
each) and one example; ``--help-all`` adds the options every command shares (pipeline, gallery, service),
the details and the exit codes, as argparse prints them; ``facegate help pipeline`` lists the shared ones.

Before this, every command's help began with the fourteen pipeline options, so ``verify --help`` was 69 lines
and ``enroll --help`` 106 (issue 23). What a compact help leaves out is what the parser's argument groups say:
groups titled in :data:`SHARED_GROUPS`, and groups whose title starts with ``more``, appear with ``--help-all``
only. Each option's help is cut at its first ``"; "`` in the compact form, so an option's help is written as a
short phrase first and its details after a semicolon.
"""

from __future__ import annotations

import argparse
import os
import shutil
import textwrap
from typing import Any

# The argument groups every command shares (facegate.cli.common_options and the gallery's and service's
# option parents): listed by 'facegate help pipeline' and '--help-all', not by each command's --help.
SHARED_GROUPS = ("pipeline options", "gallery options", "service options")
MORE = "more"  # a group titled "more ..." holds a command's less used options: --help-all only


def width() -> int:
    """Columns to wrap at: the terminal's (or $COLUMNS), less a margin, within 60..120 (as argparse does)."""
    try:
        cols = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        cols = shutil.get_terminal_size().columns
    return max(60, min(120, cols - 2))


def hidden(group: Any) -> bool:
    title = (group.title or "").lower()
    return title in SHARED_GROUPS or title.startswith(MORE)


def brief(action: argparse.Action) -> str:
    """The action's help up to its first '; ', with %(default)s and the like expanded."""
    text = action.help or ""
    if "%" in text:
        params = {**vars(action), "prog": "", "default": action.default}
        if action.choices is not None:
            params["choices"] = ", ".join(map(str, action.choices))
        text = text % params
    return " ".join(text.split("; ")[0].split())


def invocation(action: argparse.Action) -> str:
    """``--far FAR`` / ``-k K`` / ``--pick single|largest|center``: the option as typed."""
    if not action.option_strings:
        return str(action.metavar or action.dest)
    name = ", ".join(action.option_strings)
    if action.nargs == 0:
        return name
    if action.metavar is not None:
        return f"{name} {action.metavar if isinstance(action.metavar, str) else ' '.join(action.metavar)}"
    if action.choices is not None:
        choices = "|".join(map(str, action.choices))
        if len(choices) <= 24:
            return f"{name} {choices}"
    return f"{name} {action.dest.upper()}"


def _usage_args(parser: argparse.ArgumentParser) -> str:
    formatter = parser._get_formatter()
    parts = []
    for action in parser._actions:
        if action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            parts.append(f"{action.metavar or 'COMMAND'} ...")
        else:
            parts.append(formatter._format_args(action, formatter._get_default_metavar_for_positional(action)))
    return " ".join(p for p in parts if p)


def _rows(rows: list[tuple[str, str]], cols: int) -> list[str]:
    """``  name   text`` rows, the text column aligned and wrapped."""
    if not rows:
        return []
    col = min(max(len(name) for name, _ in rows) + 4, 26)
    out = []
    for name, text in rows:
        lead = f"  {name}".ljust(col) if len(name) + 4 <= col else f"  {name}  "
        wrapped = textwrap.wrap(text, max(20, cols - len(lead)), break_on_hyphens=False) or [""]
        out.append(lead + wrapped[0])
        out += [" " * len(lead) + line for line in wrapped[1:]]
    return out


def compact_help(parser: argparse.ArgumentParser) -> str:
    """Purpose, own arguments, sub-commands and one example; a pointer to --help-all for the rest."""
    cols = width()
    if parser.usage:
        lines = [f"usage: {parser.usage % {'prog': parser.prog}}"]
    else:
        lines = [f"usage: {parser.prog} {_usage_args(parser)} [options]".replace("  ", " ")]
    if parser.description:
        lines.append("")
        for para in parser.description.split("\n\n"):
            lines += textwrap.wrap(" ".join(para.split()), cols, break_on_hyphens=False)
    args: list[tuple[str, str]] = []
    commands: list[tuple[str, str]] = []
    shared = False
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            if hidden(group) or action.dest == "help_all":
                shared = shared or hidden(group)
                continue
            if isinstance(action, argparse._SubParsersAction):
                commands += [(c.dest, c.help or "") for c in action._choices_actions]
            else:
                args.append((invocation(action), brief(action)))
    if commands:
        lines += ["", "commands:"] + _rows(commands, cols)
    if args:
        lines += ["", "options:"] + _rows(args, cols)
    example = getattr(parser, "example", None)
    if example:
        lines += ["", "example:" if "\n" not in example else "examples:"] + [f"  {e}" for e in example.splitlines()]
    footer = getattr(parser, "footer", None)
    if footer:
        lines += ["", *footer.splitlines()]
    more = f"more: {parser.prog} --help-all (every option, exit codes)"
    if shared:
        more += "; facegate help pipeline (--detector, --device, ...); --json for scripts"
    lines += ["", *textwrap.wrap(more, cols, break_on_hyphens=False)]
    return "\n".join(lines) + "\n"


class HelpAllAction(argparse.Action):
    """``--help-all``: the full argparse help of the command, shared options, details and exit codes included."""

    def __init__(self, option_strings: list[str], dest: str = "help_all", **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS,
                         help="every option with its details, the shared pipeline options and the exit codes")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print_full = getattr(parser, "print_full_help", None)
        if print_full is not None:
            print_full()
        else:
            parser.print_help()
        parser.exit()
