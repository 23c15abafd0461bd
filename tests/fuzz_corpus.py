"""A deterministic corpus of malformed and unusual image inputs, and a runner for it.

``corpus()`` returns the same 1,000 (name, bytes) inputs on every machine (fixed seed, images made
here, nothing read from disk): truncated and byte-corrupted JPEG/PNG/GIF/TIFF/WebP/BMP/PPM files,
zero-byte and text files, other formats (PDF, ZIP, PostScript, PSD, ICO, SVG), headers that claim
huge dimensions, odd shapes (1x1, thin strips), grey, 16-bit, CMYK, palette and alpha images.

Run it all (``python tests/fuzz_corpus.py --all``) to push every input through
``facegate.image.load_image`` and through the CLI's ``detect --json`` (in-process, models loaded
once, plus a real ``python -m facegate`` process for every 25th input), and print counts of
tracebacks, exit 9 (internal error), non-JSON output, noise on standard error and hangs.
``tests/test_fuzz.py`` runs a bounded sample of it on every test run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 20240514
SIZE = 1000
HANG_S = 20.0  # one input taking longer than this counts as a hang


# -- building blocks ---------------------------------------------------------------------------
def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _huge_headers(rng: random.Random) -> list[tuple[str, bytes]]:
    """Small files whose headers claim an enormous (or zero) image."""
    w, h = rng.choice([(100_000, 100_000), (65_535, 65_535), (1, 2**31 - 1), (0, 10), (40_000, 3_000)])
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")
    gw, gh = min(w, 65535), min(h, 65535)
    gif = (b"GIF89a" + struct.pack("<HH", gw, gh) + b"\x00\x00\x00" + b"," + struct.pack("<HHHH", 0, 0, gw, gh)
           + b"\x00\x02\x02\x44\x01\x00;")
    bmp_w, bmp_h = min(w, 2**31 - 1), min(h, 2**31 - 1)
    bmp = (b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54)
           + struct.pack("<IiiHHIIiiII", 40, bmp_w, bmp_h, 1, 24, 0, 16, 0, 0, 0, 0) + b"\0" * 16)
    jpeg = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", gh, gw) + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
            b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00" + bytes(rng.randrange(256) for _ in range(64)) + b"\xff\xd9")
    ppm = f"P6\n{w} {h}\n255\n".encode() + b"\0" * 30
    tiff = _tiff_header(w, h)
    webp = _webp_vp8x(min(max(w, 1), 2**24), min(max(h, 1), 2**24))
    return [("huge.png", png), ("huge.gif", gif), ("huge.bmp", bmp), ("huge.jpg", jpeg), ("huge.ppm", ppm),
            ("huge.tif", tiff), ("huge.webp", webp)]


def _tiff_header(w: int, h: int) -> bytes:
    """A little-endian TIFF whose one IFD claims w x h RGB pixels and points at a few bytes."""
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 200), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    body = b"II*\x00" + struct.pack("<I", 8) + ifd
    return body + b"\0" * (216 - len(body))


def _webp_vp8x(w: int, h: int) -> bytes:
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _picture(rng: random.Random, w: int, h: int) -> np.ndarray:
    """A smooth, blobby RGB picture (compresses like a photo, not like noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.2), rng.uniform(0.01, 0.2), rng.uniform(0, 6.3)
        img[..., c] = 127 + 100 * np.sin(x * fx + ph) * np.cos(y * fy)
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(rng: random.Random, fmt: str, mode: str, w: int, h: int) -> bytes:
    im = Image.fromarray(_picture(rng, w, h))
    if mode == "I;16":
        im = Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257)
    elif mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    kwargs: dict = {}
    if fmt == "TIFF":
        kwargs["compression"] = rng.choice(["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"])
    if fmt == "JPEG":
        kwargs["quality"] = rng.randrange(30, 95)
        kwargs["progressive"] = rng.random() < 0.3
    if fmt == "GIF" and rng.random() < 0.3:
        frames = [im.convert("P")] + [Image.fromarray(_picture(rng, w, h)).convert("P") for _ in range(2)]
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
        return buf.getvalue()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


# Which modes each format can write.
MODES = {
    "JPEG": ["RGB", "L", "CMYK"],
    "PNG": ["RGB", "L", "LA", "RGBA", "P", "I;16", "1"],
    "GIF": ["P", "L", "RGB"],
    "TIFF": ["RGB", "L", "CMYK", "RGBA", "I;16", "1"],
    "WEBP": ["RGB", "RGBA"],
    "BMP": ["RGB", "L", "P", "1"],
    "PPM": ["RGB", "L"],
}
SHAPES = [(1, 1), (2, 3), (1, 300), (300, 1), (7, 400), (64, 64), (160, 120), (333, 217), (480, 640)]

