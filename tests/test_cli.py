"""The command line: verdicts, exit codes, one-line errors for bad input, JSON output, resume."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import huge_png
from PIL import Image

from facegate.cli import main
from facegate.config import Config
from facegate.models.registry import get_spec

# the configured embedder's dimension (192 for MobileFaceNet; 128 for dlib under the permissive policy)
EMBED_DIM = int(get_spec(Config().embedder).output_size or 0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, hopper, astronaut) -> dict[str, Path]:
    from facegate.cli.core import demo_photos

    d = tmp_path_factory.mktemp("photos")
    p = demo_photos(d)
    blank = d / "blank.png"
    Image.new("RGB", (320, 240), (120, 160, 200)).save(blank)
    group = Image.new("RGB", (1100, 620), (90, 90, 90))
    group.paste(Image.fromarray(hopper).resize((400, 469)), (20, 60))
    group.paste(Image.fromarray(astronaut), (600, 50))
    group.save(d / "group.jpg")
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
    buf = io.BytesIO()
    Image.fromarray(hopper).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    webp = d / "webp_named.jpg"
    Image.fromarray(hopper).save(webp, "WEBP")
    (d / "huge.png").write_bytes(huge_png(30000, 30000))
    return {**p, "blank": blank, "group": d / "group.jpg", "corrupt": d / "corrupt.jpg",
            "truncated": d / "truncated.jpg", "empty": d / "empty.jpg", "text": d / "notes.txt",
            "webp": webp, "huge": d / "huge.png", "dir": d}


def test_help_explains_commands_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("verify", "detect", "embed", "calibrate", "eval", "models", "exit codes", "no face found"):
        assert word in out


def test_verify_same_and_different(run, photos):
    code, out, _ = run("verify", str(photos["hopper"]), str(photos["reshot"]))
    assert code == 0 and out.startswith("SAME")
    code, out, _ = run("verify", str(photos["hopper"]), str(photos["astronaut"]))
    assert code == 1 and out.startswith("DIFFERENT")


def test_verify_json_reports_far(run, photos):
    code, out, _ = run("verify", str(photos["hopper"]), str(photos["reshot"]), "--far", "1e-4", "--json")
    d = json.loads(out)
    assert code == 0 and d["same"] is True and d["far"] == 1e-4 and d["score"] > d["threshold"]
    code, out, _ = run("verify", str(photos["hopper"]), str(photos["reshot"]), "--threshold", "1.0", "--json")
    d = json.loads(out)
    assert code == 1 and d["far"] is None and d["threshold"] == 1.0


def test_demo(run):
    code, out, _ = run("demo")
    assert code == 0
    assert "DIFFERENT people" in out and "SAME person" in out


@pytest.mark.parametrize(
    "which,code,pattern",
    [
        ("corrupt", 3, "damaged|not a recognised|truncated"),
        ("truncated", 3, "truncated|damaged"),
        ("empty", 3, "empty"),
        ("text", 3, "not a recognised image"),
        ("huge", 3, "over the limit"),
        ("blank", 4, "no face found"),
        ("group", 5, "2 faces found"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(run, photos, which, code, pattern):
    single = ["--pick", "single"] if which == "group" else []  # by default a group photo's largest face is used
    got, out, err = run("verify", str(photos[which]), str(photos["hopper"]), *single)
    assert got == code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegate: error:")
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_missing_file_one_line(run):
    code, _, err = run("detect", "/nonexistent/photo.jpg")
    assert code == 3 and err.count("\n") == 1 and "no such file" in err


def test_webp_named_jpg_works(run, photos):
    code, out, _ = run("verify", str(photos["webp"]), str(photos["hopper"]))
    assert code == 0 and out.startswith("SAME")


def test_no_traceback_in_a_real_process(photos, home):
    env = {**os.environ, "FACEGATE_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "facegate", "verify", str(photos["corrupt"]), str(photos["hopper"])],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_detect_many_faces_and_draw(run, photos, tmp_path):
    out_png = tmp_path / "drawn.png"
    code, out, _ = run("detect", str(photos["group"]), "--draw", str(out_png), "--json")
    d = json.loads(out)
    assert code == 0 and len(d["faces"]) == 2
    for f in d["faces"]:
        assert len(f["landmarks"]) == 5 and len(f["box"]) == 4
    drawn = np.asarray(Image.open(out_png))
    assert drawn.shape[:2] == (620, 1100)
    assert ((drawn[..., 1] == 255) & (drawn[..., 0] == 0)).any()  # green boxes were drawn


def test_embed_jsonl_resumes_and_records_errors(run, photos, tmp_path):
    out = tmp_path / "faces.jsonl"
    files = [str(photos[k]) for k in ("hopper", "group", "corrupt", "blank")]
    code, _, _ = run("embed", *files, "--out", str(out))
    assert code == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    by_file: dict[str, list] = {}
    for r in recs:
        by_file.setdefault(r["file"], []).append(r)
    assert len(by_file[files[0]]) == 1 and len(by_file[files[0]][0]["embedding"]) == EMBED_DIM
    assert len(by_file[files[1]]) == 2
    assert by_file[files[2]][0]["error"] == "invalid_image"
    assert by_file[files[3]][0]["faces"] == 0
    # Simulate a crash mid-write: a torn last line, then resume with one more file.
    with open(out, "a") as fh:
        fh.write('{"file": "torn')
    code, out_text, _ = run("embed", *files, str(photos["reshot"]), "--out", str(out), "--json")
    summary = json.loads(out_text)
    assert code == 0 and summary["skipped_done"] == 4 and summary["faces"] == 1
    lines = out.read_text().splitlines()
    assert all(json.loads(line) for line in lines) and len(lines) == len(recs) + 1


def test_models_lists_and_verifies(run):
    code, out, _ = run("models", "--json")
    rows = json.loads(out)
    names = {r["name"] for r in rows}
    assert {"mobilefacenet", "dlib_resnet", "dlib_5_landmarks", "blazeface_full_range", "mtcnn_onet", "dlib_hog"} <= names
    assert code == 0 and all(r["check"] == "ok" for r in rows)
    assert all(r["licence"] and r["sha256"] and r["provenance"] for r in rows)
    for name in ("mobilefacenet", "dlib_resnet"):  # each shipped embedder has its default stack calibrated
        stacks = next(r for r in rows if r["name"] == name)["operating_points"]
        assert any({p["far"] for p in pts} >= {1e-2, 1e-3, 1e-4, 1e-5} for pts in stacks.values()), name
    mfn = next(r for r in rows if r["name"] == "mobilefacenet")
    assert mfn["archive"].startswith("npm:") and mfn["permissive"] is False and mfn["scheme"] == "mtcnn5"


def test_missing_gpu_is_an_error(run, photos):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run("verify", str(photos["hopper"]), str(photos["reshot"]), "--device", "cuda")
    assert code == 7 and "no CUDA GPU" in err


def test_unknown_far_is_a_usage_error(run, photos):
    code, _, err = run("verify", str(photos["hopper"]), str(photos["reshot"]), "--far", "0.5")
    assert code == 2 and "no calibrated threshold" in err


def test_eval_missing_dataset(run, tmp_path):
    code, _, err = run("eval", "lfw", "--root", str(tmp_path / "nope"), "--pairs", str(tmp_path / "pairs.txt"))
    assert code == 8 and "not found" in err


def test_calibrate_on_a_small_labelled_folder(run, photos, tmp_path, hopper, astronaut):
    from PIL import ImageEnhance

    rng = np.random.default_rng(0)
    for name, img in (("hopper", hopper), ("collins", astronaut)):
        (tmp_path / name).mkdir()
        for i in range(4):
            im = Image.fromarray(img).rotate(float(rng.uniform(-8, 8)), expand=False)
            im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.7, 1.2)))
            im.save(tmp_path / name / f"{i}.jpg", quality=int(rng.integers(60, 95)))
    code, out, _ = run("calibrate", str(tmp_path), "--json")
    d = json.loads(out)
    assert code == 8 and d["error"]["exit"] == 8  # nothing calibrated: the data set is too small
    assert d["summary"]["embedded"] == 8 and d["summary"]["people"] == 2
    assert d["summary"]["genuine_pairs"] == 12 and d["summary"]["impostor_pairs"] == 16
    assert d["points"] == []  # 16 impostor pairs cannot resolve a FAR of 1e-1 with >= 10 impostors
    # What would be enough: 100 impostor pairs for FAR 1e-1, e.g. 20 photos of the two people
    # (10 x 10 = 100 cross pairs) or 5 people with 4 photos each (16 x 10 = 160; 4 people give 96).
    need = d["summary"]["needed"]
    assert need["far"] == 0.1 and need["impostor_pairs"] == 100
    assert need["photos"] == 20 and need["people"] == 2
    assert need["photos_per_person"] == 4 and need["or_people"] == 5
    code, out, _ = run("calibrate", str(tmp_path))
    assert code == 8
    assert "needs 100 impostor pairs" in out and "about 20 photos over your 2 people" in out
    assert "--threshold" not in out  # no advice to use a threshold that was not calibrated
