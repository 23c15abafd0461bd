"""Gallery end to end on real photos through the shared Pipeline: enrol, identify, quality gate,
model changes and re-embedding, the CLI, and clustering.

Photos come from installed packages (matplotlib's Grace Hopper, scikit-image's astronaut
Eileen Collins) and variants made from them on the fly; the people_small test at the end
needs the shared datasets and skips without them. The decision threshold is explicit
(0.93 cosine: genuine variants of these photos score >= 0.99, Hopper vs Collins ~0.89;
on people_small genuine faces score >= 0.969 and the best impostor 0.883),
so the tests do not depend on a calibrated operating-point table.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from facegate.config import Config
from facegate.decide.tables import load_operating_points
from facegate.gallery import (
    EnrolmentRejectedError,
    Gallery,
    ModelMismatchError,
    SqliteBackend,
    model_id,
)

# An explicit bar for these tests: the default stack's calibrated threshold at FAR 1e-4 (LFW), so the
# tests follow the embedder (0.93 was dlib's; MobileFaceNet's cosines run lower for everybody).
THRESHOLD = round(next(p.threshold for p in load_operating_points(Config()) if abs(p.far - 1e-4) < 1e-12), 4)


def _variants(img: np.ndarray) -> list[np.ndarray]:
    """The same face re-shot: mirrored, darker, slightly rotated, cropped and shrunk."""
    im = Image.fromarray(img)
    h, w = img.shape[:2]
    return [
        img,
        np.ascontiguousarray(img[:, ::-1]),
        np.asarray(ImageEnhance.Brightness(im).enhance(0.75)),
        np.asarray(im.rotate(6, resample=Image.BICUBIC)),
        cv2.resize(img[h // 10 :, w // 12 : w - w // 12], None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA),
    ]


def _save(img: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def both(hopper, astronaut) -> np.ndarray:
    """Hopper and Collins side by side: two faces in one photo."""
    hh = cv2.resize(hopper, (int(hopper.shape[1] * 512 / hopper.shape[0]), 512))
    return np.ascontiguousarray(np.concatenate([hh, astronaut], axis=1))


@pytest.fixture
def gallery(tmp_path, pipeline):
    cfg = pipeline.config.replace(gallery=tmp_path / "g.sqlite", threshold=THRESHOLD)
    g = Gallery(SqliteBackend(cfg.gallery_path), cfg, pipeline=pipeline)
    yield g
    g.close()


def test_enrol_several_photos_and_identify_every_face(gallery, hopper, astronaut, both):
    r = gallery.enroll("Grace Hopper", _variants(hopper)[:3])
    assert r.created and len(r.face_ids) == 3 and not r.rejected
    r = gallery.enroll("Eileen Collins", [astronaut])
    assert r.person.faces == 1
    found = gallery.identify(both, k=2)
    assert sorted(x.name for x in found) == ["Eileen Collins", "Grace Hopper"]
    for x in found:
        assert x.candidates[0].score > THRESHOLD >= x.candidates[1].score
        assert x.face is not None and x.to_dict()["box"]
    # a new photo of Hopper (not enrolled) is still her
    (x,) = gallery.identify(_variants(hopper)[4])
    assert x.name == "Grace Hopper"
    # after deleting her she is unknown, with Collins as the (rejected) best candidate
    gallery.delete("Grace Hopper")
    (x,) = gallery.identify(hopper)
    assert x.name == "unknown" and x.candidates[0].name == "Eileen Collins" and not x.candidates[0].same
    assert gallery.check()["ok"]


def test_quality_gate_rejects_with_reasons(gallery, hopper, both):
    blurred = cv2.GaussianBlur(hopper, (0, 0), 6)
    small = cv2.resize(hopper, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    blank = np.full((300, 300, 3), 127, np.uint8)
    r = gallery.enroll("Grace Hopper", [hopper, blurred, small, both, blank, b"not an image"], pick="single")
    assert len(r.face_ids) == 1
    codes = [x.code for x in r.rejected]
    assert codes == ["blurry", "too_small", "multiple_faces", "no_face", "invalid_image"]
    assert "blurry" in r.rejected[0].reason and r.rejected[0].metrics["sharpness"] < 15
    assert "eyes" in r.rejected[1].reason
    with pytest.raises(EnrolmentRejectedError) as exc:
        gallery.enroll("Nobody", [blurred, blank])
    assert [x.code for x in exc.value.rejected] == ["blurry", "no_face"]
    assert [p.name for p in gallery.people()] == ["Grace Hopper"]  # nothing of Nobody stored
    # --pick largest takes one face from a group photo
    r = gallery.enroll("Grace Hopper", [both], pick="largest")
    assert len(r.face_ids) == 1


class _RotatedEmbedder:
    """Another "model": dlib's embedding turned by a fixed orthogonal matrix. Cosines are
    preserved, so identification works, but the vectors are incompatible with dlib's."""

    model_id = "rotated-dlib-test"
    name = "rotated"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.template = inner.template
        q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((inner.dim, inner.dim)))
        self.q = q.astype(np.float32)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        return self.inner.embed(chips) @ self.q


