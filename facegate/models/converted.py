"""Files facegate converts from registry weights, made once by `facegate models install`.

Some built-in networks do not run from the file their package ships: MTCNN's R-Net and
O-Net (PyTorch state dicts) run on ONNX Runtime as ONNX graphs; dlib's ResNet (a ``.dat``)
becomes a PyTorch state dict (the torch runtime) and an ONNX graph (the CPU default);
MobileFaceNet's TFLite graph becomes ONNX for ``--runtime onnxruntime``; dlib's 5-point
predictor becomes arrays for the batched GPU path of ``facegate embed``. Each is a
:class:`Conversion` in :data:`CONVERSIONS`: its source model, the code that converts it and
that code's version. `facegate models install` makes every one into the model store, beside
the weights, and records it in the store's ``manifest.json`` with its sha256, size, the
source's sha256 and the converter's version; ``facegate models`` shows them.

At run time :func:`converted_path` uses the installed file when its manifest entry names
the (verified) source's sha256 and this converter's version; its bytes must still hash to
the recorded sha256, and a file that does not is refused with the command that makes it
again (``ModelError``), as a damaged weight file is. A store without the file (installed
by an older facegate, or from other weights) is not an error: the file is converted into
``<FACEGATE_HOME>/cache`` as before, once per home, with a one-line notice naming
`facegate models install`: the same result, slower the first time, and it says so.
Cached files carry a sidecar JSON with the same facts and are rebuilt when they do not match.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegate.config import Config, model_store_dirs
from facegate.errors import ModelError
from facegate.files import replace_private, write_private
from facegate.models.registry import REGISTRY, sha256_file, verified_path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
CACHE_FORMAT = 2  # sidecar layout of files converted into the cache (1: ONNX only, no version)


@dataclass(frozen=True)
class Conversion:
    """One file made from a registry model's weights.

    ``build(dest)`` writes the file at ``dest`` from the verified source; ``version`` is bumped
    whenever that code's output changes, so files made by older code are made again.
    """

    name: str  # the manifest's key, e.g. "mtcnn_onet.onnx"
    source: str  # the registry model it is made from
    stem: str  # file name: <stem>.<first 16 hex of the source's sha256><suffix>
    suffix: str
    version: int
    method: str  # what the conversion does, for `facegate models` and the manifest
    build: Callable[[Path], None]

    def filename(self, source_sha256: str) -> str:
        return f"{self.stem}.{source_sha256[:16]}{self.suffix}"


def _mtcnn_onnx(which: str) -> Callable[[Path], None]:
    def build(dest: Path) -> None:
        from facegate.models.mtcnn_nets import export_onnx

        export_onnx(which, dest)

    return build


def _dlib_resnet_state_dict(dest: Path) -> None:
    from facegate.models.dlib_torch import write_state_dict

    write_state_dict(dest)


def _dlib_resnet_onnx(dest: Path) -> None:
    from facegate.models.dlib_torch import write_onnx

    write_onnx(dest)


def _mobilefacenet_onnx(dest: Path) -> None:
    from facegate.models.tflite_torch import export_onnx

    export_onnx(REGISTRY["mobilefacenet"], dest)


def _shape_predictor_arrays(dest: Path) -> None:
    import numpy as np

    from facegate.models.dlib_dat import read_shape_predictor

    arrays = read_shape_predictor(verified_path(REGISTRY["dlib_5_landmarks"]))
    with open(dest, "wb") as fh:  # a file object: given a path, np.savez would append ".npz"
        np.savez(fh, **arrays)


_ONNX = "traced to ONNX (opset 17, dynamic batch) by torch.onnx.export"
CONVERSIONS: dict[str, Conversion] = {
    c.name: c
    for c in (
        Conversion("mtcnn_onet.onnx", "mtcnn_onet", "mtcnn_onet", ".onnx", 1,
                   f"facenet-pytorch's O-Net state dict loaded into facegate's PyTorch O-Net, {_ONNX}",
                   _mtcnn_onnx("onet")),
        Conversion("mtcnn_rnet.onnx", "mtcnn_rnet", "mtcnn_rnet", ".onnx", 1,
                   f"facenet-pytorch's R-Net state dict loaded into facegate's PyTorch R-Net, {_ONNX}",
                   _mtcnn_onnx("rnet")),
        Conversion("dlib_resnet.pt", "dlib_resnet", "dlib_resnet_v1", ".pt", 1,
                   "dlib's .dat parsed, each batch norm folded into its convolution, saved as a PyTorch state dict",
                   _dlib_resnet_state_dict),
        Conversion("dlib_resnet.onnx", "dlib_resnet", "dlib_resnet_v1", ".onnx", 1,
                   f"dlib's .dat parsed into facegate's PyTorch ResNet (batch norms folded), {_ONNX}",
                   _dlib_resnet_onnx),
        Conversion("mobilefacenet.onnx", "mobilefacenet", "mobilefacenet", ".onnx", 1,
                   f"the TFLite graph translated operator by operator into a PyTorch module, {_ONNX}",
                   _mobilefacenet_onnx),
        Conversion("dlib_5_landmarks.npz", "dlib_5_landmarks", "dlib_5_landmarks", ".npz", 1,
                   "dlib's shape predictor .dat parsed into numpy arrays (regression trees, mean shape, anchors)",
                   _shape_predictor_arrays),
    )
}


def conversion_for(source: str, suffix: str) -> Conversion:
    """The conversion of registry model ``source`` into a ``suffix`` file (".onnx", ".pt", ".npz")."""
    for conv in CONVERSIONS.values():
        if conv.source == source and conv.suffix == suffix:
            return conv
    raise ModelError(f"facegate has no {suffix} conversion of model {source}")


# --------------------------------------------------------------------------- the manifest


def read_manifest(store: Path) -> dict[str, dict[str, Any]]:
    """The entries of a model store's manifest (none if it has no manifest or an unreadable one)."""
    path = store / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring the model store manifest %s (%s); 'facegate models install' writes it again", path, exc)
        return {}
    files = raw.get("files") if isinstance(raw, dict) and raw.get("format") == MANIFEST_FORMAT else None
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def record(store: Path, entries: dict[str, dict[str, Any]]) -> Path:
    """Add or replace ``entries`` in the store's manifest (an atomic, private write)."""
    files = {**read_manifest(store), **entries}
    doc = {"format": MANIFEST_FORMAT, "files": dict(sorted(files.items()))}
    return write_private(store / MANIFEST, json.dumps(doc, indent=2) + "\n")


