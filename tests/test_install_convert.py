"""`facegate models install` converts at set-up what facegate would otherwise convert at first use.

A temporary model store holds links to the installed weight files (nothing is fetched: install runs
with ``--from`` an empty folder, so a missing weight would fail rather than go to a registry) and
install makes every converted file into it, under umask 000. Then commands in fresh homes convert
nothing, the manifest and ``facegate models`` show each file with its sha256 and source, a rerun
does nothing, a damaged converted file is refused with the command that repairs it, and a store
without a converted file still works, converting into the cache with a notice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from facegate.cli import main
from facegate.config import Config
from facegate.errors import ModelError
from facegate.models.converted import CONVERSIONS, MANIFEST, converted_path, read_manifest
from facegate.models.install import fetchable, install
from facegate.models.registry import REGISTRY, locate, sha256_file, store_path

pytestmark = pytest.mark.slow  # one install converts six files (about 15 s on 2 busy cores)


def _link_weights(store: Path) -> None:
    """A store holding links to the weight files installed for this venv, and no converted files
    (what an install by an older facegate left)."""
    for spec in fetchable():
        dest = store_path(spec, store)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(locate(spec))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, list]:
    store = tmp_path_factory.mktemp("store")
    _link_weights(store)
    offline = tmp_path_factory.mktemp("no-archives")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGATE_MODELS", str(store))
        old = os.umask(0)  # the converted files and the manifest must be private anyway
        try:
            results = install(source=offline)
        finally:
            os.umask(old)
    return store, results


@pytest.fixture()
def store(installed, monkeypatch) -> Path:
    monkeypatch.setenv("FACEGATE_MODELS", str(installed[0]))
    return installed[0]


@pytest.fixture(scope="module")
def small_faces(tmp_path_factory, hopper, astronaut) -> Path:
    """A 1280x720 frame with three small faces: BlazeFace's weak candidates go through R-Net."""
    from PIL import Image

    frame = Image.fromarray(astronaut).resize((1280, 720))
    face = Image.fromarray(hopper)
    for width, x, y in ((60, 100, 100), (80, 600, 400), (50, 1000, 200)):
        frame.paste(face.resize((width, int(width * face.height / face.width))), (x, y))
    path = tmp_path_factory.mktemp("photos") / "small_faces.jpg"
    frame.save(path, quality=95)
    return path


