"""The interface every simulated system implements, and the registry of systems.

A system names its inputs (*roles*, each a spec kind with a default spec file) and two
evaluators over the same resolved inputs:

- analytical: closed form, cheap. A system with a vectorised model gives a
  :class:`hwsim.batch.BatchModel`; its ``analytical_batch(inputs, {key.path: array})`` and its
  scalar ``analytical(inputs)`` (the batch on one point) are then both derived from it by the
  core (:mod:`hwsim.batch`), so every system groups, re-resolves and marks infeasible points the
  same way. A system without one gives ``analytical`` itself.
- ``des(inputs, seed=..., trace=...) -> Metrics``: a SimPy discrete-event simulation.

Metrics are one flat mapping of metric name (unit in the name) to a number; what each name
means is defined once, in :mod:`hwsim.metrics`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim import specs
from hwsim.batch import BatchModel, BatchResult, evaluate_batch, evaluate_one
from hwsim.errors import InputError
from hwsim.metrics import Measured
from hwsim.registry import Registry

log = logging.getLogger(__name__)

Metrics = dict[str, float]
BatchEvaluator = Callable[["Inputs", Mapping[str, Any]], BatchResult]

FIDELITIES = ("analytical", "des")


class Inputs(Mapping[str, Any]):
    """Resolved inputs of a system: role -> frozen spec object (read-only).

    ``explicit`` names the roles whose spec was chosen (a ``--spec`` argument, a study's
    ``specs``, a batch's bare-role key) rather than taken from the role's default, so that a
    default that depends on another input (``roofline-{device}``) follows that input.
    """

    __slots__ = ("_data", "explicit")

    def __init__(self, data: Mapping[str, Any], explicit: Iterable[str] | None = None) -> None:
        self._data = dict(data)
        self.explicit = frozenset(self._data if explicit is None else explicit)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Inputs({self._data!r})"


@dataclass(frozen=True)
class Role:
    """One input of a system: a spec ``kind`` and the spec used when none is given.

    ``default`` may name other roles in braces (``"roofline-{device}"``): it is filled with
    their specs' names. When no such file exists, ``fallback`` is used (with a warning).
    ``matches`` names roles whose spec name this spec's field of the same name must equal (or
    be empty): a calibration's ``device`` is the device's name, so that its constants are never
    applied to a device (or kernel) they were not fitted for.

    ``used`` says, from the roles resolved before this one, whether the evaluator reads this
    role at all (a calibration only one workload family needs): when it returns False the
    default is not looked up and ``fallback`` is loaded without a warning.
    """

    name: str
    kind: str
    default: str
    help: str = ""
    fallback: str = ""
    matches: tuple[str, ...] = ()
    used: Callable[[Mapping[str, Any]], bool] | None = None


@dataclass(frozen=True)
class Metric:
    """A metric a system reports; ``fidelities`` says which evaluators report it.

    A name defined in :mod:`hwsim.metrics` means what it says there; ``help`` then adds a
    system's note (the system's :attr:`System.metrics` carry the two joined).
    """

    name: str
    help: str = ""
    fidelities: tuple[str, ...] = FIDELITIES


@dataclass(frozen=True)
class System:
    """A simulated system: its inputs, metrics and evaluators.

    Give ``batch`` (a vectorised model) or ``analytical`` (a scalar one), not both: with
    ``batch``, ``analytical`` is the batch on one point.
    """

    name: str
    summary: str
    roles: tuple[Role, ...]
    metrics: tuple[Metric, ...]
    analytical: Callable[[Inputs], Metrics] | None = None
    des: Callable[..., Metrics] | None = None
    #: the vectorised analytical model; ``analytical_batch`` and ``analytical`` derive from it
    batch: BatchModel | None = None
    #: validation cases (hwsim.validation.Case) of this system
    validation: Callable[[], Sequence[Any]] | None = None
    #: an evaluator with per-item tables: ``(inputs, fidelity, *, seed, trace) -> (metrics,
    #: {name: rows})`` (rows: dicts of one item each, such as a layer or a road segment; a
    #: fidelity without tables gives ``{}``); ``hwsim simulate`` prints them
    tables: Callable[..., tuple[Metrics, dict[str, list[dict[str, Any]]]]] | None = None

    def __post_init__(self) -> None:
        from hwsim.metrics import CATALOGUE

        metrics = []
        for m in self.metrics:
            d = CATALOGUE.get(m.name)
            if d is None and not m.help:
                raise ValueError(f"system {self.name!r}: metric {m.name!r} needs a help text "
                                 "(or a definition in hwsim.metrics)")
            if d is not None:
                m = Metric(m.name, d.meaning + (f" ({m.help})" if m.help else ""), m.fidelities)
            metrics.append(m)
        object.__setattr__(self, "metrics", tuple(metrics))
        if self.batch is not None and self.analytical is not None:
            raise ValueError(f"system {self.name!r}: give batch or analytical, not both (the "
                             "scalar evaluator is the batch on one point)")
        if self.batch is None and self.analytical is None:
            raise ValueError(f"system {self.name!r} has no analytical evaluator")
        if self.batch is not None:
            object.__setattr__(self, "analytical", functools.partial(evaluate_one, self))

    @property
    def analytical_batch(self) -> BatchEvaluator | None:
        """``(inputs, {role.key: array}) -> BatchResult``, or None without a batch model."""
        if self.batch is None:
            return None
        return functools.partial(evaluate_batch, self)

    # ----------------------------------------------------------------------------------------
    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name == name:
                return r
        raise InputError(
            f"system '{self.name}' has no input '{name}'; its inputs are: "
            + ", ".join(r.name for r in self.roles)
        )

    def _role_or_kind(self, name: str) -> Role:
        """The role ``name``, or the one role whose kind is ``name`` (``--spec gpu=h100``
        where the role is ``device``)."""
        by_kind = [r for r in self.roles if r.kind == name]
        if all(r.name != name for r in self.roles) and len(by_kind) == 1:
            return by_kind[0]
        return self.role(name)

    def metric_names(self, fidelity: str | None = None) -> list[str]:
        return [m.name for m in self.metrics if fidelity is None or fidelity in m.fidelities]

    def resolve(
        self,
        spec_args: Iterable[str] = (),
        overrides: Mapping[str, Any] | Iterable[str] = (),
    ) -> Inputs:
        """Resolve ``--spec`` arguments and ``--set`` overrides into frozen spec objects.

        A spec argument is ``FILE`` (its kind picks the role), ``ROLE=FILE`` or ``ROLE=NAME``
        (a name under ``models/``). Override keys start with the role: ``chip.die_area_mm2``.
        """
        chosen: dict[str, Path] = {}
        for arg in spec_args:
            role_name, sep, ref = str(arg).partition("=")
            if sep and "/" not in role_name and not role_name.endswith(".toml"):
                role = self._role_or_kind(role_name)
                chosen[role.name] = specs.find_spec_file(role.kind, ref)
                continue
            path = Path(arg)
            if not path.is_file():
                raise InputError(f"spec file not found: {path}", file=str(path))
            kind = specs.read_toml(path).get("kind")
            matches = [r for r in self.roles if r.kind == kind]
            if not matches:
                raise InputError(
                    f"system '{self.name}' takes no spec of this kind; it takes: "
                    + ", ".join(f"{r.name} ({r.kind})" for r in self.roles),
                    file=str(path), key="kind", value=kind, has_value=True,
                )
            if len(matches) > 1:
                raise InputError(
                    f"several inputs take kind '{kind}'; write ROLE={path} with ROLE one of "
                    + ", ".join(r.name for r in matches),
                    file=str(path),
                )
            chosen[matches[0].name] = path
        per_role = self._overrides(overrides)
        out: dict[str, Any] = {}
        for r in self.roles:
            path = chosen.get(r.name) or self._default_file(r, out)
            out[r.name] = specs.load_spec(path, kind=r.kind, overrides=per_role[r.name],
                                          override_prefix=f"{r.name}.")
        self._check_matches(out)
        return Inputs(out, explicit=chosen)

    def with_spec(self, inputs: Inputs, role: str, spec: Any) -> Inputs:
        """``inputs`` with ``role``'s spec replaced by the object ``spec`` (a fitted variant of
        a calibration, say), checked against the roles it must match."""
        self.role(role)
        out = {**inputs, role: spec}
        self._check_matches(out)
        return Inputs(out, explicit=set(getattr(inputs, "explicit", inputs.keys())) | {role})

    def with_choices(self, inputs: Inputs, choices: Mapping[str, Any]) -> Inputs:
        """``inputs`` with some choices changed: a bare ``role`` key picks a spec file (name or
        path), ``role.key`` overrides a key (re-validated). Roles whose default follows a
        changed role (and that were not chosen explicitly) are re-derived."""
        files: dict[str, Any] = {}
        per_role: dict[str, dict[str, Any]] = {}
        for key, value in choices.items():
            role_name, dot, rest = key.partition(".")
            self.role(role_name)
            value = value.item() if hasattr(value, "item") else value
            if dot:
                per_role.setdefault(role_name, {})[rest] = value
            else:
                files[role_name] = value
        explicit = set(getattr(inputs, "explicit", inputs.keys())) | set(files)
        out: dict[str, Any] = {}
        changed: set[str] = set()
        for r in self.roles:
            if r.name in files:
                out[r.name] = specs.load_spec(specs.find_spec_file(r.kind, str(files[r.name])),
                                              kind=r.kind)
                changed.add(r.name)
            elif r.name not in explicit and (any(f"{{{c}}}" in r.default for c in changed)
                                             or (r.used is not None and changed)):
                out[r.name] = specs.load_spec(self._default_file(r, out), kind=r.kind)
                changed.add(r.name)
            else:
                out[r.name] = inputs[r.name]
            if r.name in per_role:
                out[r.name] = specs.with_overrides(out[r.name], per_role[r.name],
                                                   file=f"--set {r.name}.*")
                changed.add(r.name)
        self._check_matches(out)
        return Inputs(out, explicit=explicit)

    def _overrides(self, overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, dict]:
        if isinstance(overrides, Mapping):
            pairs = list(overrides.items())
        else:
            pairs = [specs.parse_override(o) for o in overrides]
        per_role: dict[str, dict[str, Any]] = {r.name: {} for r in self.roles}
        for key, value in pairs:
            role_name, dot, rest = key.partition(".")
            if not dot:
                raise InputError(
                    f"--set {key}={value!r}: expected ROLE.key (roles: "
                    + ", ".join(r.name for r in self.roles) + ")"
                )
            self.role(role_name)
            per_role[role_name][rest] = value
        return per_role

    def _default_file(self, role: Role, resolved: Mapping[str, Any]) -> Path:
        """The default spec file of ``role``, its name filled from roles resolved before it
        (the fallback, without a warning, where ``role.used`` says it is not read)."""
        if role.used is not None and role.fallback and not role.used(resolved):
            return specs.find_spec_file(role.kind, role.fallback)
        try:
            name = role.default.format(**{k: v.name for k, v in resolved.items()})
        except KeyError as exc:  # pragma: no cover - a system definition bug
            raise ValueError(f"system {self.name!r}: role {role.name!r}'s default names "
                             f"{exc}, which is not resolved before it") from None
        try:
            return specs.find_spec_file(role.kind, name)
        except InputError:
            if not role.fallback:
                raise
        log.warning("%s: no %s spec named %r; using %r", self.name, role.kind, name,
                    role.fallback)
        return specs.find_spec_file(role.kind, role.fallback)

    def _check_matches(self, out: Mapping[str, Any]) -> None:
        for r in self.roles:
            for other in r.matches:
                want, got = out[other].name, getattr(out[r.name], other, "")
                if got and got != want:
                    raise InputError(
                        f"{r.name} '{out[r.name].name}' was fitted for {other} '{got}', not "
                        f"'{want}'; choose --spec {r.name}=NAME for this {other} (default: "
                        f"{r.default.format(**{k: v.name for k, v in out.items()})})",
                        key=f"{r.name}.{other}", value=got, has_value=True)

    def evaluate(
        self,
        inputs: Inputs,
        fidelity: str = "analytical",
        *,
        seed: int = 0,
        trace: Any = None,
    ) -> Metrics:
        """Run one evaluator and return its metrics as plain floats."""
        if fidelity == "analytical":
            assert self.analytical is not None
            metrics = self.analytical(inputs)
        elif fidelity == "des":
            if self.des is None:
                raise InputError(f"system '{self.name}' has no DES evaluator")
            metrics = self.des(inputs, seed=seed, trace=trace)
        else:
            raise InputError(
                f"--fidelity {fidelity!r}: expected one of {', '.join(FIDELITIES)}"
            )
        return _floats(metrics)

    def evaluate_tables(
        self, inputs: Inputs, fidelity: str = "analytical", *, seed: int = 0, trace: Any = None
    ) -> tuple[Metrics, dict[str, list[dict[str, Any]]]]:
        """:meth:`evaluate` plus the system's per-item tables (``{}`` when it has none)."""
        if self.tables is not None and fidelity in FIDELITIES:
            if fidelity == "des" and self.des is None:
                raise InputError(f"system '{self.name}' has no DES evaluator")
            metrics, tables = self.tables(inputs, fidelity, seed=seed, trace=trace)
            return _floats(metrics), tables
        return self.evaluate(inputs, fidelity, seed=seed, trace=trace), {}


def _floats(metrics: Mapping[str, Any]) -> Metrics:
    """``metrics`` as plain floats, keeping a DES run's confidence half-widths
    (:class:`hwsim.metrics.Measured`) for the names it reports."""
    out = {k: float(v) for k, v in metrics.items()}
    ci = getattr(metrics, "ci95", None)
    if not ci:
        return out
    return Measured(out, ci95={k: float(v) for k, v in ci.items() if k in out},
                    ci_method=getattr(metrics, "ci_method", ""))


#: the registry of systems
SYSTEMS: Registry[System] = Registry("system")


def register_system(system: System) -> System:
    """Add a system to the registry (called by each system's package on import)."""
    return SYSTEMS.add(system.name, system)


def get_system(name: str) -> System:
    """The system called ``name``; an InputError lists the known ones otherwise."""
    return SYSTEMS.get(name)


def all_systems() -> list[System]:
    """Every registered system, by name."""
    return SYSTEMS.values()
