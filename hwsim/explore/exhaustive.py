"""Exhaustive search of a small discrete space, Pareto fronts and hypervolume.

Every point of the grid is evaluated with the system's vectorised ``analytical_batch`` when it has
one (one call per spec-file choice), else with ``analytical`` point by point. The batch
convention: ``analytical_batch(inputs, {"role.key": array}) -> {metric: array}``, with NaN in
every metric of an infeasible point.

Hypervolume is computed on objectives turned into minimisation and normalised by the exact
front: ``(f - ideal) / (nadir - ideal)``, its best value of each objective to 0 and its worst to 1.
The reference point lies beyond the front's nadir by 10 % of the front's range in each objective,
or by a quarter of the nadir's own value (``RELATIVE_MARGIN``) where that is more: every design up
to 25 % worse than the front's worst value in each objective is inside the box and adds to the
sampler's hypervolume. (With the range alone, a narrow front, say one whose objectives each span
1 % of their values, leaves designs that are 7 % off entirely outside the box: a ratio of 0 for a
study that came close.) The reference depends on the exact front only, so every sampler and seed
of a study is measured against the same box, and the ratio is independent of units.

The distance of each sampled Pareto design to the exact front is reported too, twice: the gap
relative to the values of the front design that dominates it most (0.07: it would have to be 7 %
better in every objective at once before no front design dominates it; 0 on the front), and the
same additive epsilon indicator in the normalised space (as a fraction of the front's range).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.explore import optuna_adapter
from hwsim.explore.study import InputCache, StudySpec

log = logging.getLogger(__name__)

#: the reference point's margin beyond the exact front's nadir: a fraction of the front's range
REFERENCE_MARGIN = 0.1
#: ... or a fraction of the nadir's own value, where that is larger (see the module docstring)
RELATIVE_MARGIN = 0.25


# --------------------------------------------------------------------------------------------
# Pareto and hypervolume


def to_min(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Objective values with maximised columns negated, so that smaller is better."""
    v = np.array(values, dtype=float, copy=True).reshape(len(values), len(directions))
    for j, d in enumerate(directions):
        if d == "maximize":
            v[:, j] = -v[:, j]
    return v


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Which rows are non-dominated: no other row is at least as good in every objective and
    better in one. Duplicates of a front point are all kept; rows with a NaN or an infinity are
    never on the front; ``directions`` says which columns are maximised.

    Vectorised: one objective is a comparison with the minimum, two a sort and a running
    minimum, three a sort and a divide and conquer over it (both O(n log n); 10^6 points take
    well under a second), four or more a sort and block-wise dominance tests (O(n * front)).
    """
    v = to_min(values, directions)
    n = len(v)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    idx = np.flatnonzero(np.all(np.isfinite(v), axis=1))
    if idx.size == 0:
        return keep
    f = v[idx]
    d = f.shape[1]
    if d == 1:
        keep[idx] = f[:, 0] == f[:, 0].min()
    elif d == 2:
        keep[idx] = _front_2d(f)
    else:
        keep[idx] = _front_nd(f)
    return keep


def _survivors(f: np.ndarray) -> np.ndarray:
    """Indices of the rows that none of a few front points dominates.

    The minimiser of a weighted sum with positive weights is on the front; the rows such points
    dominate (most rows, unless the front is large) are dropped in one pass each, before the
    exact filter runs on the rest.
    """
    n, d = f.shape
    lo, hi = f.min(axis=0), f.max(axis=0)
    g = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
    rng = np.random.default_rng(0)
    weights = np.vstack([np.full(d, 1.0), np.eye(d) + 1e-3, rng.random((8, d)) + 0.05])
    pivots = f[np.unique(np.argmin(g @ weights.T, axis=0))]
    cols = np.ascontiguousarray(f.T)
    alive = np.arange(n)
    for p in pivots:
        c = cols[:, alive]
        geq = np.all(c >= p[:, None], axis=0)
        same = np.all(c == p[:, None], axis=0)
        alive = alive[~geq | same]
    return alive


def _front_2d(f: np.ndarray) -> np.ndarray:
    """Non-dominated rows of finite (n, 2) minimisation values.

    Sorted by (f0, f1), a row is dominated exactly when a row with a smaller f0 has f1 <= its
    f1 (the running minimum of f1 over the earlier groups of equal f0), or a row with the same
    f0 has a smaller f1 (the first of its group).
    """
    order = np.lexsort((f[:, 1], f[:, 0]))
    a, b = f[order, 0], f[order, 1]
    n = len(a)
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    new_group[1:] = a[1:] != a[:-1]
    start = np.flatnonzero(new_group)[np.cumsum(new_group) - 1]  # first index of each group
    run_min = np.minimum.accumulate(b)
    before = np.where(start > 0, run_min[np.maximum(start - 1, 0)], np.inf)
    ok = (b < before) & (b == b[start])
    out = np.empty(n, dtype=bool)
    out[order] = ok
    return out


#: rows of a block compared at once in :func:`_front_blocks` (a block x front boolean matrix)
_BLOCK = 512


def _front_nd(f: np.ndarray) -> np.ndarray:
    """Non-dominated rows of finite (n, d >= 3) minimisation values (3: :func:`_front_3d`)."""
    keep = np.zeros(len(f), dtype=bool)
    cand = _survivors(f)
    if f.shape[1] == 3:
        keep[cand] = _front_3d(f[cand])
    else:
        keep[cand] = _front_blocks(f[cand])
    return keep


def _front_3d(f: np.ndarray) -> np.ndarray:
    """Non-dominated rows of finite (n, 3) minimisation values, in O(n log n).

    Duplicate rows are merged first, then the distinct rows are sorted lexicographically: a row
    is dominated exactly when an earlier row has f1 <= its f1 and f2 <= its f2. That prefix
    query is answered by divide and conquer on the sorted positions (each pair of rows is
    split at exactly one level): at every level, in each block the rows of its first half, taken
    in order of f1, give a running minimum of f2 that every row of its second half reads at its
    own f1. A level is a few whole-array numpy operations (a segmented running minimum; the
    f1 order of the half blocks is derived from the level above by a stable split, no sort).
    """
    order = np.lexsort((f[:, 2], f[:, 1], f[:, 0]))
    s = f[order]
    new = np.ones(len(s), dtype=bool)
    new[1:] = np.any(s[1:] != s[:-1], axis=1)
    group = np.cumsum(new) - 1
    u = s[new]
    m = len(u)
    r2 = np.unique(u[:, 2], return_inverse=True)[1].reshape(-1).astype(np.int64)
    o = np.argsort(u[:, 1], kind="stable").astype(np.int64)  # ties: earlier position first
    best = np.full(m, m, dtype=np.int64)  # least f2 rank of an earlier row with f1 <= own
    big = m + 1
    idx = np.arange(m, dtype=np.int64)
    for k in range(max(0, int(m - 1).bit_length()) - 1, -1, -1):
        h = 1 << k
        # o: blocks of 2h consecutive positions, each block's rows in order of f1
        blk = o >> (k + 1)
        right = ((o >> k) & 1).astype(bool)
        key = np.where(right, m, r2[o]) - blk * big  # later blocks: smaller keys
        got = np.minimum.accumulate(key) + blk * big
        pr = o[right]
        best[pr] = np.minimum(best[pr], got[right])
        # each block split into its halves, keeping the order of f1
        start = blk * (2 * h)
        left_before = np.cumsum(~right) - ~right
        right_before = idx - left_before
        pos = np.where(right, start + h + right_before - right_before[start],
                       start + left_before - left_before[start])
        nxt = np.empty_like(o)
        nxt[pos] = o
        o = nxt
    ok = (best > r2)[group]
    out = np.empty(len(f), dtype=bool)
    out[order] = ok
    return out


def _front_blocks(f: np.ndarray) -> np.ndarray:
    """Non-dominated rows of finite (n, d) minimisation values by block-wise dominance tests.

    A row can only be dominated by a row that comes before it in lexicographic order, so after
    one sort the rows are taken in blocks: a block's row is kept when no row of the front found
    so far and no row of its own block dominates it (dominance is transitive, so testing
    against the front alone is enough for earlier rows). O(n * front) comparisons, vectorised.
    """
    n, d = f.shape
    cand = np.lexsort(f.T[::-1])
    front = np.empty((n, d))
    size = 0
    keep = np.zeros(n, dtype=bool)
    for s in range(0, n, _BLOCK):
        rows = cand[s:s + _BLOCK]
        x = f[rows]
        dom = _dominated_by(x, x)
        for c in range(0, size, 4 * _BLOCK):
            dom |= _dominated_by(front[c:min(size, c + 4 * _BLOCK)], x)
        ok = ~dom
        k = int(ok.sum())
        front[size:size + k] = x[ok]
        size += k
        keep[rows[ok]] = True
    return keep


def _dominated_by(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """For each row of ``x``: whether some row of ``a`` dominates it (minimisation)."""
    le = np.ones((len(a), len(x)), dtype=bool)
    lt = np.zeros((len(a), len(x)), dtype=bool)
    for j in range(x.shape[1]):
        aj, xj = a[:, j, None], x[None, :, j]
        le &= aj <= xj
        lt |= aj < xj
    return np.any(le & lt, axis=0)


@dataclass(frozen=True)
class Normaliser:
    """The affine map that sends the exact front's ideal to 0 and its nadir to 1, and the
    reference point of the hypervolume in that space (see the module docstring)."""

    ideal: np.ndarray
    nadir: np.ndarray
    directions: tuple[str, ...]
    reference: np.ndarray

    @classmethod
    def from_front(cls, front_values: np.ndarray, directions: Sequence[str]) -> Normaliser:
        v = to_min(front_values, directions)
        ideal, nadir = v.min(axis=0), v.max(axis=0)
        span = np.where(nadir - ideal > 0, nadir - ideal, np.where(ideal != 0, abs(ideal), 1.0))
        reference = 1.0 + np.maximum(REFERENCE_MARGIN, RELATIVE_MARGIN * np.abs(nadir) / span)
        return cls(ideal, ideal + span, tuple(directions), reference)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = to_min(values, self.directions)
        return (v - self.ideal) / (self.nadir - self.ideal)


def hypervolume(values: np.ndarray, norm: Normaliser) -> float:
    """Hypervolume of ``values`` (raw objective values) in the normalised space."""
    if len(values) == 0:
        return 0.0
    v = norm(np.asarray(values, dtype=float))
    v = v[np.all(np.isfinite(v), axis=1)]
    ref = norm.reference
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    if v.shape[1] == 1:
        return float(ref[0] - v.min())
    return optuna_adapter.compute_hypervolume(v, ref)


def hypervolume_curve(values: np.ndarray, feasible: np.ndarray, norm: Normaliser,
                      exact_hv: float, points: int = 60) -> pd.DataFrame:
    """Hypervolume ratio after the first n trials (trial order), at up to ``points`` values of n."""
    n = len(values)
    if n == 0 or exact_hv <= 0:
        return pd.DataFrame({"trials": [], "hypervolume_ratio": []})
    ns = sorted({int(x) for x in np.unique(np.linspace(1, n, min(points, n)).round())})
    rows = []
    for k in ns:
        sel = values[:k][feasible[:k]]
        rows.append((k, hypervolume(sel, norm) / exact_hv if len(sel) else 0.0))
    return pd.DataFrame(rows, columns=["trials", "hypervolume_ratio"])


def front_gaps(values: np.ndarray, front_values: np.ndarray,
               norm: Normaliser) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``values``: its distance to the front, (normalised, relative).

    Normalised: the additive epsilon indicator ``max(0, max_q min_j (p_j - q_j))`` over the front
    designs ``q``, in the space of ``norm``: how much ``p`` must improve in every objective at
    once, as a fraction of the front's range in each, before no front design dominates it.
    Relative: the same with each difference divided by ``|q_j|`` (an objective where ``q_j`` is
    0 is left out of that front design's minimum). Both 0 for a design on the front.
    """
    n = len(values)
    if n == 0 or len(front_values) == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    p_raw, q_raw = to_min(values, norm.directions), to_min(front_values, norm.directions)
    p, q = norm(values), norm(front_values)
    scale = np.abs(q_raw)
    gap = np.empty(n)
    rel = np.empty(n)
    step = max(1, 4_000_000 // max(1, q.size))
    for s in range(0, n, step):
        d = p[s:s + step, None, :] - q[None, :, :]
        gap[s:s + step] = np.max(np.min(d, axis=2), axis=1)
        dr = p_raw[s:s + step, None, :] - q_raw[None, :, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(scale[None] > 0, dr / np.where(scale[None] > 0, scale[None], 1.0),
                         np.where(dr > 0, np.inf, np.where(dr < 0, -np.inf, 0.0)))
        rel[s:s + step] = np.max(np.min(r, axis=2), axis=1)
    bad = ~np.all(np.isfinite(p_raw), axis=1)
    gap, rel = np.maximum(gap, 0.0), np.maximum(rel, 0.0)
    gap[bad] = np.nan
    rel[bad] = np.nan
    return gap, rel


# --------------------------------------------------------------------------------------------
# exhaustive evaluation


@dataclass
class ExhaustiveResult:
    table: pd.DataFrame      # every point: params, metrics, feasible, pareto
    seconds: float
    method: str              # "analytical_batch" or "analytical"

    @property
    def front(self) -> pd.DataFrame:
        return self.table[self.table["pareto"]]


def run_exhaustive(study: StudySpec) -> ExhaustiveResult:
    """Evaluate every point of the study's discrete space (fidelity: analytical)."""
    if not study.enumerable():
        raise InputError(
            f"exhaustive search needs a discrete space of at most {study.exhaustive_max_points:,} "
            f"points; this one has {study.not_enumerable()}", file=study.path, key="space")
    system = study.get_system()
    t0 = time.perf_counter()
    grid = pd.DataFrame(list(study.grid()))
    cache = InputCache(study)
    spec_params = [p.name for p in study.spec_params()]
    key_params = [p.name for p in study.key_params()]
    metric_frames = []
    method = "analytical_batch" if system.analytical_batch is not None else "analytical"
    groups = grid.groupby(spec_params, sort=False) if spec_params else [((), grid)]
    for _, part in groups:
        first = part.iloc[0].to_dict()
        base = cache.base(first)
        if system.analytical_batch is not None:
            arrays = {k: _array(part[k]) for k in key_params}
            try:
                res = system.analytical_batch(base, arrays)
            except (TypeError, ValueError) as exc:
                log.info("analytical_batch rejected the space (%s); evaluating point by point",
                         exc)
                method = "analytical"
                metric_frames.append(_loop(system, cache, part))
                continue
            metric_frames.append(pd.DataFrame(
                {k: np.broadcast_to(np.asarray(v, dtype=float), (len(part),))
                 for k, v in res.items()}, index=part.index))
        else:
            metric_frames.append(_loop(system, cache, part))
    metrics = pd.concat(metric_frames).loc[grid.index]
    table = pd.concat([grid, metrics], axis=1)
    table["feasible"] = _feasible(study, table)
    obj = table[study.objective_metrics].to_numpy(dtype=float)
    mask = np.zeros(len(table), dtype=bool)
    feas = table["feasible"].to_numpy()
    mask[feas] = pareto_mask(obj[feas], study.directions)
    table["pareto"] = mask
    seconds = time.perf_counter() - t0
    log.info("exhaustive: %d points in %.2f s (%s), %d on the front", len(table), seconds,
             method, int(mask.sum()))
    return ExhaustiveResult(table=table, seconds=seconds, method=method)


def _array(col: pd.Series) -> np.ndarray:
    vals = col.to_list()
    if all(isinstance(v, bool) for v in vals):
        return np.asarray(vals, dtype=bool)
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in vals):
        return np.asarray(vals, dtype=np.int64)
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in vals):
        return np.asarray(vals, dtype=float)
    return np.asarray(vals, dtype=object)