def _rotated_pipeline(pipeline):
    from facegate.pipeline import Pipeline

    p = Pipeline(pipeline.config)
    p.__dict__["detector"] = pipeline.detector  # share the loaded models (cached_property slots)
    p.__dict__["embedder"] = _RotatedEmbedder(pipeline.embedder)
    return p


def test_model_mismatch_refused_until_reembed(tmp_path, pipeline, hopper, astronaut):
    cfg = pipeline.config.replace(gallery=tmp_path / "g.sqlite", threshold=THRESHOLD)
    g = Gallery(SqliteBackend(cfg.gallery_path), cfg, pipeline=pipeline)
    g.enroll("Grace Hopper", [hopper])
    g.enroll("Eileen Collins", [astronaut])
    before = g.identify(hopper)[0].candidates[0].score
    other = _rotated_pipeline(pipeline)
    assert model_id(other) == "rotated-dlib-test" != model_id(pipeline)
    h2 = Gallery(g.backend, cfg, pipeline=other)
    with pytest.raises(ModelMismatchError, match="reembed"):
        h2.identify(hopper)
    with pytest.raises(ModelMismatchError):
        h2.enroll("Someone", [hopper])

    out = h2.reembed(other, progress=False)
    assert (
        out["reembedded"] == 2 and out["model"] == "rotated-dlib-test" and out["previous_model"] == model_id(pipeline)
    )
    (x,) = h2.identify(hopper)
    assert x.name == "Grace Hopper"
    # re-aligned from the stored crop, the face embeds (almost) as it did from the photo
    assert x.candidates[0].score == pytest.approx(before, abs=0.01)
    with pytest.raises(ModelMismatchError):
        g.identify(hopper)  # the old model is now the one refused
    assert g.check()["ok"] and g.check()["store"]["models_in_use"] == 1
    g.close()


# -- command line --------------------------------------------------------------------------
def _cli(capsys, *argv: str) -> tuple[int, str]:
    from facegate.cli import main

    code = main(list(argv))
    out = capsys.readouterr().out
    return code, out


