"""Site-calibration errors: typed, one-line, with the exit codes of :mod:`facegate.errors`."""

from __future__ import annotations

from facegate.errors import DatasetError, UsageError


class UnreliableEstimateError(DatasetError):
    """A site estimate too uncertain to adopt without ``force`` (too few people or pairs, or too
    wide an interval); ``reasons`` lists why."""

    code = "site_unreliable"

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])


class SiteTableError(UsageError):
    """A site table or its store cannot be used (unreadable, another stack, nothing to revert)."""

    code = "site_table"


__all__ = ["SiteTableError", "UnreliableEstimateError"]
