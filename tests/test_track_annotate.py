"""``watch --annotate`` writes a video browsers play (H.264) where it can, else says it did not; and ``watch``
ends with who was seen, when and for how long (issue 23)."""

from __future__ import annotations

import shutil
import stat

import cv2
import numpy as np
import pytest

from facegate.track import annotate
from facegate.track.annotate import H264, MPEG4, VideoWriter
from facegate.track.watch import Sighting, WatchResult


def _frames(n: int = 12, w: int = 161, h: int = 91):  # odd sides: H.264's 4:2:0 needs padding
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        cv2.rectangle(img, (5 + 5 * i, 10), (40 + 5 * i, 60), (0, 200, 0), -1)
        yield img


def _read_back(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_annotated_video_is_h264_when_an_encoder_is_there(tmp_path):
    out = tmp_path / "a.mp4"
    w = VideoWriter(out, 25)
    for f in _frames():
        w.write(f)
    w.close()
    assert _read_back(out) == 12
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    if annotate.ffmpeg_with_h264() is not None:  # Debian's ffmpeg, as `make system-deps` installs
        assert w.codec == H264 and w.browser_playable and w.note is None
    else:
        assert w.codec in (H264, MPEG4)
        assert (w.note is None) == (w.codec == H264)


def test_without_an_h264_encoder_the_fallback_is_announced(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(annotate, "OPENCV_H264", ())
    monkeypatch.setattr(annotate, "ffmpeg_with_h264", lambda: None)
    out = tmp_path / "b.mp4"
    w = VideoWriter(out, 25)
    with caplog.at_level("WARNING"):
        for f in _frames():
            w.write(f)
    w.close()
    assert w.codec == MPEG4 and not w.browser_playable
    assert "browsers do not play" in (w.note or "") and "ffmpeg" in w.note
    assert any("browsers do not play" in r.getMessage() for r in caplog.records)
    assert _read_back(out) == 12


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program (apt-get install ffmpeg)")
def test_h264_through_ffmpeg_is_what_a_browser_gets(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setattr(annotate, "OPENCV_H264", ())
    out = tmp_path / "c.mp4"
    w = VideoWriter(out, 30)
    for f in _frames(20):
        w.write(f)
    w.close()
    codec = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,pix_fmt", "-of", "csv=p=0", str(out)], capture_output=True, text=True)
    assert w.codec == H264 and codec.stdout.strip() == "h264,yuv420p"


def test_the_summary_says_who_was_seen_when_and_how_long():
    res = WatchResult(source="clip.mp4")
    ada = res.seen.setdefault(7, Sighting(7, "Ada"))
    ada.add(1.0, 3.5, 100.0, 102.5)
    ada.add(10.0, 11.0, 109.0, 110.0)
    res.seen.setdefault(None, Sighting(None, None)).add(0.5, 0.9, 99.5, 99.9)
    res.seen.setdefault(9, Sighting(9, "Bob")).add(0.2, 0.4, 99.2, 99.4)
    seen = res.to_dict()["seen"]
    assert [s["name"] for s in seen] == ["Bob", "Ada", None]  # by first appearance, unknown last
    assert seen[1] == {**seen[1], "tracks": 2, "first_t": 1.0, "last_t": 11.0, "seconds": 3.5}
    assert seen[1]["first_seen"].endswith(("+00:00", "Z")) or seen[1]["first_seen"][-6] in "+-"  # ISO with offset

    from facegate.cli.video import seen_lines

    lines = seen_lines(res.sightings(), live=False)
    assert lines[0] == "seen:" and "Ada" in lines[2] and "0:01.0 - 0:11.0" in lines[2] and "2 track(s)" in lines[2]
    assert "unknown" in lines[3]
    assert "nobody" in seen_lines([], live=True)[0]
