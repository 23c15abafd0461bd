"""Argument types for the command line: every number range-checked, every name valid text.

argparse turns the ``ArgumentTypeError`` these raise into a usage error (exit 2, JSON under ``--json``),
so a value the stores below cannot hold (an id past 64 bits, a name with bytes that are not UTF-8) is
refused where it is typed instead of failing deep inside SQLite as an internal error (exit 9).
File paths are not checked here: on POSIX a path may legitimately hold bytes that are not UTF-8.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

INT64_MAX = 2**63 - 1  # the largest SQLite INTEGER: ids of people, faces, rules


def int_arg(lo: int = 0, hi: int = INT64_MAX, what: str = "") -> Callable[[str], int]:
    """A whole number in ``[lo, hi]``."""

    def parse(text: str) -> int:
        try:
            v = int(text.strip(), 10)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from exc
        if not lo <= v <= hi:
            span = f"from {lo:,}" + (f" to {hi:,}" if hi != INT64_MAX else " up")
            raise argparse.ArgumentTypeError(f"{what or 'the number'} {text} is out of range: it goes {span}")
        return v

    parse.__name__ = "whole number"  # argparse names the type in its generic message
    return parse


def float_arg(lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
              what: str = "") -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            low = f"over {lo:g}" if lo_open else f"at least {lo:g}"
            span = " and ".join(s for s in (low if lo > -math.inf else "", f"at most {hi:g}" if hi < math.inf else "") if s)
            raise argparse.ArgumentTypeError(f"{what or 'the number'} {text} is out of range: it must be {span or 'finite'}")
        return v

    parse.__name__ = "number"
    return parse


def rate_arg(what: str, example: str) -> Callable[[str], float]:
    """A rate or share strictly between 0 and 1 (``what`` names it in the error, ``example`` shows one)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
        if not 0 < v < 1:
            raise argparse.ArgumentTypeError(f"a {what} is between 0 and 1, e.g. {example} (got {text})")
        return v

    parse.__name__ = "rate"
    return parse


def text_arg(max_len: int = 200, what: str = "a name", *, empty: bool = False) -> Callable[[str], str]:
    """Text that can be stored and shown: valid Unicode (argv bytes that are not UTF-8 arrive as surrogate
    escapes), no NUL or other control characters, at most ``max_len`` characters, not empty unless ``empty``."""

    def parse(text: str) -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise argparse.ArgumentTypeError(f"{what} must be valid UTF-8 text; {text!r} is not") from exc
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise argparse.ArgumentTypeError(f"{what} must not contain control characters: {text!r}")
        if not text.strip() and not (empty and text == ""):
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        if len(text) > max_len:
            raise argparse.ArgumentTypeError(f"{what} is at most {max_len} characters, got {len(text)}")
        return text

    parse.__name__ = "text"
    return parse


def ref_arg(what: str = "a person") -> Callable[[str], str]:
    """A person (or other record) given by name or by numeric id: valid text, and an id within 64 bits."""
    as_text = text_arg(what=f"{what}'s name")

    def parse(text: str) -> str:
        text = as_text(text)
        if text.strip().isdigit() and int(text) > INT64_MAX:
            raise argparse.ArgumentTypeError(f"{text} is not an id (ids go up to {INT64_MAX:,}) nor a likely name")
        return text

    parse.__name__ = "name or id"
    return parse


def time_zone_arg(text: str) -> str:
    """An IANA time zone name (Europe/Paris, America/New_York, UTC)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = text_arg(64, "a time zone")(text)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris") from exc
    return name


name_arg = text_arg()  # a person's, group's, gate's or key's name
person_arg = ref_arg()
