"""Opening LiteRT (TFLite) interpreters quietly.

LiteRT's C++ runtime writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
straight to file descriptor 2 when an interpreter is made, past Python's logging, into
every command's output and progress bars. Descriptor 2 is captured for the duration of the
call only: that line is dropped, anything else goes to the log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from facegate.errors import ModelError
from facegate.native_stderr import filtered_stderr

# The one line LiteRT's runtime prints when it makes its CPU delegate; anything else it writes
# to descriptor 2 is passed on through logging (facegate.native_stderr).
_TFLITE_NOISE = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$")


def open_interpreter(path: Path, threads: int, **kwargs: Any) -> Any:
    """A LiteRT ``Interpreter`` for ``path`` with ``threads`` CPU threads (its own default is one),
    its tensors allocated (the delegate, and its message, come then)."""
    from ai_edge_litert.interpreter import Interpreter  # local: heavy import

    try:
        with filtered_stderr(_TFLITE_NOISE):
            it = Interpreter(model_path=str(path), num_threads=max(1, threads), **kwargs)
            it.allocate_tensors()
            return it
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a loadable TFLite model: {' '.join(str(exc).split())[:300]}") from exc