def _loop(system: Any, cache: InputCache, part: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for rec in part.to_dict("records"):
        try:
            m = system.evaluate(cache.inputs(rec), "analytical")
        except (InfeasibleDesign, InputError):
            m = {}
        rows.append(m)
    return pd.DataFrame(rows, index=part.index, dtype=float)


def _feasible(study: StudySpec, table: pd.DataFrame) -> np.ndarray:
    ok = np.ones(len(table), dtype=bool)
    for m in study.objective_metrics:
        ok &= np.isfinite(table[m].to_numpy(dtype=float)) if m in table else False
    for c in study.constraints:
        ok &= c.satisfied(table[c.metric].to_numpy(dtype=float) if c.metric in table
                          else np.full(len(table), np.nan))
    return ok


def exact_front_values(res: ExhaustiveResult, study: StudySpec) -> np.ndarray:
    return res.front[study.objective_metrics].to_numpy(dtype=float)


def compare(study: StudySpec, res: ExhaustiveResult, trial_values: np.ndarray,
            trial_feasible: np.ndarray) -> dict[str, Any]:
    """The sampler's result against the exact front: hypervolume ratio (several objectives) or
    the best value against the optimum (one objective), the curve over trials, and how far the
    sampler's Pareto designs are from the exact front (median and largest gap)."""
    front = exact_front_values(res, study)
    out: dict[str, Any] = {"points": len(res.table), "front_size": len(front),
                           "seconds": res.seconds, "method": res.method}
    if len(front) == 0:
        out["note"] = "no feasible point in the space"
        return out
    norm = Normaliser.from_front(front, study.directions)
    exact_hv = hypervolume(front, norm)
    sel = trial_values[trial_feasible] if len(trial_values) else trial_values
    hv = hypervolume(sel, norm) if len(sel) else 0.0
    out.update(exact_hypervolume=exact_hv, sampler_hypervolume=hv,
               hypervolume_ratio=hv / exact_hv if exact_hv > 0 else math.nan,
               curve=hypervolume_curve(trial_values, trial_feasible, norm, exact_hv),
               normaliser={"ideal": norm.ideal.tolist(), "nadir": norm.nadir.tolist(),
                           "reference": norm.reference.tolist()})
    if len(sel):
        mine = np.unique(sel[pareto_mask(sel, study.directions)], axis=0)
        gap, rel = front_gaps(mine, front, norm)
        out.update(front_gap_median=float(np.median(gap)), front_gap_max=float(gap.max()),
                   front_gap_rel_median=float(np.median(rel)),
                   front_gap_rel_max=float(rel.max()), sampler_front_size=len(mine))
    if len(study.objectives) == 1:
        d = study.directions[0]
        best = float(front[:, 0].min() if d == "minimize" else front[:, 0].max())
        got = (float(sel[:, 0].min() if d == "minimize" else sel[:, 0].max())
               if len(sel) else math.nan)
        out.update(exact_best=best, sampler_best=got)
    return out
