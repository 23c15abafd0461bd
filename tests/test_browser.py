"""The operator web page end to end in headless Chromium (Playwright driving the system Chromium),
against a real server on loopback with the real models.

Chromium's fake camera plays a Y4M video this test makes from matplotlib's Grace Hopper
photo, so "webcam" enrolment and the live page see a real face. Flows: sign in (a wrong
key is refused), enrol from uploaded photos (a photo without a face is rejected with its
reason), enrol from a webcam capture, browse people and their face thumbnails, delete a
person, the live page's overlay (box, name, score, allow), the event log, and a viewer's
restricted page. A screenshot of each page goes to $FACEGATE_SCREENSHOTS (default
out/screenshots/ in the checkout, which git ignores).

Skipped unless Playwright's Python package and a Chromium binary are present: Chromium is
found as $FACEGATE_CHROMIUM, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on
PATH (Debian: ``apt-get install -y chromium``). No browser download is needed.
"""

from __future__ import annotations

import io
import os
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from facegate.service import ServiceSettings, create_app  # noqa: E402
from facegate.service.auth import create_key  # noqa: E402
from facegate.service.server import serve_in_thread  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WAIT_MS = 90_000  # model calls on a busy 2-core machine can take seconds each


def chromium_path() -> str | None:
    env = os.environ.get("FACEGATE_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = chromium_path()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium, or set FACEGATE_CHROMIUM)"),
]


