"""The registry of RTL generators: what ``hwsim rtl`` can build, registered by its owners.

Kept free of Amaranth imports, so that a system package can register its generator on import
at no cost; the components, timing descriptions and demos are imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.errors import ToolError
from hwsim.registry import Registry


@dataclass(frozen=True)
class Generator:
    """One RTL generator: its spec kind, component and timing description.

    ``component(spec)`` builds the ``wiring.Component``; ``timing(spec)`` describes its latency
    and initiation interval; ``demo(spec, vcd_path)`` simulates a random vector set against the
    numpy model and writes a waveform. Owners pass functions that import Amaranth code lazily,
    so that registering a generator costs nothing until it is used.

    Optional, for a generator whose spec is a whole system's design point (``a3fusion``):
    ``resolve(spec_args, overrides)`` builds the spec from ``--spec [ROLE=]NAME`` arguments and
    ``--set ROLE.KEY=VALUE`` overrides (instead of one file of ``kind``); ``synthesize(text,
    spec)`` replaces the default statistics (generic + 7-series) with the generator's own (the
    board's family); ``golden = False`` keeps its default configuration out of the committed
    ``rtl/`` (too large to commit and to re-synthesise in the tests). ``from_study(dir,
    trial)`` builds the spec of a study's trial (``--study DIR --trial N``); ``check(spec,
    out, verify=, synth=, vcd=)`` replaces the plain generation with the generator's own
    (simulation, synthesis and comparison) and returns its summary lines; ``study_check(dir,
    top, out, verify=, jobs=)`` is ``hwsim rtl-check``.
    """

    name: str
    kind: str
    summary: str
    component: Callable[[Any], Any]
    timing: Callable[[Any], dict[str, Any]]
    demo: Callable[[Any, Path], None]
    resolve: Callable[[Sequence[str], Mapping[str, Any]], Any] | None = None
    synthesize: Callable[[str, Any], dict[str, Any]] | None = None
    golden: bool = True
    from_study: Callable[[str, int], Any] | None = None
    check: Callable[..., list[str]] | None = None
    study_check: Callable[..., list[dict[str, Any]]] | None = None

    @property
    def top(self) -> str:
        """The Verilog module name."""
        return self.name.replace("-", "_")


#: the registry of RTL generators (each registers from the package that owns it)
GENERATORS: Registry[Generator] = Registry("generator")


def register_generator(gen: Generator) -> Generator:
    """Add a generator to the registry (called by the package that owns it, on import)."""
    return GENERATORS.add(gen.name, gen)


def operand_range(width: int, signed: bool) -> tuple[int, int]:
    """The smallest and largest value of a ``width``-bit operand."""
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def check_demo(ok: bool, what: str) -> None:
    """Raise when a generator's demo simulation disagrees with its numpy model."""
    if not ok:  # pragma: no cover - a generator bug
        raise ToolError(f"{what}: simulated output differs from the numpy model")


def get_generator(name: str) -> Generator:
    """The generator called ``name``; an InputError lists the known ones otherwise."""
    return GENERATORS.get(name)


