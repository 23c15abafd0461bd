"""facegate driven by the real CompreFace Python SDK (``compreface-sdk`` from PyPI, not a mock) over
a real server (uvicorn in a thread, loopback port) with the real models.

Photos: the two people whose photos ship inside installed packages and pass facegate's enrolment
quality gate (matplotlib's Grace Hopper, scikit-image's astronaut Eileen Collins), enrolled from the
shipped file and recognised from an altered copy (darker, mirrored, cropped: a different image of the
same face). scikit-image's cameraman is offered too and refused, with the gate's reason, through the
SDK (eyes 16 px apart, head turned). Two people are few, so with ``../shared/datasets`` present a
second run enrols the five people of ``people_small`` from their training photos and recognises
them in the test photos (different photos of them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageEnhance

pytest.importorskip("compreface", reason="compreface-sdk is not installed (pip install compreface-sdk==0.6.0)")
pytest.importorskip("uvicorn")

from facegate.image import load_image
from facegate.service import ServiceSettings, create_app
from facegate.service.auth import create_key
from facegate.service.server import serve_in_thread


def _save(img: np.ndarray, path: Path) -> str:
    Image.fromarray(img).save(path, format="JPEG", quality=92)
    return str(path)


def _variant(img: np.ndarray) -> np.ndarray:
    """Another image of the same face: darker, mirrored, with a margin cropped off."""
    h, w = img.shape[:2]
    out = np.asarray(ImageEnhance.Brightness(Image.fromarray(img)).enhance(0.8))[:, ::-1]
    return np.ascontiguousarray(out[h // 20: h - h // 20, w // 20: w - w // 20])


class SDK:
    """The SDK's three services over one facegate server."""

    def __init__(self, url: str, key: str) -> None:
        from compreface import CompreFace

        host, port = url.rsplit(":", 1)
        self.cf = CompreFace(host, port)
        self.recognition = self.cf.init_face_recognition(key)
        self.faces = self.recognition.get_face_collection()
        self.subjects = self.recognition.get_subjects()
        self.detection = self.cf.init_face_detection(key)
        self.verification = self.cf.init_face_verification(key)


def _serve(tmp_path: Path, pipeline: Any) -> tuple[Any, str, str]:
    cfg = pipeline.config.replace(gallery=tmp_path / "g.sqlite")
    app = create_app(cfg, ServiceSettings(warmup=False), pipeline=pipeline)
    db = app.state.svc.db
    return app, create_key(db, "admin", "compreface sdk")["key"], create_key(db, "gate", "double take")["key"]


def _recognize_each(sdk: SDK, probes: dict[str, str]) -> None:
    for who, path in probes.items():
        out = sdk.recognition.recognize(path, {"prediction_count": 2, "det_prob_threshold": 0.5})
        assert "result" in out, (who, out)
        best = max(out["result"], key=lambda f: (f["box"]["x_max"] - f["box"]["x_min"]) * (f["box"]["y_max"] - f["box"]["y_min"]))
        assert best["subjects"][0]["subject"] == who, (who, best["subjects"])  # the right subject first
        assert best["decision"] == "allow" and best["identity"] == who
        assert 0 < best["subjects"][0]["similarity"] <= 1 and best["fpir"] is not None and best["far"] is not None
        assert best["subjects"][0]["similarity"] >= best["similarity_threshold"]
        if len(best["subjects"]) > 1:
            assert best["subjects"][1]["similarity"] < best["subjects"][0]["similarity"]


