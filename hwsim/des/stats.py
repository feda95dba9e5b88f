"""Run statistics: samples, counters and time-weighted levels, cheap to update.

During a run a component only appends a number to a list (:meth:`Stats.record`), bumps a
counter (:meth:`Stats.count`) or moves a time-weighted level (:class:`TimeWeighted`, a few float
operations). Everything else (means, percentiles, utilisation, confidence intervals) is computed
once at the end with numpy.

A *measurement window* (:meth:`Stats.start_window`, :meth:`Stats.end_window`) restricts the
time-weighted levels to steady state; sample series are trimmed by the caller (``skip``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50.0, 95.0, 99.0)


class TimeWeighted:
    """A level over time (busy units, queue length) and its running time integral."""

    __slots__ = ("area", "t0", "t_end", "t_last", "value")

    def __init__(self, now: float = 0.0, value: float = 0.0) -> None:
        self.value = float(value)
        self.t_last = now
        self.t0 = now
        self.area = 0.0
        self.t_end: float | None = None

    def set(self, now: float, value: float) -> None:
        """The level becomes ``value`` at ``now``."""
        if self.t_end is None:
            self.area += self.value * (now - self.t_last)
        self.t_last = now
        self.value = value

    def add(self, now: float, delta: float) -> None:
        """The level changes by ``delta`` at ``now``."""
        self.set(now, self.value + delta)

    def reset(self, now: float) -> None:
        """Forget the integral so far and start measuring at ``now``."""
        self.area = 0.0
        self.t0 = self.t_last = now
        self.t_end = None

    def freeze(self, now: float) -> None:
        """Stop measuring at ``now``; later changes do not enter the average."""
        if self.t_end is None:
            self.area += self.value * (now - self.t_last)
            self.t_last = now
            self.t_end = now

    def integral(self, now: float) -> float:
        """Integral of the level over the window up to ``now`` (or the freeze time)."""
        if self.t_end is not None:
            return self.area
        return self.area + self.value * (now - self.t_last)

    def mean(self, now: float) -> float:
        """Time average over the window (NaN for an empty window)."""
        end = self.t_end if self.t_end is not None else now
        span = end - self.t0
        return self.integral(now) / span if span > 0 else math.nan


@dataclass(frozen=True)
class Summary:
    """Summary of one sample series."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean, spread and percentiles (p50/p95/p99, numpy's linear interpolation)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    p50, p95, p99 = np.percentile(x, PERCENTILES)
    return Summary(int(x.size), float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0,
                   float(x.min()), float(x.max()), float(p50), float(p95), float(p99))


def batch_means(values: Sequence[float] | np.ndarray, batches: int = 20) -> tuple[float, float]:
    """Grand mean and the 95% confidence half-width by the method of batch means.

    Consecutive samples of a queue are correlated, so the naive standard error is far too
    small; the means of ``batches`` long consecutive batches are nearly independent. Samples
    past the last whole batch are dropped.
    """
    x = np.asarray(values, dtype=float)
    size = x.size // batches
    if batches < 2 or size < 1:
        raise ValueError(f"batch means needs >= 2 batches of >= 1 sample ({x.size} samples)")
    means = x[: size * batches].reshape(batches, size).mean(axis=1)
    from scipy.stats import t

    half = float(t.ppf(0.975, batches - 1) * means.std(ddof=1) / math.sqrt(batches))
    return float(means.mean()), half


