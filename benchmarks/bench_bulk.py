"""Bulk embedding photos/s: ``facegate embed DIR --out FILE`` with in-process decoding vs
decode worker processes (and optionally over a local Ray instance).

The folder is 1,000 LFW photos (250x250 JPEG, one face each) from ../shared/datasets/lfw
when present, linked (not copied) into a temporary folder; otherwise, or with
``--source generated``, photos made on the fly from the pictures matplotlib and
scikit-image ship (``--size`` sets their size: large photos are where decoding costs).

    python benchmarks/bench_bulk.py                         # 1000 LFW photos, workers 0 vs 2
    python benchmarks/bench_bulk.py --photos 200 --workers 0 1 2
    python benchmarks/bench_bulk.py --source generated --size 3000x2000 --photos 100
    python benchmarks/bench_bulk.py --ray                   # also --ray local

Each configuration runs the real command in its own process, so the times include start-up
(imports, model load, starting decode workers or Ray). A run on 8 photos gives that fixed
cost, and "steady photos/s" is photos / (wall - start-up). Also checks that every run wrote
the same records. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def lfw_folder(lfw: Path, n: int, dest: Path) -> Path:
    """Symlinks to the first ``n`` photos of a folder (sorted), keeping their sub-folder names."""
    from facegate.bulk import iter_image_files

    for i, src in enumerate(iter_image_files([lfw])):
        if i >= n:
            break
        link = dest / src.parent.name / src.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(src.resolve())
    return dest


def generated_folder(n: int, size: tuple[int, int], dest: Path) -> Path:
    """``n`` JPEG photos of ``size``: one or two faces pasted at random places and scales."""
    import matplotlib.cbook
    import numpy as np
    import skimage
    from PIL import Image

    faces = [Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"),
             Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB")]
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        im = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(30, 220, 3)))
        for k in range(1 + i % 2):
            face = faces[(i + k) % 2]
            side = int(min(w, h) * rng.uniform(0.25, 0.45))
            f = face.resize((side, int(side * face.height / face.width)))
            x = int(rng.integers(0, max(1, w // 2 - side))) + k * w // 2
            y = int(rng.integers(0, max(1, h - f.height)))
            im.paste(f, (x, y))
        sub = dest / f"{i // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        im.save(sub / f"photo_{i:05d}.jpg", quality=90)
    return dest


def run_embed(folder: Path, out: Path, extra: list[str], env: dict) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "facegate", "embed", str(folder), "--out", str(out), "--json", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def records(path: Path) -> list[tuple]:
    import numpy as np

    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        emb = np.asarray(r.pop("embedding", []), dtype=np.float32)
        out.append((r, emb))
    return out


def same_records(a: Path, b: Path) -> bool:
    import numpy as np

    ra, rb = records(a), records(b)
    if len(ra) != len(rb):
        return False
    for (da, ea), (db, eb) in zip(ra, rb):
        if da["file"] != db["file"] or set(da) != set(db) or not np.allclose(ea, eb, atol=1e-4):
            return False
        if "box" in da and not np.allclose(da["box"], db["box"], atol=0.05):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--source", choices=["auto", "lfw", "generated"], default="auto")
    ap.add_argument("--size", default="1600x1200", help="generated photo size WxH (default 1600x1200)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="decode worker counts to compare")
    ap.add_argument("--ray", action="store_true", help="also run with --ray local (needs facegate[scale])")
    ap.add_argument("--threads", type=int, default=0, help="--threads for the command (default: library default)")
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("FACEGATE_DATASETS", REPO.parent / "shared" / "datasets")))
    args = ap.parse_args()

    env = dict(os.environ)
    env.setdefault("FACEGATE_HOME", str(Path(tempfile.gettempdir()) / "facegate-bench-home"))
    extra_common = ["--threads", str(args.threads)] if args.threads else []
    lfw = args.datasets / "lfw"
    with tempfile.TemporaryDirectory(prefix="bench_bulk_") as tmp:
        tmp_path = Path(tmp)
        use_lfw = args.source == "lfw" or (args.source == "auto" and lfw.is_dir())
        if use_lfw:
            folder = lfw_folder(lfw, args.photos, tmp_path / "photos")
            source = f"LFW ({lfw}), 250x250 JPEG"
        else:
            size = tuple(int(v) for v in args.size.lower().split("x"))
            folder = generated_folder(args.photos, size, tmp_path / "photos")  # type: ignore[arg-type]
            source = f"generated {size[0]}x{size[1]} JPEG, 1-2 faces"
        n = sum(1 for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        print(f"{n} photos: {source}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")

        small = lfw_folder(folder, 8, tmp_path / "small")  # the first 8 photos, for the start-up cost

        configs = [(f"workers={w}", ["--workers", str(w)]) for w in args.workers]
        if args.ray:
            configs.append(("ray local (2 CPUs)", ["--ray", "local", "--workers", str(os.cpu_count() or 2)]))
        run_embed(small, tmp_path / "warm.jsonl", extra_common, env)  # weights converted/cached once
        rows = []
        first_out = None
        for name, extra in configs:
            start_up, _ = run_embed(small, tmp_path / f"small_{len(rows)}.jsonl", extra_common + extra, env)
            out = tmp_path / f"out_{len(rows)}.jsonl"
            wall, counts = run_embed(folder, out, extra_common + extra, env)
            same = True if first_out is None else same_records(first_out, out)
            first_out = first_out or out
            steady = n / max(wall - start_up, 1e-9)
            rows.append((name, wall, n / wall, start_up, steady, counts, same))
            print(f"{name:<20} wall {wall:7.1f}s  {n / wall:6.2f} photos/s  (start-up on 8 photos {start_up:4.1f}s, "
                  f"steady {steady:6.2f} photos/s)  faces {counts['faces']} no-face {counts['no_face']} "
                  f"errors {counts['errors']}  same records as first: {same}", flush=True)
        base = rows[0]
        for r in rows[1:]:
            print(f"{r[0]} vs {base[0]}: {r[2] / base[2]:.2f}x wall photos/s, {r[4] / base[4]:.2f}x steady")


if __name__ == "__main__":
    main()
