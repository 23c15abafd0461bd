"""Small helpers shared by tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import struct
import zlib


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, built by streaming zeros through zlib (small on disk)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def site_embeddings(people: int, photos: int = 1, *, dim: int = 192, common: float = 0.1, span: int = 38,
                    noise: float = 0.35, seed: int = 0) -> dict:
    """Generated embeddings of a "site": ``people`` people with ``photos`` unit vectors each, whose
    impostor cosines are about N(common, (1 - common) / sqrt(span)), i.e. the shipped mobilefacenet
    impostor distribution (mean 0.016, sd 0.145) moved up by ``common - 0.016`` (0.1: a site whose
    strangers score higher than LFW's); photos of one person are their identity vector plus noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    u = np.zeros(dim)
    u[0] = 1.0
    out = {}
    for p in range(people):
        g = np.zeros(dim)
        g[1 : span + 1] = rng.standard_normal(span)
        g /= np.linalg.norm(g)
        rows = []
        for _ in range(photos):
            n = np.zeros(dim)
            n[1 : span + 1] = rng.standard_normal(span) / np.sqrt(span)
            v = g + noise * n
            v = np.sqrt(common) * u + np.sqrt(1 - common) * v / np.linalg.norm(v)
            rows.append(v / np.linalg.norm(v))
        out[f"person {p:03d}"] = np.asarray(rows, np.float32)
    return out
