"""Bulk embedding: decode workers give the same output as in-process decoding, a killed run
resumes without redoing files, unreadable files are listed, and Ray gives the same records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegate import Config
from facegate.bulk import embed_to_jsonl, embed_with_ray, iter_image_files
from facegate.cli import main
from facegate.models.registry import get_spec

CORRUPT = ("a/b/truncated.jpg", "c/noise.png")
BLANK = ("a/blank_grey.png", "a/b/blank_white.jpg", "c/d/blank_noise.png", "blank_black.bmp")

# the configured embedder's dimension (192 for MobileFaceNet; 128 for dlib under the permissive policy)
EMBED_DIM = int(get_spec(Config().embedder).output_size or 0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, hopper_path, astronaut_path) -> Path:
    """30 photos in nested folders: two faces at several scales and formats, blanks, corrupt files."""
    root = tmp_path_factory.mktemp("bulk") / "photos"
    hopper = Image.open(hopper_path).convert("RGB")
    astro = Image.open(astronaut_path).convert("RGB")
    subdirs = ["a", "a/b", "c", "c/d", ""]
    n = 0
    for name, im in (("hopper", hopper), ("astro", astro)):
        for scale in (0.45, 0.6, 0.8, 1.0, 1.25, 0.7, 0.9, 0.55, 1.1, 0.5, 0.65, 0.75):
            w, h = int(im.width * scale), int(im.height * scale)
            sub = root / subdirs[n % len(subdirs)]
            sub.mkdir(parents=True, exist_ok=True)
            ext = (".jpg", ".png")[n % 2]
            im.resize((w, h), Image.BILINEAR).save(sub / f"{name}_{int(scale * 100):03d}{ext}")
            n += 1
    rng = np.random.default_rng(0)
    blanks = [Image.new("RGB", (320, 240), (128, 128, 128)), Image.new("RGB", (200, 300), (255, 255, 255)),
              Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)), Image.new("RGB", (64, 64))]
    for rel, im in zip(BLANK, blanks):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / rel)
    (root / CORRUPT[0]).write_bytes(hopper_path.read_bytes()[:300])  # truncated JPEG
    (root / CORRUPT[1]).write_bytes(rng.integers(0, 255, 2000, dtype=np.uint8).tobytes())  # not an image
    assert len(list(iter_image_files([root]))) == 30
    return root


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _by_file(recs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in recs:
        out.setdefault(r["file"], []).append(r)
    return out


def assert_same_records(got: list[dict], want: list[dict]) -> None:
    """Same files in the same order, same records; numbers equal up to float noise."""
    assert [r["file"] for r in got] == [r["file"] for r in want]
    for g, w in zip(got, want):
        assert g.keys() == w.keys(), (g["file"], g.keys(), w.keys())
        for key in g:
            if key in ("box", "landmarks", "embedding", "score"):
                np.testing.assert_allclose(g[key], w[key], atol=0.05 if key != "embedding" else 1e-4,
                                           err_msg=f"{g['file']} {key}")
            else:
                assert g[key] == w[key], (g["file"], key)


@pytest.fixture(scope="module")
def reference(folder, pipeline, tmp_path_factory) -> tuple[Path, dict]:
    """The in-process run (workers=0) every other way of running is compared with."""
    out = tmp_path_factory.mktemp("ref") / "faces.jsonl"
    counts = embed_to_jsonl(pipeline, [folder], out, progress=False, workers=0)
    return out, counts


def test_in_process_run_lists_faces_blanks_and_unreadable_files(folder, reference):
    out, counts = reference
    recs = _load(out)
    files = [str(f) for f in iter_image_files([folder])]
    by_file = _by_file(recs)
    assert list(by_file) == files  # every file, once, in walk order
    assert counts == {"files": 30, "skipped_done": 0, "faces": counts["faces"], "no_face": 4, "errors": 2}
    for rel in CORRUPT:
        (r,) = by_file[str(folder / rel)]
        assert r["error"] == "invalid_image" and str(folder / rel) in r["message"]
    for rel in BLANK:
        assert by_file[str(folder / rel)] == [{"file": str(folder / rel), "faces": 0}]
    faces = [r for r in recs if "embedding" in r]
    assert len(faces) == counts["faces"] >= 20  # most of the 24 scaled photos show their face
    for r in faces:
        assert len(r["embedding"]) == EMBED_DIM and abs(np.linalg.norm(r["embedding"]) - 1) < 1e-4
        assert len(r["landmarks"]) == 5 and len(r["box"]) == 4 and r["detector"]


def test_decode_workers_give_the_same_output(folder, reference, pipeline, tmp_path):
    ref, ref_counts = reference
    out = tmp_path / "faces.jsonl"
    counts = embed_to_jsonl(pipeline, [folder], out, progress=False, workers=2)
    assert counts == ref_counts
    assert_same_records(_load(out), _load(ref))
    # A rerun finds everything done and writes nothing.
    before = out.read_bytes()
    again = embed_to_jsonl(pipeline, [folder], out, progress=False, workers=2)
    assert again["skipped_done"] == 30 and again["faces"] == 0 and out.read_bytes() == before


KILLED_RUN = """
import sys, time
from pathlib import Path
from facegate import Config
from facegate import Config
from facegate.bulk import embed_to_jsonl
from facegate.pipeline import Pipeline

