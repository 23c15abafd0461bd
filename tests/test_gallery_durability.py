"""Nothing acknowledged is lost: kill -9 of a writer at any moment, and several writer processes.

The writer is this file run as a script (see ``__main__`` below): it enrols synthetic
people and prints ``ACK <name> <face ids>`` only after the enrolment call returned,
i.e. after COMMIT. The test kills it with SIGKILL while it is mid-way through its work,
restarts writers on the same gallery, and finally checks that every acknowledged face
is in SQLite and in the index, that nobody is half-written, and that the index equals
the store.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DIM = 32
MODEL = "synthetic-32"
HERE = Path(__file__).resolve()


def n_faces(i: int) -> int:
    return 1 + i % 4


def centre(i: int) -> np.ndarray:
    v = np.random.default_rng(i).standard_normal(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def shots(i: int) -> np.ndarray:
    rng = np.random.default_rng(10_000_000 + i)
    x = centre(i)[None, :] + 0.3 * rng.standard_normal((n_faces(i), DIM)) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def deletes_previous(i: int) -> bool:
    """The writer deletes person i-1 right after enrolling person i now and then (never across
    the start of a writer's range; ranges start at multiples of 1000)."""
    return i % 7 == 6 and i % 1000 != 0


def name(i: int) -> str:
    return f"p{i:06d}"


def _open(path: str):
    from facegate.config import Config
    from facegate.gallery import open_gallery

    return open_gallery(Config(gallery=Path(path), threshold=0.7), snapshot_min=0)


def writer(path: str, start: int, count: int, mode: str) -> None:
    """Enrol people start..start+count-1, acknowledging each commit on stdout."""
    g = _open(path)
    out = sys.stdout
    if mode == "bulk":  # big transactions: a kill almost surely lands inside one
        batch = 200
        for s in range(start, start + count, batch):
            ids = range(s, min(s + batch, start + count))
            out.write(f"START {s} {len(ids)}\n")  # a transaction of len(ids) people begins
            out.flush()
            g.import_embeddings(((name(i), shots(i)) for i in ids), model=MODEL, batch=batch)
            out.write("".join(f"ACK {name(i)} -\n" for i in ids))
            out.flush()
        return
    for i in range(start, start + count):
        r = g.enroll_embeddings(name(i), shots(i), model=MODEL)
        out.write(f"ACK {name(i)} {','.join(map(str, r.face_ids))}\n")
        out.flush()
        if deletes_previous(i):
            g.delete(name(i - 1))
            out.write(f"DEL {name(i - 1)}\n")
            out.flush()
        if i % 3 == 0:  # write index snapshots often, so kills land in those too
            g.save_index(force=True)
        if i % 5 == 0:
            g.search(shots(i)[:1], k=1)
    g.close()


def _spawn(path: Path, start: int, count: int, mode: str = "single") -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(HERE), str(path), str(start), str(count), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _read_until(
    proc: subprocess.Popen, acks: int, acked: dict, deleted: set, until_start: bool = False
) -> tuple | None:
    """Read the writer's acknowledgements until ``acks`` have come (or it exits); with
    ``until_start``, go on to the next START line and return (first id, size) of that batch."""
    got = 0
    assert proc.stdout is not None
    while True:
        if got >= acks and not until_start:
            return None
        line = proc.stdout.readline()
        if not line:
            return None
        kind, who, *rest = line.split()
        if kind == "START":
            if got >= acks and until_start:
                return int(who), int(rest[0])
        elif kind == "ACK":
            acked[who] = None if rest[0] == "-" else [int(x) for x in rest[0].split(",")]
            got += 1
            i = int(who[1:])
            if rest[0] != "-" and deletes_previous(i):  # the writer deletes the previous person next:
                deleted.add(f"?{name(i - 1)}")  # until its DEL arrives, that person may or may not exist
        elif kind == "DEL":
            deleted.discard(f"?{who}")
            deleted.add(who)


def _verify(path: Path, acked: dict, deleted: set) -> None:
    import sqlite3

    from facegate.gallery.types import FaceRecord  # noqa: F401 - import check of the package

    g = _open(str(path))
    try:
        report = g.check()
        assert report["ok"], report
        conn = sqlite3.connect(path)
        faces = {}
        for pname, fid in conn.execute("SELECT p.name, f.id FROM people p JOIN faces f ON f.person_id = p.id"):
            faces.setdefault(pname, []).append(fid)
        conn.close()
        # every person present is complete (no half-written enrolment survived)
        for pname, fids in faces.items():
            assert len(fids) == n_faces(int(pname[1:])), f"{pname} is half-written: {len(fids)} faces"
        # every acknowledged enrolment is there, with exactly the acknowledged faces, and findable
        live = [w for w in acked if w not in deleted and f"?{w}" not in deleted]
        for w in live:
            assert w in faces, f"acknowledged {w} was lost"
            if acked[w] is not None:
                assert sorted(faces[w]) == sorted(acked[w])
        for w in (d for d in deleted if not d.startswith("?")):
            assert w not in faces, f"acknowledged delete of {w} was lost"
        if live:
            idx = [int(w[1:]) for w in live]
            hits = g.search(np.stack([centre(i) for i in idx]), k=1)
            assert [h[0][1] for h in hits] == live
    finally:
        g.close()


def test_kill_9_writer_mid_batch_loses_nothing(tmp_path):
    path = tmp_path / "g.sqlite"
    acked: dict = {}
    deleted: set = set()
    rnd = random.Random(1234)
    killed_mid_batch = 0
    rounds = [("single", 0), ("single", 10_000), ("bulk", 20_000), ("single", 30_000), ("bulk", 40_000)]
    for mode, start in rounds:
        proc = _spawn(path, start, 5_000 if mode == "bulk" else 400, mode)
        if mode == "single":
            _read_until(proc, rnd.randint(5, 40), acked, deleted)
            in_flight = None
        else:  # kill inside a 200-person transaction, a few ms after it began
            import time

            in_flight = _read_until(proc, rnd.choice([200, 400]), acked, deleted, until_start=True)
            assert in_flight is not None
            time.sleep(rnd.uniform(0.002, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        _read_until(proc, 10**9, acked, deleted)  # acks already in the pipe count too
        _verify(path, acked, deleted)  # restart: every acknowledged face is there, in SQLite and index
        if in_flight is not None:  # the batch being written when killed is all there or not at all
            import sqlite3

            first, size = in_flight
            conn = sqlite3.connect(path)
            present = conn.execute(
                "SELECT COUNT(*) FROM people WHERE name BETWEEN ? AND ?", (name(first), name(first + size - 1))
            ).fetchone()[0]
            conn.close()
            assert present in (0, size), f"batch {first}: {present} of {size} people survived"
            killed_mid_batch += present == 0
    assert len(acked) >= 5 * 5
    assert killed_mid_batch >= 1  # at least one kill really landed inside an uncommitted transaction
    # the persisted index snapshot (possibly written by a killed process) is usable or ignored, never wrong
    from facegate.gallery.backend import SqliteBackend

    b = SqliteBackend(path, snapshot_min=0)
    assert b.check()["ok"]
    b.close()


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "g.sqlite"
    procs = [_spawn(path, 1000 * k, 25) for k in range(4)]
    acked: dict = {}
    deleted: set = set()
    for p in procs:
        _read_until(p, 10**9, acked, deleted)
        p.wait(timeout=120)
        assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    assert len(acked) == 100
    _verify(path, acked, deleted)
    import sqlite3

    conn = sqlite3.connect(path)
    n_people = conn.execute("SELECT COUNT(*) FROM people").fetchone()[0]
    seqs = [r[0] for r in conn.execute("SELECT seq FROM changes ORDER BY seq")]
    conn.close()
    assert not any(d.startswith("?") for d in deleted)
    assert n_people == 100 - len(deleted)
    assert seqs == sorted(set(seqs))  # one strictly increasing change log across all writers


if __name__ == "__main__":  # the writer subprocess
    sys.path.insert(0, str(HERE.parent.parent))
    writer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
elif os.name != "posix":  # pragma: no cover
    pytest.skip("kill -9 tests need POSIX signals", allow_module_level=True)
