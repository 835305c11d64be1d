"""Compiled crossing rules for ``crossed_above``, ``crossed_below`` and ``crossings``: one pass over the inputs.

A parameter sweep calls them once per combination on the whole history, where reading the two inputs from memory
costs more than comparing them: a compiled loop reads each input once (``crossings`` once for both directions)
instead of NumPy's two comparisons, an ``and`` and their temporaries. NaN compares False, as in the pandas
expressions they replace (``tests/test_optimize_kernel.py`` checks them against those).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def cross_series(x: np.ndarray, y: np.ndarray, above: np.ndarray, below: np.ndarray) -> None:
    """``above[t] = x[t-1] < y[t-1] and x[t] > y[t]`` and ``below[t]`` with the comparisons reversed (False at
    t=0); an empty output array is not written. A constant level is ``y`` broadcast (stride 0)."""
    want_above = above.shape[0] > 0
    want_below = below.shape[0] > 0
    if x.shape[0] == 0:
        return
    if want_above:
        above[0] = False
    if want_below:
        below[0] = False
    for t in range(1, x.shape[0]):
        if want_above:
            above[t] = (x[t - 1] < y[t - 1]) & (x[t] > y[t])
        if want_below:
            below[t] = (x[t - 1] > y[t - 1]) & (x[t] < y[t])
