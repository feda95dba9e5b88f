"""What a report says first: the recommended designs, and why trials were pruned.

The recommended designs are taken from the feasible Pareto set: the best design for each
objective, and the *knee*, the design nearest the ideal point once every objective is scaled
to [0, 1] over the Pareto set (0 the best value seen, 1 the worst). Each is described by its
parameters and, where the system reports them, the mapping it uses (tensor and pipeline
parallelism, micro-batch, chips, servers), in words and numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsim.report.labels import label, readable, unit_of

if TYPE_CHECKING:
    from hwsim.explore.results import Outputs

#: mapping metrics said in words, in this order
MAPPING_WORDS = (("tp", "tensor parallel {}"), ("pp", "{} pipeline stages"),
                 ("micro_batch", "micro-batch {}"), ("chips", "{} chips"),
                 ("servers", "{} servers"))


@dataclass(frozen=True)
class Recommended:
    """One recommended design: why (``roles``), its trial and its row of the trials table."""

    roles: tuple[str, ...]
    trial: int
    row: dict[str, Any]


def fmt(v: Any) -> str:
    """A number as a report shows it (4 significant digits, whole numbers whole)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float | int | np.floating | np.integer):
        x = float(v)
        if not math.isfinite(x):
            return "n/a"
        if x == int(x) and abs(x) < 1e9:
            return f"{int(x):,}" if abs(x) >= 1e4 else str(int(x))
        return f"{x:.4g}"
    return str(v)


def knee_index(values: np.ndarray, directions: list[str]) -> int:
    """The row of ``values`` (a Pareto set, one column per objective) nearest the ideal point
    after scaling each objective to [0, 1], 0 best."""
    v = np.array(values, dtype=float)
    for j, d in enumerate(directions):
        if d == "maximize":
            v[:, j] = -v[:, j]
    lo, hi = v.min(axis=0), v.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return int(np.argmin(np.linalg.norm((v - lo) / span, axis=1)))


def recommended(o: Outputs) -> list[Recommended]:
    """Best per objective and the knee of the feasible Pareto set (one entry per design)."""
    par = o.pareto
    s = o.study
    if par is None or not len(par):
        return []
    objs = s.objective_metrics
    vals = par[objs].to_numpy(dtype=float)
    picks: dict[int, list[str]] = {}
    for j, (m, d) in enumerate(zip(objs, s.directions, strict=True)):
        col = vals[:, j]
        if not np.isfinite(col).any():
            continue
        i = int(np.nanargmin(col) if d == "minimize" else np.nanargmax(col))
        word = "lowest" if d == "minimize" else "highest"
        picks.setdefault(i, []).append(f"{word} {readable(m, unit_of(m))}")
    if len(objs) > 1 and len(par) > 2 and np.isfinite(vals).all():
        picks.setdefault(knee_index(vals, s.directions), []).append(
            "knee of the front, the best balance of the objectives")
    rows = par.to_dict("records")
    return [Recommended(tuple(why), int(rows[i]["trial"]), rows[i])
            for i, why in sorted(picks.items(), key=lambda kv: kv[0])]


def describe(o: Outputs, rec: Recommended, units: dict[str, str]) -> str:
    """One sentence: the design's objectives, parameters and mapping, with units."""
    r, s = rec.row, o.study
    objs = ", ".join(f"{readable(m, unit_of(m))} {fmt(r.get(m))}"
                     + (f" {unit_of(m)}" if unit_of(m) else "") for m in s.objective_metrics)
    params = []
    for p in s.space:
        u = unit_of(p.name, units.get(p.name, ""))
        params.append(f"{readable(p.name, u)} {fmt(r.get(p.name))}" + (f" {u}" if u else ""))
    mapping = [text.format(fmt(r[k])) for k, text in MAPPING_WORDS
               if k in r and r[k] is not None and not (isinstance(r[k], float)
                                                       and math.isnan(r[k]))]
    out = f"trial {rec.trial}: {objs}; {', '.join(params)}"
    if mapping:
        out += f"; runs as {', '.join(mapping)}"
    return out


def _shape(reason: str) -> str:
    """A reason with its numbers replaced by #, so that reasons of one kind group together."""
    return re.sub(r"(?<![A-Za-z_])-?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "#", reason)


def prune_reasons(o: Outputs) -> list[list[Any]]:
    """Rows (reason, trials, share of the pruned, an example) of the pruned trials, commonest
    first; then one row per constraint that completed trials break."""
    t = o.trials
    rows: list[list[Any]] = []
    if t is None or t.empty:
        return rows
    pruned = t[t["state"] == "PRUNED"]
    if len(pruned):
        reasons = pruned["reason"].fillna("").astype(str).replace("", "(no reason recorded)")
        shapes = reasons.map(_shape)
        for shape, n in shapes.value_counts().items():
            example = reasons[shapes == shape].iloc[0]
            rows.append([f"pruned: {shape}", int(n), f"{n / len(pruned):.0%}", example])
    from hwsim.explore.results import constraint_labels

    done = t[t["state"] == "COMPLETE"]
    for lab in constraint_labels(o.study):
        col = f"violation:{lab}"
        if col in done and len(done):
            n = int((done[col].to_numpy(dtype=float) > 0).sum())
            if n:
                rows.append([f"completed, breaks {lab}", n, f"{n / len(done):.0%}", ""])
    return rows


def axis_label(name: str, units: dict[str, str]) -> str:
    """The label of a parameter or metric on a figure or in a table header."""
    return label(name, units.get(name, ""))
