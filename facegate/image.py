"""Image decoding: bytes, paths, PIL images or arrays in; one HxWx3 uint8 RGB array out.

Decoding goes by content, not by file name (a WebP named .jpg decodes as WebP), and only
the formats in ``ALLOWED_FORMATS`` are tried. EXIF orientation is applied, grey/alpha/
palette/CMYK/16-bit images become 8-bit RGB. Limits are checked before the work they
guard: a path must be a regular file (a FIFO or a device is refused, never opened for a
blocking read) of at most ``config.max_file_bytes``, and the pixel count from the header
must be within ``config.max_pixels`` and each side within ``MAX_SIDE`` before any pixel is
decoded, so a decompression bomb is refused without allocating it. The side limit matters as
much as the pixel count: Pillow keeps one row pointer per image row, so a 1x59,000,000 PNG of
114 KB (under the pixel limit) once cost 1.5 GB and seconds to decode. Concurrent decodes share
a pixel budget (``DECODE_PIXEL_BUDGET``), so a server answering many requests at once holds at
most about one limit-sized image's decoding memory, however many arrive together. This module changes no global state of Pillow: its own
bomb guard (``Image.MAX_IMAGE_PIXELS``) stays as the program set it, and still refuses
what is over twice its limit even if ``config.max_pixels`` is higher.

Every failure is an :class:`InvalidImageError` (or :class:`ImageTooLargeError`) with one
sentence a person can act on; the decoder's own message (which may quote file bytes) goes
to the debug log only, and the decoder's warnings are not shown.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegate.config import Config
from facegate.errors import ImageTooLargeError, InvalidImageError
from facegate.native_stderr import filtered_stderr

log = logging.getLogger(__name__)

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray | Image.Image

# Formats we decode; anything else PIL might open (PSD, EPS, ...) is refused. MPO (a JPEG
# with extra frames) is opened by the JPEG plugin, so only ``ALLOWED_FORMATS`` is accepted
# as a result while ``_OPENERS`` are the plugins tried.
_OPENERS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "PPM", "TIFF")
ALLOWED_FORMATS = (*_OPENERS, "MPO")

# The longest side decoded, in pixels: JPEG's own limit (65,535; WebP's is 16,383), far beyond any camera. Past
# it the cost of decoding grows with the number of rows, not pixels (see the module's docstring).
MAX_SIDE = 65_535

# Pixels being decoded at once in this process (threads wait for room): one image at the default pixel limit
# (60 million), or several ordinary photos side by side. An image larger than the budget decodes alone.
DECODE_PIXEL_BUDGET = 64_000_000


class _DecodeBudget:
    """A counting semaphore over pixels: ``acquire(n)`` waits until ``n`` more pixels fit in the budget, or
    nothing else is being decoded."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.in_flight = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self.in_flight == 0 or self.in_flight + pixels <= self.budget)
            self.in_flight += pixels
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= pixels
                self._cond.notify_all()


_DECODES = _DecodeBudget(DECODE_PIXEL_BUDGET)

# File name endings treated as images when walking folders (decoding still goes by content).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff"}

_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def _name(src: object) -> str:
    return str(src) if isinstance(src, (str, os.PathLike)) else "image"


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"


def read_bytes(src: str | os.PathLike, limit: int | None = None) -> bytes:
    """A file's bytes (a regular file of at most ``limit`` bytes, default ``Config.max_file_bytes``),
    or InvalidImageError / ImageTooLargeError naming what is wrong."""
    return _read_bytes(src, Config().max_file_bytes if limit is None else limit)


