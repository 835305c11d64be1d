"""Durations a user types (``90d``, ``12w``, ``6mo``, ``2y``, ``36h``, ``30min``): always with an explicit unit.

A bare ``m`` is refused: it reads as minutes to a programmer and as months to a trader, so the user is asked for
``min`` or ``mo``. Months and years are fixed lengths, not calendar steps: a year is 365.25 days and a month a
twelfth of it, 30.4375 days, so every window of ``6mo`` has the same length whatever month it starts in.
(Candle timeframes such as ``1m`` are another thing: they follow the exchanges' convention, where ``m`` is a
minute.)
"""

from __future__ import annotations

import re

import pandas as pd

from systrade.errors import UserError

MONTH_DAYS = 30.4375
YEAR_DAYS = 365.25

_SECONDS = {"min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, "mo": MONTH_DAYS * 86400.0,
            "y": YEAR_DAYS * 86400.0}
_ALIASES = {
    "min": "min", "mins": "min", "minute": "min", "minutes": "min",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "wk": "w", "wks": "w", "week": "w", "weeks": "w",
    "mo": "mo", "mon": "mo", "month": "mo", "months": "mo",
    "y": "y", "yr": "y", "yrs": "y", "year": "y", "years": "y",
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
UNITS_TEXT = "min, h, d, w, mo (30.4375 days) or y (365.25 days)"


def parse_duration(text: str | None, option: str) -> pd.Timedelta:
    """``90d`` -> 90 days; units ``min h d w mo y`` (and their long names), spaces allowed: ``6 mo``.

    A bare ``m`` and a number without a unit are refused (UserError naming ``option``), and so is zero.
    """
    match = _PATTERN.match(text or "")
    if match and match.group(2).lower() == "m":
        number = match.group(1)
        raise UserError(f"{option} {text!r} is ambiguous: write {number}min for minutes or {number}mo for months")
    unit = _ALIASES.get(match.group(2).lower()) if match else None
    if unit is None:
        raise UserError(f"{option} {text!r} is not a duration; write a number and a unit: {UNITS_TEXT}, "
                        "e.g. 180d, 12w or 6mo")
    value = float(match.group(1))
    if value <= 0:
        raise UserError(f"{option} {text!r} is not a positive duration; e.g. 180d, 12w or 6mo")
    return pd.Timedelta(seconds=round(value * _SECONDS[unit], 6))


def duration_text(span: pd.Timedelta) -> str:
    """The shortest whole-unit spelling parse_duration reads back: 182.625 days -> ``6mo``, 36 hours -> ``36h``."""
    seconds = span.total_seconds()
    for unit in ("y", "mo", "w", "d", "h", "min"):
        count = seconds / _SECONDS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds / 60:g}min"
