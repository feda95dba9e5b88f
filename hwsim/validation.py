"""Validation: predictions compared with published or measured values, each with a tolerance.

A case is data: its system, a name, the conditions, the metric, the reference value, a relative
tolerance and the source. Systems declare cases in TOML files beside their code
(:func:`load_cases`) or build them in Python when a prediction needs more than one simulation
(a search, a ratio of two designs); either way each case carries a ``predict`` callable.

``hwsim validate`` runs them and writes ``results/validation.md``.
"""

from __future__ import annotations

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
    #: why this case is known to miss its tolerance (documented); empty for ordinary cases.
    #: A known deviation is shown in the report but does not fail ``hwsim validate``.
    known_deviation: str = ""


@dataclass(frozen=True)
class Result:
    system: str
    case: str
    metric: str
    predicted: float
    reference: float
    rel_error: float
    tolerance: float
    ok: bool
    source: str
    conditions: str
    seconds: float
    error: str = ""
    bounds: tuple[float, float] | None = None
    known_deviation: str = ""

    @property
    def counts_as_failure(self) -> bool:
        """Out of tolerance and not a documented known deviation."""
        return not self.ok and not self.known_deviation

    @property
    def verdict(self) -> str:
        if self.ok:
            return "pass"
        return "known deviation" if self.known_deviation else "FAIL"

    @property
    def reference_text(self) -> str:
        if self.bounds is not None:
            return f"[{_fmt(self.bounds[0])}, {_fmt(self.bounds[1])}]"
        return _fmt(self.reference)

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "case": self.case,
            "metric": self.metric,
            "predicted": _json_num(self.predicted),
            "reference": self.reference,
            "rel_error": _json_num(self.rel_error),
            "tolerance": self.tolerance,
            "ok": self.ok,
            "source": self.source,
            "conditions": self.conditions,
            **({"known_deviation": self.known_deviation} if self.known_deviation else {}),
            **({"error": self.error} if self.error else {}),
        }


def _json_num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run_case(case: Case) -> Result:
    """Evaluate one case; an exception inside the model is a failed case, not a crash."""
    t0 = time.perf_counter()
    error = ""
    try:
        predicted = float(case.predict())
    except Exception as exc:  # a model error is reported as a failed case
        log.exception("validation case %s/%s raised", case.system, case.case)
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
    return Result(
        system=case.system, case=case.case, metric=case.metric, predicted=predicted,
        reference=case.reference, rel_error=rel, tolerance=case.tolerance, ok=bool(ok),
        source=case.source, conditions=case.conditions, seconds=dt, error=error,
        bounds=case.bounds, known_deviation=case.known_deviation,
    )


def load_cases(system_name: str, path: Path) -> list[Case]:
    """Cases from a TOML file of ``[[case]]`` tables, each simulating one design point.

    Keys: ``name``, ``metric``, ``reference``, ``tolerance`` (relative), ``source``,
    ``conditions``, optional ``specs`` (role -> spec name or file), ``set`` (key path -> value),
    ``fidelity`` (analytical or des), ``seed``, ``bounds`` ([low, high]).
    """
    raw = specs.read_toml(path)
    out = []
    allowed = {"name", "metric", "reference", "tolerance", "source", "conditions", "specs",
               "set", "fidelity", "seed", "bounds"}
    for i, c in enumerate(raw.get("case", [])):
        where = f"case[{i}]"
        unknown = set(c) - allowed
        if unknown:
            raise InputError("unknown key", file=str(path), key=f"{where}.{sorted(unknown)[0]}")
        for key in ("name", "metric", "reference", "tolerance", "source"):
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
        out.append(Case(
            system=system_name, case=c["name"], metric=metric,
            reference=float(c["reference"]), tolerance=float(c["tolerance"]),
            source=c["source"], conditions=cond, predict=predict,
            bounds=bounds,  # type: ignore[arg-type]
        ))
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


def run(cases: Sequence[Case], progress: bool = False) -> list[Result]:
    if progress:
        from tqdm import tqdm

        it: Iterable[Case] = tqdm(cases, desc="validate", unit="case", leave=False)
    else:
        it = cases
    return [run_case(c) for c in it]


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.4g}"
    return f"{x:.4g}"


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        ref = r.reference_text
        tol = "range" if r.bounds is not None else f"{r.tolerance * 100:.3g}%"
        rel = "n/a" if not math.isfinite(r.rel_error) else f"{r.rel_error:.2%}"
        rows.append([r.system, r.case, r.metric, _fmt(r.predicted), ref, rel, tol, r.verdict])
    return rows


HEADER = ["system", "case", "metric", "predicted", "reference", "rel. error", "tolerance", "result"]


def markdown_report(results: Sequence[Result]) -> str:
    """The committed validation report: a summary, then a table per system, then sources."""
    n_ok = sum(r.ok for r in results)
    n_known = sum(not r.ok and bool(r.known_deviation) for r in results)
    lines = [
        "# Validation report",
        "",
        "Generated by `hwsim validate --report results/validation.md`. Each case compares a",
        "prediction with a published or measured value; *rel. error* is |predicted - reference| /",
        "|reference| (for range cases, the distance outside the range), and a case passes when it",
        "is within its tolerance.",
        "",
        f"**{n_ok} of {len(results)} cases pass.**"
        + (f" {n_known} are known deviations: outside their tolerance, documented with their "
           "reason below, and not counted as failures." if n_known else ""),
        "",
    ]
    by_sys: dict[str, list[Result]] = {}
    for r in results:
        by_sys.setdefault(r.system, []).append(r)
    for sysname, rs in by_sys.items():
        lines += [f"## {sysname}", ""]
        lines.append("| case | conditions | metric | predicted | reference | rel. error | "
                     "tolerance | result |")
        lines.append("|---|---|---|---:|---:|---:|---:|---|")
        for r, row in zip(rs, table_rows(rs), strict=True):
            lines.append(
                f"| {r.case} | {_md(r.conditions)} | `{r.metric}` | {row[3]} | {row[4]} | {row[5]} "
                f"| {row[6]} | {r.verdict if r.ok or r.known_deviation else '**FAIL**'} |"
            )
        lines.append("")
        reasons: dict[str, list[str]] = {}
        for r in rs:
            if r.known_deviation and not r.ok:
                reasons.setdefault(r.known_deviation, []).append(r.case)
        for reason, names in reasons.items():
            lines.append(f"- Known deviation ({len(names)} cases: {', '.join(names)}): "
                         f"{_md(reason)}")
        if reasons:
            lines.append("")
        errors = [r for r in rs if r.error]
        for r in errors:
            lines.append(f"- `{r.case}` raised: {_md(r.error)}")
        if errors:
            lines.append("")
        lines.append("Sources:")
        lines.append("")
        seen = set()
        for r in rs:
            if r.source not in seen:
                seen.add(r.source)
                lines.append(f"- {_md(r.source)}")
        lines.append("")
    return "\n".join(lines)


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")
