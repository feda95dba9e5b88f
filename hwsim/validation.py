"""Validation: predictions compared with published or measured values, at the accuracy each
model claims.

A case is data: its system, a name, the conditions, the metric, the reference value, the
tolerance the model claims (relative) and the source. Systems declare cases in TOML files beside
their code (:func:`load_cases`) or build them in Python when a prediction needs more than one
simulation (a search, a ratio of two designs); either way each case carries a ``predict``
callable. Every case also says:

- its **role**: ``calibration`` (its reference was used to fit a constant) or ``held-out``
  (nothing was fitted on it); only held-out cases say how good a model is;
- its **group** (a metric of one model against one source, e.g. "Flash-LLM TFLOPS"): the
  report gives a MAPE per system, group and role, and a group may claim a held-out MAPE
  (``group_mape``) that fails validation when exceeded;
- ``reference_error``: the error bar of the reference itself (digitisation of a figure,
  measurement noise), shown beside the case; it does not widen the tolerance.

A case the model is known to miss carries ``known_deviation`` (the reason) and ``ceiling`` (the
largest relative error that reason explains): it is reported as a known deviation while its
error is within the ceiling and fails past it. A case whose prediction raises always fails.

``hwsim validate`` runs them and writes ``results/validation.md``.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim import specs
from hwsim.errors import InputError

log = logging.getLogger(__name__)

ROLES = ("calibration", "held-out")


@dataclass(frozen=True)
class Case:
    """One validation case. ``bounds`` (low, high) replaces the tolerance for range checks."""

    system: str
    case: str
    metric: str
    reference: float
    tolerance: float
    source: str
    conditions: str
    predict: Callable[[], float]
    bounds: tuple[float, float] | None = None
    #: "calibration" (the reference was used to fit a constant) or "held-out"
    role: str = "held-out"
    #: the model and reference this case belongs to (default: the metric)
    group: str = ""
    #: the held-out MAPE the model claims for the whole group (None: no group claim)
    group_mape: float | None = None
    #: relative error bar of the reference itself (digitisation, measurement), for the report
    reference_error: float = 0.0
    #: why this case is known to miss its tolerance; empty for ordinary cases
    known_deviation: str = ""
    #: the largest relative error the known deviation explains; past it the case fails
    ceiling: float | None = None

    def __post_init__(self) -> None:
        where = f"validation case {self.system}/{self.case}"
        if self.role not in ROLES:
            raise ValueError(f"{where}: role {self.role!r}, expected one of {ROLES}")
        if not (self.tolerance >= 0):
            raise ValueError(f"{where}: tolerance {self.tolerance!r} must be >= 0")
        if self.known_deviation and (self.ceiling is None or not self.ceiling > self.tolerance):
            raise ValueError(f"{where}: a known deviation needs a ceiling above its tolerance")
        if self.ceiling is not None and not self.known_deviation:
            raise ValueError(f"{where}: a ceiling belongs to a known deviation (give its reason)")
        if not self.group:
            object.__setattr__(self, "group", self.metric)


@dataclass(frozen=True)
class Result:
    case: Case
    predicted: float
    rel_error: float
    ok: bool
    seconds: float
    error: str = ""

    @property
    def reference(self) -> float:
        return self.case.reference

    @property
    def within_ceiling(self) -> bool:
        """A known deviation whose error its reason explains (within the ceiling)."""
        c = self.case
        return (bool(c.known_deviation) and not self.error and math.isfinite(self.rel_error)
                and c.ceiling is not None and self.rel_error <= c.ceiling)

    @property
    def counts_as_failure(self) -> bool:
        """Raised, out of tolerance and not a known deviation, or past its ceiling."""
        if self.error:
            return True
        return not self.ok and not self.within_ceiling

    @property
    def verdict(self) -> str:
        if self.error:
            return "FAIL (raised)"
        if self.ok:
            return "pass"
        if self.within_ceiling:
            return "known deviation"
        return "FAIL (past ceiling)" if self.case.known_deviation else "FAIL"

    @property
    def reference_text(self) -> str:
        if self.case.bounds is not None:
            return f"[{_fmt(self.case.bounds[0])}, {_fmt(self.case.bounds[1])}]"
        return _fmt(self.case.reference)

    def as_json(self) -> dict[str, Any]:
        c = self.case
        return {
            "system": c.system,
            "case": c.case,
            "group": c.group,
            "role": c.role,
            "metric": c.metric,
            "predicted": _json_num(self.predicted),
            "reference": c.reference,
            **({"bounds": list(c.bounds)} if c.bounds is not None else {}),
            "rel_error": _json_num(self.rel_error),
            "tolerance": c.tolerance,
            "reference_error": c.reference_error,
            "ok": self.ok,
            "verdict": self.verdict,
            "source": c.source,
            "conditions": c.conditions,
            **({"known_deviation": c.known_deviation, "ceiling": c.ceiling}
               if c.known_deviation else {}),
            **({"error": self.error} if self.error else {}),
        }


def data_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a reference-data CSV, keyed by its header; lines that start with ``#`` (the
    file's source and notes) are skipped. One reader for every system's data files."""
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _json_num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run_case(case: Case) -> Result:
    """Evaluate one case; an exception inside the model is a failed case, not a crash."""
    t0 = time.perf_counter()
    error = ""
    try:
        predicted = float(case.predict())
    except Exception as exc:  # a model error is reported as a failed case
        log.debug("validation case %s/%s raised", case.system, case.case, exc_info=True)
        predicted = math.nan
        error = f"{type(exc).__name__}: {exc}"
    dt = time.perf_counter() - t0
    if case.bounds is not None:
        lo, hi = case.bounds
        ok = lo <= predicted <= hi
        if ok:
            rel = 0.0
        elif predicted < lo:
            rel = (lo - predicted) / abs(lo) if lo else math.inf
        else:
            rel = (predicted - hi) / abs(hi) if hi else math.inf
        if not math.isfinite(predicted):
            rel, ok = math.nan, False
    else:
        ref = case.reference
        rel = abs(predicted - ref) / abs(ref) if ref else abs(predicted - ref)
        ok = math.isfinite(rel) and rel <= case.tolerance
    return Result(case=case, predicted=predicted, rel_error=rel, ok=bool(ok) and not error,
                  seconds=dt, error=error)


