"""Native libraries that write to file descriptor 2 behind Python's back.

The TFLite runtime prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` to the
process's standard error when an interpreter is built, with no option to turn it off; it
lands in the middle of every command's output and progress bar. libtiff prints its
diagnostics about a damaged TIFF (``TIFFFetchNormalTag: ...``) the same way, beside the one
error line facegate gives for the file. :func:`filtered_stderr` redirects descriptor 2 to a
temporary file around such a call, then passes on every line that is not known noise
through :mod:`logging` (at ``level``), so nothing is lost, only routed.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

_LOCK = threading.Lock()  # one redirect at a time: descriptor 2 is process-wide


@contextmanager
def filtered_stderr(noise: re.Pattern[str] | None = None, level: int = logging.WARNING) -> Iterator[None]:
    """Run the body with descriptor 2 captured; lines matching ``noise`` are dropped, the rest
    are logged at ``level`` (anything Python itself wrote meanwhile too)."""
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable descriptor 2 (embedded, closed)
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                captured = tmp.read().decode("utf-8", "replace")
    for line in captured.splitlines():
        if line.strip() and not (noise is not None and noise.search(line)):
            log.log(level, "%s", line)
