"""One-constant calibration fits shared by the systems.

Each system fits one constant per device on named rows by minimising a unimodal loss (usually
the sum of squared log errors) over a bracket; :func:`golden_section_argmin` is that search,
written once so every fit converges the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

_G = (math.sqrt(5) - 1) / 2


def golden_section_argmin(loss: Callable[[float], float], lo: float, hi: float,
                          iterations: int = 40) -> float:
    """The midpoint of the bracket left after ``iterations`` golden-section steps on
    ``[lo, hi]`` (40 steps shrink it by 0.618**40, about 4e-9 of its width); ``loss`` must be
    unimodal there."""
    a, b = hi - _G * (hi - lo), lo + _G * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - _G * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + _G * (hi - lo)
            fb = loss(b)
    return 0.5 * (lo + hi)
