"""Study specs: what to sweep, what to optimise, under which constraints, with which sampler.

A study spec is a TOML file (``explore/*.toml``)::

    name = "quickstart"                 # default: the file's stem
    system = "queue"
    fidelity = "analytical"             # evaluator of every trial
    trials = 200                        # global budget (all workers together)
    seed = 1
    specs = { queue = "mm1" }           # fixed inputs: role = spec name or file
    set = ["queue.arrival_rate_per_s=40"]   # fixed overrides, as --set
    sampler = { name = "tpe" }          # tpe nsga2 nsga3 gp random qmc grid (+ options)

    [space]
    "queue.servers" = { low = 1, high = 32 }                 # int
    "queue.mean_service_s" = { low = 0.01, high = 1, log = true }
    "queue.erlang_k" = { low = 1, high = 8, step = 1 }
    "queue.service_distribution" = { choices = ["exponential", "erlang"] }
    queue = { specs = ["mm1", "md1-rho5"] }                  # choice among spec files

    [[objectives]]
    metric = "mean_wait_s"
    direction = "minimize"

    [[constraints]]
    metric = "utilization"
    max = 0.9

Everything is validated before any trial runs: :func:`load_study` raises
:class:`~hwsim.errors.InputError` naming the file, the key and the value.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.errors import InputError, suggest
from hwsim.system import FIDELITIES, Inputs, System, get_system

SAMPLERS = ("tpe", "nsga2", "nsga3", "gp", "random", "qmc", "grid")

#: the most values one dimension's list may hold (the grid sampler and exhaustive search list
#: them; nothing lists a range only to validate it)
MAX_LISTED_VALUES = 10_000_000
#: the most values a float range with a step may hold: a finer step is below what the sampler
#: and the tables resolve (use a continuous range, no step)
MAX_FLOAT_STEPS = 1_000_000_000
#: integers are stored in 64-bit columns of the trial tables
INT64_MAX = 2**63 - 1
#: the most points exhaustive search enumerates (its table is held in memory) and the grid
#: sampler lists
MAX_ENUMERATED_POINTS = 20_000_000
#: seeds reach Optuna's samplers and numpy, which take 0 .. 2**32 - 1
SEED_MAX = 2**32 - 1
#: a study name becomes a folder and a storage name
MAX_NAME_LENGTH = 100
DIRECTIONS = ("minimize", "maximize")

_TOP_KEYS = (
    "name", "system", "fidelity", "trials", "seed", "specs", "workload", "set", "sampler",
    "space", "objectives", "constraints", "exhaustive", "refine", "description", "baselines",
    "rtl_check",
)


# --------------------------------------------------------------------------------------------
# the parts of a study


@dataclass(frozen=True)
class Param:
    """One dimension of the search space.

    ``type`` is ``int``, ``float``, ``categorical`` or ``spec`` (a choice among spec files of a
    role's kind; ``name`` is then the role and ``choices`` the spec names or paths).
    """

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.type in ("int", "categorical", "spec") or self.step is not None

    def values(self) -> list[Any]:
        """Every value of a discrete dimension, in order."""
        if self.type in ("categorical", "spec"):
            return list(self.choices)
        if not self.discrete:
            raise ValueError(f"{self.name} is continuous")
        n = int(self.size())
        if n > MAX_LISTED_VALUES:
            raise ValueError(f"{self.name} has {n:g} values; at most {MAX_LISTED_VALUES:g} "
                             "are listed")
        return [self.value_at(i) for i in range(n)]

    def size(self) -> float:
        """How many values the dimension holds (``inf`` when continuous)."""
        if not self.discrete:
            return math.inf
        if self.type in ("categorical", "spec"):
            return len(self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return (int(self.high) - int(self.low)) // int(self.step or 1) + 1
        return math.floor((self.high - self.low) / (self.step or 1) + 1e-9) + 1

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this dimension's value."""
        if self.type in ("categorical", "spec"):
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high),
                                   step=self.step, log=self.log)

    def value_at(self, i: int) -> Any:
        """The ``i``-th value of a discrete range (0 = low), without listing the others."""
        assert self.low is not None
        step = self.step or 1
        if self.type == "int":
            return int(self.low) + i * int(step)  # exact, however large
        return _round(self.low + i * step, step)

    def sample_points(self) -> list[Any]:
        """Values used to validate the key path before the sweep: the ends of the range (never
        the values between: a range of 1e18 integers is two checks)."""
        if self.type in ("categorical", "spec"):
            return list(self.choices)
        if self.discrete:
            return [self.value_at(0), self.value_at(int(self.size()) - 1)]
        return [self.low, self.high]

    def neighbours(self, value: Any) -> list[Any]:
        """Values one step away (discrete) or 5 % of the range away (continuous)."""
        if self.type in ("categorical", "spec"):
            vals = list(self.choices)
            try:
                i = _index_of(vals, value)
            except ValueError:
                return []
            return [vals[j] for j in (i - 1, i + 1) if 0 <= j < len(vals)]
        if self.discrete:
            assert self.low is not None
            n = int(self.size())
            if not isinstance(value, int | float) or isinstance(value, bool):
                return []
            if self.type == "int":
                if isinstance(value, float) and not value.is_integer():
                    return []
                i, off = divmod(int(value) - int(self.low), int(self.step or 1))  # exact
                if off:
                    return []
            else:
                i = round((value - self.low) / (self.step or 1))
            if not 0 <= i < n or not math.isclose(self.value_at(i), value, rel_tol=1e-9,
                                                  abs_tol=1e-12):
                return []
            return [self.value_at(j) for j in (i - 1, i + 1) if 0 <= j < n]
        assert self.low is not None and self.high is not None
        if self.log:
            f = (self.high / self.low) ** 0.05
            cand = [value / f, value * f]
        else:
            d = 0.05 * (self.high - self.low)
            cand = [value - d, value + d]
        return [c for c in cand if self.low <= c <= self.high]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type in ("categorical", "spec"):
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.step is not None:
                out["step"] = self.step
            if self.log:
                out["log"] = True
        return out


