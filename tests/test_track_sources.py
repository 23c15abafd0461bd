"""Video sources without a network server: files, names, and sources that cannot be opened."""

from __future__ import annotations

import socket
import time

import cv2
import numpy as np
import pytest

from facegate.track.sources import FileSource, LiveSource, SourceError, mask_url, open_source, parse_source


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_clip(path, n=30, fps=15.0, size=(160, 120)) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert vw.isOpened()
    for i in range(n):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.rectangle(img, (5 + 3 * i, 40), (35 + 3 * i, 70), (0, 0, 255), -1)  # red in BGR
        vw.write(img)
    vw.release()


def test_parse_and_mask():
    assert parse_source("0") == ("camera", 0)
    assert parse_source(2) == ("camera", 2)
    assert parse_source("rtsp://cam/x") == ("stream", "rtsp://cam/x")
    assert parse_source("HTTP://h/x.mjpg")[0] == "stream"
    assert parse_source("clip.mp4") == ("file", "clip.mp4")
    assert parse_source("C:/videos/a.mp4")[0] == "file"
    assert mask_url("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert mask_url("rtsp://cam/live") == "rtsp://cam/live"


def test_file_source_reads_every_frame_in_order_as_rgb(tmp_path):
    clip = tmp_path / "c.mp4"
    write_clip(clip)
    with open_source(clip) as src:
        assert isinstance(src, FileSource) and not src.live
        assert src.fps == pytest.approx(15.0) and src.frame_count == 30 and src.size == (160, 120)
        frames = list(src.frames())
    assert [f.index for f in frames] == list(range(30))
    assert frames[3].t == pytest.approx(3 / 15.0)
    r, g, b = frames[0].image[55, 20]
    assert r > 150 and b < 80  # RGB order: the red square is red


def test_file_source_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="cannot open as a video"):
        open_source(bad)
    with pytest.raises(SourceError, match="directory"):
        open_source(tmp_path)
    assert SourceError("x").exit_code == 14


def test_stream_that_cannot_be_opened_fails_fast_with_a_clear_message():
    url = f"rtsp://user:pw@127.0.0.1:{closed_port()}/live"
    t0 = time.monotonic()
    with pytest.raises(SourceError) as exc:
        LiveSource(url, "stream", connect_attempts=2, open_timeout=2)
    msg = str(exc.value)
    assert "cannot open" in msg and "server is running" in msg and "pw" not in msg
    assert time.monotonic() - t0 < 10


def test_cli_watch_dead_source_exit_code(tmp_path, capsys):
    from facegate.cli import main

    rc = main(["watch", f"rtsp://127.0.0.1:{closed_port()}/live", "--threshold", "0.9", "--home", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 14 and "cannot open rtsp://127.0.0.1" in err and "Traceback" not in err


def test_cli_watch_usage_errors(tmp_path, capsys):
    from facegate.cli import main

    rc = main(["watch", "x.mp4", "--gate", "door", "--threshold", "0.9", "--home", str(tmp_path)])
    assert rc == 2 and "--server" in capsys.readouterr().err
    rc = main(["watch", str(tmp_path / "none.mp4"), "--threshold", "0.9", "--home", str(tmp_path)])
    assert rc == 14 and "no such file" in capsys.readouterr().err
