"""Exhaustive search of a small discrete space, Pareto fronts and hypervolume.

Every point of the grid is evaluated with the system's vectorised ``analytical_batch`` when it has
one (one call per spec-file choice), else with ``analytical`` point by point. The batch
convention: ``analytical_batch(inputs, {"role.key": array}) -> {metric: array}``, with NaN in
every metric of an infeasible point.

Hypervolume is computed on objectives turned into minimisation and normalised by the exact
front: ``(f - ideal) / (nadir - ideal)``, with the reference point at 1.1 in every dimension. The
ratio of a sampler's hypervolume to the exact front's is then scale-free.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.explore.study import InputCache, StudySpec

log = logging.getLogger(__name__)

REFERENCE = 1.1


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
    """Which rows are non-dominated (duplicates of a front point are all kept)."""
    v = to_min(values, directions)
    n = len(v)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    finite = np.all(np.isfinite(v), axis=1)
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return keep
    order = idx[np.lexsort(v[idx].T[::-1])]
    front: list[int] = []
    fv = np.empty((0, v.shape[1]))
    for i in order:
        x = v[i]
        if fv.size:
            dominated = np.any(np.all(fv <= x, axis=1) & np.any(fv < x, axis=1))
            if dominated:
                continue
        front.append(i)
        fv = np.vstack([fv, x])
    keep[front] = True
    return keep


@dataclass(frozen=True)
class Normaliser:
    """The affine map that sends the exact front's ideal to 0 and its nadir to 1."""

    ideal: np.ndarray
    nadir: np.ndarray
    directions: tuple[str, ...]

    @classmethod
    def from_front(cls, front_values: np.ndarray, directions: Sequence[str]) -> Normaliser:
        v = to_min(front_values, directions)
        ideal, nadir = v.min(axis=0), v.max(axis=0)
        span = np.where(nadir - ideal > 0, nadir - ideal, np.where(ideal != 0, abs(ideal), 1.0))
        return cls(ideal, ideal + span, tuple(directions))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = to_min(values, self.directions)
        return (v - self.ideal) / (self.nadir - self.ideal)


def hypervolume(values: np.ndarray, norm: Normaliser) -> float:
    """Hypervolume of ``values`` (raw objective values) in the normalised space."""
    from optuna._hypervolume import compute_hypervolume

    if len(values) == 0:
        return 0.0
    v = norm(np.asarray(values, dtype=float))
    v = v[np.all(np.isfinite(v), axis=1)]
    ref = np.full(v.shape[1] if v.ndim == 2 and v.size else len(norm.directions), REFERENCE)
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    if v.shape[1] == 1:
        return float(ref[0] - v.min())
    return float(compute_hypervolume(v, ref))


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
            f"exhaustive search needs a discrete space of at most {study.exhaustive_max_points} "
            f"points; this one has {study.space_size():g}", file=study.path, key="space")
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
    the best value against the optimum (one objective), and the curve over trials."""
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
               normaliser={"ideal": norm.ideal.tolist(), "nadir": norm.nadir.tolist()})
    if len(study.objectives) == 1:
        d = study.directions[0]
        best = float(front[:, 0].min() if d == "minimize" else front[:, 0].max())
        got = (float(sel[:, 0].min() if d == "minimize" else sel[:, 0].max())
               if len(sel) else math.nan)
        out.update(exact_best=best, sampler_best=got)
    return out


def points_of(table: pd.DataFrame, names: Sequence[str]) -> list[Mapping[str, Any]]:
    return table[list(names)].to_dict("records")
