"""Shared fixtures: photos shipped by installed packages, generated images, the shared datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    import skip_policy  # tests/ is on sys.path for its conftest; the policy and its allowed reasons live there

    skip_policy.register(config)


def datasets_root() -> Path:
    env = os.environ.get("FACEGATE_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = datasets_root()
    if not (root / "lfw").is_dir():
        pytest.skip(f"shared datasets not found at {root}")
    return root


@pytest.fixture(scope="session")
def hopper_path() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


@pytest.fixture(scope="session")
def hopper(hopper_path) -> np.ndarray:
    from facegate.image import load_image

    return load_image(hopper_path)


@pytest.fixture(scope="session")
def astronaut(astronaut_path) -> np.ndarray:
    from facegate.image import load_image

    return load_image(astronaut_path)


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    """A facegate home shared by the session (converted weights are cached once)."""
    return Path(os.environ.get("FACEGATE_HOME") or tmp_path_factory.mktemp("facegate-home"))


@pytest.fixture()
def run(home, capsys):
    """The CLI in-process in the shared home: (exit code, stdout, stderr)."""
    from facegate.cli import main

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(["--home", str(home), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture(scope="session")
def pipeline(home):
    from facegate import Config
    from facegate.pipeline import Pipeline

    return Pipeline(Config(home=home))