def _read_bytes(src: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Opened non-blocking and checked with fstat on the open descriptor, so a FIFO is refused
    without waiting for a writer and a file swapped after a check cannot slip through.
    """
    path = Path(src)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise InvalidImageError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidImageError(f"{path}: is a directory, not an image") from exc
    except PermissionError as exc:
        raise InvalidImageError(f"{path}: permission denied") from exc
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for reading with no writer on some systems
            raise InvalidImageError(f"{path}: not a regular file") from exc
        raise InvalidImageError(f"{path}: cannot open ({exc.strerror or type(exc).__name__})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise InvalidImageError(f"{path}: is {kind}, not an image file")
        if st.st_size > limit:
            raise ImageTooLargeError(f"{path}: the file is {_mib(st.st_size)}, over the limit of {_mib(limit)}")
        chunks, total = [], 0
        while total <= limit:  # the file may grow while we read: stop one byte past the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from exc
    finally:
        os.close(fd)
    if total > limit:
        raise ImageTooLargeError(f"{path}: the file is over the limit of {_mib(limit)}")
    return b"".join(chunks)


def _decode_failure(name: str, exc: BaseException, fmt: str | None, max_pixels: int) -> InvalidImageError:
    """One sentence for a decoder failure; the decoder's own words go to the debug log only."""
    log.debug("%s: decoder said %s: %s", name, type(exc).__name__, exc)
    text = str(exc).lower()
    if isinstance(exc, Image.DecompressionBombError):
        # Pillow's own guard fired while reading the header (over twice Image.MAX_IMAGE_PIXELS).
        m = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
        if m is None:
            return ImageTooLargeError(f"{name}: the image has too many pixels")
        pixels, pillow_limit = int(m.group(1)), int(m.group(2))
        if pixels > max_pixels:
            return ImageTooLargeError(f"{name}: {pixels:,} pixels is over the limit of {max_pixels:,}")
        return ImageTooLargeError(
            f"{name}: {pixels:,} pixels is over the limit of {pillow_limit:,} that Pillow.Image.MAX_IMAGE_PIXELS sets"
        )
    if isinstance(exc, UnidentifiedImageError):
        return InvalidImageError(
            f"{name}: not a recognised image format (facegate reads JPEG, PNG, WebP, BMP, GIF, PPM/PGM and TIFF)"
        )
    what = f"a valid {fmt} image" if fmt else "a valid image"
    if "truncated" in text or isinstance(exc, EOFError):
        return InvalidImageError(f"{name}: the file is truncated (it ends before the image does)")
    if isinstance(exc, MemoryError):
        return ImageTooLargeError(f"{name}: not enough memory to decode this image")
    return InvalidImageError(f"{name}: the file is damaged or is not {what}")


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

    Raises InvalidImageError for anything that is not a readable image (including a path
    that is not a regular file) and ImageTooLargeError when the file is over
    ``config.max_file_bytes`` or the pixel count over ``config.max_pixels``.
    """
    config = config or Config()
    if isinstance(src, np.ndarray):
        return _from_array(src, config)
    name = "image" if isinstance(src, Image.Image) else _name(src)
    fmt: str | None = None
    # Pillow warns (corrupt EXIF, odd TIFF tags, its own bomb guard): the checks below decide,
    # and a warning with a path inside Pillow would only be noise on the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if isinstance(src, Image.Image):
                im = src
            else:
                if isinstance(src, (bytes, bytearray, memoryview)):
                    data = bytes(src)
                    if len(data) > config.max_file_bytes:
                        raise ImageTooLargeError(
                            f"{name}: {_mib(len(data))} is over the limit of {_mib(config.max_file_bytes)}"
                        )
                else:
                    data = _read_bytes(src, config.max_file_bytes)
                if not data:
                    raise InvalidImageError(f"{name}: file is empty")
                im = Image.open(io.BytesIO(data), formats=_OPENERS)
            fmt = im.format
            if fmt is not None and fmt not in ALLOWED_FORMATS:
                raise InvalidImageError(f"{name}: {fmt} images are not supported")
            w, h = im.size
            if w * h > config.max_pixels:
                raise ImageTooLargeError(f"{name}: {w}x{h} pixels is over the limit of {config.max_pixels:,}")
            if max(w, h) > MAX_SIDE:
                raise ImageTooLargeError(f"{name}: {w}x{h} pixels: a side over {MAX_SIDE:,} pixels is not decoded")
            if w == 0 or h == 0:
                raise InvalidImageError(f"{name}: image has no pixels")
            with _DECODES.hold(w * h):
                if fmt == "TIFF":  # libtiff reports a damaged file on fd 2 itself: to the debug log
                    with filtered_stderr(level=logging.DEBUG):
                        im.load()
                else:
                    im.load()  # an animated GIF/WebP or a multi-page TIFF: its first frame
                im = ImageOps.exif_transpose(im) or im
                arr = np.asarray(_to_rgb(im), dtype=np.uint8)
        except InvalidImageError:
            raise
        except Exception as exc:
            raise _decode_failure(name, exc, fmt, config.max_pixels) from exc
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidImageError(f"{name}: decoded to an unexpected shape {arr.shape}")
    return np.ascontiguousarray(arr)
