"""One registry pattern for everything hwsim looks up by name: spec kinds, systems, generators.

Each is a :class:`Registry`. Entries are added when the module that defines them is imported
(``@spec_kind``, :func:`hwsim.system.register_system`, :func:`hwsim.rtl.generate.register_generator`
all call :meth:`Registry.add`); looking an entry up first imports every built-in package
(:data:`BUILTIN_PACKAGES`) and every installed plug-in (the ``hwsim.plugins`` entry-point group),
so a name resolves whichever module happened to be imported first.

A new system is one package under ``hwsim/`` that registers its kinds, its system and its RTL
generators on import, plus one line in :data:`BUILTIN_PACKAGES` (or, outside this repository, an
entry point in the ``hwsim.plugins`` group naming its package).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from importlib import metadata
from typing import Generic, TypeVar

from hwsim.errors import InputError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: packages whose import registers the built-in spec kinds, systems and generators
BUILTIN_PACKAGES: tuple[str, ...] = (
    "hwsim.hw",             # shared kinds: gpu, tco, fpga-board
    "hwsim.llm",            # llm
    "hwsim.serving",        # serving
    "hwsim.queueing",
    "hwsim.chiplet_cloud",
    "hwsim.gpu_serving",
    "hwsim.spmm",
    "hwsim.msrep",
    "hwsim.systolic",       # the shared systolic array: kind, timing, resources, RTL
    "hwsim.systolic_fpga",
    "hwsim.a3fusion",       # camera-LiDAR fusion network + FPGA accelerator co-search
    "hwsim.iaad",           # road-side units to vehicles: links, fusion methods, adaptive policy
    "hwsim.diffusion",      # text-to-image diffusion: UNet/DiT, text encoders, VAE on GPUs
    "hwsim.readout_calibration",  # quantum readout-error calibration: CMC, M3, tensored, full
    "hwsim.scitransformer", # EvoFormer attention variants: logit, bias, activation memory
    "hwsim.rlhf",           # RLHF fine-tuning after DeepSpeed-Chat on GPUs
    "hwsim.heat",           # CF training on CPUs (HEAT) against PyTorch-style CPU/GPU baselines
    "hwsim.rtl.blocks",     # shared RTL blocks with no system of their own (fusion-unit)
)

#: entry-point group of third-party packages that register kinds, systems or generators
PLUGIN_GROUP = "hwsim.plugins"

_loaded = False


def load_builtins() -> None:
    """Import every built-in package and plug-in once (each registers what it defines)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_PACKAGES:
        importlib.import_module(mod)
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        log.debug("loading hwsim plug-in %s", ep.value)
        importlib.import_module(ep.value)


class Registry(Generic[T]):
    """Named entries of one sort (``what``: "spec kind", "system", "generator")."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name``; the same name for a different item is a bug."""
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests that register a throw-away entry)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The entry called ``name``; an InputError lists the known names otherwise."""
        if name not in self._items:
            load_builtins()
        try:
            return self._items[name]
        except KeyError:
            raise InputError(
                f"unknown {self.what} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Every registered name, sorted (built-ins loaded first)."""
        load_builtins()
        return sorted(self._items)

    def values(self) -> list[T]:
        return [self._items[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        load_builtins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
