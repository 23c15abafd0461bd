"""Render the "sites" that site calibration is measured on: LFW as other cameras would see it.

    .venv/bin/python benchmarks/make_sites.py OUT_DIR                 # every site
    .venv/bin/python benchmarks/make_sites.py OUT_DIR lfw_cctv lfw_grey

Each site is a labelled folder ``OUT_DIR/<site>/<person>/<photo>.jpg`` of the same 2,848 LFW
photos (500 people with three or more photos, at most four each, and 1,000 one-photo people,
drawn with seed 0), rendered grey, small, blurred, noisy, JPEG-compressed, dark, or as a small,
grey, soft, noisy, compressed "CCTV" camera. They are research-licensed derivatives: OUT_DIR
must be outside the repository. Then, per site (docs/results.md's site-calibration table)::

    facegate eval far OUT_DIR/lfw_cctv --pick center --enrol 1 --strangers 0.3 --splits 20 \\
        --site-gallery 50 --site-photos 1-3
    .venv/bin/python benchmarks/site_drift.py OUT_DIR      # the drift check on a camera change
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from facegate.config import datasets_dir

Render = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def lfw_subset(lfw: Path, seed: int = 0, multi: int = 500, cap: int = 4, single: int = 1000) -> list[tuple[str, Path]]:
    rng = np.random.default_rng(seed)
    photos = {p.name: sorted(p.glob("*.jpg")) for p in sorted(q for q in lfw.iterdir() if q.is_dir())}
    many = [n for n, f in photos.items() if len(f) >= 3]
    one = [n for n, f in photos.items() if len(f) == 1]
    pick_many = rng.choice(many, size=multi, replace=False)
    pick_one = rng.choice(one, size=single, replace=False)
    out = []
    for n in sorted(pick_many):
        fs = photos[n]
        out += [(n, fs[i]) for i in sorted(rng.choice(len(fs), size=min(cap, len(fs)), replace=False))]
    return out + [(n, photos[n][0]) for n in sorted(pick_one)]


def grey(im: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def scale(im: np.ndarray, f: float) -> np.ndarray:
    h, w = im.shape[:2]
    return cv2.resize(im, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)


def blur(im: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(im, (0, 0), sigma)


def noise(im: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(im.astype(np.float32) + rng.normal(0, sd, im.shape), 0, 255).astype(np.uint8)


def gamma(im: np.ndarray, g: float) -> np.ndarray:
    return (255 * (np.arange(256) / 255) ** g).clip(0, 255).astype(np.uint8)[im]


def contrast(im: np.ndarray, c: float, b: float = 0) -> np.ndarray:
    return np.clip((im.astype(np.float32) - 128) * c + 128 + b, 0, 255).astype(np.uint8)


def jpeg(im: np.ndarray, q: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(im, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


SITES: dict[str, Render] = {
    "lfw": lambda im, r: im,  # the control: re-encoded only
    "lfw_grey": lambda im, r: grey(im),
    "lfw_grey_small": lambda im, r: grey(scale(im, 0.36)),  # LFW faces ~110 px -> ~40 px
    "lfw_small": lambda im, r: scale(im, 0.36),
    "lfw_blur": lambda im, r: blur(im, 2.5),
    "lfw_noise": lambda im, r: noise(im, 20, r),
    "lfw_jpeg10": lambda im, r: jpeg(im, 10),
    "lfw_dark": lambda im, r: gamma(contrast(im, 0.5, -40), 1.6),
    "lfw_cctv": lambda im, r: jpeg(noise(blur(grey(scale(im, 0.5)), 1.0), 8, r), 30),
    "lfw_night": lambda im, r: jpeg(noise(grey(gamma(contrast(im, 0.6, -30), 1.5)), 10, r), 40),
    "lfw_grey_lowc": lambda im, r: contrast(grey(im), 0.45, 10),
    # stronger renderings of the tail rule's fitting families (grey-small, noise, JPEG, night): they
    # span the larger shifts of the body, so the rule is fitted over them and not on the sites it is tested on
    "lfw_noise40": lambda im, r: noise(im, 40, r),
    "lfw_jpeg5": lambda im, r: jpeg(im, 5),
    "lfw_grey_tiny": lambda im, r: grey(scale(im, 0.28)),
    "lfw_night_dark": lambda im, r: jpeg(noise(grey(gamma(contrast(im, 0.45, -40), 1.8)), 16, r), 30),
}


def build(site: str, out: Path, lfw: Path) -> int:
    render = SITES[site]
    rng = np.random.default_rng(zlib.crc32(site.encode()))
    n = 0
    for person, f in lfw_subset(lfw):
        dst = out / site / person / f"{f.stem}.jpg"
        if dst.exists():
            continue
        im = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), cv2.cvtColor(render(im, rng), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="where the sites go (outside the repository)")
    p.add_argument("sites", nargs="*", help=f"default: all of {', '.join(SITES)}")
    p.add_argument("--lfw", type=Path, default=None, help="LFW folder (default $FACEGATE_DATASETS/lfw)")
    args = p.parse_args(argv)
    lfw = args.lfw or datasets_dir() / "lfw"
    if not lfw.is_dir():
        print(f"LFW not found at {lfw}", file=sys.stderr)
        return 8
    repo = Path(__file__).resolve().parent.parent
    if args.out.resolve().is_relative_to(repo):
        print("the sites are LFW derivatives: put them outside the repository", file=sys.stderr)
        return 2
    for site in args.sites or list(SITES):
        if site not in SITES:
            print(f"unknown site {site!r}; choose from {', '.join(SITES)}", file=sys.stderr)
            return 2
        print(f"{site}: {build(site, args.out, lfw)} photos written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
