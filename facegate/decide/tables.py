"""The operating-point tables: which threshold gives which false-accept rate, for which stack.

A threshold on its own means nothing to an integrator; what they need is "at this
threshold, one impostor in a thousand is accepted". That is measured, per *stack* (embedder,
detector, landmark scheme, mirror averaging: :func:`stack_key`), by :mod:`facegate.evaluate`
(:func:`facegate.evaluate.calibration.calibrate` for single photos,
:func:`facegate.evaluate.templates.calibrate_templates` for k-photo templates) and kept in two
JSON tables keyed by stack:

* ``operating_points.json``: per-comparison (one photo against one photo) FAR -> threshold, TAR;
* ``template_points.json``: the same for the mean of k photos against one photo (:class:`TemplatePoint`).

This module is the one that knows their format: it reads them (for the decision layer) and
writes them (for ``evaluate`` and ``facegate calibrate --write``). The tables *in force* for a
stack have one reader, :func:`in_force`: each table's entry for the stack comes from the
highest-precedence source that has one (:func:`table_layers`: the tables shipped in
``facegate/data``, overridden by the user's own calibrations of the same name in ``<home>``).
A new source (a site's own calibration, adopted instead of the shipped points) is one more
layer there; nothing else reads the files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources

from facegate.config import Config
from facegate.errors import ModelError, UsageError
from facegate.types import OperatingPoint

OPERATING_POINTS = "operating_points.json"
TEMPLATE_POINTS = "template_points.json"
SHIPPED = "shipped"  # facegate/data/<table>
HOME = "home"  # <home>/<table>, written by `facegate calibrate --write`


@dataclass(frozen=True)
class TemplatePoint:
    """At ``threshold``, a ``far`` share of impostor (k-photo template, other person's photo) pairs
    score above it; ``tar`` is the share of genuine pairs that do (see
    :mod:`facegate.evaluate.templates`, which measures them)."""

    k: int
    far: float
    threshold: float
    tar: float | None
    templates: int
    people: int
    impostor_pairs: int


# -- stacks ---------------------------------------------------------------------------------------


def stack_key(config: Config) -> str:
    """The whole stack a score distribution depends on: embedder, detector (with O-Net box
    refinement or not), the landmark scheme the chips were aligned from (``~derived`` when the
    detector does not produce it natively) and mirror averaging. Operating points are
    calibrated for one stack and apply to that stack only."""
    from facegate.models.detectors import stack_detector
    from facegate.models.registry import get_spec

    spec = get_spec(config.embedder, config)
    scheme = spec.scheme
    det, native_schemes = stack_detector(config)  # e.g. "blazeface+onet", ("mtcnn5", "dlib5")
    native = scheme in native_schemes
    return f"{spec.name}|{det}|{scheme}{'' if native else '~derived'}|{'flip' if config.flip else 'noflip'}"


def as_stack_key(stack: Config | str) -> tuple[str, Config | None]:
    """(stack key, the Config whose ``<home>`` tables apply, if any) from a Config, a stack key, or
    a bare embedder name (that embedder's default stack; shipped tables only)."""
    if isinstance(stack, Config):
        return stack_key(stack), stack
    if "|" in stack:
        return stack, None
    try:
        return stack_key(Config(embedder=stack)), None
    except ModelError:  # a model nobody registered has no table: an empty key finds nothing
        return stack, None


# -- reading --------------------------------------------------------------------------------------
def shipped_table(name: str) -> dict:
    """A table as shipped in ``facegate/data``."""
    return json.loads(resources.files("facegate").joinpath(f"data/{name}").read_text())


def home_table(name: str, config: Config) -> dict | None:
    """The user's own table of that name in ``<home>`` (None when there is none)."""
    own = config.home / name
    if not own.exists():
        return None
    try:
        return json.loads(own.read_text())
    except ValueError as exc:
        raise UsageError(f"{own} is not valid JSON ({exc}); fix or delete it") from exc


def table_layers(name: str, config: Config | None = None) -> list[tuple[str, dict]]:
    """(source, table) pairs of one table, lowest precedence first: the shipped one, then (with a
    ``config``) the user's ``<home>`` copy. A stack's entry is taken whole from the last layer
    that has one. Further sources (a site calibration) are added here and nowhere else."""
    layers = [(SHIPPED, shipped_table(name))]
    if config is not None:
        own = home_table(name, config)
        if own is not None:
            layers.append((HOME, own))
    return layers


def read_table(name: str, config: Config | None = None) -> dict:
    """A whole table keyed by stack, every stack's entry from the highest layer that has it."""
    table: dict = {}
    for _, layer in table_layers(name, config):
        table.update(layer)
    return table


def _entry(name: str, key: str, config: Config | None) -> tuple[dict | None, str | None]:
    for source, layer in reversed(table_layers(name, config)):
        if key in layer:
            return layer[key], source
    return None, None


def _operating_points(entry: dict | None) -> tuple[OperatingPoint, ...]:
    return tuple(OperatingPoint(dataset=entry["dataset"], **p) for p in entry["points"]) if entry else ()


def _template_points(entry: dict | None) -> tuple[TemplatePoint, ...]:
    return tuple(TemplatePoint(**p) for p in entry["points"]) if entry else ()


@dataclass(frozen=True)
class StackTables:
    """The calibrated points in force for one stack, and where each table's entry came from
    (:data:`SHIPPED`, :data:`HOME`; None where no table has the stack)."""

    key: str
    operating_points: tuple[OperatingPoint, ...] = ()
    template_points: tuple[TemplatePoint, ...] = ()
    sources: dict[str, str | None] = field(default_factory=dict)  # table name -> source


def in_force(stack: Config | str) -> StackTables:
    """The operating points and template points that decide for ``stack`` (a Config, a stack key,
    or an embedder name for its default stack): the one reader of the tables.

    Empty where nothing was calibrated (user models, or a detector/landmark/mirror combination
    nobody calibrated); the decision layer then refuses a stated FAR rather than guess one."""
    key, config = as_stack_key(stack)
    ops, ops_source = _entry(OPERATING_POINTS, key, config)
    tps, tps_source = _entry(TEMPLATE_POINTS, key, config)
    return StackTables(key, _operating_points(ops), _template_points(tps),
                       {OPERATING_POINTS: ops_source, TEMPLATE_POINTS: tps_source})


def load_operating_points(stack: Config | str) -> list[OperatingPoint]:
    """The per-comparison operating points in force for a stack (:func:`in_force`, this table only)."""
    key, config = as_stack_key(stack)
    return list(_operating_points(_entry(OPERATING_POINTS, key, config)[0]))


def load_template_points(stack: Config | str) -> list[TemplatePoint]:
    """The k-photo template points in force for a stack (:func:`in_force`, this table only)."""
    key, config = as_stack_key(stack)
    return list(_template_points(_entry(TEMPLATE_POINTS, key, config)[0]))


def calibrated_stacks(embedder: str | None = None) -> dict[str, list[OperatingPoint]]:
    """Every shipped stack (optionally of one embedder) with its operating points."""
    table = read_table(OPERATING_POINTS)
    return {k: list(_operating_points(e)) for k, e in table.items()
            if embedder is None or k.split("|", 1)[0] == embedder}


# -- writing (evaluate and `facegate calibrate --write`) -------------------------------------------
def merge_table_entry(path: str, key: str, entry: dict) -> None:
    """Set one stack's entry in a JSON table keyed by stack (the shipped operating-point
    and template-point tables, or a user's copy), keeping the other stacks' entries."""
    try:
        with open(path) as fh:
            table = json.load(fh)
    except FileNotFoundError:
        table = {}
    table[key] = entry
    with open(path, "w") as fh:
        json.dump(table, fh, indent=2)
        fh.write("\n")


def save_operating_points(path: str, key: str, points: Sequence[OperatingPoint], settings: dict) -> None:
    """Write (merge) a stack's operating points into a JSON table like the shipped one."""
    merge_table_entry(path, key, {
        "dataset": points[0].dataset if points else "",
        "settings": settings,
        "points": [{k: v for k, v in asdict(p).items() if k != "dataset"} for p in points],
    })


def save_template_points(path: str, key: str, points: Sequence[TemplatePoint], settings: dict) -> None:
    """Write (merge) a stack's template points into a JSON table like the shipped one."""
    merge_table_entry(path, key, {"settings": settings, "points": [asdict(p) for p in points]})


__all__ = [
    "HOME", "OPERATING_POINTS", "SHIPPED", "TEMPLATE_POINTS", "StackTables", "TemplatePoint",
    "as_stack_key", "calibrated_stacks", "home_table", "in_force", "load_operating_points", "load_template_points",
    "merge_table_entry", "read_table", "save_operating_points", "save_template_points", "shipped_table", "stack_key",
    "table_layers",
]
