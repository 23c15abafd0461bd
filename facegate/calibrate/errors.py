"""Site-calibration errors: typed, one-line, with the exit codes of :mod:`facegate.errors`."""

from __future__ import annotations

from facegate.decide.site import SiteTableError  # the decision layer reads the store too: the error lives there
from facegate.errors import DatasetError


class UnreliableEstimateError(DatasetError):
    """A site estimate too uncertain to adopt without ``force`` (too few people or pairs, or too
    wide an interval); ``reasons`` lists why."""

    code = "site_unreliable"

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])


__all__ = ["SiteTableError", "UnreliableEstimateError"]