def _cli(capsys, home: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_install_converts_everything_and_records_it(installed):
    store, results = installed
    by_name = {r.name: r for r in results}
    assert {r.name for r in results if r.kind == "converted"} == set(CONVERSIONS)
    assert all(r.state == "installed" for r in results if r.kind == "converted"), results
    assert all(r.state == "present" for r in results if r.kind == "weights"), results
    manifest = read_manifest(store)
    for name, conv in CONVERSIONS.items():
        entry, path = manifest[name], by_name[name].path
        source = REGISTRY[conv.source]
        assert path == store / entry["path"] and path.parent == store / conv.source  # beside its weights
        assert entry["kind"] == "converted" and entry["source"] == conv.source
        assert entry["source_sha256"] == source.sha256 and entry["version"] == conv.version
        assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size > 0
        assert entry["method"] and entry["made_with"].startswith("torch ")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name  # private although umask was 000
    for spec in fetchable():  # the weights are on record too
        assert manifest[spec.name]["sha256"] == spec.sha256 and manifest[spec.name]["archive"] == spec.archive
    assert stat.S_IMODE((store / MANIFEST).stat().st_mode) == 0o600


def test_a_second_install_has_nothing_to_do(store, capsys):
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    code, out, _ = _cli(capsys, store / "unused-home", "models", "install")
    assert code == 0
    assert out.strip().splitlines()[-1].startswith("nothing to do: all")
    assert " installed " not in out
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == before  # not one file rewritten


def _runs(tmp_path: Path, hopper_path: Path, astronaut_path: Path, small_faces: Path) -> dict[str, tuple[list[str], set[str]]]:
    """Commands, stacks and runtimes, each with the files it converted at first use before install did."""
    pair = [str(hopper_path), str(astronaut_path)]
    return {
        "verify": (["verify", *pair], {"mtcnn_onet.onnx"}),
        "verify-permissive": (["verify", *pair, "--licence-policy", "permissive"], {"mtcnn_onet.onnx", "dlib_resnet.onnx"}),
        "verify-onnxruntime": (["verify", *pair, "--runtime", "onnxruntime"], {"mtcnn_onet.onnx", "mobilefacenet.onnx"}),
        "verify-torch": (["verify", *pair, "--runtime", "torch", "--licence-policy", "permissive"], {"dlib_resnet.pt"}),
        # R-Net screens BlazeFace's weak candidates: the small faces
        "detect-small-faces": (["detect", str(small_faces)], {"mtcnn_onet.onnx", "mtcnn_rnet.onnx"}),
        "detect-mtcnn": (["detect", str(hopper_path), "--detector", "mtcnn"], set()),
        "embed": (["embed", str(astronaut_path), "--out", str(tmp_path / "out.jsonl"), "--workers", "0"], {"mtcnn_onet.onnx"}),
    }


def _cached_names(home: Path) -> set[str]:
    """The conversions a run left in the home's cache (file names carry the source's sha256)."""
    cache = home / "cache"
    files = {p.name for p in cache.iterdir()} if cache.exists() else set()
    made = {n for n, c in CONVERSIONS.items() if c.filename(REGISTRY[c.source].sha256) in files}
    assert not files - {CONVERSIONS[n].filename(REGISTRY[CONVERSIONS[n].source].sha256) + x for n in made for x in ("", ".json")}
    return made


def test_before_install_they_were_converted_at_first_use(tmp_path, monkeypatch, capsys, caplog, hopper_path,
                                                         astronaut_path, small_faces):
    """The baseline the next test relies on: without installed conversions each run below converts
    what its table says into its home's cache, with a one-line notice for each naming the fix."""
    old_store = tmp_path / "old-store"
    _link_weights(old_store)
    monkeypatch.setenv("FACEGATE_MODELS", str(old_store))
    for label, (argv, converts) in _runs(tmp_path, hopper_path, astronaut_path, small_faces).items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="facegate.models.converted"):
            code, _, err = _cli(capsys, tmp_path / label, *argv)
        assert code in (0, 1), (label, err)
        assert _cached_names(tmp_path / label) == converts, label
        notices = [r.getMessage() for r in caplog.records if r.name == "facegate.models.converted"]
        assert len(notices) == len(converts) and all("'facegate models install'" in n for n in notices), notices


def test_fresh_homes_convert_nothing(store, tmp_path, capsys, hopper_path, astronaut_path, small_faces):
    """Every command, stack and runtime that converted at first use finds the installed files."""
    for label, (argv, _converts) in _runs(tmp_path, hopper_path, astronaut_path, small_faces).items():
        code, _, err = _cli(capsys, tmp_path / label, *argv)
        assert code in (0, 1), (label, err)
        assert "not installed" not in err, (label, err)
        home_cache = tmp_path / label / "cache"
        assert not home_cache.exists() or not any(home_cache.iterdir()), (label, list(home_cache.iterdir()))
    home = tmp_path / "direct"
    for name in CONVERSIONS:  # and each file, asked for directly (the GPU path's arrays included)
        path, origin = converted_path(name, Config(home=home))
        assert origin == "installed" and path.parent.parent == store, name
    assert not (home / "cache").exists()


def test_the_device_paths_predictor_arrays_come_from_the_store(store, tmp_path):
    from facegate.bulk.device import load_shape_predictor
    from facegate.models.dlib_dat import read_shape_predictor

    got = load_shape_predictor(Config(home=tmp_path))
    want = read_shape_predictor(locate(REGISTRY["dlib_5_landmarks"]))
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    assert not (tmp_path / "cache").exists()