pipe = Pipeline(Config(home=Path(sys.argv[1])))
batch = pipe.faces_batch
def slow(images):  # widen the window in which the test kills this process
    time.sleep(0.4)
    return batch(images)
pipe.faces_batch = slow
if __name__ == "__main__":
    embed_to_jsonl(pipe, [sys.argv[2]], Path(sys.argv[3]), chunk=4, progress=False, workers=2)
"""


def test_killed_run_resumes_without_redoing_files(folder, reference, pipeline, home, tmp_path):
    ref, _ = reference
    out = tmp_path / "faces.jsonl"
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    proc = subprocess.Popen([sys.executable, str(script), str(home), str(folder), str(out)],
                            start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 8:  # at least two chunks written
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its decode workers, mid-way
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    with open(out, "ab") as fh:  # as if the kill had come in the middle of a write
        fh.write(b'{"file": "half a rec')
    killed = out.read_bytes()
    whole = killed[: killed.rindex(b"\n") + 1]
    done = {json.loads(line)["file"] for line in whole.splitlines()}
    assert 2 <= len(done) < 30

    counts = embed_to_jsonl(pipeline, [folder], out, progress=False, workers=2)
    assert counts["skipped_done"] == len(done)
    resumed = out.read_bytes()
    assert resumed.startswith(whole)  # what was written stays, byte for byte
    recs = _load(out)
    new_files = {r["file"] for r in recs[len(whole.splitlines()):]}
    assert not new_files & done  # nothing redone
    by_file = _by_file(recs)
    for f, rs in by_file.items():  # every file once: one record, or faces 0..k-1 each once
        assert [r.get("face") for r in rs] == (list(range(len(rs))) if "face" in rs[0] else [None]), f
    assert_same_records(recs, _load(ref))


def test_ray_gives_the_same_records_and_resumes_by_shard(folder, reference, home, tmp_path):
    ray = pytest.importorskip("ray")
    ref, ref_counts = reference
    ref_recs = _load(ref)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # Fresh run through the CLI (--ray uses the instance this test started).
        out = tmp_path / "cli.jsonl"
        code = main(["--home", str(home), "embed", str(folder), "--out", str(out), "--ray", "local", "--json"])
        assert code == 0
        assert_same_records(_load(out), ref_recs)

        # Resume: the first shard (8 files) and part of the second are done already.
        files = [str(f) for f in iter_image_files([folder])]
        partial = [line for line in ref.read_text().splitlines(keepends=True) if json.loads(line)["file"] in files[:11]]
        out2 = tmp_path / "resumed.jsonl"
        out2.write_text("".join(partial))
        counts = embed_with_ray("local", Config(home=home), [folder], out2, shard_size=8, chunk=4,
                                progress=False)
        assert counts["skipped_done"] == 11 and counts["files"] == 30
        assert counts["errors"] + counts["no_face"] + counts["faces"] == len(ref_recs) - len(partial)
        assert out2.read_text().startswith("".join(partial))
        assert_same_records(_load(out2), ref_recs)
    finally:
        ray.shutdown()


def test_ray_missing_is_a_usage_error(folder, home, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["--home", str(home), "embed", str(folder), "--out", str(tmp_path / "x.jsonl"), "--ray", "auto"])
    assert code == 2
    assert "facegate[scale]" in capsys.readouterr().err


def test_bad_worker_count_is_a_usage_error(folder, home, tmp_path, capsys):
    code = main(["--home", str(home), "embed", str(folder), "--out", str(tmp_path / "x.jsonl"), "--workers", "-1"])
    assert code == 2


def test_a_second_run_on_the_same_output_is_refused(folder, pipeline, tmp_path):
    import fcntl

    from facegate.errors import UsageError

    out = tmp_path / "faces.jsonl"
    with open(out, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running embed holds it
        with pytest.raises(UsageError, match="another run"):
            embed_to_jsonl(pipeline, [folder], out, progress=False, workers=0)
    assert out.read_bytes() == b""
