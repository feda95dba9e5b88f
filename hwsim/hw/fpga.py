"""``fpga-board``: an FPGA device's resources and the off-chip memory that feeds an accelerator.

Used by every FPGA accelerator system (``systolic-fpga`` today). Figures come from the device's
data sheet and the board's user guide, cited in each file under ``models/fpga-board/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("fpga-board")
@dataclass(frozen=True, kw_only=True)
class FpgaBoardSpec:
    """An FPGA board: the device's resources and the off-chip memory feeding an accelerator."""

    name: str = param(help="identifier")
    device: str = param(help="FPGA part")
    # <= 1e8: ten times the largest FPGA made
    dsp: int = param(ge=0, le=100_000_000, help="DSP slices of the device (<= 1e8)")
    lut: int = param(ge=0, le=100_000_000, help="LUTs of the device (<= 1e8)")
    ff: int = param(ge=0, le=100_000_000, help="flip-flops of the device (<= 1e8)")
    bram36: float = param(ge=0, help="36 Kb block RAMs of the device")
    dram_bandwidth_GBps: float = param(gt=0, unit="GB/s",
                                       help="peak bandwidth of the DRAM the array reads and "
                                            "writes (shared by reads and writes)")
