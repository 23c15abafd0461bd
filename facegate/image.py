"""Image decoding: bytes, paths, PIL images or arrays in; one HxWx3 uint8 RGB array out.

Decoding goes by content, not by file name (a WebP named .jpg decodes as WebP).
EXIF orientation is applied, grey/alpha/palette/CMYK/16-bit images become 8-bit
RGB, and the pixel count is checked *before* decoding, so a decompression bomb is
refused without allocating it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegate.config import Config
from facegate.errors import ImageTooLargeError, InvalidImageError

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Image.Image]

# Formats we accept; anything else PIL might open (PSD, EPS, ...) is refused.
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "PPM", "TIFF", "MPO"}

# File name endings treated as images when walking folders (decoding still goes by content).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff"}

# We enforce our own pixel limit before decoding; PIL's warning would only add noise.
Image.MAX_IMAGE_PIXELS = None


def _name(src: object) -> str:
    return str(src) if isinstance(src, (str, os.PathLike)) else "image"


def read_bytes(src: str | os.PathLike) -> bytes:
    """A file's bytes, or InvalidImageError naming what is wrong (missing, a folder, unreadable)."""
    path = Path(src)
    if not path.exists():
        raise InvalidImageError(f"{path}: no such file")
    if path.is_dir():
        raise InvalidImageError(f"{path}: is a directory, not an image")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; alpha is composited onto white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        # PIL's CMYK->RGB ignores ICC profiles; adequate for detection/recognition.
        return im.convert("RGB")
    return im.convert("RGB")


def _from_array(arr: np.ndarray, config: Config) -> np.ndarray:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InvalidImageError(f"array of shape {arr.shape} is not an image (need HxW, HxWx3 or HxWx4)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError("image has no pixels")
    if arr.shape[0] * arr.shape[1] > config.max_pixels:
        raise ImageTooLargeError(
            f"image is {arr.shape[1]}x{arr.shape[0]} pixels, over the limit of {config.max_pixels:,}"
        )
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        arr = np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8) if arr.max() <= 1.0 else arr.astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InvalidImageError(f"array dtype {arr.dtype} is not supported (need uint8, uint16 or float)")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def load_image(src: ImageInput, config: Config | None = None) -> np.ndarray:
    """Decode ``src`` into an HxWx3 uint8 RGB array (EXIF orientation applied).

    Raises InvalidImageError for anything that is not a readable image and
    ImageTooLargeError when the pixel count exceeds ``config.max_pixels``.
    """
    config = config or Config()
    if isinstance(src, np.ndarray):
        return _from_array(src, config)
    if isinstance(src, Image.Image):
        im = src
        name = "image"
    else:
        name = _name(src)
        data = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else read_bytes(src)
        if not data:
            raise InvalidImageError(f"{name}: file is empty")
        try:
            im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise InvalidImageError(f"{name}: not a recognised image format") from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise InvalidImageError(f"{name}: cannot decode ({exc})") from exc
    fmt = im.format
    if fmt is not None and fmt not in ALLOWED_FORMATS:
        raise InvalidImageError(f"{name}: {fmt} images are not supported")
    w, h = im.size
    if w * h > config.max_pixels:
        raise ImageTooLargeError(f"{name}: {w}x{h} pixels is over the limit of {config.max_pixels:,}")
    if w == 0 or h == 0:
        raise InvalidImageError(f"{name}: image has no pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # animated GIF/WebP: first frame
            im.load()
            im = ImageOps.exif_transpose(im) or im
            rgb = _to_rgb(im)
            arr = np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower():
            msg = "file is truncated"
        raise InvalidImageError(f"{name}: cannot decode ({msg})") from exc
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidImageError(f"{name}: decoded to an unexpected shape {arr.shape}")
    return np.ascontiguousarray(arr)
