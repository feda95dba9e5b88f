"""A study's outputs: trial tables, the Pareto set, the exhaustive comparison, ``meta.json``.

``write_outputs`` writes everything under ``results/<study>/`` from the Optuna study (which holds
the spec it was created from, so a report needs no study file):

- ``trials.parquet``, ``trials.csv``: one row per trial (parameters, every metric, constraint
  violations, state, feasibility, Pareto membership, duration, seed, reason);
- ``pareto.csv``: the feasible non-dominated trials (with their distance to the exact front,
  ``front_gap`` and ``front_gap_rel``, when the space was enumerated);
- ``exhaustive.parquet``, ``exact_pareto.csv``, ``hypervolume.csv`` when the space is enumerable;
- ``refine.csv`` with the multi-fidelity comparison when the study asks for it;
- ``meta.json``; and the figures and reports of :mod:`hwsim.report`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwsim.explore import exhaustive as exh
from hwsim.explore import fidelity as fid
from hwsim.explore.runner import feasible
from hwsim.explore.storage import mask_url
from hwsim.explore.study import StudySpec, study_from_dict

log = logging.getLogger(__name__)

BASE_COLUMNS = ("trial", "state", "feasible", "pareto")
TAIL_COLUMNS = ("duration_s", "eval_s", "seed", "fidelity", "worker", "retry_of", "reused_from",
                "reason")


# --------------------------------------------------------------------------------------------
# tables


def trials_frame(study: StudySpec, ostudy: Any) -> pd.DataFrame:
    """Every trial of the study (surplus trials, which never ran, left out)."""
    rows = []
    for t in ostudy.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        ua = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        for p in study.space:
            row[p.name] = t.params.get(p.name)
        metrics = ua.get("metrics") or {}
        for k, v in metrics.items():
            row[k] = math.nan if v is None else float(v)
        viol = ua.get("constraints") or []
        labels = constraint_labels(study)
        for label, v in zip(labels, viol, strict=False):
            if t.state.name == "COMPLETE":
                row[f"violation:{label}"] = float(v)
        dur = None
        if t.datetime_start is not None and t.datetime_complete is not None:
            dur = (t.datetime_complete - t.datetime_start).total_seconds()
        run = ua.get("run") or {}
        row.update(
            duration_s=dur, eval_s=run.get("eval_s"), seed=run.get("seed"),
            fidelity=run.get("fidelity", study.fidelity), worker=ua.get("worker", ""),
            retry_of=t.system_attrs.get("failed_trial"), reused_from=ua.get("reused_from"),
            reason=ua.get("reason", "") or "",
            _feasible=feasible(t) and t.state.name == "COMPLETE",
        )
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=[*BASE_COLUMNS, *(p.name for p in study.space),
                                     *study.objective_metrics, *TAIL_COLUMNS])
    df = df.sort_values("trial").reset_index(drop=True)
    for m in study.objective_metrics:
        if m not in df:
            df[m] = math.nan
    df["feasible"] = df.pop("_feasible")
    obj = df[study.objective_metrics].to_numpy(dtype=float)
    mask = np.zeros(len(df), dtype=bool)
    feas = df["feasible"].to_numpy(dtype=bool) & np.all(np.isfinite(obj), axis=1)
    mask[feas] = exh.pareto_mask(obj[feas], study.directions)
    df["pareto"] = mask
    params = [p.name for p in study.space]
    metric_cols = [c for c in df.columns if c not in (*BASE_COLUMNS, *params, *TAIL_COLUMNS)
                   and not c.startswith("violation:")]
    objectives = [m for m in study.objective_metrics]
    others = [c for c in metric_cols if c not in objectives]
    viol = [c for c in df.columns if c.startswith("violation:")]
    order = [*BASE_COLUMNS, *params, *objectives, *others, *viol, *TAIL_COLUMNS]
    return df[[c for c in order if c in df.columns]]


def constraint_labels(study: StudySpec) -> list[str]:
    out = []
    for c in study.constraints:
        if c.max is not None:
            out.append(f"{c.metric}<={c.max:g}")
        if c.min is not None:
            out.append(f"{c.metric}>={c.min:g}")
    return out


def pareto_frame(study: StudySpec, trials: pd.DataFrame) -> pd.DataFrame:
    if trials.empty:
        return trials
    p = trials[trials["pareto"]]
    # a sampler may propose a design twice: list each design once (its first trial)
    p = p.drop_duplicates(subset=[q.name for q in study.space], keep="first")
    return p.sort_values(study.objective_metrics[0]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# provenance


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("hwsim", "optuna", "numpy", "pandas", "scipy", "simpy", "matplotlib",
                "pyarrow", "sqlalchemy", "psycopg2-binary", "amaranth"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> dict[str, Any]:
    """The git commit of the hwsim checkout (and whether it has uncommitted changes)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip() != ""
        return {"commit": head, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


# --------------------------------------------------------------------------------------------
# everything


@dataclass
class Outputs:
    """What a report is made of (also returned to the CLI for its summary)."""

    study: StudySpec
    study_name: str
    storage: str
    out_dir: Path
    trials: pd.DataFrame
    pareto: pd.DataFrame
    counts: dict[str, int]
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    exhaustive: exh.ExhaustiveResult | None = None
    refine: pd.DataFrame | None = None
    refine_note: str = ""
    baselines: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def spec_of(ostudy: Any, fallback: StudySpec | None = None) -> StudySpec:
    """The study spec stored with an Optuna study (``hwsim report`` needs no study file)."""
    from hwsim.explore.runner import SPEC_ATTR

    if fallback is not None:
        return fallback
    d = ostudy.user_attrs.get(SPEC_ATTR)
    if not d:
        from hwsim.errors import InputError

        raise InputError(f"study {ostudy.study_name!r} was not created by hwsim sweep "
                         "(no stored study spec)")
    return _spec_from_json(d)


def _spec_from_json(d: dict[str, Any]) -> StudySpec:
    raw: dict[str, Any] = {
        "name": d["name"], "system": d["system"], "fidelity": d["fidelity"],
        "trials": d["trials"], "seed": d["seed"], "specs": d["spec_args"],
        "set": dict(d["fixed"]),
        "sampler": {"name": d["sampler"], **d.get("sampler_options", {})},
        "space": {k: {kk: vv for kk, vv in v.items() if kk != "type" or vv in ("int", "float")}
                  if v["type"] != "spec" else {"specs": v["choices"]}
                  for k, v in d["space"].items()},
        "objectives": d["objectives"],
        "constraints": [{k: v for k, v in c.items() if v is not None} for c in d["constraints"]],
        "exhaustive": {"enabled": d.get("exhaustive", "auto"),
                       "max_points": d.get("exhaustive_max_points", 1_000_000)},
    }
    if d.get("refine"):
        raw["refine"] = d["refine"]
    if d.get("rtl_check"):
        raw["rtl_check"] = d["rtl_check"]
    if d.get("description"):
        raw["description"] = d["description"]
    if d.get("baselines"):
        raw["baselines"] = [{"label": b["label"], "system": b["system"],
                             "specs": b["spec_args"], "set": dict(b["fixed"])}
                            for b in d["baselines"]]
    return study_from_dict(raw, d.get("path", "<stored study>"), validate=False)


def baselines_frame(study: StudySpec) -> pd.DataFrame | None:
    """The study's baselines evaluated on its objectives and constraints (one row each):
    ``label``, ``system``, the metrics, ``feasible`` (meets every constraint) and ``reason``
    (why a baseline could not run, or which constraint it breaks)."""
    if not study.baselines:
        return None
    from hwsim.errors import HwsimError

    metrics = list(dict.fromkeys(study.objective_metrics
                                 + [c.metric for c in study.constraints]))
    rows = []
    for b in study.baselines:
        row: dict[str, Any] = {"label": b.label, "system": b.system}
        try:
            m = b.evaluate()
            reason = ""
        except HwsimError as exc:
            m, reason = {}, str(exc)
        for k in metrics:
            row[k] = float(m.get(k, np.nan))
        broken = [c.label() for c in study.constraints
                  if c.metric in m and not bool(c.satisfied(np.array([m[c.metric]]))[0])]
        row["feasible"] = not reason and not broken and all(
            np.isfinite(row[k]) for k in study.objective_metrics)
        row["reason"] = reason or ("breaks " + "; ".join(broken) if broken else "")
        rows.append(row)
    return pd.DataFrame(rows)


def best_against_baselines(study: StudySpec, trials: pd.DataFrame,
                           baselines: pd.DataFrame | None) -> list[dict[str, Any]]:
    """For each baseline, the study's best feasible trial on the first objective against it."""
    if baselines is None or trials.empty:
        return []
    metric, direction = study.objective_metrics[0], study.directions[0]
    done = trials[(trials["state"] == "COMPLETE") & trials["feasible"]]
    vals = done[metric].to_numpy(dtype=float) if len(done) else np.empty(0)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return []
    best = float(vals.min() if direction == "minimize" else vals.max())
    out = []
    for r in baselines.to_dict("records"):
        ref = r.get(metric, np.nan)
        ratio = (ref / best if direction == "minimize" else best / ref) if (
            np.isfinite(ref) and ref and best) else np.nan
        out.append({"label": r["label"], "system": r["system"], "metric": metric,
                    "baseline": ref, "best_trial": best, "advantage": ratio,
                    "baseline_feasible": bool(r["feasible"]), "reason": r["reason"]})
    return out


def evaluation_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Completed and pruned trials, how many of them proposed a design evaluated before and
    reused its stored result (``reused_from``), and how many evaluations that leaves."""
    if trials.empty:
        return {"finished": 0, "reused": 0, "evaluations": 0}
    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    reused = int(done["reused_from"].notna().sum()) if "reused_from" in done else 0
    return {"finished": len(done), "reused": reused, "evaluations": len(done) - reused}


def state_counts(trials: pd.DataFrame) -> dict[str, int]:
    if trials.empty:
        return {}
    return {str(k): int(v) for k, v in trials["state"].value_counts().items()}


def importances(study: StudySpec, ostudy: Any) -> dict[str, dict[str, float]]:
    """Importance of each parameter for each objective (:func:`importance_method`), empty when
    there are too few completed trials."""
    import warnings

    import optuna
    from optuna.trial import TrialState

    complete = [t for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 4 or len(study.space) < 1:
        return {}
    out: dict[str, dict[str, float]] = {}
    method = importance_method()
    for i, o in enumerate(study.objectives):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(
                    ostudy, evaluator=_evaluator(method),
                    target=lambda t, i=i: t.values[i],
                )
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.info("importances of %s not available: %s", o.metric, exc)
            continue
        out[o.metric] = {k: float(v) for k, v in imp.items()}
    return out


def importance_method() -> str:
    """fANOVA (Optuna's default, needs scikit-learn) when available, else PED-ANOVA."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "PED-ANOVA"
    return "fANOVA"


def _evaluator(method: str) -> Any:
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if method == "fANOVA":
        return FanovaImportanceEvaluator(seed=0)
    return PedAnovaImportanceEvaluator()


def _exhaustive_cached(study: StudySpec, out_dir: Path) -> exh.ExhaustiveResult | None:
    want = study.exhaustive
    if want is False or not study.enumerable():
        return None
    system = study.get_system()
    if want == "auto" and system.analytical_batch is None and study.space_size() > 20_000:
        log.info("exhaustive skipped: %g points and no analytical_batch", study.space_size())
        return None
    path = out_dir / "exhaustive.parquet"
    key_path = out_dir / "exhaustive.key"
    key = study.fingerprint()
    if path.is_file() and key_path.is_file() and key_path.read_text().strip() == key:
        table = pd.read_parquet(path)
        meta = json.loads((out_dir / "exhaustive.json").read_text()) if (
            out_dir / "exhaustive.json").is_file() else {}
        return exh.ExhaustiveResult(table=table, seconds=float(meta.get("seconds", math.nan)),
                                    method=str(meta.get("method", "")))
    res = exh.run_exhaustive(study)
    res.table.to_parquet(path, index=False)
    (out_dir / "exhaustive.json").write_text(json.dumps(
        {"seconds": res.seconds, "method": res.method, "points": len(res.table)}))
    key_path.write_text(key + "\n")
    return res


def _refine_cached(study: StudySpec, pareto: pd.DataFrame, out_dir: Path,
                   run: bool) -> tuple[pd.DataFrame | None, str]:
    if study.refine is None or pareto.empty:
        return None, ""
    names = [p.name for p in study.space]
    key = hashlib.sha256((study.fingerprint() + json.dumps(
        pareto[names].to_dict("records"), sort_keys=True, default=str)
        + json.dumps(vars(study.refine))).encode()).hexdigest()
    path, key_path = out_dir / "refine.csv", out_dir / "refine.key"
    if path.is_file() and key_path.is_file() and key_path.read_text().strip() == key:
        df = pd.read_csv(path)
        df.attrs["fidelities"] = _fidelities(study)
        return df, ""
    if not run:
        return None, "not run (hwsim report without --refine keeps the last refinement only)"
    try:
        df = fid.refine(study, pareto)
    except Exception as exc:
        log.warning("refinement with %s failed: %s: %s", study.refine.fidelity,
                    type(exc).__name__, exc)
        return None, f"failed: {type(exc).__name__}: {exc}"
    df.to_csv(path, index=False)
    key_path.write_text(key + "\n")
    return df, ""


def _fidelities(study: StudySpec) -> tuple[str, str]:
    assert study.refine is not None
    low = study.fidelity if study.fidelity != study.refine.fidelity else "analytical"
    return low, study.refine.fidelity


def write_outputs(
    study: StudySpec,
    ostudy: Any,
    out_dir: Path,
    *,
    storage: str,
    command: Sequence[str] = (),
    sweep_seconds: float | None = None,
    run_refine: bool = True,
    figures: bool = True,
    report: bool = False,
) -> Outputs:
    """Write every output of a study into ``out_dir`` and return what was written.

    ``command`` is the sweep's command line, kept in ``meta.json`` as ``command``; with
    ``report=True`` (``hwsim report``) it is ``report_command`` instead and the sweep's stays.
    """
    from hwsim.report import build_report

    out_dir.mkdir(parents=True, exist_ok=True)
    trials = trials_frame(study, ostudy)
    pareto = pareto_frame(study, trials)
    files: list[Path] = []

    res = _exhaustive_cached(study, out_dir)
    comparison = None
    if res is not None:
        res.front.to_csv(out_dir / "exact_pareto.csv", index=False)
        files += [out_dir / "exhaustive.parquet", out_dir / "exact_pareto.csv"]
        done = trials[trials["state"] == "COMPLETE"] if not trials.empty else trials
        vals = (done[study.objective_metrics].to_numpy(dtype=float) if len(done)
                else np.empty((0, len(study.objectives))))
        feas = done["feasible"].to_numpy(dtype=bool) if len(done) else np.empty(0, dtype=bool)
        comparison = exh.compare(study, res, vals, feas)
        if "curve" in comparison:
            comparison["curve"].to_csv(out_dir / "hypervolume.csv", index=False)
            files.append(out_dir / "hypervolume.csv")
        if len(pareto) and comparison.get("front_size"):
            gap, rel = exh.front_gaps(pareto[study.objective_metrics].to_numpy(dtype=float),
                                      exh.exact_front_values(res, study),
                                      exh.Normaliser.from_front(
                                          exh.exact_front_values(res, study), study.directions))
            pareto = pareto.assign(front_gap=gap, front_gap_rel=rel)

    trials.to_parquet(out_dir / "trials.parquet", index=False)
    trials.to_csv(out_dir / "trials.csv", index=False)
    pareto.to_csv(out_dir / "pareto.csv", index=False)
    files += [out_dir / "trials.parquet", out_dir / "trials.csv", out_dir / "pareto.csv"]

    ref, note = _refine_cached(study, pareto, out_dir, run_refine)
    if ref is not None:
        files.append(out_dir / "refine.csv")
    base = baselines_frame(study)
    if base is not None:
        base.to_csv(out_dir / "baselines.csv", index=False)
        files.append(out_dir / "baselines.csv")

    imps = importances(study, ostudy)
    counts = state_counts(trials)
    old_meta: dict[str, Any] = {}
    if (out_dir / "meta.json").is_file():
        try:
            old_meta = json.loads((out_dir / "meta.json").read_text())
        except (OSError, json.JSONDecodeError):
            old_meta = {}
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    durations = trials["duration_s"].dropna() if not trials.empty else pd.Series(dtype=float)
    meta: dict[str, Any] = {
        "study": ostudy.study_name,
        "system": study.system,
        "fidelity": study.fidelity,
        "spec_file": study.path,
        "storage": mask_url(storage),
        "seed": study.seed,
        "sampler": study.sampler,
        "sampler_options": dict(study.sampler_options),
        "budget": study.trials,
        "trials": counts,
        "evaluations": evaluation_counts(trials),
        "command": (list(command) if command and not report
                    else old_meta.get("command", [])),
        "report_command": (list(command) if command and report
                           else old_meta.get("report_command", [])),
        "versions": versions(),
        "git": git_commit(),
        "written_utc": now,
        "first_trial_utc": _first_start(ostudy),
        "sweep_seconds": sweep_seconds if sweep_seconds is not None
        else old_meta.get("sweep_seconds"),
        "mean_trial_duration_s": float(durations.mean()) if len(durations) else None,
        "pareto_size": len(pareto),
        "study_spec": study.as_json(),
    }
    if comparison is not None:
        meta["exhaustive"] = {k: v for k, v in comparison.items() if k != "curve"}
    if note:
        meta["refine_note"] = note
    if base is not None:
        meta["baselines"] = best_against_baselines(study, trials, base)
    out = Outputs(study=study, study_name=ostudy.study_name, storage=storage, out_dir=out_dir,
                  trials=trials, pareto=pareto, counts=counts, importances=imps,
                  comparison=comparison, exhaustive=res, refine=ref, refine_note=note,
                  baselines=base, meta=meta, files=files)
    out.files += build_report(out, figures=figures)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    out.files.append(out_dir / "meta.json")
    return out


def _first_start(ostudy: Any) -> str | None:
    starts = [t.datetime_start for t in ostudy.get_trials(deepcopy=False) if t.datetime_start]
    return min(starts).isoformat(timespec="seconds") if starts else None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)