def _round(x: float, step: float) -> float:
    digits = max(0, -math.floor(math.log10(abs(step)))) + 6 if step else 12
    return round(x, digits)


def _index_of(vals: Sequence[Any], value: Any) -> int:
    for i, v in enumerate(vals):
        if v == value or (isinstance(v, float) and isinstance(value, int | float)
                          and math.isclose(v, value, rel_tol=1e-9, abs_tol=1e-12)):
            return i
    raise ValueError(value)


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str = "minimize"


@dataclass(frozen=True)
class Constraint:
    """``metric <= max`` and/or ``metric >= min``; violations are fed to the sampler."""

    metric: str
    max: float | None = None
    min: float | None = None

    def violations(self, value: float) -> list[float]:
        """One number per bound; <= 0 satisfied, > 0 violated by that much."""
        out = []
        if self.max is not None:
            out.append(value - self.max if math.isfinite(value) else math.inf)
        if self.min is not None:
            out.append(self.min - value if math.isfinite(value) else math.inf)
        return out

    def satisfied(self, values: np.ndarray) -> np.ndarray:
        """Element-wise: the bounds hold (NaN never satisfies them)."""
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        with np.errstate(invalid="ignore"):
            if self.max is not None:
                ok &= v <= self.max
            if self.min is not None:
                ok &= v >= self.min
        return ok

    def label(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{self.metric} >= {self.min:g}")
        if self.max is not None:
            parts.append(f"{self.metric} <= {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Refine:
    """Multi-fidelity: re-evaluate the Pareto set and its neighbourhood with another evaluator."""

    fidelity: str = "des"
    neighbours: bool = True
    max_points: int = 40
    seeds: int = 1


@dataclass(frozen=True)
class RtlCheck:
    """After the sweep: generate, simulate and synthesise the first ``top`` Pareto designs with
    the system's RTL generator (``hwsim rtl-check``) and mark those that do not fit."""

    top: int = 3
    verify: bool = True
    jobs: int = 1


@dataclass(frozen=True)
class Baseline:
    """A reference design, of this study's system or another, evaluated analytically on the
    study's objectives and shown beside its results: the metric names mean the same in every
    system (:mod:`hwsim.metrics`), so a chiplet design and a GPU server compare like with like.
    """

    label: str
    system: str
    spec_args: tuple[str, ...]
    fixed: Mapping[str, Any]

    def evaluate(self) -> dict[str, float]:
        """The baseline's analytical metrics (an InfeasibleDesign when it cannot run)."""
        system = get_system(self.system)
        return system.evaluate(system.resolve(self.spec_args, dict(self.fixed)))

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "system": self.system, "spec_args": list(self.spec_args),
                "fixed": dict(self.fixed)}


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec."""

    path: str
    name: str
    system: str
    fidelity: str
    trials: int
    seed: int
    spec_args: tuple[str, ...]
    fixed: Mapping[str, Any]
    sampler: str
    sampler_options: Mapping[str, Any]
    space: tuple[Param, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    exhaustive: str | bool = "auto"
    exhaustive_max_points: int = 1_000_000
    refine: Refine | None = None
    description: str = ""
    baselines: tuple[Baseline, ...] = ()
    rtl_check: RtlCheck | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------------------------------
    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def objective_metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    def param(self, name: str) -> Param:
        for p in self.space:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def discrete(self) -> bool:
        return all(p.discrete for p in self.space)

    def space_size(self) -> float:
        return math.prod(p.size() for p in self.space) if self.space else 1

    def enumerable(self) -> bool:
        """Whether exhaustive search is possible (discrete and at most the point limit)."""
        return (bool(self.space) and self.discrete
                and self.space_size() <= self.exhaustive_max_points)

    def not_enumerable(self) -> str:
        """Why exhaustive search is impossible, as a clause ("" when it is possible)."""
        if not self.space:
            return "the space is empty"
        cont = [p.name for p in self.space if not p.discrete]
        if cont:
            return (f"continuous dimension{'s' if len(cont) > 1 else ''} "
                    f"{', '.join(repr(c) for c in cont)} (give a step, choices or type int)")
        if self.space_size() > self.exhaustive_max_points:
            return f"{self.space_size():,.0f} points"
        return ""

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every point of a discrete space."""
        names = [p.name for p in self.space]
        for combo in itertools.product(*(p.values() for p in self.space)):
            yield dict(zip(names, combo, strict=True))

    def fingerprint(self) -> str:
        """A hash of what defines the study's results (space, objectives, constraints, system)."""
        key = {
            "system": self.system, "fidelity": self.fidelity, "spec_args": list(self.spec_args),
            "fixed": {k: self.fixed[k] for k in sorted(self.fixed)},
            "space": {p.name: p.as_json() for p in self.space},
            "objectives": [[o.metric, o.direction] for o in self.objectives],
            "constraints": [[c.metric, c.min, c.max] for c in self.constraints],
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

    def as_json(self) -> dict[str, Any]:
        """The study as plain JSON (stored with the Optuna study so reports need no file)."""
        return {
            "path": self.path, "name": self.name, "system": self.system,
            "fidelity": self.fidelity, "trials": self.trials, "seed": self.seed,
            "spec_args": list(self.spec_args), "fixed": dict(self.fixed),
            "sampler": self.sampler, "sampler_options": dict(self.sampler_options),
            "space": {p.name: p.as_json() for p in self.space},
            "objectives": [{"metric": o.metric, "direction": o.direction}
                           for o in self.objectives],
            "constraints": [{"metric": c.metric, "max": c.max, "min": c.min}
                            for c in self.constraints],
            "exhaustive": self.exhaustive, "exhaustive_max_points": self.exhaustive_max_points,
            "refine": None if self.refine is None else vars(self.refine),
            "description": self.description,
            "baselines": [b.as_json() for b in self.baselines],
            "rtl_check": None if self.rtl_check is None else vars(self.rtl_check),
        }

    # ----------------------------------------------------------------------------------------
    def get_system(self) -> System:
        return get_system(self.system)

    def base_inputs(self, spec_choice: Mapping[str, str] | None = None) -> Inputs:
        """The fixed inputs (spec files + fixed overrides), with spec-choice roles replaced."""
        args = list(self.spec_args)
        for role, ref in (spec_choice or {}).items():
            args = [a for a in args if a.partition("=")[0] != role]
            args.append(f"{role}={ref}")
        return self.get_system().resolve(args, dict(self.fixed))

    def spec_params(self) -> list[Param]:
        return [p for p in self.space if p.type == "spec"]

    def key_params(self) -> list[Param]:
        return [p for p in self.space if p.type != "spec"]


# --------------------------------------------------------------------------------------------
# inputs for a design point


class InputCache:
    """Resolved base inputs per spec choice, and per-point inputs built from them by override."""

    def __init__(self, study: StudySpec) -> None:
        self.study = study
        self._base: dict[tuple[tuple[str, str], ...], Inputs] = {}

    def base(self, point: Mapping[str, Any]) -> Inputs:
        choice = tuple((p.name, str(point[p.name])) for p in self.study.spec_params())
        if choice not in self._base:
            self._base[choice] = self.study.base_inputs(dict(choice))
        return self._base[choice]

    def inputs(self, point: Mapping[str, Any]) -> Inputs:
        """The system inputs of one design point; InputError when a value is not valid."""
        base = self.base(point)
        per_role: dict[str, dict[str, Any]] = {}
        for p in self.study.key_params():
            role, _, rest = p.name.partition(".")
            per_role.setdefault(role, {})[rest] = point[p.name]
        out = dict(base)
        for role, ov in per_role.items():
            out[role] = specs.with_overrides(base[role], ov, file=f"{self.study.path} [space]")
        return MappingProxyType(out)


# --------------------------------------------------------------------------------------------
# loading


def load_study(
    path: str | Path,
    *,
    trials: int | None = None,
    seed: int | None = None,
    validate: bool = True,
) -> StudySpec:
    """Read and validate a study spec; ``trials``/``seed`` override the file's values."""
    path = Path(path)
    raw = specs.read_toml(path)
    return study_from_dict(raw, str(path), trials=trials, seed=seed, validate=validate,
                           base_dir=path.parent)


def study_from_dict(
    raw: Mapping[str, Any],
    file: str,
    *,
    trials: int | None = None,
    seed: int | None = None,
    validate: bool = True,
    base_dir: Path | None = None,
) -> StudySpec:
    """Build a :class:`StudySpec` from the TOML mapping (``file`` names it in errors)."""

    def err(msg: str, key: str | None = None, value: Any = None, has: bool = True) -> InputError:
        return InputError(msg, file=file, key=key, value=value, has_value=has and key is not None)

    for k in raw:
        if k not in _TOP_KEYS:
            close = difflib.get_close_matches(k, _TOP_KEYS, n=1)
            raise err("unknown key" + (f"; did you mean '{close[0]}'?" if close else
                                       f"; known keys: {', '.join(_TOP_KEYS)}"), k, raw[k])
    if "system" not in raw:
        raise err("missing key 'system' (the system to simulate, e.g. 'queue')")
    system_name = raw["system"]
    if not isinstance(system_name, str):
        raise err("expected a system name", "system", system_name)
    try:
        system = get_system(system_name)
    except InputError as exc:
        raise err(str(exc), "system", system_name) from None

    name = raw.get("name", Path(file).stem)
    if (not isinstance(name, str) or not name or "/" in name or "\\" in name
            or name.startswith(".") or not name.isprintable()):
        raise err("expected a study name (no '/' or '\\', not starting with '.', printable)",
                  "name", name)
    if len(name) > MAX_NAME_LENGTH:
        raise err(f"a study name of {len(name)} characters; at most {MAX_NAME_LENGTH} (it names "
                  "the results folder and the stored study)", "name", name)

    fidelity = raw.get("fidelity", "analytical")
    if fidelity not in FIDELITIES:
        raise err(f"expected one of {', '.join(FIDELITIES)}", "fidelity", fidelity)
    if fidelity == "des" and system.des is None:
        raise err(f"system '{system.name}' has no DES evaluator", "fidelity", fidelity)

    n_trials = raw.get("trials", 100) if trials is None else trials
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
        raise err("expected a whole number of trials >= 0",
                  "trials" if trials is None else "--trials", n_trials)
    the_seed = raw.get("seed", 0) if seed is None else seed
    _check_seed(the_seed, file, "seed" if seed is None else "--seed")

    spec_args = _spec_args(raw, file, system, base_dir)
    fixed = _fixed(raw, file, system)

    sampler, options = _sampler(raw, file)
    sampler_seed = options.pop("seed", None)
    if sampler_seed is not None:
        _check_seed(sampler_seed, file, "sampler.seed")
        if seed is None:
            the_seed = sampler_seed

    space = _space(raw, file, system, base_dir)
    objectives = _objectives(raw, file, system, fidelity)
    constraints = _constraints(raw, file, system, fidelity)

    exhaustive: Any = raw.get("exhaustive", "auto")
    max_points = 1_000_000
    if isinstance(exhaustive, Mapping):
        unknown = set(exhaustive) - {"enabled", "max_points"}
        if unknown:
            k = sorted(unknown)[0]
            raise err("unknown key; known keys: enabled, max_points", f"exhaustive.{k}",
                      exhaustive[k])
        max_points = exhaustive.get("max_points", max_points)
        if (isinstance(max_points, bool) or not isinstance(max_points, int)
                or not 1 <= max_points <= MAX_ENUMERATED_POINTS):
            raise err(f"expected a whole number in [1, {MAX_ENUMERATED_POINTS:,}] (exhaustive "
                      "search holds its table in memory)", "exhaustive.max_points", max_points)
        exhaustive = exhaustive.get("enabled", "auto")
    if exhaustive not in ("auto", True, False):
        raise err('expected "auto", true or false', "exhaustive", exhaustive)

    refine = _refine(raw, file, system, [o.metric for o in objectives])
    baselines = _baselines(raw, file, [o.metric for o in objectives], base_dir, validate)
    rtl_check = _rtl_check(raw, file, system)

    study = StudySpec(
        path=file, name=name, system=system.name, fidelity=fidelity, trials=n_trials,
        seed=the_seed, spec_args=tuple(spec_args), fixed=MappingProxyType(fixed),
        sampler=sampler, sampler_options=MappingProxyType(options), space=tuple(space),
        objectives=tuple(objectives), constraints=tuple(constraints), exhaustive=exhaustive,
        exhaustive_max_points=max_points, refine=refine,
        description=str(raw.get("description", "")), baselines=tuple(baselines),
        rtl_check=rtl_check, raw=MappingProxyType(dict(raw)),
    )
    if exhaustive is True and not study.enumerable():
        raise err(
            f"exhaustive search needs a discrete space of at most {max_points:,} points; "
            f"this one has {study.not_enumerable()}", "exhaustive", exhaustive)
    if sampler == "grid" and not study.discrete:
        raise err("the grid sampler needs a discrete space (int, step, choices or specs)",
                  "sampler.name", sampler)
    if sampler == "grid" and study.space_size() > MAX_ENUMERATED_POINTS:
        raise err(f"the grid sampler lists every point; this space has "
                  f"{study.space_size():.4g}, at most {MAX_ENUMERATED_POINTS:,}", "sampler.name",
                  sampler)
    if validate:
        validate_inputs(study)
    return study


def _spec_args(raw: Mapping[str, Any], file: str, system: System,
               base_dir: Path | None) -> list[str]:
    out: list[str] = []
    value = raw.get("specs", {})
    if isinstance(value, Mapping):
        for role, ref in value.items():
            if not isinstance(ref, str):
                raise InputError("expected a spec name or file", file=file,
                                 key=f"specs.{role}", value=ref, has_value=True)
            try:
                r = system.role(role)
            except InputError as exc:
                raise InputError(str(exc), file=file, key=f"specs.{role}", value=ref,
                                 has_value=True) from None
            out.append(f"{r.name}={_find(ref, r.kind, file, f'specs.{role}', base_dir)}")
    elif isinstance(value, list):
        for i, ref in enumerate(value):
            if not isinstance(ref, str):
                raise InputError("expected ROLE=NAME or a file", file=file,
                                 key=f"specs[{i}]", value=ref, has_value=True)
            out.append(_spec_arg(ref, file, f"specs[{i}]", system, base_dir))
    else:
        raise InputError("expected a table role = spec name or file", file=file, key="specs",
                         value=value, has_value=True)
    if "workload" in raw:
        w = raw["workload"]
        if not isinstance(w, str):
            raise InputError("expected a spec file", file=file, key="workload", value=w,
                             has_value=True)
        out.append(_spec_arg(w, file, "workload", system, base_dir))
    return out


def _spec_arg(ref: str, file: str, key: str, system: System, base_dir: Path | None) -> str:
    role, sep, rest = ref.partition("=")
    if sep and "/" not in role and not role.endswith(".toml"):
        try:
            r = system.role(role)
        except InputError as exc:
            raise InputError(str(exc), file=file, key=key, value=ref, has_value=True) from None
        return f"{role}={_find(rest, r.kind, file, key, base_dir)}"
    p = _path(ref, base_dir)
    if not p.is_file():
        raise InputError("spec file not found", file=file, key=key, value=ref, has_value=True)
    return str(p)


def _path(ref: str, base_dir: Path | None) -> Path:
    p = Path(ref)
    if p.is_absolute() or p.exists() or base_dir is None:
        return p
    for cand in (base_dir / p, base_dir.parent / p, specs.models_dir().parent / p):
        if cand.exists():
            return cand
    if len(p.parts) > 1 and p.parts[0] == "models":  # models/<kind>/x.toml on the search path
        found = specs.find_model_file(Path(*p.parts[1:]))
        if found is not None:
            return found
    return p


def _find(ref: str, kind: str, file: str, key: str, base_dir: Path | None) -> str:
    """A spec name under models/ or a file path (relative to cwd, the study or the repo)."""
    is_path = ref.endswith(".toml") or "/" in ref
    if is_path:
        ref = str(_path(ref, base_dir))
    try:
        found = str(specs.find_spec_file(kind, ref))
    except InputError as exc:
        raise InputError(str(exc), file=file, key=key, value=ref, has_value=True) from None
    # a name stays a name (found under models/ wherever hwsim runs: a report on another machine)
    return found if is_path else ref


def _fixed(raw: Mapping[str, Any], file: str, system: System) -> dict[str, Any]:
    value = raw.get("set", {})
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for i, s in enumerate(value):
            if not isinstance(s, str):
                raise InputError("expected ROLE.KEY=VALUE", file=file, key=f"set[{i}]",
                                 value=s, has_value=True)
            try:
                pairs.append(specs.parse_override(s))
            except InputError as exc:
                raise InputError(str(exc), file=file, key=f"set[{i}]", value=s,
                                 has_value=True) from None
    else:
        raise InputError("expected a list of ROLE.KEY=VALUE or a table", file=file, key="set",
                         value=value, has_value=True)
    for k, v in pairs:
        _check_role(k, file, f"set.{k}", v, system)
        out[k] = v
    return out


def _check_role(key: str, file: str, where: str, value: Any, system: System) -> None:
    role, dot, rest = key.partition(".")
    if not dot or not rest:
        raise InputError("expected ROLE.key (roles: " + ", ".join(r.name for r in system.roles)
                         + ")", file=file, key=where, value=value, has_value=True)
    try:
        system.role(role)
    except InputError as exc:
        raise InputError(str(exc), file=file, key=where, value=value, has_value=True) from None


def _check_key_path(name: str, file: str, where: str, system: System) -> None:
    """A space dimension ``role.key`` must name a key of the role's kind: the error names
    that dimension (not another one whose point happened to be resolved first)."""
    role, _, rest = name.partition(".")
    kind = system.role(role).kind
    known = [r.key for r in specs.schema_rows(specs.kind_schema(kind))]
    if rest in known:
        return
    close = difflib.get_close_matches(rest, known, n=1)
    raise InputError(f"unknown key path: {kind} specs have no key '{rest}'"
                     + (f"; did you mean '{role}.{close[0]}'?" if close else
                        f"; known keys: {', '.join(known)}"), file=file, key=where)


def _sampler(raw: Mapping[str, Any], file: str) -> tuple[str, dict[str, Any]]:
    value = raw.get("sampler", {"name": "tpe"})
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise InputError("expected a table { name = ..., seed = ... }", file=file,
                         key="sampler", value=value, has_value=True)
    opts = dict(value)
    name = opts.pop("name", "tpe")
    if name not in SAMPLERS:
        raise InputError(f"expected one of {', '.join(SAMPLERS)}", file=file,
                         key="sampler.name", value=name, has_value=True)
    extra = opts.pop("options", {})
    if not isinstance(extra, Mapping):
        raise InputError("expected a table of sampler arguments", file=file,
                         key="sampler.options", value=extra, has_value=True)
    opts.update(extra)
    cls = sampler_class(name, file)
    params = inspect.signature(cls).parameters
    allowed = set(params) - {"constraints_func", "search_space"}
    for k in opts:
        if k not in allowed:
            raise InputError(
                f"not an argument of {cls.__name__}; expected one of {', '.join(sorted(allowed))}",
                file=file, key=f"sampler.{k}", value=opts[k], has_value=True)
    for k, v in opts.items():
        if k != "seed":  # checked with the study's seed
            _check_sampler_option(cls, params[k], v, file)
    return name, opts


#: what a sampler argument's annotation may name that a TOML value can be
_OPTION_TYPES = {"bool": "true or false", "int": "a whole number", "float": "a number",
                 "str": "a string"}
#: upper bounds of whole-number sampler arguments that size a loop or an allocation
_OPTION_MAX = {"n_ei_candidates": 100_000, "dividing_parameter": 64,
               "population_size": 1_000_000}
_OPTION_INT_MAX = 1_000_000_000


def _check_sampler_option(cls: type, param: inspect.Parameter, value: Any, file: str) -> None:
    """A sampler argument from the study file, checked against the constructor's annotation
    (and default) before any trial: a wrong type would pass the sampler's constructor and fail
    only when the sampler first uses it, in the middle of the sweep."""
    key = f"sampler.{param.name}"
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        ann = type(param.default).__name__ if param.default not in (None, param.empty) else ""
    elif not isinstance(ann, str):
        ann = getattr(ann, "__name__", str(ann))
    parts = [a.strip() for a in str(ann).split("|")]
    kinds = [a for a in parts if a in _OPTION_TYPES]
    if not kinds:
        raise InputError(f"{cls.__name__}'s argument {param.name} takes a Python object "
                         f"({ann or 'any'}), which a study file cannot give", file=file, key=key,
                         value=value, has_value=True)

    def fits(kind: str) -> bool:
        if kind == "bool":
            return isinstance(value, bool)
        if kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if kind == "float":
            return _num(value)
        return isinstance(value, str)

    if not any(fits(k) for k in kinds):
        raise InputError(f"expected {' or '.join(_OPTION_TYPES[k] for k in kinds)} "
                         f"({cls.__name__} argument {param.name}: {ann})", file=file, key=key,
                         value=value, has_value=True)
    if kinds == ["int"] or (isinstance(value, int) and not isinstance(value, bool)
                            and "float" not in kinds):
        hi = _OPTION_MAX.get(param.name, _OPTION_INT_MAX)
        if not 0 <= value <= hi:
            raise InputError(f"expected a whole number in [0, {hi:,}]", file=file, key=key,
                             value=value, has_value=True)
    if cls.__name__ == "GridSampler":
        return
    try:  # the constructor's own checks of this one argument
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**{param.name: value})
    except (TypeError, ValueError) as exc:
        raise InputError(f"rejected by {cls.__name__}: {exc}", file=file, key=key, value=value,
                         has_value=True) from None


def sampler_class(name: str, file: str = "") -> type:
    """The Optuna sampler class behind a sampler name."""
    import optuna

    classes = {
        "tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
        "nsga3": optuna.samplers.NSGAIIISampler, "gp": optuna.samplers.GPSampler,
        "random": optuna.samplers.RandomSampler, "qmc": optuna.samplers.QMCSampler,
        "grid": optuna.samplers.GridSampler,
    }
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise InputError("the gp sampler needs PyTorch (pip install torch); "
                             "or use tpe", file=file or None, key="sampler.name", value=name,
                             has_value=True) from None
    return classes[name]


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_seed(value: Any, file: str, key: str) -> None:
    """A seed: a whole number in [0, 2**32 - 1] (what Optuna's samplers and numpy take)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise InputError(f"expected a whole number seed in [0, {SEED_MAX}]", file=file, key=key,
                         value=value, has_value=True)


def _space(raw: Mapping[str, Any], file: str, system: System,
           base_dir: Path | None) -> list[Param]:
    space = raw.get("space", {})
    if not isinstance(space, Mapping):
        raise InputError("expected a table key.path = { ... }", file=file, key="space",
                         value=space, has_value=True)
    out = []
    for name, d in space.items():
        key = f"space.{name}"

        def bad(msg: str, sub: str | None = None, value: Any = None, _key: str = key,
                _d: Any = d) -> InputError:
            return InputError(msg, file=file, key=_key + (f".{sub}" if sub else ""),
                              value=_d if sub is None else value, has_value=True)

        if not isinstance(d, Mapping):
            raise bad("expected a table { low, high[, step][, log] } or { choices } "
                      "or { specs }")
        known = {"low", "high", "step", "log", "choices", "specs", "type"}
        for k in d:
            if k not in known:
                raise bad(f"unknown key; known keys: {', '.join(sorted(known))}", k, d[k])
        if "specs" in d:
            if "." in name:
                raise bad("a choice among spec files is keyed by a role name (e.g. 'gpu')")
            try:
                role = system.role(name)
            except InputError as exc:
                raise bad(str(exc)) from None
            refs = d["specs"]
            if refs == "all":
                refs = [p.stem for p in specs.spec_files(role.kind)]
            if not isinstance(refs, list) or not refs:
                raise bad('expected a non-empty list of spec names or files, or "all"',
                          "specs", refs)
            for i, ref in enumerate(refs):
                if not isinstance(ref, str):
                    raise bad("expected a spec name or file", f"specs[{i}]", ref)
                _find(ref, role.kind, file, f"{key}.specs[{i}]", base_dir)
            if len(set(refs)) != len(refs):
                raise bad("the list repeats a spec", "specs", refs)
            out.append(Param(name, "spec", choices=tuple(refs)))
            continue
        _check_role(name, file, key, d, system)
        _check_key_path(name, file, key, system)
        if "choices" in d:
            ch = d["choices"]
            if not isinstance(ch, list) or not ch:
                raise bad("expected a non-empty list of values (an empty range)", "choices", ch)
            if any(isinstance(c, list | dict) for c in ch):
                raise bad("choices must be numbers, strings or booleans", "choices", ch)
            if len({json.dumps(c) for c in ch}) != len(ch):
                raise bad("the list repeats a value", "choices", ch)
            for i, c in enumerate(ch):
                if isinstance(c, int) and not isinstance(c, bool) and abs(c) > INT64_MAX:
                    raise bad("an integer beyond 64 bits (the trial tables hold 64-bit "
                              "integers)", f"choices[{i}]", c)
                if isinstance(c, float) and not math.isfinite(c):
                    raise bad("expected a finite number", f"choices[{i}]", c)
            out.append(Param(name, "categorical", choices=tuple(ch)))
            continue
        if "low" not in d or "high" not in d:
            raise bad("expected low and high (a range) or choices")
        low, high, step, log = d["low"], d["high"], d.get("step"), d.get("log", False)
        if not _num(low):
            raise bad("expected a number", "low", low)
        if not _num(high):
            raise bad("expected a number", "high", high)
        if not isinstance(log, bool):
            raise bad("expected true or false", "log", log)
        if step is not None and (not _num(step) or step <= 0):
            raise bad("expected a number > 0", "step", step)
        if high < low or (high == low):
            raise bad(f"empty range: high ({high}) must be greater than low ({low})")
        if log and step is not None:
            raise bad("a log-scaled range takes no step", "step", step)
        if log and low <= 0:
            raise bad("a log-scaled range needs low > 0", "low", low)
        typ = d.get("type")
        if typ is None:
            typ = "int" if all(isinstance(x, int) for x in (low, high, step or 1)) else "float"
        if typ not in ("int", "float"):
            raise bad("expected int or float", "type", typ)
        if typ == "int" and not all(float(x).is_integer() for x in (low, high, step or 1)):
            raise bad("an int range needs whole low, high and step")
        if step is not None and (high - low) / step < 1 - 1e-9:
            raise bad(f"empty range: no step of {step} fits between {low} and {high}")
        if typ == "int" and max(abs(low), abs(high)) > INT64_MAX:
            k, v = ("low", low) if abs(low) > INT64_MAX else ("high", high)
            raise bad("an integer beyond 64 bits (the trial tables hold 64-bit integers)", k, v)
        if typ == "float" and step is not None and (high - low) / step > MAX_FLOAT_STEPS:
            raise bad(f"a step this fine makes {(high - low) / step:.3g} values between {low} and "
                      f"{high}; at most {MAX_FLOAT_STEPS:.0e} (for a continuous range give no "
                      "step)", "step", step)
        if typ == "int":
            low, high = int(low), int(high)
            step = int(step) if step is not None else None
        else:
            low, high = float(low), float(high)
            step = float(step) if step is not None else None
        out.append(Param(name, typ, low=low, high=high, step=step, log=log))
    names = [p.name for p in out]
    for p in out:
        if p.type == "spec" and any(n.startswith(p.name + ".") for n in names):
            pass  # a key inside a chosen spec: allowed, applied on top of the chosen file
    return out


def _objectives(raw: Mapping[str, Any], file: str, system: System,
                fidelity: str) -> list[Objective]:
    objs = raw.get("objectives")
    if not objs:
        raise InputError("missing [[objectives]] (metric and direction)", file=file)
    if isinstance(objs, Mapping):
        objs = [objs]
    if not isinstance(objs, list):
        raise InputError("expected [[objectives]] tables", file=file, key="objectives",
                         value=objs, has_value=True)
    out = []
    for i, o in enumerate(objs):
        key = f"objectives[{i}]"
        if not isinstance(o, Mapping):
            raise InputError("expected a table { metric, direction }", file=file, key=key,
                             value=o, has_value=True)
        for k in o:
            if k not in ("metric", "direction"):
                raise InputError("unknown key; known keys: metric, direction", file=file,
                                 key=f"{key}.{k}", value=o[k], has_value=True)
        metric = o.get("metric")
        _check_metric(metric, file, f"{key}.metric", system, fidelity)
        direction = o.get("direction", "minimize")
        if direction not in DIRECTIONS:
            raise InputError("expected minimize or maximize", file=file,
                             key=f"{key}.direction", value=direction, has_value=True)
        if any(x.metric == metric for x in out):
            raise InputError("the same metric twice", file=file, key=f"{key}.metric",
                             value=metric, has_value=True)
        out.append(Objective(metric, direction))
    return out


def _baselines(raw: Mapping[str, Any], file: str, objectives: Sequence[str],
               base_dir: Path | None, validate: bool) -> list[Baseline]:
    """``[[baselines]]``: label, system, specs (role = spec name or file), set (ROLE.KEY=VALUE
    list or table). Each system must report every objective (analytical)."""
    value = raw.get("baselines", [])
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise InputError("expected [[baselines]] tables", file=file, key="baselines",
                         value=value, has_value=True)
    out: list[Baseline] = []
    for i, b in enumerate(value):
        where = f"baselines[{i}]"
        if not isinstance(b, Mapping):
            raise InputError("expected a table { label, system, specs, set }", file=file,
                             key=where, value=b, has_value=True)
        for k in b:
            if k not in ("label", "system", "specs", "set"):
                raise InputError("unknown key; known keys: label, system, specs, set",
                                 file=file, key=f"{where}.{k}", value=b[k], has_value=True)
        label = b.get("label")
        if not isinstance(label, str) or not label:
            raise InputError("expected a label (text shown in the report)", file=file,
                             key=f"{where}.label", value=label, has_value=label is not None)
        if any(x.label == label for x in out):
            raise InputError("the same label twice", file=file, key=f"{where}.label",
                             value=label, has_value=True)
        try:
            system = get_system(str(b.get("system", "")))
        except InputError as exc:
            raise InputError(exc.message, file=file, key=f"{where}.system",
                             value=b.get("system"), has_value=True) from None
        sub = {k: b[k] for k in ("specs", "set") if k in b}
        try:
            spec_args = _spec_args(sub, file, system, base_dir)
            fixed = _fixed(sub, file, system)
        except InputError as exc:
            raise InputError(exc.message, file=file, key=f"{where}.{exc.key}",
                             value=exc.value, has_value=exc.key is not None) from None
        for metric in objectives:
            try:
                _check_metric(metric, file, f"{where}.system", system, "analytical")
            except InputError:
                raise InputError(f"system '{system.name}' does not report the objective "
                                 f"'{metric}', so it cannot be compared on it", file=file,
                                 key=f"{where}.system", value=system.name,
                                 has_value=True) from None
        base = Baseline(label=label, system=system.name, spec_args=tuple(spec_args),
                        fixed=MappingProxyType(fixed))
        if validate:
            try:
                system.resolve(base.spec_args, dict(base.fixed))
            except InputError as exc:
                raise InputError(exc.message, file=file, key=where) from None
        out.append(base)
    return out


def _check_metric(metric: Any, file: str, key: str, system: System, fidelity: str) -> None:
    names = system.metric_names(fidelity)
    if metric in names:
        return
    close = suggest(str(metric), list(names), n=2)
    if metric in system.metric_names():
        fids = [f for m in system.metrics if m.name == metric for f in m.fidelities]
        msg = (f"system '{system.name}' reports this metric only with fidelity "
               f"{', '.join(fids)}, not {fidelity}")
    else:
        msg = (f"system '{system.name}' ({fidelity}) reports no such metric"
               + (f"; did you mean {', '.join(repr(c) for c in close)}?" if close else
                  f"; it reports: {', '.join(names)}"))
    raise InputError(msg, file=file, key=key, value=metric, has_value=True)


def _constraints(raw: Mapping[str, Any], file: str, system: System,
                 fidelity: str) -> list[Constraint]:
    cons = raw.get("constraints", [])
    if isinstance(cons, Mapping):
        cons = [cons]
    if not isinstance(cons, list):
        raise InputError("expected [[constraints]] tables", file=file, key="constraints",
                         value=cons, has_value=True)
    out = []
    for i, c in enumerate(cons):
        key = f"constraints[{i}]"
        if not isinstance(c, Mapping):
            raise InputError("expected a table { metric, max | min }", file=file, key=key,
                             value=c, has_value=True)
        for k in c:
            if k not in ("metric", "max", "min"):
                raise InputError("unknown key; known keys: metric, max, min", file=file,
                                 key=f"{key}.{k}", value=c[k], has_value=True)
        _check_metric(c.get("metric"), file, f"{key}.metric", system, fidelity)
        lo, hi = c.get("min"), c.get("max")
        if lo is None and hi is None:
            raise InputError("expected a bound: max or min", file=file, key=key, value=c,
                             has_value=True)
        for b, v in (("min", lo), ("max", hi)):
            if v is not None and not _num(v):
                raise InputError("expected a number", file=file, key=f"{key}.{b}", value=v,
                                 has_value=True)
        if lo is not None and hi is not None and lo > hi:
            raise InputError(f"empty range: min ({lo}) > max ({hi})", file=file, key=key,
                             value=c, has_value=True)
        out.append(Constraint(c["metric"], max=None if hi is None else float(hi),
                              min=None if lo is None else float(lo)))
    return out


def _rtl_check(raw: Mapping[str, Any], file: str, system: System) -> RtlCheck | None:
    r = raw.get("rtl_check")
    if r is None or r is False:
        return None
    if r is True:
        r = {}
    if not isinstance(r, Mapping):
        raise InputError("expected a table (top, verify, jobs) or true", file=file,
                         key="rtl_check", value=r, has_value=True)
    from hwsim.rtl.registry import GENERATORS

    gen = GENERATORS.get(system.name) if system.name in GENERATORS else None
    if gen is None or gen.study_check is None:
        raise InputError(f"system '{system.name}' has no RTL generator that checks a study's "
                         "designs", file=file, key="rtl_check", value=dict(r), has_value=True)
    for k in r:
        if k not in ("top", "verify", "jobs"):
            raise InputError("unknown key; known keys: top, verify, jobs", file=file,
                             key=f"rtl_check.{k}", value=r[k], has_value=True)
    for k, lo, hi in (("top", 1, 100), ("jobs", 1, 64)):
        v = r.get(k, 3 if k == "top" else 1)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InputError(f"expected a whole number in [{lo}, {hi}]", file=file,
                             key=f"rtl_check.{k}", value=v, has_value=True)
    verify = r.get("verify", True)
    if not isinstance(verify, bool):
        raise InputError("expected true or false", file=file, key="rtl_check.verify",
                         value=verify, has_value=True)
    return RtlCheck(top=r.get("top", 3), verify=verify, jobs=r.get("jobs", 1))


def _refine(raw: Mapping[str, Any], file: str, system: System,
            objectives: list[str]) -> Refine | None:
    r = raw.get("refine")
    if r is None or r is False:
        return None
    if r is True:
        r = {}
    if not isinstance(r, Mapping):
        raise InputError("expected a table { fidelity, neighbours, max_points }", file=file,
                         key="refine", value=r, has_value=True)
    known = ("fidelity", "neighbours", "max_points", "seeds")
    for k in r:
        if k not in known:
            raise InputError(f"unknown key; known keys: {', '.join(known)}", file=file,
                             key=f"refine.{k}", value=r[k], has_value=True)
    fid = r.get("fidelity", "des")
    if fid not in FIDELITIES:
        raise InputError(f"expected one of {', '.join(FIDELITIES)}", file=file,
                         key="refine.fidelity", value=fid, has_value=True)
    if fid == "des" and system.des is None:
        raise InputError(f"system '{system.name}' has no DES evaluator", file=file,
                         key="refine.fidelity", value=fid, has_value=True)
    for m in objectives:
        _check_metric(m, file, "refine.fidelity", system, fid)
    mp = r.get("max_points", 40)
    if isinstance(mp, bool) or not isinstance(mp, int) or mp < 1:
        raise InputError("expected a whole number >= 1", file=file, key="refine.max_points",
                         value=mp, has_value=True)
    seeds = r.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InputError("expected a whole number >= 1", file=file, key="refine.seeds",
                         value=seeds, has_value=True)
    nb = r.get("neighbours", True)
    if not isinstance(nb, bool):
        raise InputError("expected true or false", file=file, key="refine.neighbours",
                         value=nb, has_value=True)
    return Refine(fidelity=fid, neighbours=nb, max_points=mp, seeds=seeds)


def validate_inputs(study: StudySpec) -> None:
    """Resolve the system inputs at the ends of every dimension: unknown key paths, values the
    spec rejects and broken spec files fail here, before any trial, naming the study file."""
    try:
        study.base_inputs()
    except InputError as exc:
        raise InputError(f"fixed inputs (specs/set): {exc}", file=study.path) from None
    cache = InputCache(study)
    base_point = {p.name: p.sample_points()[0] for p in study.space}
    for p in study.space:
        for v in p.sample_points():
            point = dict(base_point, **{p.name: v})
            try:
                cache.inputs(point)
            except InputError as exc:
                raise InputError(_space_error(cache, point, p, exc), file=study.path,
                                 key=f"space.{p.name}", value=v, has_value=True) from None


def _space_error(cache: InputCache, point: Mapping[str, Any], p: Param,
                 exc: InputError) -> str:
    """What a space dimension got wrong, from the key the spec error names (``exc.key``): an
    unknown key path (with the closest known key), or the spec's own bare ``exc.message``."""
    role, _, rest = p.name.partition(".")
    if rest and exc.key == rest:
        try:
            spec = cache.base(point)[role]
        except (InputError, KeyError):
            spec = None
        if spec is not None:
            known = [r.key for r in specs.schema_rows(type(spec))]
            if rest not in known:
                close = difflib.get_close_matches(rest, known, n=1)
                return "unknown key path" + (f"; did you mean '{close[0]}'?" if close else
                                             f"; known keys: {', '.join(known)}")
    return exc.message  # bare: the study's own file, key and value replace the spec's
