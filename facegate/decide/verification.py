"""1:1 verification: the threshold in force for a stated FAR (or an explicit one) and the verdict.

A stated FAR is a measured one: :func:`decision_threshold` takes the threshold calibrated at
exactly ``config.far`` for the stack in use (:mod:`facegate.decide.tables`), never an
interpolation, and says which stacks are calibrated when this one is not.
"""

from __future__ import annotations

import numpy as np

from facegate.config import Config
from facegate.decide.tables import calibrated_stacks, stack_key
from facegate.errors import UncalibratedError
from facegate.types import OperatingPoint, Verdict


def decision_threshold(config: Config, points: list[OperatingPoint]) -> tuple[float, float | None]:
    """(threshold, FAR it stands for) for 1:1 verification. An explicit ``config.threshold`` wins
    (FAR None: see :meth:`FarCurve.far` for what the table says of it); otherwise ``config.far``
    must be a calibrated FAR (a stated FAR is a measured one, not an interpolation)."""
    if config.threshold is not None:
        return float(config.threshold), None
    for p in points:
        if np.isclose(p.far, config.far, rtol=1e-6):
            return p.threshold, p.far
    key = stack_key(config)
    if not points:
        others = ", ".join(calibrated_stacks(config.embedder)) or "none"
        raise UncalibratedError(
            f"no operating points are calibrated for this stack ({key}); thresholds of another detector, "
            f"landmark scheme or mirror setting would not give the FAR they state. Calibrated stacks of "
            f"{config.embedder}: {others}. Use one of them, set an explicit threshold, or calibrate this stack "
            f"on your own photos into {config.home / 'operating_points.json'}"
        )
    have = ", ".join(f"{p.far:g}" for p in points)
    raise UncalibratedError(
        f"no calibrated threshold for FAR {config.far:g} with {key} "
        f"(calibrated: {have}); set an explicit threshold, or calibrate one on your own photos"
    )


def decide(score: float, threshold: float, far: float | None, table: str | None = None) -> Verdict:
    """The 1:1 verdict: same person when the score is strictly above the threshold (``table``: which
    operating-point table the threshold came from, :attr:`facegate.decide.tables.StackTables.label`)."""
    return Verdict(same=bool(score > threshold), score=float(score), threshold=float(threshold), far=far, table=table)


__all__ = ["decide", "decision_threshold"]
