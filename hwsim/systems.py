"""The built-in systems: importing each module registers its spec kinds and its system.

A new system adds its module here (one line).
"""

from __future__ import annotations

import importlib

BUILTIN_MODULES: tuple[str, ...] = (
    "hwsim.queueing",
    "hwsim.chiplet_cloud",
    "hwsim.gpu_serving",
    "hwsim.rtl.system",
    "hwsim.spmm",
)

_loaded = False


def load_all() -> None:
    """Import every built-in system module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
