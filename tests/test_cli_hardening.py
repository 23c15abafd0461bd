"""The command line's contract under bad input and in scripts: JSON errors, one exit-code table,
only the secret on stdout, path spellings, clustering folders, quiet native libraries."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from facegate.cli import build_parser
from facegate.errors import EXIT_CODES

REPO = Path(__file__).resolve().parent.parent


def _error(out: str, code: int) -> dict:
    """The --json error object on stdout, checked for its shape and exit code."""
    d = json.loads(out)
    assert set(d["error"]) == {"code", "exit", "message"} and d["error"]["exit"] == code, d
    return d["error"]


# -- 10: non-regular files -------------------------------------------------------------------------
def test_fifo_and_dev_zero_exit_3_with_json(run, tmp_path):
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    for path, word in ((fifo, "named pipe"), ("/dev/zero", "character device")):
        code, out, err = run("detect", str(path), "--json")
        assert code == 3
        e = _error(out, 3)
        assert e["code"] == "invalid_image" and word in e["message"]
        assert err.count("\n") == 1 and word in err


# -- 12: --json errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv,code,kind",
    [
        (["detect", "--json"], 2, "usage"),  # argparse: a missing argument
        (["verify", "a.jpg", "b.jpg", "--far", "7", "--json"], 2, "usage"),  # argparse: a bad value
        (["--json", "nonsense-command"], 2, "usage"),
        (["--json"], 2, "usage"),  # no command
        (["detect", "/nonexistent/x.jpg", "--json"], 3, "invalid_image"),
        (["people", "show", "nobody", "--json"], 11, "not_found"),
    ],
)
def test_json_errors_are_json_on_stdout_with_the_same_exit_code(run, argv, code, kind):
    got, out, err = run(*argv)
    assert got == code
    e = _error(out, code)
    assert e["code"] == kind and e["message"]
    assert err.strip().count("\n") == 0 and "error:" in err  # and still one line for a person


def test_without_json_an_argument_error_keeps_argparse_usage(run):
    code, out, err = run("detect")
    assert code == 2 and out == ""
    assert err.startswith("usage: facegate detect") and "error: the following arguments are required: PHOTO" in err


def test_cli_hints_are_added_by_the_cli(run, photos_dir):
    code, out, err = run("people", "show", "nobody")
    assert code == 11 and "see 'facegate people list'" in err
    code, out, err = run("verify", str(photos_dir / "group.jpg"), str(photos_dir / "group.jpg"), "--pick", "single")
    assert code == 5 and "--pick largest" in err


# -- 13: keys create -------------------------------------------------------------------------------
def test_keys_create_prints_only_the_secret_on_stdout(run):
    code, out, err = run("keys", "create", "--role", "admin", "--name", "ops")
    assert code == 0
    assert re.fullmatch(r"fg_[0-9a-f]{10}_\S+\n", out), out  # KEY=$(facegate keys create ...) is the key
    assert "only time" in err and "admin" in err
    code, out, err = run("keys", "create", "--role", "gate", "--json")
    d = json.loads(out)
    assert code == 0 and d["key"].startswith("fg_") and d["role"] == "gate" and err == ""


# -- 14: paths, clustering -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory, hopper, astronaut) -> Path:
    d = tmp_path_factory.mktemp("hardening")
    Image.fromarray(hopper).save(d / "hopper.jpg")
    Image.fromarray(astronaut).save(d / "astronaut.png")
    group = Image.new("RGB", (1100, 620), (90, 90, 90))
    group.paste(Image.fromarray(hopper).resize((400, 469)), (20, 60))
    group.paste(Image.fromarray(astronaut), (600, 50))
    group.save(d / "group.jpg")
    return d


def test_embed_resumes_whatever_the_spelling_of_the_path(run, photos_dir, tmp_path, monkeypatch):
    out = tmp_path / "faces.jsonl"
    monkeypatch.chdir(photos_dir.parent)
    rel = Path(photos_dir.name) / "hopper.jpg"
    assert run("embed", str(rel), "--out", str(out), "--workers", "0")[0] == 0
    first = out.read_text()
    link = tmp_path / "link.jpg"
    link.symlink_to(photos_dir / "hopper.jpg")
    spellings = [f"./{rel}", str(photos_dir / "hopper.jpg"), f"{photos_dir}/../{photos_dir.name}/hopper.jpg", str(link)]
    code, text, _ = run("embed", *spellings, "--out", str(out), "--workers", "0", "--json")
    assert code == 0 and json.loads(text)["skipped_done"] == 4
    assert out.read_text() == first  # nothing appended: no duplicates


def test_cluster_eval_on_a_folder_of_symlinks(run, photos_dir, tmp_path):
    labelled = tmp_path / "labelled"
    for person, names in (("hopper", ["hopper.jpg"]), ("collins", ["astronaut.png"])):
        (labelled / person).mkdir(parents=True)
        for n in names:
            (labelled / person / n).symlink_to(photos_dir / n)  # the photos live elsewhere
    code, out, err = run("cluster", str(labelled), "--eval", "--min-size", "1", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["evaluation"]["people"] == 2


def test_cluster_help_states_the_far_it_uses():
    from facegate.cli.gallery import CLUSTER_FAR

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helptext = sub.choices["cluster"].format_help()
    assert f"(default {CLUSTER_FAR:.0e}".replace("e-04", "e-4") in " ".join(helptext.split())
    assert "(default 1e-3)" not in " ".join(helptext.split())


def test_a_group_photo_is_not_also_unclustered(tmp_path):
    from facegate.gallery.cluster import ClusteredFace, ClusterResult, write_folders

    photos = {n: tmp_path / n for n in ("a1.jpg", "a2.jpg", "group.jpg", "alone.jpg")}
    for p in photos.values():
        p.write_bytes(b"x")

    def face():  # write_folders looks only at paths and cluster labels, not at the faces
        return None

    # person 0 in a1, a2 and the group photo; a stranger (cluster 1, size 1) also in the group photo
    faces = [ClusteredFace(str(photos["a1.jpg"]), face(), 0), ClusteredFace(str(photos["a2.jpg"]), face(), 0),
             ClusteredFace(str(photos["group.jpg"]), face(), 0), ClusteredFace(str(photos["group.jpg"]), face(), 1),
             ClusteredFace(str(photos["alone.jpg"]), face(), 2)]
    out = tmp_path / "out"
    written = write_folders(ClusterResult(faces, 0.9, None, "cw", []), out, min_size=2)
    person = sorted(p.name for p in (out / "person_001").iterdir())
    stray = sorted(p.name for p in (out / "unclustered").iterdir())
    assert person == ["a1.jpg", "a2.jpg", "group.jpg"]
    assert stray == ["alone.jpg"]  # the group photo is in its person's folder only
    assert written == {"folders": 1, "links": 4}


# -- 16: output that says what it did --------------------------------------------------------------
def test_detect_draw_says_where_it_wrote(run, photos_dir, tmp_path):
    target = tmp_path / "sub" / "drawn.png"
    code, out, _ = run("detect", str(photos_dir / "hopper.jpg"), "--draw", str(target))
    assert code == 0 and target.exists() and f"drew 1 face(s) on a copy of the photo: {target.resolve()}" in out
    code, out, _ = run("detect", str(photos_dir / "hopper.jpg"), "--draw", str(target), "--json")
    assert json.loads(out)["drawn"] == str(target.resolve())


def test_gallery_stats_prints_text_without_json(run, tmp_path):
    g = str(tmp_path / "g.sqlite")
    code, out, _ = run("gallery", "stats", "--gallery", g)
    assert code == 0 and not out.lstrip().startswith("{")
    assert re.search(r"^people:\s+0$", out, re.M) and re.search(r"^index:$", out, re.M)
    code, out, _ = run("gallery", "stats", "--gallery", g, "--json")
    assert json.loads(out)["people"] == 0


# -- 17, 18: a quiet, complete, -OO-safe command line ----------------------------------------------
def test_no_native_noise_on_stderr_in_a_real_process(photos_dir, home):
    env = {**os.environ, "FACEGATE_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "facegate", "detect", str(photos_dir / "hopper.jpg")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "1 face(s)" in r.stdout
    assert r.stderr == ""  # no "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def test_runs_under_python_OO(photos_dir, home):
    env = {**os.environ, "FACEGATE_HOME": str(home)}
    r = subprocess.run([sys.executable, "-OO", "-m", "facegate", "--help"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and "130" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-OO", "-m", "facegate", "detect", "/nonexistent.jpg", "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3 and json.loads(r.stdout)["error"]["exit"] == 3, r.stderr


def _help_codes() -> dict[int, str]:
    text = build_parser().format_help()
    block = text.split("exit codes:\n", 1)[1]
    return {int(m.group(1)): m.group(2).strip() for m in re.finditer(r"^\s+(\d+)\s+(.+)$", block, re.M)}


def _readme_codes() -> dict[int, str]:
    """The exit-code table of the CLI's page (docs/cli.md, linked from the README)."""
    text = (REPO / "docs" / "cli.md").read_text()
    table = text.split("| exit | meaning |", 1)[1].split("\n\n", 1)[0]
    return {int(m.group(1)): m.group(2).strip() for m in re.finditer(r"^\| (\d+) \| (.+) \|$", table, re.M)}


def test_readme_and_help_list_the_same_full_set_of_exit_codes():
    table = {int(c): t for c, t in EXIT_CODES.items()}
    assert _help_codes() == table
    assert _readme_codes() == table
    assert {0, 1, 2, 3, 9, 10, 13, 14, 130} <= set(table)


def test_every_error_class_takes_its_exit_code_from_the_table():
    import facegate.errors as core
    from facegate.gallery import errors as gallery
    from facegate.service.db import ServiceDBError
    from facegate.track.sources import SourceError

    classes = [getattr(m, n) for m in (core, gallery) for n in dir(m)]
    classes += [ServiceDBError, SourceError]
    errors = [c for c in classes if isinstance(c, type) and issubclass(c, core.FacegateError)]
    assert len(errors) >= 15
    for cls in errors:
        assert cls.exit_code in EXIT_CODES, cls


def test_pyproject_licence_is_an_spdx_expression():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"  # a table here is deprecated by setuptools
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])


# -- 23: lint --------------------------------------------------------------------------------------
def test_ruff_passes():
    import shutil

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    r = subprocess.run([ruff, "check", "facegate", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
