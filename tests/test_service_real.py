"""The service with the real models on real photos (matplotlib's Grace Hopper, scikit-image's
astronaut Eileen Collins): enrol, gate decisions, identification of two faces in one image.

An explicit threshold of 0.95 is used, as in test_gallery_photos.py (genuine variants of
these photos score >= 0.99, Hopper vs Collins about 0.89), so the test does not depend on
the calibrated operating-point table; the reported FAR is then null.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from facegate.service import ServiceSettings, create_app
from facegate.service.auth import create_key

API = "/api/v1"


def _jpeg(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.mark.slow
def test_real_models_enrol_and_decide(tmp_path, pipeline, hopper, astronaut):
    cfg = pipeline.config.replace(gallery=tmp_path / "g.sqlite", threshold=0.95)
    app = create_app(cfg, ServiceSettings(warmup=False), pipeline=pipeline)
    with TestClient(app) as c:
        db = app.state.svc.db
        admin = {"X-API-Key": create_key(db, "admin")["key"]}
        gate = {"X-API-Key": create_key(db, "gate")["key"]}
        r = c.post(f"{API}/people", headers=admin, data={"name": "Grace Hopper"},
                   files=[("images", ("hopper.jpg", _jpeg(hopper), "image/jpeg"))])
        assert r.status_code == 201, r.text
        hopper_id = r.json()["person"]["id"]
        r = c.post(f"{API}/people", headers=admin, data={"name": "Eileen Collins"},
                   files=[("images", ("collins.png", _jpeg(astronaut), "image/jpeg"))])
        assert r.status_code == 201, r.text

        darker = np.asarray(ImageEnhance.Brightness(Image.fromarray(hopper)).enhance(0.75))
        out = c.post(f"{API}/gates/main/check", headers=gate, files={"image": ("cam.jpg", _jpeg(darker), "image/jpeg")}).json()
        assert out["decision"] == "allow" and out["person_id"] == hopper_id and out["name"] == "Grace Hopper"
        assert out["score"] > 0.95 and out["threshold"] == 0.95 and out["faces"] == 1
        assert out["far"] is not None and out["far"] <= 1e-6 * (1 + 1e-9)  # the table's bound, not a guess

        hh = cv2.resize(hopper, (int(hopper.shape[1] * 512 / hopper.shape[0]), 512))
        both = np.ascontiguousarray(np.concatenate([hh, astronaut], axis=1))
        faces = c.post(f"{API}/identify", headers=gate, files={"image": ("both.jpg", _jpeg(both), "image/jpeg")}).json()["faces"]
        assert sorted(f["identity"] for f in faces) == ["Eileen Collins", "Grace Hopper"]
        assert all(f["decision"] == "allow" for f in faces)

        c.delete(f"{API}/people/{hopper_id}", headers=admin)
        out = c.post(f"{API}/gates/main/check", headers=gate, files={"image": ("cam.jpg", _jpeg(darker), "image/jpeg")}).json()
        assert out["decision"] == "deny" and out["person_id"] is None and out["score"] < 0.95
