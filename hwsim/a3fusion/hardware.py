"""The RTL blocks a design point is built from, as the shared generators' specs.

The ``a3fusion`` generator (:mod:`hwsim.a3fusion.rtl`, docs/a3fusion.md "RTL in the loop")
builds a chosen design from these: the PE array(s) are :class:`hwsim.systolic.array.SystolicArray`
(``systolic`` kind, ``ws``, ``os`` or ``is``: one array when shared, two of ``rows x
camera_cols`` and ``rows x (cols - camera_cols)`` when partitioned, as the resource model counts
them), the vector / fusion unit is :class:`hwsim.rtl.fusion.FusionUnit` (``fusion-unit`` kind,
``vector_lanes`` lanes), and :func:`design` gathers the whole datapath's parameters (the split
the model chose, the buffers, the board's FPGA family) as an
:class:`hwsim.a3fusion.rtl.A3FusionDesign`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.rtl.spec import FusionUnitSpec
from hwsim.system import Inputs
from hwsim.systolic.spec import SystolicSpec


def array_specs(inputs: Inputs) -> list[SystolicSpec]:
    """The ``systolic`` specs of the design's PE array(s), the split the model chose."""
    a = inputs["accel"]
    split = camera_cols(inputs)
    widths = [split, a.cols - split] if split else [a.cols]
    return [SystolicSpec(name=f"{a.name}-{i}", rows=a.rows, cols=c,
                         operand_width=a.operand_width, acc_width=a.acc_width, signed=True,
                         dataflow=a.dataflow, clock_MHz=a.clock_MHz)
            for i, c in enumerate(widths)]


def camera_cols(inputs: Inputs) -> int:
    """The columns the model gives the camera branch (0: shared), as it evaluates the design."""
    from hwsim.a3fusion import model
    from hwsim.a3fusion.evaluate import params
    from hwsim.a3fusion.layers import build_layers

    a = inputs["accel"]
    if a.branch_mode != "partitioned":
        return 0
    p = params(a, inputs["board"], inputs["energy"], lambda k, d: np.asarray([d]))
    fr = model.frame(build_layers(inputs["network"]), a.dataflow, a.loop_order,
                     a.branch_mode, p)
    return int(fr["camera_cols"][0]) if fr["partitioned"] else 0


def design(inputs: Inputs, source: str = "") -> Any:
    """The :class:`hwsim.a3fusion.rtl.A3FusionDesign` of a design point (the ``a3fusion``
    generator's spec): the accel spec's array, dataflow, widths, buffers and lanes, the
    network's fusion operator, the model's column split, the board's family."""
    from hwsim.a3fusion.rtl import A3FusionDesign

    a, net, b = inputs["accel"], inputs["network"], inputs["board"]
    return A3FusionDesign(
        name=a.name, rows=a.rows, cols=a.cols, camera_cols=camera_cols(inputs),
        dataflow=a.dataflow, operand_width=a.operand_width, acc_width=a.acc_width,
        vector_lanes=a.vector_lanes, fusion_op=net.fusion_op,
        ifmap_buffer_KiB=a.ifmap_buffer_KiB, filter_buffer_KiB=a.filter_buffer_KiB,
        ofmap_buffer_KiB=a.ofmap_buffer_KiB, clock_MHz=a.clock_MHz, board=b.name,
        family=b.family, uram=bool(b.uram), board_dsp=b.dsp, board_lut=b.lut, board_ff=b.ff,
        board_bram36=b.bram36, board_uram=b.uram, source=source)


def fusion_spec(inputs: Inputs) -> FusionUnitSpec:
    """The ``fusion-unit`` spec of the design's vector / fusion unit (the measured add mode)."""
    a, net = inputs["accel"], inputs["network"]
    return FusionUnitSpec(name=f"{a.name}-fusion", lanes=a.vector_lanes,
                          in_width=2 * a.operand_width, out_width=a.operand_width,
                          mode="add" if net.fusion_op == "add" else "concat")