def test_cli_enroll_identify_people(tmp_path, capsys, home, hopper, astronaut, both):
    g = ["--home", str(home), "--gallery", str(tmp_path / "cli.sqlite")]
    hp = _save(hopper, tmp_path / "hopper.jpg")
    hp2 = _save(_variants(hopper)[2], tmp_path / "hopper_dark.jpg")
    ap = _save(astronaut, tmp_path / "collins.png")
    bp = _save(both, tmp_path / "both.jpg")
    blur = _save(cv2.GaussianBlur(hopper, (0, 0), 6), tmp_path / "blur.png")

    code, out = _cli(capsys, "enroll", *g, "--name", "Grace Hopper", str(hp), str(hp2), str(blur))
    assert code == 0 and "2 face(s) stored" in out and "blur.png" in out and "blurry" in out
    code, out = _cli(capsys, "enroll", *g, "--json", "--name", "Eileen Collins", str(ap))
    assert code == 0 and json.loads(out)["person"]["faces"] == 1
    code, out = _cli(capsys, "enroll", *g, "--json", "--name", "Nobody", str(bp), "--pick", "single")
    assert code == 5 and json.loads(out)["rejected"][0]["code"] == "multiple_faces"
    # the largest face of the group photo is Hopper's: already enrolled, so not a new person (exit 15)
    code, out = _cli(capsys, "enroll", *g, "--json", "--name", "Nobody", str(bp))
    res = json.loads(out)
    assert code == 15 and res["error"]["code"] == "enrolment_conflict", out
    assert res["rejected"][0]["code"] == "matches_other_person" and res["rejected"][0]["metrics"]["name"] == "Grace Hopper"

    code, out = _cli(capsys, "identify", *g, str(bp), "--threshold", str(THRESHOLD), "--json", "-k", "2")
    assert code == 0
    res = json.loads(out)
    assert sorted(f["identity"] for f in res["faces"]) == ["Eileen Collins", "Grace Hopper"]
    assert all(len(f["candidates"]) == 2 and f["threshold"] == THRESHOLD for f in res["faces"])
    code, out = _cli(capsys, "identify", *g, str(hp), "--threshold", str(THRESHOLD))
    assert code == 0 and "Grace Hopper (score" in out

    code, out = _cli(capsys, "people", "list", *g)
    assert code == 0 and "2 people, 3 faces" in out
    code, out = _cli(capsys, "people", "show", *g, "Grace Hopper", "--json")
    assert code == 0 and len(json.loads(out)["face_list"]) == 2
    code, out = _cli(capsys, "people", "rename", *g, "Grace Hopper", "Rear Admiral Hopper")
    assert code == 0
    code, out = _cli(capsys, "people", "rename", *g, "Rear Admiral Hopper", "Eileen Collins")
    assert code == 12
    code, out = _cli(capsys, "people", "delete", *g, "Rear Admiral Hopper")
    assert code == 0 and "2 face(s)" in out
    code, out = _cli(capsys, "people", "delete", *g, "Rear Admiral Hopper")
    assert code == 11
    code, out = _cli(capsys, "identify", *g, str(hp), "--threshold", str(THRESHOLD))
    assert code == 1 and "unknown" in out  # exit 1: nobody known in the photo
    code, out = _cli(capsys, "gallery", "check", *g, "--json")
    assert code == 0 and json.loads(out)["ok"]
    code, out = _cli(capsys, "identify", *g, str(tmp_path / "missing.jpg"), "--threshold", "0.9")
    assert code == 3


def test_cli_cluster_small_labelled_set(tmp_path, capsys, home, hopper, astronaut):
    root = tmp_path / "photos"
    for who, img in (("hopper", hopper), ("collins", astronaut)):
        for i, v in enumerate(_variants(img)):
            _save(v, root / who / f"{who}_{i}.jpg")
    out_dir = tmp_path / "by_person"
    code, out = _cli(
        capsys,
        "cluster",
        str(root),
        "--home",
        str(home),
        "--threshold",
        str(THRESHOLD),
        "--eval",
        "--out",
        str(out_dir),
        "--json",
    )
    assert code == 0, out
    res = json.loads(out)
    ev = res["evaluation"]
    assert ev["precision"] == 1.0 and ev["recall"] == 1.0 and ev["people"] == 2
    assert [c["size"] for c in res["clusters"]] == [5, 5] and res["unclustered"] == []
    folders = sorted(p.name for p in out_dir.iterdir())
    assert folders == ["person_001", "person_002"]
    links = sorted(out_dir.glob("person_*/*.jpg"))
    assert len(links) == 10 and all(p.is_symlink() for p in links)
    assert {p.resolve().parent.name for p in (out_dir / "person_001").iterdir()} in ({"hopper"}, {"collins"})


# -- shared datasets -------------------------------------------------------------------------
@pytest.mark.datasets
def test_people_small_enrol_and_identify(datasets, tmp_path, pipeline):
    """Enrol the five people of people_small/train, identify the faces of people_small/test."""
    cfg = pipeline.config.replace(gallery=tmp_path / "ps.sqlite", threshold=THRESHOLD)
    train = datasets / "people_small" / "train"
    with Gallery(SqliteBackend(cfg.gallery_path), cfg, pipeline=pipeline) as g:
        for person in sorted(p for p in train.iterdir() if p.is_dir()):
            photos = sorted(person.iterdir())
            try:
                g.enroll(person.name, photos, pick="largest")
            except EnrolmentRejectedError as exc:  # report, do not hide
                pytest.fail(f"{person.name}: {[r.reason for r in exc.rejected]}")
        assert len(g.people()) == 5
        expected = {
            "alex_lacamoire1.jpg": {"alex_lacamoire"},
            "johnsnow_test1.jpg": {"kit_harington"},
            "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
            "obama1.jpg": {"obama"},
            "obama_and_biden.jpg": {"obama", "biden"},
        }
        for photo, who in expected.items():
            found = {x.name for x in g.identify(datasets / "people_small" / "test" / photo)}
            assert found - {"unknown"} == who, photo
