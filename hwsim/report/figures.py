"""Study figures with matplotlib, each written as PNG and SVG.

- ``pareto_front``: the two first objectives, every trial, the Pareto set and the exact front;
- ``pareto_front_3d``: the same in 3-D when a study has three objectives or more;
- ``parallel_coordinates``: parameters and objectives of every feasible trial;
- ``importances``: fANOVA importance of each parameter for each objective;
- ``objective_vs_params``: each objective against its most important parameters;
- ``hypervolume``: the hypervolume ratio against the exact front over the trials;
- ``fidelity``: the refinement fidelity against the screening one, per objective.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hwsim.explore.results import importance_method

if TYPE_CHECKING:
    from hwsim.explore.results import Outputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    caption: str
    png: Path
    svg: Path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "figure.dpi": 100, "savefig.dpi": 110,
                         "axes.grid": True, "grid.alpha": 0.3, "font.size": 9,
                         "svg.hashsalt": "hwsim"})
    return plt


def _save(fig: Any, out_dir: Path, name: str, title: str, caption: str) -> Figure:
    plt = _plt()
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    png, svg = fig_dir / f"{name}.png", fig_dir / f"{name}.svg"
    fig.savefig(png, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return Figure(name, title, caption, png, svg)


def _label(name: str, units: dict[str, str]) -> str:
    from hwsim.report.summary import axis_label

    return axis_label(name, units)


def _param_kind(o: Outputs, name: str) -> str:
    """``int``, ``float``, ``categorical`` or ``spec`` for a parameter; ``metric`` otherwise."""
    for p in o.study.space:
        if p.name == name:
            return p.type
    return "metric"


def _discrete_ticks(ax: Any, o: Outputs, name: str, values: pd.Series, axis: str = "x") -> bool:
    """Ticks at the values an integer or numeric categorical parameter takes (at most 6 of
    them; whole numbers for more integers); True when it set them."""
    from matplotlib.ticker import MaxNLocator, NullFormatter

    kind = _param_kind(o, name)
    if kind not in ("int", "categorical"):
        return False
    a = ax.xaxis if axis == "x" else ax.yaxis
    vals = sorted({(int(v) if kind == "int" else float(v)) for v in values.dropna()})
    if 0 < len(vals) <= 6:
        a.set_ticks(vals)
        a.set_ticklabels([f"{v:g}" for v in vals])
        a.set_minor_formatter(NullFormatter())
    elif kind == "categorical":
        return False
    else:
        a.set_major_locator(MaxNLocator(integer=True, nbins=6))
    return True


def _choices(o: Outputs, name: str) -> tuple[Any, ...] | None:
    """The declared choices of a categorical (or spec) parameter; None for any other."""
    for p in o.study.space:
        if p.name == name and p.type in ("categorical", "spec") and p.choices:
            return tuple(p.choices)
    return None


def _constraint_lines(ax: Any, o: Outputs, x: str, y: str) -> None:
    """A dash-dot line at each constraint bound (an SLO, a power cap) on either axis' metric."""
    for c in o.study.constraints:
        if c.metric not in (x, y):
            continue
        horizontal = c.metric == y
        lim = ax.get_ylim() if horizontal else ax.get_xlim()
        line = ax.axhline if horizontal else ax.axvline
        for bound, op in ((c.max, "<="), (c.min, ">=")):
            if bound is None:
                continue
            inside = min(lim) <= bound <= max(lim)
            line(bound, color="tab:purple", ls="-.", lw=1,
                 label=f"constraint {readable_name(c.metric)} {op} {bound:g}"
                 + ("" if inside else " (beyond the plotted range)"))
        (ax.set_ylim if horizontal else ax.set_xlim)(lim)  # a far bound does not squash it


def readable_name(name: str) -> str:
    """A metric or parameter in words, without its unit."""
    from hwsim.report.labels import readable, unit_of

    return readable(name, unit_of(name))


