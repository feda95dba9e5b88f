"""The ``systolic`` spec kind: a rows x cols MAC array, shared by every system built on it."""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("systolic")
@dataclass(frozen=True, kw_only=True)
class SystolicSpec:
    """A ``rows x cols`` systolic MAC array (see hwsim.systolic.timing for its timing)."""

    name: str = param("systolic", help="identifier")
    rows: int = param(8, ge=2, le=128, help="PE rows (S_R: M for os, K for ws and is)")
    cols: int = param(8, ge=1, le=128, help="PE columns (S_C: N for os and ws, M for is); 1 "
                      "is a partition of a split array")
    operand_width: int = param(8, unit="bit", ge=2, le=32, help="width of A and B elements")
    acc_width: int = param(32, unit="bit", ge=4, le=64,
                           help="accumulator width; sums wrap modulo 2**acc_width")
    signed: bool = param(True, help="two's-complement operands and accumulators")
    dataflow: str = param("ws", choices=("ws", "os", "is"),
                          help="weight-, output- or input-stationary (is: the ws structure "
                               "holding an input tile, the weights streamed)")
    clock_MHz: float = param(200.0, unit="MHz", gt=0, help="clock for throughput figures")

    def __post_init__(self) -> None:
        if self.acc_width < 2 * self.operand_width:
            raise ValueError(
                f"acc_width = {self.acc_width} must be at least 2 * operand_width "
                f"= {2 * self.operand_width} (a product must fit the accumulator)"
            )
