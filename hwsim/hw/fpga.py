"""``fpga-board``: an FPGA device's resources and the off-chip memory that feeds an accelerator.

Used by every FPGA accelerator system (``systolic-fpga``, ``a3fusion``). Figures come from the
device's data sheet and the board's user guide, cited in each file under ``models/fpga-board/``.
Fields added after the first boards have defaults that mean "not stated" (``uram = 0``,
``dsp_slice = ""``, ``typical_clock_MHz = 0``), so every earlier file still loads.
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
    uram: int = param(0, ge=0, le=100_000_000,
                      help="288 Kb UltraRAM blocks of the device (0: none; <= 1e8)")
    dsp_slice: str = param("", help="the DSP primitive: DSP48E1 (7-series), DSP48E2 "
                           "(UltraScale+); empty: not stated")
    typical_clock_MHz: float = param(0.0, unit="MHz", ge=0,
                                     help="a clock published accelerators run at on this board "
                                          "(a reference, not a limit; 0: not stated)")

    @property
    def family(self) -> str:
        """The Yosys ``synth_xilinx -family`` of the device: ``xcup`` for UltraScale+ (DSP48E2
        slices, or a Zynq UltraScale+ / Virtex / Kintex UltraScale+ part), ``xc7`` otherwise.
        Resource tables measured per family are looked up with it."""
        dev = self.device.lower()
        if self.dsp_slice == "DSP48E2" or dev.startswith(("xczu", "xcvu", "xcku", "xcu")):
            return "xcup"
        return "xc7"
