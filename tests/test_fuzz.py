"""A bounded, deterministic sample of the fuzz corpus (``tests/fuzz_corpus.py``) through the API and
the CLI: every input decodes or is refused with InvalidImageError, and ``detect --json`` answers
with JSON (faces, or ``{"error": {code, exit, message}}``), one error line, no traceback, no exit 9,
and nothing from native libraries on the file descriptors. ``python tests/fuzz_corpus.py --all``
runs all 1,000."""

from __future__ import annotations

import pytest
from fuzz_corpus import check_cli_output, corpus

from facegate.cli import main
from facegate.errors import InvalidImageError
from facegate.image import load_image

SAMPLE = corpus()[::17]  # 59 inputs spread over every kind in the corpus


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    for name, data in SAMPLE:
        (d / name).write_bytes(data)
    return d


def test_sample_covers_the_kinds_of_input():
    names = " ".join(n for n, _ in SAMPLE)
    assert len(SAMPLE) >= 55
    for kind in ("truncate", "flip", "huge", "jpg", "png", "gif", "tif", "webp"):
        assert kind in names, kind


@pytest.mark.parametrize("name,data", SAMPLE, ids=[n for n, _ in SAMPLE])
def test_api_decodes_or_refuses(name, data, capfd):
    try:
        arr = load_image(data)
        assert arr.ndim == 3 and arr.shape[2] == 3
    except InvalidImageError as exc:
        assert "\n" not in str(exc) and "b'" not in str(exc)
    assert capfd.readouterr() == ("", "")


def test_cli_detect_json_answers_every_input(sample_dir, home, capfd):
    problems = {}
    for name, _ in SAMPLE:
        code = main(["--home", str(home), "detect", str(sample_dir / name), "--json"])
        out, err = capfd.readouterr()
        found = check_cli_output(code, out, err)
        if found:
            problems[name] = found
    assert not problems, problems
