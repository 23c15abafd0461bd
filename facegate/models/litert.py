"""Opening LiteRT (TFLite) interpreters quietly.

LiteRT's C++ runtime writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
straight to file descriptor 2 when an interpreter is made, past Python's logging, into
every command's output and progress bars. The descriptor is pointed at /dev/null for the
duration of the call only (under a lock, since descriptors are process-wide).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facegate.errors import ModelError

_FD_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_stderr_fd() -> Iterator[None]:
    """Silence native writes to stderr for the enclosed call."""
    with _FD_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to silence
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def open_interpreter(path: Path, threads: int, **kwargs: Any) -> Any:
    """A LiteRT ``Interpreter`` for ``path`` with ``threads`` CPU threads (its own default is one),
    its tensors allocated (the delegate, and its message, come then)."""
    from ai_edge_litert.interpreter import Interpreter  # local: heavy import

    try:
        with quiet_stderr_fd():
            it = Interpreter(model_path=str(path), num_threads=max(1, threads), **kwargs)
            it.allocate_tensors()
            return it
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a loadable TFLite model: {' '.join(str(exc).split())[:300]}") from exc