_CASE_KEYS = {"name", "metric", "reference", "tolerance", "source", "conditions", "specs", "set",
              "fidelity", "seed", "bounds", "role", "group", "group_mape", "reference_error",
              "known_deviation", "ceiling"}


def load_cases(system_name: str, path: Path) -> list[Case]:
    """Cases from a TOML file of ``[[case]]`` tables, each simulating one design point.

    Keys: ``name``, ``metric``, ``reference``, ``tolerance`` (relative), ``source``, ``role``
    (calibration or held-out), optional ``conditions``, ``group``, ``group_mape``,
    ``reference_error``, ``known_deviation`` with ``ceiling``, ``specs`` (role -> spec name or
    file), ``set`` (key path -> value), ``fidelity`` (analytical or des), ``seed``, ``bounds``
    ([low, high]).
    """
    raw = specs.read_toml(path)
    out = []
    for i, c in enumerate(raw.get("case", [])):
        where = f"case[{i}]"
        unknown = set(c) - _CASE_KEYS
        if unknown:
            raise InputError("unknown key", file=str(path), key=f"{where}.{sorted(unknown)[0]}")
        for key in ("name", "metric", "reference", "tolerance", "source", "role"):
            if key not in c:
                raise InputError("missing key", file=str(path), key=f"{where}.{key}")
        spec_args = [f"{role}={ref}" for role, ref in c.get("specs", {}).items()]
        overrides = dict(c.get("set", {}))
        fidelity = c.get("fidelity", "analytical")
        metric = c["metric"]
        seed = int(c.get("seed", 0))
        bounds = tuple(c["bounds"]) if "bounds" in c else None

        def predict(spec_args=spec_args, overrides=overrides, fidelity=fidelity, metric=metric,
                    seed=seed) -> float:
            from hwsim.system import get_system

            system = get_system(system_name)
            inputs = system.resolve(spec_args, overrides)
            return system.evaluate(inputs, fidelity, seed=seed)[metric]

        cond = c.get("conditions") or ", ".join(
            [f"{k}={v}" for k, v in c.get("specs", {}).items()]
            + [f"{k}={v}" for k, v in overrides.items()]
            + [f"fidelity={fidelity}"]
        )
        try:
            out.append(Case(
                system=system_name, case=c["name"], metric=metric,
                reference=float(c["reference"]), tolerance=float(c["tolerance"]),
                source=c["source"], conditions=cond, predict=predict,
                bounds=bounds,  # type: ignore[arg-type]
                role=c["role"], group=c.get("group", ""), group_mape=c.get("group_mape"),
                reference_error=float(c.get("reference_error", 0.0)),
                known_deviation=c.get("known_deviation", ""), ceiling=c.get("ceiling"),
            ))
        except ValueError as exc:
            raise InputError(str(exc), file=str(path), key=where) from None
    return out


