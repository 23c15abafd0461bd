"""The ``facegate`` command line: one thin function per command over the Python API.

Modules: :mod:`.main` (the parser and ``main``: one error line, JSON under ``--json``, the exit
code of the error), :mod:`.common` (what every sub-command shares), and one module per group of
commands: :mod:`.core` (verify, detect, embed, models, calibrate, eval), :mod:`.gallery`,
:mod:`.video`, :mod:`.service`. This file only re-exports.

Exit codes come from :data:`facegate.errors.EXIT_CODES` (``facegate --help`` prints them).
Every error is one line on standard error; with ``--json`` it is also a JSON object
``{"error": {"code", "exit", "message"}}`` on standard output, with the same exit code.
"""

from facegate.cli.common import (
    CLI_HINTS,
    ArgumentError,
    ArgumentParser,
    cli_message,
    common_options,
    config_from_args,
    emit,
    error_payload,
    exit_codes_epilog,
    format_mapping,
    iso_times,
)
from facegate.cli.main import build_parser, main

__all__ = [
    "CLI_HINTS", "ArgumentError", "ArgumentParser", "build_parser", "cli_message", "common_options",
    "config_from_args", "emit", "error_payload", "exit_codes_epilog", "format_mapping", "iso_times", "main",
]
