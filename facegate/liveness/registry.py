"""Liveness models facegate ships, and loading one under the licence policy in force.

A shipped liveness model is a small JSON head in ``facegate/data`` pinned here by sha256
(its identity, as a weight file's is in :mod:`facegate.models.registry`); a site's own
model is any file written by ``fit`` (``python -m facegate.evaluate.pad fit``), loaded by
path. A model fitted on research-use data (NUAA) is not permissive and is refused under
``--licence-policy permissive``: such a site fits its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facegate.config import Config
from facegate.errors import ModelError
from facegate.liveness.detector import CueLiveness
from facegate.liveness.head import LivenessModel, load_model

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class LivenessSpec:
    """A shipped liveness model: its file in ``facegate/data`` and the sha256 it must have.
    Everything else (source, licence, provenance, training data, operating points) is read
    from the file itself, whose bytes this sha256 pins."""

    name: str
    file: str
    sha256: str

    @property
    def path(self) -> Path:
        return DATA_DIR / self.file


DEFAULT_LIVENESS = "pad_cues_nuaa"
SHIPPED: dict[str, LivenessSpec] = {
    spec.name: spec
    for spec in (
        # Fitted by `python -m facegate.evaluate.pad fit-nuaa` on nuaa_dev sessions 1-2 (research-use data):
        # the file says what fitted it and the cross-session APCER/BPCER of its recipe.
        LivenessSpec(
            name="pad_cues_nuaa",
            file="liveness_pad_cues_nuaa.json",
            sha256="466b314d5e5e73e0c6dbc9d9a8d3bb4f452f017732108621aed96835439b6850",
        ),
    )
}


def check_liveness_policy(model: LivenessModel, config: Config) -> None:
    """Refuse a model the licence policy excludes (fitted on research-use data)."""
    if config.licence_policy == "permissive" and not model.permissive:
        raise ModelError(
            f"liveness model {model.name} is excluded by the permissive licence policy (its head was fitted on "
            f"{model.training_data}: {model.licence}); fit your own from your captures "
            "(python -m facegate.evaluate.pad fit --live DIR --attack DIR --out FILE) and load that file, "
            "or drop --licence-policy permissive"
        )


def load_liveness(name_or_path: str | Path = DEFAULT_LIVENESS, config: Config | None = None) -> CueLiveness:
    """A liveness detector: a shipped model by name (sha256 checked) or a model file by path."""
    config = config or Config()
    spec = SHIPPED.get(str(name_or_path))
    if spec is not None:
        model = load_model(spec.path, expect_sha256=spec.sha256)
    else:
        path = Path(name_or_path)
        if not path.suffix == ".json" and not path.exists():
            known = ", ".join(SHIPPED) or "none"
            raise ModelError(f"unknown liveness model {str(name_or_path)!r}; shipped: {known}; or give a model file")
        model = load_model(path)
    check_liveness_policy(model, config)
    return CueLiveness(model)


def shipped_models() -> list[LivenessModel]:
    """Every shipped liveness model, loaded (for ``facegate models``)."""
    return [load_model(s.path, expect_sha256=s.sha256) for s in SHIPPED.values()]