OTHER = [
    ("empty.jpg", b""),
    ("text.jpg", b"this is not an image, it is a text file\n" * 3),
    ("json.png", b'{"image": "nope"}'),
    ("html.gif", b"<!doctype html><html><body>hello</body></html>"),
    ("pdf.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
    ("zip.png", b"PK\x03\x04" + b"\0" * 26 + b"x.txt" + b"hello"),
    ("eps.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"),
    ("psd.png", b"8BPS\x00\x01" + b"\0" * 6 + b"\x00\x03" + struct.pack(">II", 10, 10) + b"\x00\x08\x00\x03" + b"\0" * 40),
    ("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'),
    ("nul.jpg", b"\0" * 4096),
    ("ff.jpg", b"\xff" * 4096),
    ("soi-only.jpg", b"\xff\xd8"),
    ("png-sig-only.png", b"\x89PNG\r\n\x1a\n"),
    ("gif-sig-only.gif", b"GIF89a"),
    ("riff-only.webp", b"RIFF\x00\x00\x00\x00WEBP"),
    ("tiff-sig-only.tif", b"II*\x00"),
    ("bom.txt", "\ufeffnot an image".encode()),
]


def _ico(rng: random.Random) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_picture(rng, 16, 16)).save(buf, "ICO")
    return buf.getvalue()


def _mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "truncate", "flip", "flip", "splice", "zero-run", "header-only"])
    if kind == "truncate":
        return kind, data[: rng.randrange(1, max(2, len(data)))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randrange(1, 12)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "splice":
        i = rng.randrange(len(data))
        return kind, data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + data[i:]
    if kind == "zero-run":
        i = rng.randrange(len(data))
        n = rng.randrange(1, 400)
        return kind, data[:i] + b"\0" * n + data[i + n :]
    return kind, data[: min(len(data), rng.randrange(8, 64))]


def corpus(size: int = SIZE, seed: int = SEED) -> list[tuple[str, bytes]]:
    """``size`` (name, bytes) inputs, the same for the same seed."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = list(OTHER) + [("icon.ico", _ico(rng))]
    out += [(f"{i:02d}-{n}", d) for i, (n, d) in enumerate(_huge_headers(random.Random(seed + 1)))]
    n = 0
    while len(out) < size:
        fmt = rng.choice(list(MODES))
        mode = rng.choice(MODES[fmt])
        w, h = rng.choice(SHAPES)
        try:
            data = _encode(rng, fmt, mode, w, h)
        except (OSError, ValueError, KeyError):  # a combination this Pillow cannot write: draw again
            continue
        ext = {"JPEG": "jpg", "TIFF": "tif"}.get(fmt, fmt.lower())
        label = f"{len(out):04d}-{fmt.lower()}-{mode.replace(';', '')}-{w}x{h}"
        r = rng.random()
        if r < 0.2:  # a valid image, sometimes under a misleading name
            wrong = rng.random() < 0.2
            out.append((f"{label}.{'png' if wrong and ext != 'png' else ext}", data))
        elif r < 0.3:  # one huge-header file, varied
            name, d = rng.choice(_huge_headers(random.Random(seed + 7 + n)))
            out.append((f"{len(out):04d}-{name}", d))
        else:
            kind, d = _mutate(rng, data)
            out.append((f"{label}-{kind}.{ext}", d))
        n += 1
    return out[:size]


# -- running it ----------------------------------------------------------------------------------
def run_api(items: list[tuple[str, bytes]]) -> Counter:
    """Every input through load_image, from bytes and from a file: counts of outcomes."""
    from facegate.errors import InvalidImageError
    from facegate.image import load_image

    counts: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in items:
            path = Path(tmp) / name
            path.write_bytes(data)
            for src in (data, path):
                t0 = time.perf_counter()
                try:
                    load_image(src)
                    counts["decoded"] += 1
                except InvalidImageError:
                    counts["refused"] += 1
                except BaseException as exc:  # noqa: BLE001 - what the fuzz counts
                    counts["traceback"] += 1
                    print(f"API traceback on {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                if time.perf_counter() - t0 > HANG_S:
                    counts["hang"] += 1
                    print(f"API hang on {name}", file=sys.stderr)
    return counts


def check_cli_output(code: int, out: str, err: str) -> list[str]:
    """What is wrong with one ``detect --json`` answer (empty: nothing)."""
    problems = []
    if code == 9:
        problems.append("internal error (exit 9)")
    if "Traceback" in err or "Traceback" in out:
        problems.append("traceback")
    try:
        payload = json.loads(out)
    except ValueError:
        return problems + ["stdout is not one JSON object"]
    if code == 0:
        if "faces" not in payload:
            problems.append("exit 0 without faces")
    elif set(payload.get("error", {})) != {"code", "exit", "message"} or payload["error"]["exit"] != code:
        problems.append("error is not {error: {code, exit, message}} with the exit code")
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 0 and (len(lines) != 1 or not lines[0].startswith("facegate: error: ")):
        problems.append(f"stderr is not one error line: {err!r}")
    if code == 0 and lines:
        problems.append(f"noise on stderr: {err!r}")
    return problems


def run_cli(items: list[tuple[str, bytes]], home: Path, every_process: int = 25) -> Counter:
    """Every input through ``facegate detect --json`` in-process (file descriptors captured), and
    every ``every_process``-th through a real process."""
    from facegate.cli import main

    counts: Counter = Counter()
    env = {**os.environ, "FACEGATE_HOME": str(home)}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, data) in enumerate(items):
            path = Path(tmp) / name
            path.write_bytes(data)
            t0 = time.perf_counter()
            code, out, err = _in_process(main, ["--home", str(home), "detect", str(path), "--json"])
            took = time.perf_counter() - t0
            counts[f"exit {code}"] += 1
            if took > HANG_S:
                counts["hang"] += 1
            for p in check_cli_output(code, out, err):
                counts[p.split(":")[0]] += 1
                print(f"CLI {name}: {p}", file=sys.stderr)
            if every_process and i % every_process == 0:
                try:
                    r = subprocess.run([sys.executable, "-m", "facegate", "detect", str(path), "--json"],
                                       capture_output=True, text=True, env=env, timeout=HANG_S * 3)
                    for p in check_cli_output(r.returncode, r.stdout, r.stderr):
                        counts["process: " + p.split(":")[0]] += 1
                        print(f"CLI process {name}: {p}", file=sys.stderr)
                    counts["processes"] += 1
                except subprocess.TimeoutExpired:
                    counts["hang"] += 1
    return counts


def _in_process(main, argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI with file descriptors 1 and 2 captured (a C library writes there directly)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        py_out, py_err = sys.stdout, sys.stderr
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), write_through=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)
        try:
            try:
                code = main(argv)
            except BaseException as exc:  # noqa: BLE001 - a traceback is what the fuzz looks for
                import traceback

                traceback.print_exc()
                code = -1 if not isinstance(exc, SystemExit) else int(exc.code or 0)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout.close()
            sys.stderr.close()
            sys.stdout, sys.stderr = py_out, py_err
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        fo.seek(0)
        fe.seek(0)
        return code, fo.read().decode("utf-8", "replace"), fe.read().decode("utf-8", "replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="run all inputs through the API and the CLI and print counts")
    ap.add_argument("--write", type=Path, metavar="DIR", help="write the corpus as files into DIR")
    ap.add_argument("--home", type=Path, default=None, help="facegate home for the CLI runs")
    args = ap.parse_args()
    items = corpus()
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for name, data in items:
            (args.write / name).write_bytes(data)
        print(f"wrote {len(items)} files to {args.write}")
    if args.all:
        home = args.home or Path(os.environ.get("FACEGATE_HOME") or tempfile.mkdtemp(prefix="facegate-fuzz-"))
        t0 = time.perf_counter()
        api = run_api(items)
        cli = run_cli(items, home)
        print(f"{len(items)} inputs in {time.perf_counter() - t0:.0f} s")
        print("API (bytes and file):", dict(sorted(api.items())))
        print("CLI detect --json:", dict(sorted(cli.items())))
        bad = api["traceback"] + api["hang"] + sum(v for k, v in cli.items() if k not in ("processes",) and not k.startswith("exit "))
        bad += cli["exit 9"] + cli["exit -1"]
        print(f"tracebacks {api['traceback'] + cli['traceback'] + cli['process: traceback']}, "
              f"exit 9 {cli['exit 9'] + cli['process: internal error (exit 9)']}, hangs {api['hang'] + cli['hang']}")
        return 1 if bad else 0
    if not args.write:
        print(f"{len(items)} inputs (seed {SEED}); --all runs them, --write DIR writes them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
