"""Files facegate creates are private, whatever the umask: 0600 files in 0700 folders.

What facegate writes holds faces or what identifies them: embeddings, face crops, names, key hashes,
refusal journals, cached features of photos. Under a permissive umask (000, or 002 on a shared machine)
``open(path, "w")`` and ``mkdir`` would leave them readable or writable by other users, so every writer
goes through one of these: the folder with :func:`private_dir`, the file with :func:`open_private`
(or :func:`create_private`), or an atomic write with :func:`write_private` (``mkstemp`` makes its file
0600 and ``os.replace`` keeps the mode). Files that already exist with group or other access (written
by an older version) lose it on the next write (:func:`restrict`).

This is the base layer: it imports nothing of facegate's, so every layer above may use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and any missing parents as 0700 folders; returns it. Folders that already exist are
    left alone: they may be the user's own (a home folder, a project folder)."""
    missing = []
    p = Path(path)
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it first
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode goes through the umask
    return Path(path)


def restrict(path: str | os.PathLike[str]) -> None:
    """Take group and other access away from an existing file (best effort: a file that is not ours, in a
    shared deployment, is logged and left)."""
    p = Path(path)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            os.chmod(p, mode & 0o700)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("%s: cannot restrict its permissions (%s)", p, exc)


def create_private(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` as an empty 0600 file if it is missing (its folder too, 0700), and take group and other
    access away from it if it exists; False when it cannot be created (the caller's own open reports why)."""
    p = Path(path)
    private_dir(p.parent)
    try:
        os.close(os.open(p, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE))
    except OSError:
        return False
    restrict(p)
    return True


def open_private(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing (``w``, ``a``, ``x``, with ``b`` or ``+``), the file created 0600 and its
    missing folders 0700 whatever the umask; an existing file loses group and other access."""
    if not any(c in mode for c in "wax"):
        raise ValueError(f"open_private is for writing, not mode {mode!r}")
    p = Path(path)
    private_dir(p.parent)
    flags = os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    if "w" in mode:
        flags |= os.O_TRUNC
    elif "a" in mode:
        flags |= os.O_APPEND
    elif "x" in mode:
        flags |= os.O_EXCL
    fd = os.open(p, flags, FILE_MODE)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.geteuid():
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | os.PathLike[str], data: bytes | str, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` atomically (a 0600 temporary file in the same 0700 folder, then
    ``os.replace``): a reader sees the old file or the new one, never half of it."""
    raw = data.encode(encoding) if isinstance(data, str) else data
    return replace_private(path, lambda tmp: tmp.write_bytes(raw))


def replace_private(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Make ``path`` atomically with ``write(tmp)``, which fills a temporary file in the same folder (created
    0700 if missing) and may be any writer that takes a path (an ONNX exporter, ``torch.save``); the result is
    0600 even if the writer replaced the file rather than writing into it, and a failed write leaves nothing."""
    p = Path(path)
    private_dir(p.parent)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p
