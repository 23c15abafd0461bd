"""First call versus second call of each command, in fresh processes with a fresh FACEGATE_HOME.

    .venv/bin/python benchmarks/bench_first_call.py                       # every stack and command, 3 rounds
    .venv/bin/python benchmarks/bench_first_call.py --stacks default --commands verify --rounds 1

What a user meets on the first run after set-up: anything facegate converts at first use (an ONNX
export of a PyTorch network, a weight-file translation) is paid by that first call and cached in
``<FACEGATE_HOME>/cache``; `facegate models install` does those conversions at set-up instead, so
the first call should cost what the second does (ratio about 1.0), apart from reading the files.

Each round, for each stack and command, makes a new home, runs the command once (first call),
lists what the run left in ``<home>/cache``, and runs it again in the same home (second call).
`identify` needs a gallery: the photo is enrolled first, then ``<home>/cache`` is emptied, so
identify's first call starts from the state a fresh home would have. Every call is a new
process (``python -m facegate``, the interpreter running this script), timed by wall clock
from start to exit, so interpreter start-up and imports count in both. The medians over the
rounds are printed with their ratio; the shared machine's load makes single figures rough.

The facegate run is whichever ``python -m facegate`` imports (PYTHONPATH decides), with the
model store it finds (``$FACEGATE_MODELS`` or beside the venv); the script prints both.
Photos: Grace Hopper (matplotlib) and scikit-image's astronaut, as the demo uses.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STACKS = {
    "default": [],
    "permissive": ["--licence-policy", "permissive"],
    "mtcnn": ["--detector", "mtcnn"],
}
COMMANDS = ("verify", "detect", "identify", "embed")
# The MTCNN stack has no shipped calibration (a decision there needs an explicit threshold): the
# value only lets verify/identify run, it is not a recommendation.
_MTCNN_THRESHOLD = ["--threshold", "0.5"]


def _photos(folder: Path) -> tuple[Path, Path]:
    import matplotlib.cbook
    import skimage
    from PIL import Image

    hopper = folder / "hopper.jpg"
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), hopper)
    astronaut = folder / "astronaut.jpg"
    Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB").save(astronaut, quality=95)
    return hopper, astronaut


def _argv(command: str, stack: str, a: Path, b: Path, home: Path, call: int) -> list[str]:
    extra = list(STACKS[stack])
    decide = _MTCNN_THRESHOLD if stack == "mtcnn" else []
    if command == "verify":
        args = ["verify", str(a), str(b), *decide]
    elif command == "detect":
        args = ["detect", str(a)]
    elif command == "identify":
        args = ["identify", str(a), *decide]
    elif command == "embed":  # a new output file each call: embed skips photos its output already holds
        args = ["embed", str(a), "--out", str(home / f"out{call}.jsonl"), "--workers", "0"]
    else:
        raise ValueError(command)
    return [sys.executable, "-m", "facegate", *args, *extra, "--json"]


def _run(argv: list[str], home: Path) -> float:
    env = {**os.environ, "FACEGATE_HOME": str(home)}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # verify/identify exit 1 for "different" / "unknown"
        raise SystemExit(f"{' '.join(argv[2:])} exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return took


def _enrol(stack: str, photo: Path, home: Path) -> None:
    argv = [sys.executable, "-m", "facegate", "enroll", "--name", "Grace Hopper", str(photo),
            *STACKS[stack], "--json"]
    _run(argv, home)
    shutil.rmtree(home / "cache", ignore_errors=True)  # identify's first call starts from a fresh cache


def _cache_listing(home: Path) -> list[str]:
    cache = home / "cache"
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".json")) if cache.exists() else []


def _describe() -> dict[str, object]:
    probe = ("import facegate, json; from facegate.config import model_store_dirs; "
             "print(json.dumps({'facegate': facegate.__file__, 'stores': [str(p) for p in model_store_dirs()]}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    manifests = [Path(s) / "manifest.json" for s in info["stores"]]
    info["manifest"] = next((str(m) for m in manifests if m.exists()), None)
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stacks", default=",".join(STACKS), help=f"comma-separated, of {', '.join(STACKS)}")
    ap.add_argument("--commands", default=",".join(COMMANDS), help=f"comma-separated, of {', '.join(COMMANDS)}")
    ap.add_argument("--rounds", type=int, default=3, help="fresh homes per stack and command (medians are shown)")
    ap.add_argument("--json", type=Path, default=None, help="also write every timing to this file")
    args = ap.parse_args()
    stacks = [s for s in args.stacks.split(",") if s]
    commands = [c for c in args.commands.split(",") if c]
    if bad := [s for s in stacks if s not in STACKS] + [c for c in commands if c not in COMMANDS]:
        ap.error(f"unknown: {', '.join(bad)}")

    info = _describe()
    print(f"facegate  {info['facegate']}\nstores    {', '.join(info['stores'])}\n"  # type: ignore[arg-type]
          f"manifest  {info['manifest'] or 'none (no converted models installed)'}\n"
          f"python    {sys.executable}; {args.rounds} round(s), medians of wall-clock seconds per process\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="facegate-first-call-") as tmp:
        a, b = _photos(Path(tmp))
        for stack in stacks:
            for command in commands:
                firsts, seconds, made = [], [], set()
                for k in range(args.rounds):
                    home = Path(tmp) / f"home-{stack}-{command}-{k}"
                    home.mkdir()
                    if command == "identify":
                        _enrol(stack, a, home)
                    firsts.append(_run(_argv(command, stack, a, b, home, 1), home))
                    made.update(_cache_listing(home))
                    seconds.append(_run(_argv(command, stack, a, b, home, 2), home))
                    shutil.rmtree(home, ignore_errors=True)
                first, second = statistics.median(firsts), statistics.median(seconds)
                rows.append({"stack": stack, "command": command, "first_s": first, "second_s": second,
                             "ratio": first / second, "firsts": firsts, "seconds": seconds,
                             "converted_at_first_call": sorted(made)})
                print(f"{stack:<11} {command:<9} first {first:6.2f} s  second {second:6.2f} s  "
                      f"ratio {first / second:4.2f}  first call wrote to cache: {', '.join(sorted(made)) or 'nothing'}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps({"setup": info, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