@pytest.mark.slow
def test_the_real_compreface_sdk_enrols_lists_recognises_and_deletes(tmp_path, pipeline, hopper, astronaut):
    import skimage

    camera = load_image(Path(skimage.__file__).parent / "data" / "camera.png")
    people = {"Grace Hopper": hopper, "Eileen Collins": astronaut, "Cameraman": camera}
    app, admin, gate = _serve(tmp_path, pipeline)
    with serve_in_thread(app) as url:
        sdk = SDK(url, admin)
        added: dict[str, dict[str, Any]] = {}
        for name, img in people.items():
            added[name] = sdk.faces.add(_save(img, tmp_path / f"{name}.jpg"), name)
        refused = added.pop("Cameraman")  # the quality gate refuses it, and says why, through the SDK
        assert refused["code"] == "rejected" and "face too small" in refused["message"], refused
        assert refused["details"]["rejected"][0]["code"] == "too_small"
        assert set(added) == {"Grace Hopper", "Eileen Collins"}
        assert all("image_id" in o and o["subject"] == n for n, o in added.items()), added

        # list them: subjects, and faces (examples) with their image ids
        assert sorted(sdk.subjects.list()["subjects"]) == sorted(added)
        listed = sdk.faces.list()
        assert listed["total_elements"] == len(added)
        assert {f["image_id"] for f in listed["faces"]} == {o["image_id"] for o in added.values()}

        # recognise another image of each, with a gate key (Double Take's recognise-only key)
        probes = {n: _save(_variant(people[n]), tmp_path / f"probe {n}.jpg") for n in added}
        _recognize_each(SDK(url, gate), probes)

        # plugins not offered are said, not silently dropped; status adds timings and versions
        out = sdk.recognition.recognize(probes["Grace Hopper"], {"face_plugins": "landmarks,age,gender",
                                                                  "status": True, "limit": 1})
        assert len(out["result"]) == 1 and len(out["result"][0]["landmarks"]) == 5
        assert {p["plugin"] for p in out["facegate"]["plugins_not_offered"]} == {"age", "gender"}
        assert out["plugins_versions"]["calculator"] and out["result"][0]["execution_time"]["total"] > 0
        assert out["facegate"]["similarity_scale"] == "log10_far"

        # verify against a stored face (1:1 at the configured FAR), detection, the verification service
        hop_id = added["Grace Hopper"]["image_id"]
        v = sdk.faces.verify(probes["Grace Hopper"], hop_id)
        assert v["result"][0]["same"] is True and v["result"][0]["far"] is not None
        v = sdk.faces.verify(probes["Eileen Collins"], hop_id)
        assert v["result"][0]["same"] is False and v["result"][0]["similarity"] < 0.3
        d = sdk.detection.detect(probes["Eileen Collins"])
        assert len(d["result"]) == 1 and d["result"][0]["box"]["probability"] > 0.5
        vv = sdk.verification.verify(probes["Grace Hopper"], _save(hopper, tmp_path / "again.jpg"))
        assert vv["result"][0]["face_matches"][0]["same"] is True

        # a gate key may not enrol; an image without a face is CompreFace's code 28
        assert SDK(url, gate).faces.add(probes["Grace Hopper"], "Nobody")["code"] == "forbidden"
        blank = _save(np.full((200, 200, 3), 128, np.uint8), tmp_path / "blank.jpg")
        assert sdk.recognition.recognize(blank) == {"code": 28, "message": "No face is found in the given image",
                                                   "details": {"facegate_code": "no_face"}}

        # delete a subject and see it gone: from the subjects, the faces, and recognition
        assert sdk.subjects.delete("Grace Hopper") == {"subject": "Grace Hopper"}
        assert "Grace Hopper" not in sdk.subjects.list()["subjects"]
        assert hop_id not in {f["image_id"] for f in sdk.faces.list()["faces"]}
        out = sdk.recognition.recognize(probes["Grace Hopper"])
        assert all(s["subject"] != "Grace Hopper" for f in out["result"] for s in f["subjects"])
        assert out["result"][0]["decision"] == "deny"
        # the same records as the native API: the audit trail says who did it
        events = app.state.svc.db.events(kind="audit")
        assert any(e["action"] == "delete_person" and e["name"] == "Grace Hopper" for e in events)


@pytest.mark.slow
@pytest.mark.datasets
def test_the_real_compreface_sdk_on_people_small(tmp_path, pipeline, datasets):
    root = datasets / "people_small"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    app, admin, gate = _serve(tmp_path, pipeline)
    names = {"alex_lacamoire": "Alex Lacamoire", "biden": "Joe Biden", "kit_harington": "Kit Harington",
             "obama": "Barack Obama", "rose_leslie": "Rose Leslie"}
    with serve_in_thread(app) as url:
        sdk = SDK(url, admin)
        for folder, name in names.items():
            for photo in sorted(p for p in (root / "train" / folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg")):
                out = sdk.faces.add(str(photo), name)
                assert "image_id" in out or out.get("code") == "rejected", out
        assert sorted(sdk.subjects.list()["subjects"]) == sorted(names.values())
        probes = {"Barack Obama": str(root / "test" / "obama1.jpg"),
                  "Alex Lacamoire": str(root / "test" / "alex_lacamoire1.jpg"),
                  "Kit Harington": str(root / "test" / "johnsnow_test1.jpg")}
        _recognize_each(SDK(url, gate), probes)
        both = sdk.recognition.recognize(str(root / "test" / "obama_and_biden.jpg"), {"prediction_count": 1})
        assert {f["subjects"][0]["subject"] for f in both["result"] if f["decision"] == "allow"} >= {"Barack Obama", "Joe Biden"}
        assert sdk.subjects.delete("Barack Obama") == {"subject": "Barack Obama"}
        assert "Barack Obama" not in sdk.subjects.list()["subjects"]
        out = sdk.recognition.recognize(probes["Barack Obama"])
        assert all(s["subject"] != "Barack Obama" for f in out["result"] for s in f["subjects"])
