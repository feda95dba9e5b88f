"""Shared RTL blocks that no system owns yet, registered as generators: ``fusion-unit``.

The components live beside this module (:mod:`hwsim.rtl.fusion`) and are imported when first
built, so registering them costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwsim.rtl.registry import Generator, check_demo, operand_range, register_generator
from hwsim.rtl.spec import FusionUnitSpec


def _fusion_component(spec: FusionUnitSpec) -> Any:
    from hwsim.rtl.fusion import FusionUnit

    return FusionUnit(spec)


def _fusion_timing(spec: FusionUnitSpec) -> dict[str, Any]:
    from hwsim.rtl.fusion import LATENCY

    return {
        "model": "hwsim.rtl.fusion.stream_cycles",
        "stream_cycles": "n + 3",
        "latency_cycles": LATENCY,
        "initiation_interval_cycles": 1,
        "ii_note": "one pair of beats per cycle when both FIFOs hold data and o is ready",
    }


def _fusion_demo(spec: FusionUnitSpec, vcd: Path) -> None:
    from hwsim.rtl.fusion import fuse_reference, simulate_fusion

    rng = np.random.default_rng(0)
    lo, hi = operand_range(spec.in_width, spec.signed)
    a = rng.integers(lo, hi, (16, spec.lanes), endpoint=True)
    b = rng.integers(lo, hi, (16, spec.lanes), endpoint=True)
    out, _ = simulate_fusion(spec, a, b, vcd=vcd, p_valid=0.7, p_ready=0.7)
    check_demo(bool((out == fuse_reference(a, b, spec)).all()), "fusion-unit demo")


FUSION_UNIT = register_generator(Generator(
    "fusion-unit", "fusion-unit", "two-stream sensor fusion with FIFOs and requantisation",
    _fusion_component, _fusion_timing, _fusion_demo))
