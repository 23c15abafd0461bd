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
``facegate/data``, overridden by the user's own calibrations of the same name in ``<home>``, overridden
by the site table adopted for the stack, :mod:`facegate.decide.site`); nothing else reads the files.
:class:`StackTables` says which source decides (:attr:`StackTables.label`), so every answer that
states a rate can say which table it came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from facegate.config import Config
from facegate.decide.site import SITE, AdoptedTable, site_layers, site_table
from facegate.errors import ModelError, UsageError
from facegate.files import write_private
from facegate.types import OperatingPoint

OPERATING_POINTS = "operating_points.json"
TEMPLATE_POINTS = "template_points.json"
SHIPPED = "shipped"  # facegate/data/<table>
HOME = "home"  # <home>/<table>, written by `facegate calibrate --write`
# SITE (facegate.decide.site): the site table adopted by `facegate calibrate --site --adopt`, <home>/site_tables.json


@dataclass(frozen=True)
class TemplatePoint:
    """At ``threshold``, a ``far`` share of impostor (k-photo template, other person's photo) pairs
    score above it; ``tar`` is the share of genuine pairs that do (see
    :mod:`facegate.evaluate.templates`, which measures them)."""

    k: int
    far: float
    threshold: float
    tar: float | None
    templates: int = 0  # what the point was measured on (0: not recorded, as in a site table)
    people: int = 0
    impostor_pairs: int = 0


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


def table_layers(name: str, config: Config | None = None, *, site: bool = True) -> list[tuple[str, dict]]:
    """(source, table) pairs of one table, lowest precedence first: the shipped one, then (with a
    ``config``) the user's ``<home>`` copy, then the site tables adopted in ``<home>`` (unless
    ``site`` is False: what a site calibration maps is the table beneath them). A stack's entry is
    taken whole from the last layer that has one. Further sources are added here and nowhere else."""
    layers = [(SHIPPED, shipped_table(name))]
    if config is not None:
        own = home_table(name, config)
        if own is not None:
            layers.append((HOME, own))
        if site:
            ops, tps = site_layers(config)
            layer = ops if name == OPERATING_POINTS else tps if name == TEMPLATE_POINTS else {}
            if layer:
                layers.append((SITE, layer))
    return layers


def read_table(name: str, config: Config | None = None) -> dict:
    """A whole table keyed by stack, every stack's entry from the highest layer that has it."""
    table: dict = {}
    for _, layer in table_layers(name, config):
        table.update(layer)
    return table


def _entry(name: str, key: str, config: Config | None, site: bool = True) -> tuple[dict | None, str | None]:
    for source, layer in reversed(table_layers(name, config, site=site)):
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
    (:data:`SHIPPED`, :data:`HOME`, :data:`SITE`; None where no table has the stack); ``site``: the
    adopted site table when one decides."""

    key: str
    operating_points: tuple[OperatingPoint, ...] = ()
    template_points: tuple[TemplatePoint, ...] = ()
    sources: dict[str, str | None] = field(default_factory=dict)  # table name -> source
    site: AdoptedTable | None = None

    @property
    def source(self) -> str | None:
        """Where the per-comparison points come from (the one every rate is read from)."""
        return self.sources.get(OPERATING_POINTS)

    @property
    def label(self) -> str | None:
        """Which table decides, in words: ``shipped (LFW ...)``, ``your own calibration (...)`` or the
        site table with its date and adoption; None where nothing is calibrated."""
        if self.source == SITE and self.site is not None:
            return self.site.label
        if not self.operating_points:
            return None
        dataset = self.operating_points[0].dataset.split(":")[0]
        if self.source == SHIPPED:
            return f"shipped table ({dataset})"
        if self.source == HOME:
            return f"your own calibration in <home> ({dataset})"
        return f"{self.source} table ({dataset})"

    def describe(self) -> dict[str, Any]:
        """The table in force as a record (``source``, ``label``, and the site table's details)."""
        out: dict[str, Any] = {"source": self.source, "label": self.label, "stack": self.key}
        if self.site is not None and self.source == SITE:
            out.update(self.site.to_dict())
        return out


def in_force(stack: Config | str, *, site: bool = True) -> StackTables:
    """The operating points and template points that decide for ``stack`` (a Config, a stack key,
    or an embedder name for its default stack): the one reader of the tables. ``site=False``: the
    tables beneath an adopted site table (what a site calibration maps and states beside it).

    Empty where nothing was calibrated (user models, or a detector/landmark/mirror combination
    nobody calibrated); the decision layer then refuses a stated FAR rather than guess one."""
    key, config = as_stack_key(stack)
    ops, ops_source = _entry(OPERATING_POINTS, key, config, site)
    tps, tps_source = _entry(TEMPLATE_POINTS, key, config, site)
    adopted = site_table(config, key) if site and config is not None and SITE in (ops_source, tps_source) else None
    return StackTables(key, _operating_points(ops), _template_points(tps),
                       {OPERATING_POINTS: ops_source, TEMPLATE_POINTS: tps_source}, adopted)


def load_operating_points(stack: Config | str, *, site: bool = True) -> list[OperatingPoint]:
    """The per-comparison operating points in force for a stack (:func:`in_force`, this table only)."""
    key, config = as_stack_key(stack)
    return list(_operating_points(_entry(OPERATING_POINTS, key, config, site)[0]))


def load_template_points(stack: Config | str, *, site: bool = True) -> list[TemplatePoint]:
    """The k-photo template points in force for a stack (:func:`in_force`, this table only)."""
    key, config = as_stack_key(stack)
    return list(_template_points(_entry(TEMPLATE_POINTS, key, config, site)[0]))


def calibrated_stacks(embedder: str | None = None) -> dict[str, list[OperatingPoint]]:
    """Every shipped stack (optionally of one embedder) with its operating points."""
    table = read_table(OPERATING_POINTS)
    return {k: list(_operating_points(e)) for k, e in table.items()
            if embedder is None or k.split("|", 1)[0] == embedder}


# -- writing (evaluate and `facegate calibrate --write`) -------------------------------------------
def merge_table_entry(path: str, key: str, entry: dict) -> None:
    """Set one stack's entry in a JSON table keyed by stack (the shipped operating-point
    and template-point tables, or a user's copy), keeping the other stacks' entries. Written with
    :func:`facegate.files.write_private`: a reader never sees half a table, and it is private."""
    try:
        with open(path) as fh:
            table = json.load(fh)
    except FileNotFoundError:
        table = {}
    table[key] = entry
    # atomic and 0600 whatever the umask (a site's calibration says which scores its people reach)
    write_private(path, json.dumps(table, indent=2) + "\n")


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
    "HOME", "OPERATING_POINTS", "SHIPPED", "SITE", "TEMPLATE_POINTS", "StackTables", "TemplatePoint",
    "as_stack_key", "calibrated_stacks", "home_table", "in_force", "load_operating_points", "load_template_points",
    "merge_table_entry", "read_table", "save_operating_points", "save_template_points", "shipped_table", "stack_key",
    "table_layers",
]