def replication_ci(values: Sequence[float] | np.ndarray,
                   level: float = 0.95) -> tuple[float, float]:
    """Mean of independent replications (one value per seed) and its confidence half-width,
    Student t with n - 1 degrees of freedom; NaN half-width for fewer than two finite values,
    0 when every replication agrees (a count, a deterministic metric)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return float(x.mean()), half


def control_variate_mean(
    values: np.ndarray,
    controls: Sequence[np.ndarray],
    expected: Sequence[float],
    batches: int = 25,
) -> float:
    """Mean of ``values`` corrected by control variates with known expectations.

    ``controls[j]`` is a series aligned with ``values`` (e.g. the service time of each
    customer) whose expectation ``expected[j]`` is known exactly from the inputs. The
    estimator is ``mean(y) - sum_j beta_j (mean(c_j) - E[c_j])`` with ``beta`` the least-squares
    regression of the batch means of ``y`` on the batch means of the controls (Lavenberg &
    Welch, Management Science 27(3), 1981; Law, *Simulation Modeling and Analysis*, 5th ed.,
    sec. 11.4). It has the same expectation as ``mean(y)`` up to an O(1/batches) term and a
    smaller variance when the inputs' sampling error drives the output's (a queue near
    saturation). Controls with no variance (deterministic inputs) are left out.
    """
    y = np.asarray(values, dtype=float)
    n = y.size
    size = n // batches
    if size < 1 or batches < 2:
        return float(y.mean()) if n else math.nan
    cut = size * batches
    yb = y[:cut].reshape(batches, size).mean(axis=1)
    cols, offsets = [], []
    for c, mu in zip(controls, expected, strict=True):
        c = np.asarray(c, dtype=float)
        if c.size != n:
            raise ValueError(f"control has {c.size} samples, values {n}")
        cb = c[:cut].reshape(batches, size).mean(axis=1) - mu
        if np.ptp(cb) > 1e-12 * max(abs(mu), 1.0):
            cols.append(cb)
            offsets.append(float(c.mean()) - mu)
    if not cols or len(cols) + 2 > batches:
        return float(y.mean())
    x = np.column_stack([np.ones(batches), *cols])
    beta = np.linalg.lstsq(x, yb, rcond=None)[0][1:]
    return float(y.mean() - np.dot(beta, offsets))


class TimeBins:
    """Sums of a quantity over consecutive equal bins of simulated time, in bounded memory.

    ``add(t, x)`` adds ``x`` to the bin holding ``t``; when a time falls past ``max_bins``
    bins, neighbouring bins merge in pairs and the width doubles, so a run of any length keeps
    at most ``max_bins`` numbers (for batch means over time: utilisation, a rate).
    """

    __slots__ = ("max_bins", "sums", "width")

    def __init__(self, width: float = 1e-6, max_bins: int = 1024) -> None:
        if width <= 0 or max_bins < 2:
            raise ValueError("TimeBins needs width > 0 and max_bins >= 2")
        self.width = float(width)
        self.max_bins = max_bins
        self.sums: list[float] = []

    def add(self, t: float, x: float) -> None:
        """Add ``x`` at time ``t`` (>= 0)."""
        i = int(t / self.width)
        if i >= len(self.sums):
            while i >= self.max_bins:
                self._merge()
                i = int(t / self.width)
            self.sums.extend([0.0] * (i + 1 - len(self.sums)))
        self.sums[i] += x

    def _merge(self) -> None:
        s = self.sums
        if len(s) % 2:
            s.append(0.0)
        self.sums = [s[j] + s[j + 1] for j in range(0, len(s), 2)]
        self.width *= 2.0

    def batch_rates(self, end: float, batches: int = 20) -> np.ndarray:
        """The sum per unit time in each of ``batches`` consecutive equal groups of whole bins
        over ``[0, end]`` (the bins past the last whole group dropped); empty when there are
        fewer bins than batches."""
        whole = min(int(end / self.width), len(self.sums))
        size = whole // batches
        if size < 1:
            return np.empty(0)
        x = np.asarray(self.sums[: size * batches], dtype=float).reshape(batches, size)
        return x.sum(axis=1) / (size * self.width)


#: Student t 0.975 quantiles for 1..30 degrees of freedom (scipy.stats.t.ppf), so that a 95%
#: interval of a short run does not import scipy.stats (a second or more of start-up)
T975 = (12.7062047362, 4.3026527297, 3.1824463053, 2.7764451052, 2.5705818356, 2.4469118511,
        2.3646242516, 2.3060041352, 2.2621571628, 2.228138852, 2.2009851601, 2.1788128297,
        2.1603686565, 2.1447866879, 2.1314495456, 2.1199052992, 2.1098155778, 2.1009220402,
        2.0930240544, 2.0859634473, 2.0796138447, 2.0738730679, 2.0686576104, 2.0638985616,
        2.0595385528, 2.0555294386, 2.0518305165, 2.0484071418, 2.0452296421, 2.0422724563)


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided ``level`` Student t quantile with ``df`` degrees of freedom."""
    if level == 0.95 and 1 <= df <= len(T975):
        return T975[df - 1]
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def t_half_width(samples: Sequence[float] | np.ndarray, level: float = 0.95) -> float:
    """Student-t confidence half-width of the mean of nearly independent ``samples`` (batch
    means, batch percentiles); NaN for fewer than two."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan
    return t_quantile(x.size - 1, level) * float(x.std(ddof=1)) / math.sqrt(x.size)


class Stats:
    """Named sample series, counters and time-weighted levels of one simulation run."""

    def __init__(self, env=None) -> None:
        self.env = env
        self.series: defaultdict[str, list[float]] = defaultdict(list)
        self.counters: defaultdict[str, float] = defaultdict(float)
        self.levels: dict[str, TimeWeighted] = {}

    def _now(self) -> float:
        return float(self.env.now) if self.env is not None else 0.0

    # -- recording (during the run) ------------------------------------------------------------
    def record(self, name: str, value: float) -> None:
        """Append one sample to series ``name``."""
        self.series[name].append(value)

    def appender(self, name: str):
        """The bound ``append`` of series ``name``, for hot loops."""
        return self.series[name].append

    def count(self, name: str, n: float = 1) -> None:
        """Add ``n`` to counter ``name``."""
        self.counters[name] += n

    def level(self, name: str, value: float = 0.0) -> TimeWeighted:
        """The time-weighted level ``name`` (created at ``value``, now)."""
        tw = self.levels.get(name)
        if tw is None:
            tw = self.levels[name] = TimeWeighted(self._now(), value)
        return tw

    def start_window(self) -> None:
        """Start the measurement window now: levels forget the warm-up."""
        now = self._now()
        for tw in self.levels.values():
            tw.reset(now)

    def end_window(self) -> None:
        """End the measurement window now: levels stop integrating."""
        now = self._now()
        for tw in self.levels.values():
            tw.freeze(now)

    # -- results (after the run) ---------------------------------------------------------------
    def array(self, name: str, skip: int = 0) -> np.ndarray:
        """Series ``name`` as an array, without its first ``skip`` samples."""
        return np.asarray(self.series.get(name, ())[skip:], dtype=float)

    def summary(self, name: str, skip: int = 0) -> Summary:
        return summarize(self.array(name, skip))

    def percentile(self, name: str, q: float, skip: int = 0) -> float:
        x = self.array(name, skip)
        return float(np.percentile(x, q)) if x.size else math.nan

    def time_average(self, name: str) -> float:
        """Time average of level ``name`` over the window."""
        return self.levels[name].mean(self._now())

    def utilisation(self, name: str, capacity: float = 1.0) -> float:
        """Busy time / elapsed time of a busy-count level, per unit of ``capacity``."""
        return self.time_average(name) / capacity

    def window_s(self, name: str) -> float:
        tw = self.levels[name]
        end = tw.t_end if tw.t_end is not None else self._now()
        return end - tw.t0
