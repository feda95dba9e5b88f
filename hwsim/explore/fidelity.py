"""Multi-fidelity: screen with the analytical model, re-evaluate the best designs with the DES.

The Pareto set of the sweep (and, with ``neighbours = true``, every design one step away from a
Pareto design in one parameter) is evaluated with both evaluators. For each metric both report,
the relative difference ``(high - low) / |low|`` says where the closed form and the simulation
disagree; the report lists the largest disagreements and whether the Pareto set changes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.explore.exhaustive import pareto_mask
from hwsim.explore.study import InputCache, StudySpec

log = logging.getLogger(__name__)


def candidates(study: StudySpec, pareto: pd.DataFrame, max_points: int) -> list[dict[str, Any]]:
    """The Pareto designs first, then their one-step neighbours, without repeats."""
    names = [p.name for p in study.space]
    seen: set[str] = set()
    out: list[dict[str, Any]] = []

    def add(point: Mapping[str, Any], origin: str) -> None:
        key = json.dumps([_plain(point[n]) for n in names])
        if key in seen or len(out) >= max_points:
            return
        seen.add(key)
        out.append({**{n: _plain(point[n]) for n in names}, "origin": origin})

    records = pareto[names].to_dict("records")
    for rec in records:
        add(rec, "pareto")
    if study.refine is not None and study.refine.neighbours:
        for rec in records:
            for p in study.space:
                for v in p.neighbours(_plain(rec[p.name])):
                    add({**rec, p.name: v}, "neighbour")
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def refine(study: StudySpec, pareto: pd.DataFrame) -> pd.DataFrame:
    """Evaluate the candidates at the study's fidelity and at the refinement fidelity.

    Returns one row per design: parameters, ``origin`` (pareto or neighbour), each metric as
    ``<metric>@<fidelity>``, ``rel_diff:<metric>``, and the Pareto membership under each.
    """
    assert study.refine is not None
    system = study.get_system()
    cache = InputCache(study)
    low, high = study.fidelity, study.refine.fidelity
    if low == high:
        low = "analytical"
    rows = []
    t0 = time.perf_counter()
    for i, point in enumerate(candidates(study, pareto, study.refine.max_points)):
        row: dict[str, Any] = dict(point)
        params = {k: v for k, v in point.items() if k != "origin"}
        try:
            inputs = cache.inputs(params)
            m_low = system.evaluate(inputs, low, seed=study.seed)
            runs = []
            for s in range(study.refine.seeds):
                seed = study.seed * 1_000_003 + 10_000_000 + i * 101 + s
                runs.append(system.evaluate(inputs, high, seed=seed))
            m_high = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            row["reason"] = ""
        except (InfeasibleDesign, InputError) as exc:
            row["reason"] = str(exc)
            rows.append(row)
            continue
        for k, v in m_low.items():
            row[f"{k}@{low}"] = v
        for k, v in m_high.items():
            row[f"{k}@{high}"] = v
        for k in m_low:
            if k in m_high:
                a, b = m_low[k], m_high[k]
                row[f"rel_diff:{k}"] = ((b - a) / abs(a) if a not in (0.0,) and math.isfinite(a)
                                        else (0.0 if a == b else math.nan))
        rows.append(row)
    df = pd.DataFrame(rows)
    log.info("refine: %d designs at %s and %s in %.1f s", len(df), low, high,
             time.perf_counter() - t0)
    if df.empty:
        return df
    for fid in (low, high):
        cols = [f"{o.metric}@{fid}" for o in study.objectives]
        if all(c in df for c in cols):
            vals = df[cols].to_numpy(dtype=float)
            feas = np.all(np.isfinite(vals), axis=1) & _feasible(study, df, fid)
            mask = np.zeros(len(df), dtype=bool)
            mask[feas] = pareto_mask(vals[feas], study.directions)
            df[f"pareto@{fid}"] = mask
    df.attrs["fidelities"] = (low, high)
    return df


def _feasible(study: StudySpec, df: pd.DataFrame, fid: str) -> np.ndarray:
    ok = np.ones(len(df), dtype=bool)
    for c in study.constraints:
        col = f"{c.metric}@{fid}"
        if col not in df:
            continue
        ok &= c.satisfied(df[col].to_numpy(dtype=float))
    return ok


def summary(study: StudySpec, df: pd.DataFrame) -> pd.DataFrame:
    """Per metric: designs compared, median and largest |relative difference|, and where."""
    if df.empty:
        return pd.DataFrame()
    rows = []
    for col in [c for c in df.columns if c.startswith("rel_diff:")]:
        v = df[col].to_numpy(dtype=float)
        fin = np.isfinite(v)
        if not fin.any():
            continue
        i = int(np.nanargmax(np.where(fin, np.abs(v), -1)))
        rows.append({
            "metric": col.split(":", 1)[1],
            "designs": int(fin.sum()),
            "median_abs_rel_diff": float(np.median(np.abs(v[fin]))),
            "max_abs_rel_diff": float(abs(v[i])),
            "worst_design": ", ".join(f"{p.name}={df.iloc[i][p.name]}" for p in study.space),
        })
    return pd.DataFrame(rows)


def pareto_agreement(df: pd.DataFrame, fidelities: Sequence[str]) -> dict[str, int]:
    """How many designs are Pareto-optimal under each fidelity, and under both."""
    lo, hi = fidelities
    a, b = f"pareto@{lo}", f"pareto@{hi}"
    if a not in df or b not in df:
        return {}
    return {"pareto_low": int(df[a].sum()), "pareto_high": int(df[b].sum()),
            "pareto_both": int((df[a] & df[b]).sum())}
