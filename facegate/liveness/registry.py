"""Which liveness model is in force, and loading it under the licence policy.

Two kinds of model:

* **shipped**: a small head in ``facegate/data``, a registry entry like every model
  (:data:`facegate.models.registry.LIVENESS_SPECS`: file, sha256, licence, provenance). The
  one facegate ships is fitted on research-use data (NUAA) and is refused under
  ``--licence-policy permissive``.
* **site**: a head a site fits on its own captures (``facegate liveness fit --live DIR --attack
  DIR``), kept in ``<home>/liveness/<name>.json`` (0600) with its own provenance (the
  folders, the counts, when) and its cross-validated operating point.

The model *in force* is the shipped default until a site adopts one of its heads
(``facegate liveness fit ... --adopt`` or ``facegate liveness adopt NAME``); the choice is
recorded in ``<home>/liveness/in_force.json`` (who, when, the sha256 of the adopted file,
and the earlier choices, so ``facegate liveness revert`` goes back one step). The recorded
sha256 pins the adopted file: a head edited after adoption is refused, never used.

:func:`in_force_detector` is what the pipeline (and so the gate) calls on every check: it
reads the small record and ``stat``s the chosen file, and reloads only when either changed, so
an adoption takes effect in a running service without a restart, and a head edited after its
adoption is refused from the next check on.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facegate.config import Config
from facegate.errors import ModelError, UsageError
from facegate.files import write_private
from facegate.liveness.detector import CueLiveness
from facegate.liveness.head import LivenessModel, load_model
from facegate.models.registry import LIVENESS_SPECS, ModelSpec, locate

SHIPPED: dict[str, ModelSpec] = {spec.name: spec for spec in LIVENESS_SPECS}
DEFAULT_LIVENESS = "pad_cues_nuaa"
IN_FORCE_FILE = "in_force.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def liveness_dir(config: Config) -> Path:
    """Where a site's own heads and the in-force record live: ``<home>/liveness``."""
    return config.home / "liveness"


def check_liveness_policy(model: LivenessModel, config: Config) -> None:
    """Refuse a model the licence policy excludes (fitted on research-use data)."""
    if config.licence_policy == "permissive" and not model.permissive:
        raise ModelError(
            f"liveness model {model.name} is excluded by the permissive licence policy (its head was fitted on "
            f"{model.training_data}: {model.licence}); fit your own from your captures and adopt it "
            "('facegate liveness fit --live DIR --attack DIR --adopt'), or drop --licence-policy permissive"
        )


# -- the record of which head is in force ---------------------------------------------------------


@dataclass(frozen=True)
class InForce:
    """The liveness model in force: its name, kind (``shipped`` or ``site``), file and sha256,
    and when and by whom it was adopted (None for the shipped default nobody chose)."""

    name: str
    kind: str
    file: str
    sha256: str
    adopted: str | None = None  # ISO 8601 UTC
    by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shipped_record(name: str = DEFAULT_LIVENESS) -> InForce:
    spec = SHIPPED[name]
    return InForce(name=spec.name, kind="shipped", file=str(locate(spec)), sha256=spec.sha256)


def _record_path(config: Config) -> Path:
    return liveness_dir(config) / IN_FORCE_FILE


def _read_record(config: Config) -> dict[str, Any]:
    path = _record_path(config)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"liveness: {path} is unreadable ({exc}); fix or delete it to use the shipped head") from None
    if not isinstance(data, dict):
        raise ModelError(f"liveness: {path} is malformed; fix or delete it to use the shipped head")
    return data


def _as_record(d: Any, path: Path) -> InForce:
    if not isinstance(d, dict) or not all(isinstance(d.get(k), str) for k in ("name", "kind", "file", "sha256")):
        raise ModelError(f"liveness: {path} is malformed; fix or delete it to use the shipped head")
    return InForce(name=d["name"], kind=d["kind"], file=d["file"], sha256=d["sha256"], adopted=d.get("adopted"),
                   by=d.get("by"))


def in_force(config: Config) -> InForce:
    """The liveness model in force (the shipped default unless a site adopted one of its heads).

    The record names the head; its file is found from the name, so a moved home or a reinstalled
    facegate still finds it: a shipped head in the installed package (pinned by the registry's
    sha256, which an upgrade may change), a site head in ``<home>/liveness`` (pinned by the sha256
    recorded when it was adopted)."""
    data = _read_record(config)
    if not data.get("in_force"):
        return _shipped_record()
    return _resolved(_as_record(data["in_force"], _record_path(config)), config)


def _resolved(record: InForce, config: Config) -> InForce:
    from dataclasses import replace

    if record.kind == "shipped":
        if record.name not in SHIPPED:
            raise ModelError(f"liveness: the head in force, {record.name!r}, is no longer shipped; adopt another "
                             f"('facegate liveness adopt {DEFAULT_LIVENESS}')")
        return replace(_shipped_record(record.name), adopted=record.adopted, by=record.by)
    return replace(record, file=str(liveness_dir(config) / f"{record.name}.json"))


def history(config: Config) -> list[InForce]:
    """Earlier choices, oldest first (``revert`` goes back to the last one)."""
    data = _read_record(config)
    return [_as_record(d, _record_path(config)) for d in data.get("history", [])]  # resolved when adopted again


def _write_json(path: Path, data: Any) -> None:
    """Write a private (0600, in a 0700 folder) JSON file atomically."""
    write_private(path, json.dumps(data, indent=2) + "\n")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _set_in_force(config: Config, record: InForce, previous: list[InForce]) -> InForce:
    _write_json(_record_path(config), {"in_force": record.to_dict(), "history": [r.to_dict() for r in previous]})
    return record


# -- a site's own heads ----------------------------------------------------------------------------


