"""Spec kind of the shared RTL block ``fusion-unit``.

Generators that belong to a system keep their spec kind in that system's package
(``systolic`` in :mod:`hwsim.systolic_fpga.spec`, ``sparse-decoder`` in :mod:`hwsim.spmm.spec`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("fusion-unit")
@dataclass(frozen=True, kw_only=True)
class FusionUnitSpec:
    """Two feature streams aligned through FIFOs, fused element-wise and requantised."""

    name: str = param("fusion-unit", help="identifier")
    lanes: int = param(8, ge=1, le=64, help="elements per beat of each input stream")
    in_width: int = param(16, unit="bit", ge=2, le=32, help="width of an input element")
    out_width: int = param(8, unit="bit", ge=2, le=32, help="width of an output element")
    signed: bool = param(True, help="two's-complement elements")
    mode: str = param("add", choices=("add", "concat"),
                      help="add: a + b per element; concat: [a, b] (2 * lanes outputs)")
    shift: int = param(4, ge=0, le=31, help="requantisation: divide by 2**shift")
    rounding: str = param("half_up", choices=("half_up", "floor"),
                          help="half_up: add 2**(shift-1) before the shift; floor: truncate")
    fifo_depth: int = param(8, ge=3, le=1024,
                            help="depth of each input FIFO in beats (3 or more: full rate)")

    @property
    def out_lanes(self) -> int:
        """Elements per output beat."""
        return self.lanes if self.mode == "add" else 2 * self.lanes
