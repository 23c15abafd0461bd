"""RTSP on loopback: ``watch`` reads a stream, survives a drop, and ends clearly when it is gone.

The server is made here: ffmpeg encodes a generated clip (a photo shipped with matplotlib,
moving across the frame) to H.264 RTP packets on a local UDP port, in real time and looped,
and a small RTSP server in this file answers OPTIONS/DESCRIBE/SETUP/PLAY and relays those
packets to each client over the RTSP connection (RTP/AVP/TCP interleaved, as cameras do).
``drop()`` closes the connections and stops listening (a camera reboot); ``listen()`` brings
it back on the same port. Skipped without the ffmpeg program (CI: ``apt-get install ffmpeg``).
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.track.events import END, IDENTIFIED, SOURCE, START, check_order, read_events
from facegate.track.sources import LiveSource, SourceError, open_source

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program (apt-get install ffmpeg)"),
]


class RtspRelay:
    """A minimal RTSP server for one H.264 RTP stream (see the module docstring)."""

    def __init__(self, sdp: str, udp: socket.socket) -> None:
        self.sdp = sdp
        self.udp = udp
        self.port = 0
        self.clients: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.listener: socket.socket | None = None
        self.sessions = 0
        self.listen()
        threading.Thread(target=self._pump, daemon=True).start()

    def listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(4)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def drop(self) -> None:
        """Close every connection and stop listening."""
        lst, self.listener = self.listener, None
        if lst is not None:
            try:
                lst.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lst.close()
        with self.lock:
            for c in self.clients:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.clients.clear()

    def close(self) -> None:
        self.drop()
        self.stopped.set()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = c.recv(4096)
            except OSError:
                return
            if not data:
                with self.lock:
                    if c in self.clients:
                        self.clients.remove(c)
                return
            buf += data
            while buf:
                if buf[:1] == b"$":  # interleaved RTCP from the client: skip
                    if len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[2:4], "big"):
                        break
                    buf = buf[4 + int.from_bytes(buf[2:4], "big"):]
                    continue
                if b"\r\n\r\n" not in buf:
                    break
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode(errors="replace").split("\r\n")
                method, url = lines[0].split(" ")[:2]
                hdr = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                buf = buf[int(hdr.get("content-length", 0)):]
                status, extra, body = "200 OK", "", b""
                if method == "OPTIONS":
                    extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
                elif method == "DESCRIBE":
                    body = self.sdp.encode()
                    extra = f"Content-Type: application/sdp\r\nContent-Base: {url}/\r\n"
                elif method == "SETUP":
                    if "TCP" not in hdr.get("transport", ""):
                        status = "461 Unsupported Transport"
                    else:
                        extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4242\r\n"
                elif method in ("PLAY", "TEARDOWN", "GET_PARAMETER"):
                    extra = "Session: 4242\r\n"
                msg = f"RTSP/1.0 {status}\r\nCSeq: {hdr.get('cseq', '0')}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
                with self.lock:
                    try:
                        c.sendall(msg.encode() + body)
                    except OSError:
                        return
                    if method == "PLAY" and c not in self.clients:
                        self.clients.append(c)
                        self.sessions += 1
                if method == "TEARDOWN":
                    c.close()
                    return

    def _pump(self) -> None:
        while not self.stopped.is_set():
            try:
                ready, _, _ = select.select([self.udp], [], [], 0.2)
                if not ready:
                    continue
                pkt = self.udp.recv(65536)
            except (OSError, ValueError):  # the socket was closed: the test is over
                return
            frame = b"$\x00" + len(pkt).to_bytes(2, "big") + pkt
            with self.lock:
                for c in list(self.clients):
                    try:
                        c.sendall(frame)
                    except OSError:
                        self.clients.remove(c)


def make_clip(path: Path, photo: np.ndarray, n: int = 75, fps: int = 25) -> None:
    """A person's photo sliding across a 480x270 frame: something for the detector to find."""
    face = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), (140, 164), interpolation=cv2.INTER_AREA)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (480, 270))
    for i in range(n):
        img = np.full((270, 480, 3), 60, np.uint8)
        x = 40 + int(200 * i / n)
        img[50:214, x:x + 140] = face
        vw.write(img)
    vw.release()


@pytest.fixture()
def rtsp(tmp_path, hopper):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, hopper)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    sdp = tmp_path / "stream.sdp"
    proc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", str(clip),
         "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10",
         "-flags", "+global_header", "-bsf:v", "dump_extra", "-f", "rtp", "-sdp_file", str(sdp),
         f"rtp://127.0.0.1:{udp.getsockname()[1]}"],
    )
    deadline = time.monotonic() + 20
    while not (sdp.exists() and "m=video" in sdp.read_text()) and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip("ffmpeg could not stream (no libx264?)")
        time.sleep(0.05)
    relay = RtspRelay(sdp.read_text(), udp)
    try:
        yield relay
    finally:
        relay.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        udp.close()


def test_stream_reconnects_after_a_drop_and_gives_up_when_gone(rtsp):
    src = open_source(rtsp.url, reconnect_timeout=3.0, read_timeout=2.0, open_timeout=5.0)
    assert isinstance(src, LiveSource) and src.live and src.size == (480, 270)
    seen_after = []
    statuses = []
    t_dropped = None
    with pytest.raises(SourceError) as exc:
        for fr in src.frames():
            statuses += src.status()
            assert fr.image.shape == (270, 480, 3)
            if fr.index == 15 and t_dropped is None:
                rtsp.drop()  # the camera goes away...
                t_dropped = time.monotonic()
                threading.Timer(1.0, rtsp.listen).start()  # ...and is back a second later
            if any(s["status"] == "reconnected" for s in statuses):
                seen_after.append(fr.index)
                if len(seen_after) == 20:
                    rtsp.drop()  # now for good
    statuses += src.status()
    src.close()
    kinds = [s["status"] for s in statuses]
    assert kinds[:2] == ["lost", "reconnected"] and kinds[-2:] == ["lost", "gave_up"], kinds
    assert src.reconnects == 1 and rtsp.sessions == 2 and len(seen_after) >= 20
    msg = str(exc.value)
    assert "stream lost" in msg and "giving up" in msg and "reconnect attempts" in msg


def test_cli_watch_reads_rtsp(rtsp, tmp_path, capsys):
    from facegate.cli import main

    events = tmp_path / "events.jsonl"
    result: dict = {}

    def drop_later():  # let watch follow and name the face (a dozen frames or more), then end the stream
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if events.exists() and '"event":"identified"' in events.read_text():
                rtsp.drop()
                return
            time.sleep(0.1)
        rtsp.drop()

    threading.Thread(target=drop_later, daemon=True).start()
    result["rc"] = main(["watch", rtsp.url, "--events", str(events), "--threshold", "0.93", "--home", str(tmp_path),
                         "--reconnect-timeout", "1", "--annotate", str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert result["rc"] == 14 and "giving up" in err and "Traceback" not in err
    evs = read_events(events)
    assert check_order(evs) == []
    kinds = [e["event"] for e in evs]
    assert START in kinds and IDENTIFIED in kinds and kinds[-1] == END
    assert [e["status"] for e in evs if e["event"] == SOURCE][-2:] == ["lost", "gave_up"]
    assert evs[-1]["frames"] > 10 and json.dumps(evs)
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 10
    cap.release()