def check_site_name(name: str) -> str:
    if not _NAME.match(name or "") or name in SHIPPED or name == Path(IN_FORCE_FILE).stem:
        raise UsageError(
            f"{name!r} cannot name a site liveness head: use letters, digits, '.', '_' or '-' (at most 64), "
            f"not a shipped model's name ({', '.join(SHIPPED)})"
        )
    return name


def site_model_path(config: Config, name: str) -> Path:
    return liveness_dir(config) / f"{check_site_name(name)}.json"


def save_site_model(model: LivenessModel, config: Config) -> LivenessModel:
    """Keep a site's head in ``<home>/liveness/<name>.json`` (0600); returns it with its sha256 and path."""
    import hashlib
    from dataclasses import replace

    path = site_model_path(config, model.name)
    if path.exists():  # an adopted head is pinned by its sha256: overwriting it would close the gates using it
        raise UsageError(f"a liveness head named {model.name!r} is already kept ({path}); choose another name")
    data = model.dumps()
    write_private(path, data)
    return replace(model, sha256=hashlib.sha256(data).hexdigest(), path=str(path))


def site_models(config: Config) -> list[LivenessModel]:
    """Every site head kept in ``<home>/liveness`` (unreadable files are skipped and logged)."""
    import logging

    out: list[LivenessModel] = []
    folder = liveness_dir(config)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        if path.name == IN_FORCE_FILE:
            continue
        try:
            out.append(load_model(path))
        except ModelError as exc:
            logging.getLogger(__name__).warning("liveness: skipping %s: %s", path, exc)
    return out


def adopt(config: Config, name: str, by: str = "cli") -> InForce:
    """Put a head in force: a site head by name (``<home>/liveness/<name>.json``) or a shipped
    model by name. The earlier choice is kept for :func:`revert`. A head the licence policy
    excludes is refused here, not at the gate."""
    if name in SHIPPED:
        record = _shipped_record(name)
        model = load_model(Path(record.file), expect_sha256=record.sha256)
    else:
        path = site_model_path(config, name)
        if not path.exists():
            known = ", ".join([*SHIPPED, *(m.name for m in site_models(config))])
            raise UsageError(f"no liveness head named {name!r} (known: {known}); fit one with 'facegate liveness fit'")
        model = load_model(path)
        record = InForce(name=model.name, kind="site", file=str(path), sha256=model.sha256)
    check_liveness_policy(model, config)
    current = in_force(config)
    record = InForce(**{**record.to_dict(), "adopted": _now(), "by": by})
    return _set_in_force(config, record, [*history(config), current])


def revert(config: Config, by: str = "cli") -> InForce:
    """Go back to the head in force before the last adoption (the shipped default at the start)."""
    past = history(config)
    current = in_force(config)
    if not past:
        if current.kind == "shipped":
            raise UsageError("nothing to revert: the shipped liveness head is in force and no earlier choice is recorded")
        previous = _shipped_record()
    else:
        previous = _resolved(past.pop(), config)
    record = InForce(**{**previous.to_dict(), "adopted": _now(), "by": f"{by} (revert)"})
    return _set_in_force(config, record, past)


# -- loading ------------------------------------------------------------------------------------------


def load_in_force(config: Config) -> LivenessModel:
    """The model in force, its sha256 checked against the record and the policy applied."""
    record = in_force(config)
    model = load_model(Path(record.file), expect_sha256=record.sha256)
    check_liveness_policy(model, config)
    return model


_cache: dict[tuple[Any, ...], CueLiveness] = {}
_cache_lock = threading.Lock()


def in_force_detector(config: Config) -> CueLiveness:
    """The detector of the model in force, reloaded only when the choice or the chosen file changed
    (a read of the small record and one ``stat``: a gate check calls this every time). Raises
    :class:`ModelError` when no model may be used (the permissive policy and no site head, a file
    changed after adoption): callers that must not open without liveness treat that as a refusal
    (the gate answers ``liveness_unavailable``)."""
    record = in_force(config)
    try:
        st = Path(record.file).stat()
        sig: Any = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        sig = None  # load_model says what is wrong
    key = (str(config.home), config.licence_policy, record.file, record.sha256, sig)
    with _cache_lock:
        det = _cache.get(key)
    if det is None:
        model = load_model(Path(record.file), expect_sha256=record.sha256)
        check_liveness_policy(model, config)
        det = CueLiveness(model)
        with _cache_lock:
            if len(_cache) > 16:
                _cache.clear()
            _cache[key] = det
    return det


def load_liveness(name_or_path: str | Path | None = None, config: Config | None = None) -> CueLiveness:
    """A liveness detector: the model in force (``None``), a shipped model by name (sha256
    checked), a site head by name, or a model file by path; the licence policy applies."""
    config = config or Config()
    if name_or_path is None:
        return in_force_detector(config)
    spec = SHIPPED.get(str(name_or_path))
    if spec is not None:
        model = load_model(locate(spec), expect_sha256=spec.sha256)
    else:
        path = Path(name_or_path)
        if not path.exists() and _NAME.match(str(name_or_path)) and site_model_path(config, str(name_or_path)).exists():
            path = site_model_path(config, str(name_or_path))
        elif path.suffix != ".json" and not path.exists():
            known = ", ".join(SHIPPED) or "none"
            raise ModelError(f"unknown liveness model {str(name_or_path)!r}; shipped: {known}; or give a model file")
        model = load_model(path)
    check_liveness_policy(model, config)
    return CueLiveness(model)


def shipped_models() -> list[LivenessModel]:
    """Every shipped liveness model, loaded (sha256 checked)."""
    return [load_model(locate(s), expect_sha256=s.sha256) for s in SHIPPED.values()]