def _is_num(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _codes(s: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    if _is_num(s):
        return s.to_numpy(dtype=float), None
    cats = list(dict.fromkeys(str(x) for x in s))
    return np.array([cats.index(str(x)) for x in s], dtype=float), cats


def all_figures(o: Outputs, units: dict[str, str]) -> list[Figure]:
    """Every figure that the study's data supports."""
    out: list[Figure] = []
    makers = (pareto_2d, pareto_3d, parallel_coordinates, importances, objective_vs_params,
              hypervolume, fidelity)
    for make in makers:
        try:
            fig = make(o, units)
        except Exception as exc:
            log.warning("figure %s failed: %s: %s", make.__name__, type(exc).__name__, exc)
            continue
        if fig is not None:
            out.append(fig)
    return out


def _done(o: Outputs) -> pd.DataFrame:
    t = o.trials
    return t[t["state"] == "COMPLETE"] if not t.empty else t


def pareto_2d(o: Outputs, units: dict[str, str]) -> Figure | None:
    plt = _plt()
    objs = o.study.objective_metrics
    done = _done(o)
    if done.empty:
        return None
    if len(objs) == 1:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        d = done.sort_values("trial")
        ax.scatter(d["trial"], d[objs[0]], s=10, c=np.where(d["feasible"], "tab:blue",
                                                           "lightgray"), label="trials")
        vals = d[objs[0]].where(d["feasible"]).to_numpy(dtype=float)
        best = (np.fmin.accumulate(vals) if o.study.directions[0] == "minimize"
                else np.fmax.accumulate(vals))
        ax.plot(d["trial"], best, color="tab:red", label="best so far")
        if o.comparison and "exact_best" in o.comparison:
            ax.axhline(o.comparison["exact_best"], color="black", ls="--", lw=1,
                       label="exact optimum")
        ax.set_xlabel("trial")
        ax.set_ylabel(_label(objs[0], units))
        ax.legend(loc="best")
        return _save(fig, o.out_dir, "pareto_front", "Objective over trials",
                     "Each trial's objective value (grey: violates a constraint), the best so "
                     "far, and the exact optimum when the space was enumerated.")
    x, y = objs[0], objs[1]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    feas = done[done["feasible"]]
    infeas = done[~done["feasible"]]
    if o.exhaustive is not None:
        t = o.exhaustive.table
        ft = t[t["feasible"]]
        if len(ft) > 20000:
            ft = ft.sample(20000, random_state=0)
        ax.scatter(ft[x], ft[y], s=3, color="0.85", label="all designs (exhaustive)",
                   rasterized=True)
    ax.scatter(infeas[x], infeas[y], s=10, marker="x", color="tab:orange", alpha=0.6,
               label="violates a constraint")
    ax.scatter(feas[x], feas[y], s=12, color="tab:blue", alpha=0.6, label="feasible trials")
    par = o.pareto.sort_values(x)
    ax.plot(par[x], par[y], "o-", color="tab:red", ms=4, lw=1, label="Pareto set (trials)")
    if o.exhaustive is not None:
        ex = o.exhaustive.front.sort_values(x)
        ax.plot(ex[x], ex[y], "--", color="black", lw=1, label="exact front")
    base = (o.baselines[np.isfinite(o.baselines[x]) & np.isfinite(o.baselines[y])]
            if o.baselines is not None else None)
    if base is not None and len(base):
        ax.scatter(base[x], base[y], s=60, marker="*", color="tab:green", zorder=5,
                   label="baselines")
        for r in base.to_dict("records"):
            ax.annotate(r["label"], (r[x], r[y]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xlabel(_label(x, units))
    ax.set_ylabel(_label(y, units))
    shown = [done] + ([o.exhaustive.table[o.exhaustive.table["feasible"]]]
                      if o.exhaustive is not None else []) + (
        [base] if base is not None and len(base) else [])
    _maybe_log(ax, pd.concat([d[x] for d in shown]), "x", 10.0)
    _maybe_log(ax, pd.concat([d[y] for d in shown]), "y", 10.0)
    ax.margins(0.08)
    _constraint_lines(ax, o, x, y)
    # beside the axes, so that no point (a baseline's label at the edge) hides behind it
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, o.out_dir, "pareto_front", "Pareto front",
                 f"{x} against {y}: every trial, the sampler's Pareto set, when the space "
                 "was enumerated the exact front, and the study's baselines (other designs, "
                 "possibly of other systems, on the same metrics).")


def _maybe_log(ax: Any, s: pd.Series, axis: str, ratio: float = 10.0) -> None:
    """Log scale for positive values spanning more than ``ratio``; labels on the decades only
    (minor ticks unlabelled, so that labels never overlap)."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    v = s.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if len(v) and v.min() > 0 and v.max() / v.min() > ratio:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        a = ax.xaxis if axis == "x" else ax.yaxis
        a.set_major_locator(LogLocator(base=10.0, numticks=8))
        a.set_major_formatter(LogFormatterSciNotation(base=10.0))
        a.set_minor_formatter(NullFormatter())


def pareto_3d(o: Outputs, units: dict[str, str]) -> Figure | None:
    objs = o.study.objective_metrics
    if len(objs) < 3:
        return None
    plt = _plt()
    done = _done(o)
    feas = done[done["feasible"]]
    fig = plt.figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot(projection="3d")
    ax.scatter(feas[objs[0]], feas[objs[1]], feas[objs[2]], s=8, color="tab:blue", alpha=0.4,
               label="feasible trials")
    p = o.pareto
    ax.scatter(p[objs[0]], p[objs[1]], p[objs[2]], s=20, color="tab:red", label="Pareto set")
    ax.set_xlabel(_label(objs[0], units))
    ax.set_ylabel(_label(objs[1], units))
    ax.set_zlabel(_label(objs[2], units))
    ax.legend(loc="best", fontsize=8)
    return _save(fig, o.out_dir, "pareto_front_3d", "Pareto front (3-D)",
                 "The first three objectives of every feasible trial and the Pareto set.")


def parallel_coordinates(o: Outputs, units: dict[str, str]) -> Figure | None:
    plt = _plt()
    done = _done(o)
    done = done[done["feasible"]] if not done.empty else done
    cols = [p.name for p in o.study.space] + o.study.objective_metrics
    if len(done) < 2 or len(cols) < 2:
        return None
    mats, marks = [], []
    for c in cols:
        v, cats = _codes(done[c])
        choices = _choices(o, c)
        if choices is not None:  # categorical: each choice at its place, in declared order
            index = {str(ch): k for k, ch in enumerate(choices)}
            v = np.array([index.get(str(x), np.nan) for x in done[c]], dtype=float)
            cats = [str(ch) for ch in choices]
        lo, hi = np.nanmin(v), np.nanmax(v)
        if cats is not None:
            lo, hi = 0.0, float(len(cats) - 1)
        log_axis = bool(cats is None and lo > 0 and hi / lo > 10)
        if log_axis:
            v, lo, hi = np.log10(v), np.log10(lo), np.log10(hi)
        span = hi - lo if hi > lo else 1.0
        mats.append((v - lo) / span)
        if cats is not None:  # each category at its place
            marks.append([((k - lo) / span, name) for k, name in enumerate(cats)][:12])
        elif _param_kind(o, c) == "int" and len(np.unique(v)) <= 10:  # each whole value
            marks.append([((u - lo) / span, str(round(float(10**u if log_axis else u))))
                          for u in np.unique(v)])
        else:  # the ends and the middle of the range
            vals = [lo, (lo + hi) / 2, hi] if hi > lo else [lo]
            marks.append([((u - lo) / span, _fmt(10**u if log_axis else u)) for u in vals])
    m = np.vstack(mats).T
    color_by = done[o.study.objective_metrics[0]].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.5 * len(cols)), 4.4))
    cmap = plt.get_cmap("viridis")
    lo, hi = np.nanmin(color_by), np.nanmax(color_by)
    norm = (color_by - lo) / (hi - lo if hi > lo else 1.0)
    if o.study.directions[0] == "maximize":
        norm = 1 - norm
    xs = np.arange(len(cols))
    order = np.argsort(-norm)
    for i in order:
        ax.plot(xs, m[i], color=cmap(norm[i]), alpha=0.35, lw=0.8)
    par = done["pareto"].to_numpy(dtype=bool)
    for i in np.flatnonzero(par):
        ax.plot(xs, m[i], color="tab:red", alpha=0.9, lw=1.4)
    for i, axis_marks in enumerate(marks):
        ax.axvline(i, color="0.5", lw=0.6, zorder=0)
        for pos, text in axis_marks:
            ax.text(i + 0.04, pos, text, fontsize=6, va="center", ha="left",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.7})
    ax.set_xticks(xs)
    ax.set_xticklabels([_label(c, units) for c in cols], rotation=20, ha="right", fontsize=7)
    ax.set_yticks([])
    ax.grid(False)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(-0.2, len(cols) - 0.5)
    return _save(fig, o.out_dir, "parallel_coordinates", "Parallel coordinates",
                 "Every feasible trial, each axis scaled to its range and marked with its "
                 "values (each category, each whole value, or the ends and middle); "
                 f"colour: {o.study.objective_metrics[0]} (yellow is better); red: the Pareto "
                 "set.")


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def importances(o: Outputs, units: dict[str, str]) -> Figure | None:
    if not o.importances:
        return None
    plt = _plt()
    metrics = list(o.importances)
    params = [p.name for p in o.study.space]
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(params) * max(1, len(metrics)) ** 0.5))
    h = 0.8 / len(metrics)
    ys = np.arange(len(params))
    for j, m in enumerate(metrics):
        vals = [o.importances[m].get(p, 0.0) for p in params]
        ax.barh(ys + j * h, vals, height=h, label=m)
    ax.set_yticks(ys + 0.4 - h / 2)
    ax.set_yticklabels([_label(p, units) for p in params])
    ax.invert_yaxis()
    ax.set_xlabel(f"importance ({importance_method()}, normalised to sum 1)")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, o.out_dir, "importances", "Parameter importances",
                 "The share of each objective's variance over the completed trials that each "
                 f"parameter explains (optuna.importance, {importance_method()}).")


def top_params(o: Outputs, metric: str, k: int = 3) -> list[str]:
    imp = o.importances.get(metric)
    params = [p.name for p in o.study.space]
    if not imp:
        return params[:k]
    return sorted(params, key=lambda p: -imp.get(p, 0.0))[:k]


def objective_vs_params(o: Outputs, units: dict[str, str]) -> Figure | None:
    done = _done(o)
    if done.empty or not o.study.space:
        return None
    plt = _plt()
    objs = o.study.objective_metrics
    k = min(3, len(o.study.space))
    fig, axes = plt.subplots(len(objs), k, figsize=(3.2 * k, 2.7 * len(objs)), squeeze=False)
    for i, m in enumerate(objs):
        for j, p in enumerate(top_params(o, m, k)):
            ax = axes[i][j]
            x, cats = _codes(done[p])
            choices = _choices(o, p)
            if choices is not None:  # evenly spaced, in declared order, numbers or not
                index = {str(ch): k for k, ch in enumerate(choices)}
                x = np.array([index.get(str(v), np.nan) for v in done[p]], dtype=float)
                cats = [str(ch) for ch in choices]
            jitter = 0.0 if cats is None else (np.random.default_rng(0).random(len(x)) - 0.5) * 0.2
            ax.scatter(x + jitter, done[m], s=8, alpha=0.5,
                       c=np.where(done["feasible"], "tab:blue", "tab:orange"))
            par = done["pareto"].to_numpy(dtype=bool)
            ax.scatter((x + jitter)[par], done[m][par], s=14, color="tab:red")
            if cats is not None:
                ax.set_xticks(range(len(cats)))
                ax.set_xticklabels(cats, rotation=20, ha="right", fontsize=7)
            else:
                _maybe_log(ax, done[p], "x")
                _discrete_ticks(ax, o, p, done[p], "x")
            ax.set_xlabel(_label(p, units), fontsize=8)
            if j == 0:
                ax.set_ylabel(_label(m, units), fontsize=8)
            _maybe_log(ax, done[m], "y")
    fig.tight_layout()
    return _save(fig, o.out_dir, "objective_vs_params", "Objectives against their most "
                 "important parameters",
                 "Each row an objective, each column one of its most important parameters "
                 "(blue: feasible, orange: violates a constraint, red: Pareto set).")


def hypervolume(o: Outputs, units: dict[str, str]) -> Figure | None:
    c = o.comparison
    if not c or "curve" not in c or c["curve"].empty or len(o.study.objectives) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    cur = c["curve"]
    ax.plot(cur["trials"], cur["hypervolume_ratio"], color="tab:blue",
            label=f"{o.study.sampler} sampler")
    ax.axhline(1.0, color="black", ls="--", lw=1, label="exact front (exhaustive)")
    ax.axhline(0.95, color="0.5", ls=":", lw=1, label="95 %")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("completed trials, in trial order")
    ax.set_ylabel("hypervolume / exact front's")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, o.out_dir, "hypervolume", "Hypervolume against the exact front",
                 f"After {int(cur['trials'].iloc[-1])} completed trials the sampler's feasible "
                 f"points reach {c['hypervolume_ratio']:.1%} of the hypervolume of the exact front "
                 f"({c['points']} designs enumerated).")


def fidelity(o: Outputs, units: dict[str, str]) -> Figure | None:
    df = o.refine
    if df is None or df.empty or "fidelities" not in df.attrs:
        return None
    lo, hi = df.attrs["fidelities"]
    objs = [m for m in o.study.objective_metrics if f"{m}@{lo}" in df and f"{m}@{hi}" in df]
    if not objs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(objs), figsize=(3.6 * len(objs), 3.4), squeeze=False)
    for ax, m in zip(axes[0], objs, strict=True):
        a, b = df[f"{m}@{lo}"].to_numpy(dtype=float), df[f"{m}@{hi}"].to_numpy(dtype=float)
        is_p = (df["origin"] == "pareto").to_numpy()
        ax.scatter(a[~is_p], b[~is_p], s=12, color="tab:blue", label="neighbours")
        ax.scatter(a[is_p], b[is_p], s=16, color="tab:red", label="Pareto set")
        fin = np.isfinite(a) & np.isfinite(b)
        if fin.any():
            lim = [min(a[fin].min(), b[fin].min()), max(a[fin].max(), b[fin].max())]
            ax.plot(lim, lim, color="black", lw=0.8, ls="--")
        ax.set_xlabel(f"{_label(m, units)} ({lo})", fontsize=8)
        ax.set_ylabel(f"{_label(m, units)} ({hi})", fontsize=8)
        ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return _save(fig, o.out_dir, "fidelity", f"{hi} against {lo}",
                 "The Pareto set and its neighbours evaluated with both evaluators; the dashed "
                 "line is agreement.")