def collect(system_names: Iterable[str] | None = None) -> list[Case]:
    """The cases of the named systems (all systems when None)."""
    from hwsim.system import all_systems, get_system

    systems = [get_system(n) for n in system_names] if system_names else all_systems()
    cases: list[Case] = []
    for s in systems:
        if s.validation is not None:
            cases.extend(s.validation())
    return cases


def select(cases: Sequence[Case], patterns: Sequence[str]) -> list[Case]:
    """The cases whose name contains one of ``patterns`` (all when none); an InputError when a
    pattern matches no case, so that a typo is not a silent pass."""
    if not patterns:
        return list(cases)
    unmatched = [p for p in patterns if not any(p in c.case for c in cases)]
    if unmatched:
        raise InputError(f"--case {unmatched[0]!r} matches no validation case ({len(cases)} "
                         "cases; `hwsim validate --json` lists them)")
    return [c for c in cases if any(p in c.case for p in patterns)]


def run(cases: Sequence[Case], progress: bool = False) -> list[Result]:
    if progress:
        from tqdm import tqdm

        it: Iterable[Case] = tqdm(cases, desc="validate", unit="case", leave=False)
    else:
        it = cases
    return [run_case(c) for c in it]


# --------------------------------------------------------------------------------------------
# groups: MAPE per system, group and role


@dataclass(frozen=True)
class GroupSummary:
    """The cases of one (system, group, role) and how the model does on them."""

    system: str
    group: str
    role: str
    cases: int
    passed: int
    known: int
    failed: int
    #: mean absolute relative error of the point cases (range cases are not averaged)
    mape: float
    worst: float
    claim: float | None

    @property
    def claim_failed(self) -> bool:
        """A held-out group whose MAPE exceeds what the model claims for it."""
        return (self.role == "held-out" and self.claim is not None
                and not (self.mape <= self.claim))


def summarise(results: Sequence[Result]) -> list[GroupSummary]:
    keyed: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        keyed.setdefault((r.case.system, r.case.group, r.case.role), []).append(r)
    out = []
    for (system, group, role), rs in keyed.items():
        errs = [r.rel_error if not r.error else math.inf
                for r in rs if r.case.bounds is None]
        mape = _mape(errs)
        every = [r.rel_error if not r.error else math.inf for r in rs]
        claims = {r.case.group_mape for r in rs if r.case.group_mape is not None}
        out.append(GroupSummary(
            system=system, group=group, role=role, cases=len(rs),
            passed=sum(r.ok for r in rs), known=sum((not r.ok) and r.within_ceiling for r in rs),
            failed=sum(r.counts_as_failure for r in rs), mape=mape,
            worst=max(every) if every else math.nan, claim=min(claims) if claims else None))
    return out


def _mape(errs: Sequence[float]) -> float:
    """Mean of relative errors (inf if one is not finite, NaN when there are none)."""
    if not errs:
        return math.nan
    return sum(errs) / len(errs) if all(math.isfinite(e) for e in errs) else math.inf


def failures(results: Sequence[Result]) -> list[str]:
    """Why validation fails: each failing case, and each held-out group past its claim."""
    out = [f"{r.case.system}/{r.case.case}: {r.verdict}, predicted {_fmt(r.predicted)}, "
           f"reference {r.reference_text}" + (f" ({r.error})" if r.error else "")
           for r in results if r.counts_as_failure]
    out += [f"{g.system}/{g.group}: held-out MAPE {g.mape:.1%} above the {g.claim:.0%} the "
            "model claims" for g in summarise(results) if g.claim_failed]
    return out


# --------------------------------------------------------------------------------------------
# the report


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.4g}"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2%}"


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        c = r.case
        tol = "range" if c.bounds is not None else f"{c.tolerance * 100:.3g}%"
        rows.append([c.system, c.case, c.role, c.metric, _fmt(r.predicted), r.reference_text,
                     _pct(r.rel_error), tol, r.verdict])
    return rows


HEADER = ["system", "case", "role", "metric", "predicted", "reference", "rel. error",
          "tolerance", "result"]