def write_y4m(path: Path, frame_rgb: np.ndarray, frames: int = 10, fps: int = 10) -> Path:
    """A Y4M (4:2:0) video of one still frame, the format Chromium's fake camera reads."""
    h, w = frame_rgb.shape[:2]
    yuv = cv2.cvtColor(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            fh.write(b"FRAME\n")
            fh.write(yuv)
    return path


def camera_frame(face: np.ndarray, w: int = 640, h: int = 480) -> np.ndarray:
    scale = h / face.shape[0]
    fw = int(face.shape[1] * scale)
    resized = cv2.resize(face, (fw, h), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 90, np.uint8)
    x = (w - fw) // 2
    frame[:, x : x + fw] = resized[:, : min(fw, w)]
    return frame


def _jpeg(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def shots_dir() -> Path:
    d = Path(os.environ.get("FACEGATE_SCREENSHOTS") or REPO / "out" / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_web_page_end_to_end(tmp_path, pipeline, hopper, astronaut, shots_dir):
    expect = sync_api.expect
    cfg = pipeline.config.replace(gallery=tmp_path / "g.sqlite", threshold=0.95)
    app = create_app(cfg, ServiceSettings(warmup=False), pipeline=pipeline)
    db = app.state.svc.db
    admin = create_key(db, "admin", "operator")["key"]
    viewer = create_key(db, "viewer", "auditor")["key"]
    gate = create_key(db, "gate", "door camera")["key"]
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "collins.jpg").write_bytes(_jpeg(astronaut))
    (photos / "wall.jpg").write_bytes(_jpeg(np.full((300, 300, 3), 200, np.uint8)))
    video = write_y4m(tmp_path / "camera.y4m", camera_frame(hopper))

    with serve_in_thread(app) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={video}",
            ],
        )
        try:
            ctx = browser.new_context(viewport={"width": 1200, "height": 900}, base_url=url)
            ctx.grant_permissions(["camera"], origin=url)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # sign in: a wrong key is refused, the admin key lands on the people page
            page.goto("/ui/")
            expect(page.locator("#page-signin")).to_be_visible()
            page.fill("#signin-key", "fg_0000000000_" + "x" * 43)
            page.click("#signin-form button[type=submit]")
            expect(page.locator("#signin-error")).to_contain_text("not valid")
            page.screenshot(path=str(shots_dir / "01-signin.png"))
            page.fill("#signin-key", admin)
            page.click("#signin-form button[type=submit]")
            expect(page.locator("#page-people")).to_be_visible()
            expect(page.locator("#who")).to_contain_text("admin")

            # enrol from uploaded photos: the wall photo is rejected with its reason
            page.click("nav a[href='#/enrol']")
            page.fill("#enrol-name", "Eileen Collins")
            page.set_input_files("#enrol-files", [str(photos / "collins.jpg"), str(photos / "wall.jpg")])
            page.click("#enrol-submit")
            expect(page.locator("#enrol-ok")).to_contain_text("Eileen Collins", timeout=WAIT_MS)
            rejected = page.locator(".rejections li.rejected")
            expect(rejected).to_have_count(1)
            expect(rejected).to_contain_text("wall.jpg")
            expect(rejected).to_contain_text("no face")
            page.screenshot(path=str(shots_dir / "02-enrol-upload.png"), full_page=True)

            # enrol from a webcam capture (the fake camera shows Grace Hopper)
            page.fill("#enrol-name", "Grace Hopper")
            page.click("#enrol-cam-start")
            expect(page.locator("#enrol-cam-capture")).to_be_enabled(timeout=20_000)  # enabled once the video has a size
            page.click("#enrol-cam-capture")
            expect(page.locator("#enrol-shots figure")).to_have_count(1)
            page.screenshot(path=str(shots_dir / "03-enrol-webcam.png"), full_page=True)
            page.click("#enrol-submit")
            expect(page.locator("#enrol-ok")).to_contain_text("Grace Hopper", timeout=WAIT_MS)
            page.click("#enrol-cam-stop")

            # browse people, see thumbnails, delete one
            page.click("nav a[href='#/people']")
            rows = page.locator("#people-table tbody tr")
            expect(rows).to_have_count(2)
            page.click("#people-table a.person-link:has-text('Grace Hopper')")
            expect(page.locator("#person-detail img.thumb[src^='blob:']")).to_have_count(1)  # fetched with the key
            page.wait_for_timeout(300)  # let the thumbnail paint
            page.screenshot(path=str(shots_dir / "04-people.png"), full_page=True)
            collins_row = page.locator("#people-table tbody tr", has_text="Eileen Collins")
            collins_row.locator("button.danger").click()
            collins_row.locator("button.danger").click()  # second click confirms
            expect(rows).to_have_count(1)
            expect(page.locator("#flash")).to_contain_text("Deleted Eileen Collins")

            # the live page identifies the camera's face and overlays the decision
            page.click("nav a[href='#/live']")
            page.click("#live-start")
            allow = page.locator("#live-results li.allow")
            expect(allow.first).to_contain_text("Grace Hopper", timeout=WAIT_MS)
            expect(allow.first).to_contain_text("NAMED")  # an identification, not an access decision
            expect(page.locator("#live-preview-note")).to_contain_text("Preview only")
            expect(page.locator("#live-decision")).to_contain_text("FPIR")
            expect(page.locator("#live-decision")).to_contain_text("Table: shipped table")  # which table decides
            drawn = page.evaluate(
                "(() => { const c = document.querySelector('#live-overlay');"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()"
            )
            assert drawn > 500  # the box and label are painted over the video
            page.screenshot(path=str(shots_dir / "05-live.png"))
            page.click("#live-stop")

            # a gate (e.g. the video gate mode) checks someone; the event log shows it
            with httpx.Client(base_url=url, timeout=120) as c:
                frame = _jpeg(camera_frame(hopper))
                r = c.post("/api/v1/gates/front-door/check", headers={"X-API-Key": gate},
                           files={"image": ("f.jpg", frame, "image/jpeg")})
                assert r.json()["decision"] == "allow"
            page.click("nav a[href='#/events']")
            access = page.locator("#events-table tbody tr[data-kind=access]")
            expect(access).to_have_count(1)
            expect(access.first).to_contain_text("front-door")
            expect(access.first).to_contain_text("Grace Hopper")
            expect(page.locator("#events-table tbody tr[data-kind=audit]").first).to_be_visible()
            page.select_option("#ev-kind", "audit")
            page.click("#events-filter button[type=submit]")
            expect(page.locator("#events-table tbody tr[data-kind=access]")).to_have_count(0)
            expect(page.locator("#events-table tbody")).to_contain_text("delete_person")
            page.select_option("#ev-kind", "")
            page.click("#events-filter button[type=submit]")
            page.screenshot(path=str(shots_dir / "06-events.png"), full_page=True)

            # signing out leaves nothing of the last user's session on screen: open a person's
            # panel (thumbnails, delete buttons), then sign out; the next user sees none of it
            page.click("nav a[href='#/people']")
            page.locator("#people-table a.person-link").first.click()
            expect(page.locator("#person-detail h2")).to_be_visible()
            page.click("#signout")
            expect(page.locator("#page-signin")).to_be_visible()
            expect(page.locator("#person-detail *")).to_have_count(0)
            expect(page.locator("#people-table tbody tr")).to_have_count(0)
            expect(page.locator("#events-table tbody tr")).to_have_count(0)

            # a viewer sees people and events, and nothing that changes or identifies
            page.fill("#signin-key", viewer)
            page.click("#signin-form button[type=submit]")
            expect(page.locator("#page-people")).to_be_visible()
            expect(page.locator("nav a[href='#/enrol']")).to_be_hidden()
            expect(page.locator("nav a[href='#/live']")).to_be_hidden()
            expect(page.locator("nav a[href='#/events']")).to_be_visible()
            expect(page.locator("#people-table tbody tr")).to_have_count(1)
            expect(page.locator("#people-table button.danger")).to_have_count(0)
            page.goto("/ui/#/enrol")
            expect(page.locator("#flash")).to_contain_text("cannot open")
            page.screenshot(path=str(shots_dir / "07-viewer.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sorted(p.name for p in shots_dir.glob("0*.png")) >= [
            "01-signin.png", "02-enrol-upload.png", "03-enrol-webcam.png", "04-people.png",
            "05-live.png", "06-events.png", "07-viewer.png"]
