"""The RTL blocks a design point is built from, as the shared generators' specs.

The next slice (RTL in the loop, docs/a3fusion.md) generates a chosen design's Verilog from
these: the PE array(s) are :class:`hwsim.systolic.array.SystolicArray` (``systolic`` kind: one
array when shared, two of ``rows x camera_cols`` and ``rows x (cols - camera_cols)`` when
partitioned, as the resource model counts them), the vector / fusion unit is
:class:`hwsim.rtl.fusion.FusionUnit` (``fusion-unit`` kind, ``vector_lanes`` lanes). The
input-stationary dataflow has no RTL yet (the ``systolic`` kind has ``ws`` and ``os``).
"""

from __future__ import annotations

from hwsim.errors import InputError
from hwsim.rtl.spec import FusionUnitSpec
from hwsim.system import Inputs
from hwsim.systolic.spec import SystolicSpec


def array_specs(inputs: Inputs) -> list[SystolicSpec]:
    """The ``systolic`` specs of the design's PE array(s), the split the model chose."""
    from hwsim.a3fusion.evaluate import SYSTEM

    a = inputs["accel"]
    if a.dataflow not in ("ws", "os"):
        raise InputError("the systolic RTL generator has ws and os arrays only",
                         key="accel.dataflow", value=a.dataflow, has_value=True)
    split = int(SYSTEM.analytical(inputs)["camera_cols"])
    widths = [split, a.cols - split] if split else [a.cols]
    return [SystolicSpec(name=f"{a.name}-{i}", rows=a.rows, cols=c,
                         operand_width=a.operand_width, acc_width=a.acc_width, signed=True,
                         dataflow=a.dataflow, clock_MHz=a.clock_MHz)
            for i, c in enumerate(widths)]


def fusion_spec(inputs: Inputs) -> FusionUnitSpec:
    """The ``fusion-unit`` spec of the design's vector / fusion unit (the measured add mode)."""
    a, net = inputs["accel"], inputs["network"]
    return FusionUnitSpec(name=f"{a.name}-fusion", lanes=a.vector_lanes,
                          in_width=2 * a.operand_width, out_width=a.operand_width,
                          mode="add" if net.fusion_op == "add" else "concat")
