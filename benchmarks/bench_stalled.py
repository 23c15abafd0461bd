"""Does the service still answer while 1,000 clients stall? (issue 14: slow clients)

    .venv/bin/python benchmarks/bench_stalled.py                 # 1,000 stalled connections
    .venv/bin/python benchmarks/bench_stalled.py --stalled 2000 --addresses 40

Starts ``facegate serve`` on loopback in a scratch home, opens ``--stalled`` connections that send half a
request header and then nothing (spread over ``--addresses`` loopback addresses, 127.0.0.2 upwards, as a
crowd of slow clients would come from many hosts), then times ``--probes`` ordinary ``GET /healthz``
requests from 127.0.0.1 while they hang, and finally counts how many stalled connections the server has
closed once its header deadline has passed. Every socket and the server are closed at the end; all
traffic stays on this machine's loopback addresses, and every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, timeout: float = 5.0) -> tuple[int, float]:
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stalled", type=int, default=1000)
    ap.add_argument("--addresses", type=int, default=20, help="loopback addresses the stalled clients come from")
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the header deadline (default 15)")
    args = ap.parse_args(argv)
    exe = Path(sys.executable).with_name("facegate")
    home = tempfile.mkdtemp(prefix="facegate-stalled-")
    port = _free_port()
    env = {**os.environ, "FACEGATE_HOME": home}
    server = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-warmup"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socks: list[socket.socket] = []
    try:
        for _ in range(120):
            try:
                if _get(port, 1.0)[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            print("the server did not start")
            return 1
        t0 = time.perf_counter()
        refused = 0
        for i in range(args.stalled):
            s = socket.socket()
            s.settimeout(2.0)
            try:
                s.bind((f"127.0.0.{2 + i % args.addresses}", 0))
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
                socks.append(s)
            except OSError:
                refused += 1
                s.close()
        opened = time.perf_counter() - t0
        results = [_get(port) for _ in range(args.probes)]
        ok = sum(st == 200 for st, _ in results)
        worst = max(dt for _, dt in results)
        print(f"{len(socks)} stalled connections open ({refused} refused at connect) in {opened:.1f} s from "
              f"{args.addresses} loopback addresses")
        print(f"probes while they stall: {ok}/{args.probes} answered 200, slowest {1000 * worst:.0f} ms, "
              f"median {1000 * sorted(dt for _, dt in results)[len(results) // 2]:.0f} ms")
        time.sleep(args.wait)
        closed = 0
        for s in socks:
            s.settimeout(0.05)
            try:
                closed += s.recv(1) == b""
            except (TimeoutError, BlockingIOError):
                pass
            except OSError:
                closed += 1
        print(f"after {args.wait:.0f} s: {closed}/{len(socks)} stalled connections closed by the server")
        alive = server.poll() is None and _get(port)[0] == 200
        print(f"server alive and answering: {alive}")
        return 0 if alive and ok == args.probes and worst < 1.0 else 1
    finally:
        for s in socks:
            s.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    raise SystemExit(main())