def test_facegate_models_shows_the_converted_files(store, tmp_path, capsys):
    code, out, _ = _cli(capsys, tmp_path, "models", "--json")
    assert code == 0
    manifest = read_manifest(store)
    rows = {r["name"]: r for r in json.loads(out)}
    shown = {c["name"]: c for r in rows.values() for c in r.get("converted", [])}
    assert set(shown) == set(CONVERSIONS)
    for name, c in shown.items():
        assert c["check"] == "ok" and c["sha256"] == manifest[name]["sha256"]
        assert c["source_sha256"] == rows[CONVERSIONS[name].source]["sha256"]
    code, text, _ = _cli(capsys, tmp_path, "models")
    assert "converted mtcnn_onet.onnx [ok]" in text and manifest["mtcnn_onet.onnx"]["sha256"][:16] in text


def test_a_damaged_converted_file_is_refused_and_install_repairs_it(store, tmp_path, capsys, hopper_path):
    entry = read_manifest(store)["mtcnn_onet.onnx"]
    path = store / entry["path"]
    good = path.read_bytes()
    path.write_bytes(good[:-64] + bytes(64))
    with pytest.raises(ModelError, match="facegate models install"):
        converted_path("mtcnn_onet.onnx", Config(home=tmp_path / "home"))
    code, _, err = _cli(capsys, tmp_path / "home", "detect", str(hopper_path))
    assert code == 6 and "sha256" in err and "facegate models install" in err
    code, out, _ = _cli(capsys, tmp_path / "home", "models", "--json")
    shown = {c["name"]: c for r in json.loads(out) for c in r.get("converted", [])}
    assert code == 6 and shown["mtcnn_onet.onnx"]["check"] == "MISMATCH"
    results = {r.name: r for r in install(["mtcnn_onet.onnx"])}
    assert results["mtcnn_onet.onnx"].state == "installed" and "did not match" in results["mtcnn_onet.onnx"].message
    assert path.read_bytes() == good  # the same graph, converted again
    assert read_manifest(store)["mtcnn_onet.onnx"]["sha256"] == entry["sha256"]
    assert converted_path("mtcnn_onet.onnx", Config(home=tmp_path / "home"))[1] == "installed"


def test_without_installed_files_the_cache_is_used_with_a_notice(tmp_path, monkeypatch, caplog):
    """An install by an older facegate: the same file, converted into the home's cache, and said once."""
    old_store = tmp_path / "old-store"
    _link_weights(old_store)
    monkeypatch.setenv("FACEGATE_MODELS", str(old_store))
    cfg = Config(home=tmp_path / "home")
    with caplog.at_level(logging.WARNING, logger="facegate.models.converted"):
        path, origin = converted_path("mtcnn_rnet.onnx", cfg)
        again, origin_again = converted_path("mtcnn_rnet.onnx", cfg)
    assert (origin, origin_again) == ("converted", "cache") and path == again
    assert path.parent == cfg.cache_dir and stat.S_IMODE(path.stat().st_mode) == 0o600
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "not installed" in notices[0] and "facegate models install" in notices[0]
    assert "\n" not in notices[0]


def test_files_from_another_converter_version_are_not_used(store, tmp_path, monkeypatch, caplog):
    conv = CONVERSIONS["mtcnn_rnet.onnx"]
    monkeypatch.setitem(CONVERSIONS, conv.name, dataclasses.replace(conv, version=conv.version + 1))
    with caplog.at_level(logging.WARNING, logger="facegate.models.converted"):
        path, origin = converted_path(conv.name, Config(home=tmp_path))
    assert origin == "converted" and path.parent == tmp_path / "cache"
    assert "another facegate version" in caplog.text and "facegate models install" in caplog.text