def markdown_report(results: Sequence[Result]) -> str:
    """The committed validation report: a summary of every group, then a table per system (held-out
    cases first), the known deviations with their reasons and ceilings, and the sources."""
    groups = summarise(results)
    n_fail = sum(r.counts_as_failure for r in results) + sum(g.claim_failed for g in groups)
    n_ok = sum(r.ok for r in results)
    n_known = sum((not r.ok) and r.within_ceiling for r in results)
    held = [r for r in results if r.case.role == "held-out"]
    lines = [
        "# Validation report",
        "",
        "Generated by `hwsim validate --report results/validation.md`. Each case compares a",
        "prediction with a published or measured value. *rel. error* is |predicted - reference| /",
        "|reference| (for range cases, the distance outside the range); a case passes within the",
        "tolerance its model claims. *Calibration* cases were used to fit a constant and show the",
        "fit; only *held-out* cases show how good a model is. A known deviation is a documented",
        "miss within the ceiling its reason explains; past the ceiling, or when the prediction",
        "raises, a case fails. *ref. error* is the error bar of the reference itself.",
        "",
        f"**{n_ok} of {len(results)} cases pass ({sum(r.ok for r in held)} of {len(held)} "
        f"held-out); {n_known} known deviations; "
        + (f"{n_fail} failures.**" if n_fail else "no failures.**"),
        "",
        "## Summary",
        "",
        "Per system (MAPE over the point cases; range cases count in *pass* only):",
        "",
        "| system | held-out cases | pass | MAPE held-out | calibration cases | pass | "
        "MAPE calibration |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for sysname in dict.fromkeys(r.case.system for r in results):
        row = [sysname]
        for role in ("held-out", "calibration"):
            rs = [r for r in results if r.case.system == sysname and r.case.role == role]
            errs = [r.rel_error if not r.error else math.inf for r in rs
                    if r.case.bounds is None]
            row += [str(len(rs)), str(sum(r.ok for r in rs)), _pct(_mape(errs)) if rs else ""]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Per group (a model against one source); *worst* includes range cases:",
        "",
        "| system | group | role | cases | pass | known dev. | fail | MAPE | worst "
        "| claimed MAPE |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {"held-out": 0, "calibration": 1}
    for g in sorted(groups, key=lambda g: (g.system, g.group, order[g.role])):
        claim = "" if g.claim is None else f"{g.claim:.0%}" + (
            " **exceeded**" if g.claim_failed else "")
        lines.append(f"| {g.system} | {_md(g.group)} | {g.role} | {g.cases} | {g.passed} | "
                     f"{g.known} | {g.failed} | {_pct(g.mape)} | {_pct(g.worst)} | {claim} |")
    lines.append("")
    by_sys: dict[str, list[Result]] = {}
    for r in results:
        by_sys.setdefault(r.case.system, []).append(r)
    for sysname, rs in by_sys.items():
        lines += [f"## {sysname}", ""]
        lines.append("| case | role | conditions | metric | predicted | reference | ref. error | "
                     "rel. error | tolerance | result |")
        lines.append("|---|---|---|---|---:|---:|---:|---:|---:|---|")
        for r in sorted(rs, key=lambda r: order[r.case.role]):
            c = r.case
            tol = "range" if c.bounds is not None else f"{c.tolerance * 100:.3g}%"
            verdict = r.verdict if not r.counts_as_failure else f"**{r.verdict}**"
            ref_err = f"{c.reference_error:.1%}" if c.reference_error else ""
            lines.append(
                f"| {c.case} | {c.role} | {_md(c.conditions)} | `{c.metric}` | "
                f"{_fmt(r.predicted)} | {r.reference_text} | {ref_err} | {_pct(r.rel_error)} | "
                f"{tol} | {verdict} |")
        lines.append("")
        reasons: dict[tuple[str, float], list[str]] = {}
        for r in rs:
            if r.case.known_deviation and not r.ok:
                reasons.setdefault((r.case.known_deviation, r.case.ceiling or 0.0),
                                   []).append(r.case.case)
        for (reason, ceiling), names in reasons.items():
            lines.append(f"- Known deviation, ceiling {ceiling:.0%} ({len(names)} cases: "
                         f"{', '.join(names)}): {_md(reason)}")
        if reasons:
            lines.append("")
        errors = [r for r in rs if r.error]
        for r in errors:
            lines.append(f"- `{r.case.case}` raised: {_md(r.error)}")
        if errors:
            lines.append("")
        lines.append("Sources:")
        lines.append("")
        seen = set()
        for r in rs:
            if r.case.source not in seen:
                seen.add(r.case.source)
                lines.append(f"- {_md(r.case.source)}")
        lines.append("")
    return "\n".join(lines)


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")