def _in_store(store: Path, rel: object) -> Path | None:
    """The manifest's relative ``path`` inside ``store``, or None if it points elsewhere."""
    if not isinstance(rel, str) or not rel:
        return None
    path = (store / rel).resolve()
    return path if path.is_relative_to(store.resolve()) else None


def installed_entry(conv: Conversion) -> tuple[Path | None, dict[str, Any] | None, str]:
    """(file, its manifest entry, why not) for an installed conversion that matches the registry's
    source sha256 and this converter version, looking through every model store.

    Raises ``ModelError`` when such a file no longer hashes to its recorded sha256."""
    spec = REGISTRY[conv.source]
    why = "not installed"
    for store in model_store_dirs():
        entry = read_manifest(store).get(conv.name)
        if entry is None:
            continue
        if entry.get("source_sha256") != spec.sha256:
            why = f"installed from other {conv.source} weights"
            continue
        if entry.get("version") != conv.version:
            why = f"installed by another facegate version (converter v{entry.get('version')}, now v{conv.version})"
            continue
        path = _in_store(store, entry.get("path"))
        if path is None or not path.is_file():
            why = f"listed in {store / MANIFEST} but missing"
            continue
        try:
            got = sha256_file(path)
        except OSError as exc:  # e.g. another user's private install
            why = f"unreadable ({exc.strerror or exc})"
            continue
        if got != entry.get("sha256"):
            raise ModelError(
                f"converted model {conv.name}: sha256 of {path} is {got[:16]}..., not the {str(entry.get('sha256'))[:16]}... "
                f"recorded when it was made; the file is damaged or was replaced: run 'facegate models install' "
                "to convert it again"
            )
        return path, entry, ""
    return None, None, why


