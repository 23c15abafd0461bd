"""Enrolment that cannot be poisoned (issue 23, item 4), on the command line with the real models and real photos
(matplotlib's Grace Hopper, scikit-image's astronaut Eileen Collins, re-shot copies made here).

The same photo under a second name and another person's photo added to an existing name are refused (exit 15)
with who they matched; ``--force`` stores them, recorded as forced (``people show``); the same photo again for the
same person is skipped and said; bulk enrolment reports such refusals per photo and goes on; ``gallery check``
finds what was forced in. Decisions are the calibrated defaults (1:N at FPIR 1e-2, 1:1 at FAR 1e-3).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

pytestmark = pytest.mark.slow


def _save(img: np.ndarray | Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory, hopper, astronaut) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("integrity")
    h = Image.fromarray(hopper)
    return {
        "hopper": _save(hopper, d / "hopper.jpg"),
        "hopper2": _save(ImageEnhance.Brightness(h).enhance(0.8).rotate(5), d / "hopper2.jpg"),
        "hopper3": _save(h.resize((h.width * 3 // 4, h.height * 3 // 4)), d / "hopper3.jpg"),
        "collins": _save(astronaut, d / "collins.jpg"),
    }


def _cli(capsys, home: Path, *argv: str, json_out: bool = True) -> tuple[int, dict | str]:
    from facegate.cli import main

    code = main(["--home", str(home), *argv, *(["--json"] if json_out else [])])
    out = capsys.readouterr().out
    return code, (json.loads(out) if json_out else out)


def test_cli_refuses_poisoning_and_records_forced_enrolments(photos, tmp_path, capsys):
    home = tmp_path / "home"
    assert _cli(capsys, home, "enroll", "--name", "Grace Hopper", str(photos["hopper"]))[0] == 0

    # the same photo under a second name: refused, naming who has it
    code, out = _cli(capsys, home, "enroll", "--name", "Ada", str(photos["hopper"]))
    assert code == 15 and out["error"]["code"] == "enrolment_conflict" and "--force" in out["error"]["message"]
    (dup,) = out["rejected"]
    assert dup["code"] == "duplicate_photo" and dup["metrics"]["name"] == "Grace Hopper"
    # another photo of her under a new name: she is already enrolled
    code, out = _cli(capsys, home, "enroll", "--name", "Ada", str(photos["hopper2"]))
    assert code == 15 and [r["code"] for r in out["rejected"]] == ["matches_other_person"]
    # another person's photo into her name: does not verify against her photo at FAR 1e-3
    code, out = _cli(capsys, home, "enroll", "--name", "Grace Hopper", str(photos["collins"]))
    assert code == 15 and [r["code"] for r in out["rejected"]] == ["not_same_person"]
    assert out["rejected"][0]["metrics"]["threshold"] > out["rejected"][0]["metrics"]["score"]
    code, text = _cli(capsys, home, "enroll", "--name", "Grace Hopper", str(photos["collins"]), json_out=False)
    assert code == 15 and "does not match Grace Hopper" in text and "--force" in text
    code, out = _cli(capsys, home, "people", "list")
    assert out["total"] == 1 and out["faces"] == 1  # nothing of the refused photos stored

    # a genuine new photo of her is added; the same bytes again are skipped and said
    code, out = _cli(capsys, home, "enroll", "--name", "Grace Hopper", str(photos["hopper2"]), str(photos["hopper"]))
    assert code == 0 and len(out["face_ids"]) == 1 and out["skipped"][0]["code"] == "already_enrolled"
    assert out["checks"]["verification"].startswith("against Grace Hopper's 1 photo(s)")

    # forced: stored and recorded
    code, out = _cli(capsys, home, "enroll", "--name", "Grace Hopper", str(photos["collins"]), "--force")
    assert code == 0 and [f["code"] for f in out["forced"]] == ["not_same_person"]
    code, out = _cli(capsys, home, "enroll", "--name", "Ada", str(photos["hopper3"]), "--force")
    assert code == 0 and [f["code"] for f in out["forced"]] == ["matches_other_person"]
    code, out = _cli(capsys, home, "people", "show", "Grace Hopper")
    assert [bool(f["forced"]) for f in out["face_list"]] == [False, False, True]
    code, text = _cli(capsys, home, "people", "show", "Grace Hopper", json_out=False)
    assert "FORCED over:" in text and "does not match Grace Hopper" in text

    # the gallery check finds both: Hopper's photos disagree (one is Collins), Ada looks like Hopper
    code, out = _cli(capsys, home, "gallery", "check")
    assert code == 10 and out["ok"] and not out["consistency"]["consistent"]
    (bad,) = out["consistency"]["disagreeing"]
    assert bad["name"] == "Grace Hopper" and all(str(photos["collins"]) in p["sources"] for p in bad["pairs"])
    assert [[p["name"] for p in x["people"]] for x in out["consistency"]["lookalikes"]] == [["Grace Hopper", "Ada"]]
    code, text = _cli(capsys, home, "gallery", "check", json_out=False)
    assert code == 10 and "photos disagree: Grace Hopper" in text and "look like one person: Grace Hopper" in text


def test_bulk_enrolment_reports_refusals_per_photo_and_goes_on(photos, tmp_path, capsys):
    home = tmp_path / "home"
    staff = tmp_path / "staff"
    _save(Image.open(photos["hopper"]), staff / "Grace Hopper" / "1.jpg")
    _save(Image.open(photos["collins"]), staff / "Eileen Collins" / "1.jpg")
    (staff / "Zoe").mkdir()  # folders go in name order: Hopper first, then her photo again under another name
    (staff / "Zoe" / "1.jpg").write_bytes(photos["hopper2"].read_bytes())
    code, out = _cli(capsys, home, "enroll", "--folders", str(staff))
    assert code == 0 and out["new_people"] == 2 and out["refused_photos"] == 1
    (ref,) = out["refusals"]
    assert ref["person"] == "Zoe" and ref["code"] == "matches_other_person"
    assert ref["matched"]["name"] == "Grace Hopper"
    # not remembered as a quality refusal: a rerun with --force decides again and stores it, recorded
    code, out = _cli(capsys, home, "enroll", "--folders", str(staff), "--force")
    assert code == 0 and out["new_people"] == 1 and out["skipped_photos"] == 2
    assert [(f["person"], f["code"]) for f in out["forced"]] == [("Zoe", "matches_other_person")], out
