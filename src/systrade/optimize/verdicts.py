"""What the overfitting statistics mean, in plain words: one verdict per statistic, written once here and used by
the terminal, the HTML reports and the JSON of ``optimize`` and ``walkforward``.

Bands (docs/optimize.md, "Reading the verdicts"):

* Deflated Sharpe ratio (DSR), the probability that the winner's true Sharpe ratio beats the best that luck alone
  would give with that many trials: 0.95 or more ``likely_real``; 0.5 to 0.95 ``weak_evidence``; below 0.5
  ``luck``.
* Probability of backtest overfitting (PBO), the share of splits where the in-sample winner lands at or below
  the out-of-sample median (0.5 is what picking at random gives): below 0.2 ``low``; 0.2 to 0.5 ``moderate``;
  0.5 or more ``high``.
* Walk-forward efficiency, out-of-sample CAGR / mean in-sample CAGR: 0.5 or more ``robust``; 0 to 0.5 ``weak``;
  negative ``lost`` (out of sample lost money); ``in_sample_lost`` when the in-sample winners lost money on
  average, which makes the ratio meaningless whatever its sign.

Every statistic that is not defined gets ``undefined``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DSR_LIKELY_REAL = 0.95
DSR_WEAK = 0.5
PBO_MODERATE = 0.2
PBO_CHANCE = 0.5
EFFICIENCY_ROBUST = 0.5


@dataclass(frozen=True)
class Verdict:
    """A statistic, its band (``label``), the sentence that explains it and the thresholds of the bands."""

    value: float | None
    label: str
    text: str
    thresholds: dict[str, float] = field(default_factory=dict)

    def short(self) -> str:
        """The value and its band for a table cell: ``0.02 luck``, ``0.40 moderate``, ``n/a``."""
        return "n/a" if self.value is None else f"{_num(self.value)} {self.label.replace('_', ' ')}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``value``, ``verdict`` (the band), ``text``, ``thresholds``."""
        return {"value": self.value, "verdict": self.label, "text": self.text, "thresholds": dict(self.thresholds)}


def _defined(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _num(value: float) -> str:
    """Two decimals; ``< 0.01`` or ``> 0.99`` rather than a 0.00 or 1.00 that the value is not."""
    text = f"{value:.2f}"
    if text in ("0.00", "-0.00") and value != 0:
        return "< 0.01" if value > 0 else "> -0.01"
    if text == "1.00" and value != 1:
        return "> 0.99" if value < 1 else "< 1.01"
    return text


def dsr_verdict(dsr: float | None, n_trials: int, scope: str = "") -> Verdict:
    """The deflated Sharpe ratio of a sweep's winner among ``n_trials`` combinations, in words.

    ``scope`` qualifies the value, e.g. ``" (mean over 8 windows)"``.
    """
    thresholds = {"likely_real": DSR_LIKELY_REAL, "weak_evidence": DSR_WEAK}
    name = f"deflated Sharpe ratio{scope}"
    trials = f"{n_trials:,} trial{'s' if n_trials != 1 else ''}"
    if not _defined(dsr):
        return Verdict(None, "undefined", f"{name} n/a: the best combination's returns have no defined Sharpe ratio "
                       "(it never traded, or its equity never moved)", thresholds)
    head = f"{name} {_num(dsr)}"
    if dsr >= DSR_LIKELY_REAL:
        return Verdict(dsr, "likely_real", f"{head}: the best Sharpe is likely real; it beats what luck alone would "
                       f"give with {trials} (0.95 or more)", thresholds)
    if dsr >= DSR_WEAK:
        return Verdict(dsr, "weak_evidence", f"{head}: weak evidence; the best Sharpe beats what luck alone would "
                       f"give with {trials} with probability {_num(dsr)}, short of the 0.95 that makes it likely real",
                       thresholds)
    return Verdict(dsr, "luck", f"{head}: the best Sharpe is what luck alone would give with {trials}; do not trust "
                   "it", thresholds)


def pbo_verdict(pbo: float | None, scope: str = "") -> Verdict:
    """The probability of backtest overfitting (CSCV), in words."""
    thresholds = {"moderate": PBO_MODERATE, "chance": PBO_CHANCE}
    name = f"probability of backtest overfitting{scope}"
    if not _defined(pbo):
        return Verdict(None, "undefined", f"{name} n/a: it needs 2 or more combinations and 17 or more bars",
                       thresholds)
    head = (f"{name} {_num(pbo)}: the in-sample winner lands at or below the median out of sample in "
            f"{pbo * 100:.0f}% of splits (0.5 would be chance)")
    if pbo >= PBO_CHANCE:
        return Verdict(pbo, "high", f"{head}; choosing the in-sample best is no better than picking at random: the "
                       "winner is overfit", thresholds)
    if pbo >= PBO_MODERATE:
        return Verdict(pbo, "moderate", f"{head}; the ranking only partly holds out of sample: part of the winner's "
                       "edge is overfitting", thresholds)
    return Verdict(pbo, "low", f"{head}; the ranking mostly holds out of sample", thresholds)


def efficiency_verdict(efficiency: float | None, oos_cagr: float | None, is_cagr: float | None) -> Verdict:
    """Walk-forward efficiency (out-of-sample CAGR / mean in-sample CAGR, both in percent), in words, sign included."""
    thresholds = {"robust": EFFICIENCY_ROBUST}
    name = "walk-forward efficiency"
    if not _defined(efficiency) or not _defined(oos_cagr) or not _defined(is_cagr):
        return Verdict(None, "undefined", f"{name} n/a: the mean in-sample CAGR is zero or undefined, so there is "
                       "nothing to compare the out-of-sample CAGR with", thresholds)
    head = f"{name} {_num(efficiency)} (out-of-sample CAGR {oos_cagr:.2f}% / mean in-sample CAGR {is_cagr:.2f}%)"
    if is_cagr < 0:
        return Verdict(efficiency, "in_sample_lost", f"{head}: the in-sample winners lost money on average, so the "
                       "ratio means nothing whatever its sign; even the best parameters of each window lost",
                       thresholds)
    if efficiency < 0:
        return Verdict(efficiency, "lost", f"{head}: negative because out of sample lost money while the in-sample "
                       "winners made money; the optimisation did not carry over", thresholds)
    if efficiency < EFFICIENCY_ROBUST:
        return Verdict(efficiency, "weak", f"{head}: out of sample kept {efficiency * 100:.0f}% of the in-sample "
                       "growth; below 0.5 most of the in-sample performance did not carry over", thresholds)
    if efficiency < 1:
        return Verdict(efficiency, "robust", f"{head}: out of sample kept {efficiency * 100:.0f}% of the in-sample "
                       "growth; 0.5 or more is commonly read as robust", thresholds)
    return Verdict(efficiency, "robust", f"{head}: out of sample grew as fast as in sample or faster; 0.5 or more "
                   "is commonly read as robust", thresholds)
