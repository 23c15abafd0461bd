"""Files facegate creates are private whatever the umask (issue 23): 0600 files in 0700 folders, from the
helpers in facegate.files and from the commands that write under FACEGATE_HOME (the gallery, its journal, the
service database, the converted-model cache) and the embeddings ``embed --out`` writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from facegate.files import create_private, open_private, private_dir, restrict, write_private


@pytest.fixture()
def open_umask():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _open_to_others(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in [root, *root.rglob("*")] if _mode(p) & 0o077]


def test_helpers_make_private_files_and_folders_under_umask_000(tmp_path, open_umask):
    d = private_dir(tmp_path / "a" / "b")
    assert _mode(tmp_path / "a") == _mode(d) == 0o700
    with open_private(d / "j.jsonl", "a") as fh:
        fh.write("x\n")
    with open_private(d / "j.jsonl", "a") as fh:  # appends, mode unchanged
        fh.write("y\n")
    assert (d / "j.jsonl").read_text() == "x\ny\n" and _mode(d / "j.jsonl") == 0o600
    assert write_private(d / "t.json", "{}").read_text() == "{}" and _mode(d / "t.json") == 0o600
    assert create_private(d / "c" / "x.bin") and _mode(d / "c" / "x.bin") == 0o600 and _mode(d / "c") == 0o700
    old = tmp_path / "old.txt"
    old.write_text("written by an older version")
    os.chmod(old, 0o666)
    with open_private(old, "w") as fh:
        fh.write("new")
    assert _mode(old) == 0o600
    os.chmod(old, 0o644)
    restrict(old)
    assert _mode(old) == 0o600
    assert _open_to_others(d) == []
    with pytest.raises(ValueError):
        open_private(d / "r.txt", "r")


def test_an_existing_folder_is_left_as_it_is(tmp_path, open_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    private_dir(shared)
    assert _mode(shared) == 0o755  # the user's own folder: not ours to change


@pytest.mark.slow
def test_commands_leave_nothing_open_to_others_under_umask_000(tmp_path, hopper_path, open_umask):
    from facegate.cli import main

    home = tmp_path / "home"
    people = tmp_path / "people" / "Grace"
    people.mkdir(parents=True)
    (people / "1.jpg").write_bytes(hopper_path.read_bytes())
    base = ["--home", str(home), "--json"]
    assert main([*base, "enroll", "--name", "probe", str(hopper_path)]) == 0
    assert main([*base, "identify", str(hopper_path)]) == 0
    assert main([*base, "enroll", "--folders", str(tmp_path / "people")]) == 0  # its refusal journal
    assert main([*base, "keys", "create", "--role", "viewer"]) == 0  # the service database
    assert main([*base, "embed", str(hopper_path), "--out", str(home / "out" / "faces.jsonl"), "--workers", "0"]) == 0
    names = {p.name for p in home.rglob("*")}
    # (no cache/ folder: model conversions are made at install into the model store, tests/test_install_convert.py)
    assert {"gallery.sqlite", "gallery.service.sqlite", "faces.jsonl"} <= names
    assert any(n.startswith("gallery.sqlite.enrol-") for n in names)
    assert _open_to_others(home) == []