def entry_for(conv: Conversion, store: Path, path: Path) -> dict[str, Any]:
    """The manifest entry of a file just made from ``conv``'s source."""
    import torch  # every converter runs on PyTorch: its version is part of how the file was made

    spec = REGISTRY[conv.source]
    return {
        "kind": "converted",
        "path": path.relative_to(store).as_posix(),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "source": conv.source,
        "source_sha256": spec.sha256,
        "method": conv.method,
        "version": conv.version,
        "made_with": f"torch {torch.__version__.split('+')[0]}",
    }


def make(conv: Conversion, store: Path) -> tuple[Path, dict[str, Any]]:
    """Convert ``conv`` into ``store`` (beside its source's weights) and return the file and its
    manifest entry; the caller records it. The source must be verified first."""
    verified_path(REGISTRY[conv.source])
    out = store / conv.source / conv.filename(REGISTRY[conv.source].sha256)
    replace_private(out, conv.build)
    return out, entry_for(conv, store, out)


# --------------------------------------------------------------------------- run time


_noticed: set[tuple[str, Path]] = set()
_notice_lock = threading.Lock()


def _notice(conv: Conversion, why: str, cache: Path) -> None:
    """One line, once per file and home in a process (a service converting for many threads says it once)."""
    with _notice_lock:
        if (conv.name, cache) in _noticed:
            return
        _noticed.add((conv.name, cache))
    log.warning("%s is %s: converting %s into %s now (once per home); 'facegate models install' converts it at "
                "set-up for every home", conv.name, why, conv.source, cache)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _cache_trusted(path: Path, conv: Conversion, source_sha256: str) -> bool:
    meta_path = _sidecar(path)
    if not (path.exists() and meta_path.exists()):
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        fresh = (meta.get("format") == CACHE_FORMAT and meta.get("source_sha256") == source_sha256
                 and meta.get("version") == conv.version)
        if fresh and meta.get("sha256") == sha256_file(path):
            return True
        if fresh:
            log.warning("ignoring %s: it does not match its recorded sha256; converting it again", path)
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s (%s); converting it again", path, exc)
    return False


def _convert_into_cache(path: Path, conv: Conversion, source_sha256: str) -> Path:
    """Convert into the cache (atomic: concurrent first runs at worst both convert). A home that
    cannot be written costs a conversion into a temporary folder on every start, not a failure."""
    try:
        replace_private(path, conv.build)
        meta = {"format": CACHE_FORMAT, "name": conv.name, "source_sha256": source_sha256,
                "version": conv.version, "sha256": sha256_file(path)}
        write_private(_sidecar(path), json.dumps(meta))
        return path
    except OSError as exc:
        log.warning("could not write %s: %s; using a temporary copy", path, exc)
        out = Path(tempfile.mkdtemp(prefix="facegate-converted-")) / path.name
        conv.build(out)
        return out


def converted_path(name: str, config: Config) -> tuple[Path, str]:
    """The file of conversion ``name`` and where it came from: ``"installed"`` (the model store),
    ``"cache"`` (converted into ``config.cache_dir`` by an earlier run) or ``"converted"`` (just now).

    The source's weights are sha256-verified first whatever the store or cache says.
    """
    conv = CONVERSIONS[name]
    spec = REGISTRY[conv.source]
    verified_path(spec)
    path, _entry, why = installed_entry(conv)
    if path is not None:
        return path, "installed"
    cached = config.cache_dir / conv.filename(spec.sha256)
    if _cache_trusted(cached, conv, spec.sha256):
        return cached, "cache"
    _notice(conv, why, config.cache_dir)
    return _convert_into_cache(cached, conv, spec.sha256), "converted"


def status(source: str) -> list[dict[str, Any]]:
    """For ``facegate models``: each conversion of registry model ``source``, installed or not, with
    its manifest facts and a ``check``: "ok", "MISMATCH" (damaged: refused at run time) or why it is
    not installed (then it is converted into the cache at first use)."""
    rows = []
    for conv in CONVERSIONS.values():
        if conv.source != source:
            continue
        row: dict[str, Any] = {"name": conv.name, "method": conv.method, "version": conv.version}
        try:
            path, entry, why = installed_entry(conv)
        except ModelError as exc:
            row.update(check="MISMATCH", message=str(exc))
        else:
            if path is None:
                row.update(check="not installed", message=f"{why}: converted into the cache at first use; "
                           "'facegate models install' converts it at set-up")
            else:
                row.update(entry or {}, path=str(path), check="ok")
        rows.append(row)
    return rows
