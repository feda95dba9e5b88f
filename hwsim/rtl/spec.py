"""Spec kinds of the RTL generators: ``systolic``, ``sparse-decoder`` and ``fusion-unit``."""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("systolic")
@dataclass(frozen=True, kw_only=True)
class SystolicSpec:
    """A ``rows x cols`` systolic MAC array (see hwsim.systolic for its timing)."""

    name: str = param("systolic", help="identifier")
    rows: int = param(8, ge=2, le=128, help="PE rows (S_R: M for os, K for ws)")
    cols: int = param(8, ge=2, le=128, help="PE columns (S_C: N)")
    operand_width: int = param(8, unit="bit", ge=2, le=32, help="width of A and B elements")
    acc_width: int = param(32, unit="bit", ge=4, le=64,
                           help="accumulator width; sums wrap modulo 2**acc_width")
    signed: bool = param(True, help="two's-complement operands and accumulators")
    dataflow: str = param("ws", choices=("ws", "os"),
                          help="weight-stationary or output-stationary")
    clock_MHz: float = param(200.0, unit="MHz", gt=0, help="clock for throughput figures")

    def __post_init__(self) -> None:
        if self.acc_width < 2 * self.operand_width:
            raise ValueError(
                f"acc_width = {self.acc_width} must be at least 2 * operand_width "
                f"= {2 * self.operand_width} (a product must fit the accumulator)"
            )


@spec_kind("sparse-decoder")
@dataclass(frozen=True, kw_only=True)
class SparseDecoderSpec:
    """A Tiled-CSL tile decoder: (value, in-tile position) records in, dense rows out."""

    name: str = param("sparse-decoder", help="identifier")
    tile_rows: int = param(8, ge=1, le=256, help="rows of a format tile (Flash-LLM: 128)")
    tile_cols: int = param(16, ge=2, le=256, help="columns of a format tile (Flash-LLM: 64)")
    value_width: int = param(16, unit="bit", ge=1, le=32,
                             help="bits of a value (FP16 bit patterns: 16)")
    lanes: int = param(4, ge=1, le=16,
                       help="records accepted per cycle (Flash-LLM: 4 per 128-bit vector)")
    swizzle: bool = param(False, help="positions use Flash-LLM's col ^ ((row % 8) << 3)")

    def __post_init__(self) -> None:
        if self.swizzle and self.tile_cols % 64:
            raise ValueError(
                f"swizzle needs tile_cols a multiple of 64 (got {self.tile_cols}): the XOR "
                "pattern (row % 8) << 3 reaches column 63"
            )

    @property
    def pos_width(self) -> int:
        """Bits of an in-tile position (row * tile_cols + col)."""
        return max(1, (self.tile_rows * self.tile_cols - 1).bit_length())


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


@spec_kind("fpga-board")
@dataclass(frozen=True, kw_only=True)
class FpgaBoardSpec:
    """An FPGA board: the device's resources and the off-chip memory feeding an accelerator."""

    name: str = param(help="identifier")
    device: str = param(help="FPGA part")
    dsp: int = param(ge=0, help="DSP48E1 slices of the device")
    lut: int = param(ge=0, help="LUTs of the device")
    ff: int = param(ge=0, help="flip-flops of the device")
    bram36: float = param(ge=0, help="36 Kb block RAMs of the device")
    dram_bandwidth_GBps: float = param(gt=0, unit="GB/s",
                                       help="peak bandwidth of the DRAM the array reads and "
                                            "writes (shared by reads and writes)")
