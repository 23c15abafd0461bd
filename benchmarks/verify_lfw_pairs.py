"""`facegate verify` on every LFW View 2 pair, through the CLI's own function, with its defaults.

Not an accuracy protocol (``facegate eval lfw`` is: its thresholds are chosen per fold, faces centred on the
labelled person); this asks what a user asks: does ``facegate verify A B`` give a verdict for every pair of
photos where a face is found, or does it exit for something else (issue 23: 1 of the first 12 same-person pairs
exited 5, "2 faces found", because of a face in the background)? It runs ``facegate.cli.core.cmd_verify`` on
arguments parsed by the CLI's own parser (one pipeline shared by all calls instead of one per process, so
6,000 pairs take minutes, not hours), and counts the outcomes by exit code, and the photos with several faces
(the answer says how many were found and which was used).

    python benchmarks/verify_lfw_pairs.py --root ../shared/datasets/lfw [--limit 600] [--out result.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path
from unittest import mock

from tqdm import tqdm


def read_pairs(path: Path, root: Path) -> list[tuple[Path, Path, bool]]:
    """(photo A, photo B, same person) for every pair of LFW's pairs.txt."""
    out = []
    lines = path.read_text().splitlines()[1:]
    for line in lines:
        f = line.split("\t")
        if len(f) == 3:
            a, b, same = (root / f[0] / f"{f[0]}_{int(f[1]):04d}.jpg", root / f[0] / f"{f[0]}_{int(f[2]):04d}.jpg", True)
        elif len(f) == 4:
            a, b, same = (root / f[0] / f"{f[0]}_{int(f[1]):04d}.jpg", root / f[2] / f"{f[2]}_{int(f[3]):04d}.jpg", False)
        else:
            continue
        out.append((a, b, same))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets/lfw"))
    ap.add_argument("--pairs", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    ap.add_argument("--out", type=Path, default=None, help="write the counts and the odd pairs as JSON here")
    args = ap.parse_args()

    from facegate.cli import core
    from facegate.cli.main import build_parser
    from facegate.pipeline import Pipeline

    pairs = read_pairs(args.pairs or args.root / "pairs.txt", args.root)[: args.limit]
    parser = build_parser()
    shared: dict[str, Pipeline] = {}

    def one_pipeline(ns: argparse.Namespace, **overrides: object) -> Pipeline:
        if "p" not in shared:
            shared["p"] = Pipeline(core.config_from_args(ns, **overrides))
        return shared["p"]

    exits: Counter[int] = Counter()
    multi_photos: dict[str, int] = {}
    wrong = Counter()
    odd: list[dict[str, object]] = []
    t0 = time.perf_counter()
    with mock.patch.object(core, "_pipeline", one_pipeline):
        for a, b, same in tqdm(pairs, unit="pair", dynamic_ncols=True):
            ns = parser.parse_args(["verify", str(a), str(b), "--json"])
            buf = io.StringIO()
            try:
                with contextlib.redirect_stdout(buf):
                    code = int(ns.func(ns))
            except Exception as exc:  # noqa: BLE001 - counted by its exit code, as main() would
                code = int(getattr(exc, "exit_code", 9))
                odd.append({"a": str(a), "b": str(b), "exit": code, "error": str(exc)})
                exits[code] += 1
                continue
            exits[code] += 1
            out = json.loads(buf.getvalue())
            for path, choice in zip((a, b), out.get("faces", [])):
                if choice["faces_found"] > 1:
                    multi_photos[str(path)] = choice["faces_found"]
            wrong[("same" if same else "different", out["same"] == same)] += 1
    secs = time.perf_counter() - t0
    verdicts = exits[0] + exits[1]
    report = {
        "pairs": len(pairs), "verdicts": verdicts, "exit_codes": {str(k): v for k, v in sorted(exits.items())},
        "no_face_pairs": exits[4], "several_faces_exits": exits[5],
        "photos_with_several_faces_used_largest": len(multi_photos),
        "correct_at_far_1e-3": {f"{k[0]} pairs, {'right' if k[1] else 'wrong'}": v for k, v in sorted(wrong.items())},
        "seconds": round(secs, 1), "odd": odd,
    }
    print(f"{len(pairs)} LFW pairs through 'facegate verify' (defaults: --pick largest, FAR 1e-3) in {secs:.0f} s:")
    print(f"  verdicts {verdicts} (exit 0: {exits[0]}, exit 1: {exits[1]}); no face found (exit 4): {exits[4]}; "
          f"several faces (exit 5): {exits[5]}; other exits: "
          f"{ {k: v for k, v in exits.items() if k not in (0, 1, 4, 5)} }")
    print(f"  {len(multi_photos)} photos held several faces; the largest was used and the answer said so")
    print(f"  decisions at FAR 1e-3: {report['correct_at_far_1e-3']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0 if exits[5] == 0 and verdicts + exits[4] == len(pairs) else 1


if __name__ == "__main__":
    sys.exit(main())
