"""The skip policy (tests/skip_policy.py): a strict run fails on a skip whose reason is not allowed, passes on
an allowed one, and prints every reason either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _run(tmp_path: Path, reason: str, strict: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport skip_policy\n\n"
        "def pytest_configure(config):\n    skip_policy.register(config)\n")
    (tmp_path / "test_x.py").write_text(
        f"import pytest\n\ndef test_ok():\n    pass\n\ndef test_skipped():\n    pytest.skip({reason!r})\n")
    env = {**os.environ, "FACEGATE_STRICT_SKIPS": "1" if strict else "0"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("strict", [True, False])
def test_a_skip_not_allowed_fails_a_strict_run_only(tmp_path: Path, strict: bool) -> None:
    r = _run(tmp_path, "the widget package is not installed", strict)
    assert "NOT ALLOWED" in r.stdout and "the widget package is not installed" in r.stdout
    assert r.returncode == (1 if strict else 0), r.stdout


def test_an_allowed_skip_passes_a_strict_run(tmp_path: Path) -> None:
    r = _run(tmp_path, "shared datasets not found at /nowhere", strict=True)
    assert r.returncode == 0, r.stdout
    assert "allowed" in r.stdout and "1 skipped, 0 for a reason not allowed" in r.stdout


def test_every_allowed_reason_says_why() -> None:
    import skip_policy

    assert all(len(a.why) > 30 for a in skip_policy.ALLOWED_SKIPS)
    assert not skip_policy.is_allowed("could not import 'httpx': No module named 'httpx'")
