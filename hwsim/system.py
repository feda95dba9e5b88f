"""The interface every simulated system implements, and the registry of systems.

A system names its inputs (*roles*, each a spec kind with a default spec file) and two
evaluators over the same resolved inputs:

- ``analytical(inputs) -> Metrics``: closed form, cheap; optionally ``analytical_batch`` evaluates
  many design points at once with numpy (key path -> array of values);
- ``des(inputs, seed=..., trace=...) -> Metrics``: a SimPy discrete-event simulation.

Metrics are one flat mapping of metric name (unit in the name) to a number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.errors import InputError

log = logging.getLogger(__name__)

Metrics = dict[str, float]
Inputs = Mapping[str, Any]  # role -> frozen spec object
BatchEvaluator = Callable[[Inputs, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]

FIDELITIES = ("analytical", "des")


@dataclass(frozen=True)
class Role:
    """One input of a system: a spec ``kind`` and the spec used when none is given."""

    name: str
    kind: str
    default: str
    help: str = ""


@dataclass(frozen=True)
class Metric:
    """A metric a system reports; ``fidelities`` says which evaluators report it."""

    name: str
    help: str = ""
    fidelities: tuple[str, ...] = FIDELITIES


@dataclass(frozen=True)
class System:
    """A simulated system: its inputs, metrics and evaluators."""

    name: str
    summary: str
    roles: tuple[Role, ...]
    metrics: tuple[Metric, ...]
    analytical: Callable[[Inputs], Metrics]
    des: Callable[..., Metrics] | None = None
    #: vectorised analytical evaluator: (inputs, {key.path: array}) -> {metric: array}
    analytical_batch: BatchEvaluator | None = None
    #: validation cases (hwsim.validation.Case) of this system
    validation: Callable[[], Sequence[Any]] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------------------------------
    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name == name:
                return r
        raise InputError(
            f"system '{self.name}' has no input '{name}'; its inputs are: "
            + ", ".join(r.name for r in self.roles)
        )

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
                role = self.role(role_name)
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
        out: dict[str, Any] = {}
        for r in self.roles:
            path = chosen.get(r.name) or specs.find_spec_file(r.kind, r.default)
            out[r.name] = specs.load_spec(path, kind=r.kind, overrides=per_role[r.name],
                                          override_prefix=f"{r.name}.")
        return MappingProxyType(out)

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
            metrics = self.analytical(inputs)
        elif fidelity == "des":
            if self.des is None:
                raise InputError(f"system '{self.name}' has no DES evaluator")
            metrics = self.des(inputs, seed=seed, trace=trace)
        else:
            raise InputError(
                f"--fidelity {fidelity!r}: expected one of {', '.join(FIDELITIES)}"
            )
        return {k: float(v) for k, v in metrics.items()}


_SYSTEMS: dict[str, System] = {}


def register_system(system: System) -> System:
    """Add a system to the registry (called by each system's module on import)."""
    if system.name in _SYSTEMS and _SYSTEMS[system.name] is not system:
        raise ValueError(f"system {system.name!r} registered twice")
    _SYSTEMS[system.name] = system
    return system


def get_system(name: str) -> System:
    from hwsim import systems

    systems.load_all()
    try:
        return _SYSTEMS[name]
    except KeyError:
        raise InputError(
            f"unknown system {name!r}; expected one of: {', '.join(sorted(_SYSTEMS))}"
        ) from None


def all_systems() -> list[System]:
    from hwsim import systems

    systems.load_all()
    return [_SYSTEMS[k] for k in sorted(_SYSTEMS)]
