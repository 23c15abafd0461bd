"""Image loading: formats, conversions, and every kind of bad input gives a typed error."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from helpers import huge_png
from PIL import Image

from facegate import Config
from facegate.errors import ImageTooLargeError, InvalidImageError
from facegate.image import load_image


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rgb() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "PPM", "TIFF"])
def test_formats_decode_to_rgb(rgb, fmt):
    arr = load_image(_encode(rgb, fmt))
    assert arr.shape == (48, 64, 3) and arr.dtype == np.uint8


def test_pgm_grey(tmp_path, rgb):
    p = tmp_path / "grey.pgm"
    rgb.convert("L").save(p)
    arr = load_image(p)
    assert arr.shape == (48, 64, 3)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_alpha_composited_on_white():
    im = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    assert (load_image(_encode(im, "PNG")) == 255).all()


def test_cmyk_converted():
    im = Image.new("CMYK", (10, 10), (0, 255, 255, 0))  # red in CMYK
    arr = load_image(_encode(im, "JPEG"))
    assert arr.shape == (10, 10, 3) and arr[..., 0].mean() > 200 and arr[..., 1].mean() < 60


def test_16bit_scaled_to_8bit():
    im = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    arr = load_image(_encode(im, "PNG"))
    assert arr.shape == (8, 8, 3) and (arr == 255).all()


def test_exif_orientation_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    arr = load_image(_encode(im, "JPEG", exif=exif.tobytes()))
    assert arr.shape == (40, 20, 3)  # width and height swapped


def test_webp_named_jpg_decodes_by_content(tmp_path, rgb):
    p = tmp_path / "photo.jpg"
    p.write_bytes(_encode(rgb, "WEBP", lossless=True))
    arr = load_image(p)
    assert arr.shape == (48, 64, 3)
    assert np.array_equal(arr, np.asarray(rgb))  # lossless WebP: the exact pixels


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is a text file, not a photo\n" * 20)
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        load_image(p)


def test_corrupt_jpeg(rgb):
    data = bytearray(_encode(rgb, "JPEG"))
    data[20:400] = b"\x00" * 380  # clobber tables and scan header
    with pytest.raises(InvalidImageError):
        load_image(bytes(data))


def test_truncated_jpeg(rgb):
    data = _encode(rgb, "JPEG")
    with pytest.raises(InvalidImageError, match="truncated|decode"):
        load_image(data[: len(data) // 2])


def test_truncated_png(rgb):
    data = _encode(rgb, "PNG")
    with pytest.raises(InvalidImageError):
        load_image(data[: len(data) // 2])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InvalidImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InvalidImageError, match="directory"):
        load_image(tmp_path)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(huge_png(30000, 30000))
    assert p.stat().st_size < 2_000_000  # tiny file, 900 megapixels
    with pytest.raises(ImageTooLargeError, match="900,000,000 pixels is over the limit"):
        load_image(p)


def test_pixel_limit_is_configurable(rgb):
    with pytest.raises(ImageTooLargeError):
        load_image(_encode(rgb, "PNG"), Config(max_pixels=100))


def test_arrays_accepted_and_checked():
    grey = np.zeros((5, 6), dtype=np.uint8)
    assert load_image(grey).shape == (5, 6, 3)
    assert load_image(np.zeros((5, 6, 4), dtype=np.uint8)).shape == (5, 6, 3)
    with pytest.raises(InvalidImageError):
        load_image(np.zeros((5, 6, 7), dtype=np.uint8))
    with pytest.raises(InvalidImageError):
        load_image(np.zeros((0, 6, 3), dtype=np.uint8))


def test_unsupported_format_refused():
    im = Image.new("RGB", (8, 8))
    data = _encode(im, "ICO")
    with pytest.raises(InvalidImageError, match="not a recognised image format"):
        load_image(data)


# -- hardening: non-regular files, read cap, messages, no global state ----------------------------
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open would wait for ever
    with pytest.raises(InvalidImageError, match="named pipe"):
        load_image(fifo)


def test_character_device_is_refused():
    with pytest.raises(InvalidImageError, match="character device"):
        load_image("/dev/zero")


def test_file_over_the_byte_limit_is_refused_before_reading(tmp_path, rgb):
    p = tmp_path / "big.png"
    p.write_bytes(_encode(rgb, "PNG"))
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        load_image(p, Config(max_file_bytes=100))
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        load_image(p.read_bytes(), Config(max_file_bytes=100))
    assert load_image(p).shape[:2] == rgb.size[::-1]


def test_import_leaves_pillows_bomb_guard_alone():
    import subprocess
    import sys

    code = "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import facegate.image; " \
           "assert Image.MAX_IMAGE_PIXELS == before and before is not None, Image.MAX_IMAGE_PIXELS"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _damaged_tiff(rgb) -> bytes:
    data = bytearray(_encode(rgb, "TIFF", compression="tiff_adobe_deflate"))
    data[len(data) // 2 : len(data) // 2 + 200] = b"\x13" * 200  # inside the compressed strips
    return bytes(data)


def test_decoder_failures_are_one_sentence_without_bytes_or_stderr_noise(rgb, capfd):
    bad_header = b"P6\n\xc8\xc9\xca\xcb" + b"\xc8" * 50  # PPM header with bytes Pillow quotes back
    inputs = [bad_header, _damaged_tiff(rgb), _encode(rgb, "JPEG")[:400], b"\x89PNG\r\n\x1a\n" + b"\xc8" * 40]
    for data in inputs:
        with pytest.raises(InvalidImageError) as exc:
            load_image(data)
        msg = str(exc.value)
        assert "b'" not in msg and "\\x" not in msg and "\n" not in msg, msg
        assert msg.startswith("image: ") and msg.endswith(("image", ")", "TIFF)")), msg
    out, err = capfd.readouterr()  # file descriptors: libtiff writes there, not through Python
    assert out == "" and err == "", err


def test_a_side_past_the_limit_is_refused_before_decoding():
    """A 1x59,000,000 PNG is under the pixel limit but Pillow's cost grows with its rows (1.5 GB once): it is
    refused from its header, with no memory spent."""
    import tracemalloc

    from facegate.image import MAX_SIDE

    data = huge_png(1, MAX_SIDE + 1)
    tracemalloc.start()
    with pytest.raises(ImageTooLargeError, match="side over 65,535"):
        load_image(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 2**20
    assert load_image(huge_png(1, 60_000)).shape == (60_000, 1, 3)  # a long strip within the limit still decodes


def test_concurrent_decodes_share_a_pixel_budget(monkeypatch, rgb):
    """Threads decoding at once hold at most the budget's pixels between them (one image alone may exceed it)."""
    import threading
    import time

    from facegate import image as image_mod

    data = _encode(rgb, "PNG")
    pixels = rgb.width * rgb.height
    budget = image_mod._DecodeBudget(2 * pixels)
    seen: list[int] = []
    real_to_rgb = image_mod._to_rgb

    def spy(im):
        seen.append(budget.in_flight)
        time.sleep(0.05)  # long enough for the other threads to queue up
        return real_to_rgb(im)

    monkeypatch.setattr(image_mod, "_DECODES", budget)
    monkeypatch.setattr(image_mod, "_to_rgb", spy)
    threads = [threading.Thread(target=load_image, args=(data,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and max(seen) == 2 * pixels and budget.in_flight == 0  # two at a time, never three
    alone = image_mod._DecodeBudget(pixels // 2)  # an image larger than the budget decodes on its own
    monkeypatch.setattr(image_mod, "_DECODES", alone)
    assert load_image(data).shape == (rgb.height, rgb.width, 3)
