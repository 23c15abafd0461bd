"""Which skipped tests are acceptable, and a pytest plugin that enforces it.

A skip that nobody reads hides a test that never runs (issue 23: 21 MTCNN and device-path tests skipped for a
package nobody installs any more). So every skip must match a reason below, each of which names something that
is genuinely outside the repository and the pinned dependencies. The plugin prints one line per skip reason at
the end of the run (allowed or not) and, when ``FACEGATE_STRICT_SKIPS=1`` (``.ci/run`` sets it), fails the run
if any skip is not allowed. A test dependency that is missing (``importorskip`` of a package in
``pyproject.toml``'s ``test`` extra) is *not* an allowed reason: ``make test`` installs them.

To allow a new reason, add an entry with the justification; keep the list short.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest


def _not_root_or_opted_out() -> bool:
    """``make system-deps`` installs ffmpeg and chromium only as root on a Debian-like machine, and not with
    ``SYSTEM_DEPS=0``; anywhere else their absence is the machine's, not the project's."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is None or geteuid() != 0 or os.environ.get("SYSTEM_DEPS") == "0"


@dataclass(frozen=True)
class AllowedSkip:
    pattern: str  # a regular expression searched in the skip's reason
    why: str  # why this is an environment's property and not a defect
    when: Callable[[], bool] = lambda: True  # the condition under which the reason is allowed

    def matches(self, reason: str) -> bool:
        return re.search(self.pattern, reason) is not None and self.when()


ALLOWED_SKIPS: tuple[AllowedSkip, ...] = (
    AllowedSkip(r"shared datasets not found|not in the shared datasets",
                "research-licensed data sets live outside the repository (../shared/datasets) and are never "
                "committed; a clone without them cannot run these"),
    AllowedSkip(r"a (CUDA )?GPU is present|onnxruntime has CUDA support",
                "checks that a missing GPU is a clear error: on a machine with a GPU there is no missing GPU"),
    AllowedSkip(r"no (CUDA )?GPU|needs a (CUDA )?GPU",
                "GPU code on a machine without one (the CPU twin of each GPU branch still runs)"),
    AllowedSkip(r"need POSIX signals",
                "kill -9 durability tests need POSIX signals (not on Windows)"),
    AllowedSkip(r"no Chromium found|needs the ffmpeg program",
                "system programs that `make system-deps` installs with apt-get only as root (CI runs as root, "
                "so there they must run); allowed when not root or with SYSTEM_DEPS=0",
                _not_root_or_opted_out),
)


def skip_reason(report: pytest.TestReport) -> str:
    """The reason pytest recorded for a skipped test (``longrepr`` is ``(path, line, "Skipped: reason")``)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def is_allowed(reason: str) -> bool:
    return any(a.matches(reason) for a in ALLOWED_SKIPS)


class SkipPolicy:
    """Collects skips; prints them by reason at the end; fails a strict run on a skip not allowed."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.reasons: Counter[str] = Counter()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.reasons[skip_reason(report)] += 1

    def unexpected(self) -> dict[str, int]:
        return {r: n for r, n in self.reasons.items() if not is_allowed(r)}

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter) -> None:
        tr = terminalreporter
        total = sum(self.reasons.values())
        bad = self.unexpected()
        tr.write_sep("-", f"skip policy: {total} skipped, {sum(bad.values())} for a reason not allowed"
                     + (" (strict: FACEGATE_STRICT_SKIPS=1)" if self.strict else ""))
        for reason, n in sorted(self.reasons.items()):
            tr.write_line(f"{'NOT ALLOWED' if reason in bad else 'allowed    '} {n:>4}  {reason}")
        if bad:
            tr.write_line("allowed reasons are listed, with why, in tests/skip_policy.py")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.strict and self.unexpected() and exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def register(config: pytest.Config) -> None:
    """Called from ``conftest.pytest_configure``."""
    strict = os.environ.get("FACEGATE_STRICT_SKIPS", "") not in ("", "0")
    config.pluginmanager.register(SkipPolicy(strict), "facegate-skip-policy")
