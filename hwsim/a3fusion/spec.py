"""Spec kinds of ``a3fusion``: the network, its accuracy model, the accelerator, op energies.

- ``cnn`` (``models/cnn/``): a two-branch (camera, LiDAR) encoder-decoder segmentation network,
  generated from its parameters (fusion point, fusion operator, per-branch width and depth), or
  given as a layer table, or imported from SCALE-Sim topology CSVs and ONNX files
  (:mod:`hwsim.a3fusion.layers`, :mod:`hwsim.a3fusion.importers`);
- ``cnn-accuracy`` (``models/cnn/``): where the accuracy of a network configuration comes
  from: a documented proxy, or a user's CSV of measured accuracies (:mod:`.accuracy`);
- ``a3fusion-accel`` (``models/a3fusion/``): the PE array, its dataflow, per-operand buffers,
  loop order, clock and how the two branches share the array;
- ``op-energy`` (``models/a3fusion/``): energy per MAC, per on-chip buffer access and per DRAM
  byte, from a cited technology table.

The board is the shared ``fpga-board`` kind (:mod:`hwsim.hw.fpga`).

A ``cnn`` spec builds (and so checks) its layer table when it is built: a channel count that
does not match its producer, a fusion point past the last stage, an ONNX operator that cannot be
mapped are errors naming the file, the key and the value when the spec is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

#: layer operators of a layer table (MAC layers run on the array, the rest on the vector unit)
MAC_OPS = ("conv", "dwconv", "deconv", "gemm")
VECTOR_OPS = ("maxpool", "avgpool", "upsample", "add", "concat")
OPS = MAC_OPS + VECTOR_OPS
BRANCHES = ("camera", "lidar", "fused")
DATAFLOWS = ("ws", "os", "is")
LOOP_ORDERS = ("auto", "weights-outer", "inputs-outer")


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """One row of a layer table (``source = "table"``)."""

    name: str = param(help="unique layer name")
    op: str = param(choices=OPS, help="conv, dwconv (depthwise), deconv (transposed conv), "
                    "gemm, maxpool, avgpool, upsample (nearest), add, concat")
    branch: str = param(choices=BRANCHES, help="camera or lidar (before the fusion), fused "
                        "(the fusion layer and after)")
    inputs: tuple[str, ...] = param((), help="names of the layers it reads; empty = the "
                                    "previous layer of its branch (the branch input for the "
                                    "first); add and concat read two")
    in_h: int = param(0, ge=0, le=1 << 16, help="input rows; 0 = its producer's output rows")
    in_w: int = param(0, ge=0, le=1 << 16, help="input columns; 0 = its producer's")
    in_c: int = param(0, ge=0, le=1 << 16, help="input channels; 0 = its producer's")
    out_c: int = param(0, ge=0, le=1 << 16, help="output channels (conv, deconv, gemm); 0 = as "
                       "many as it reads (dwconv, pooling, upsample, add)")
    kernel: int = param(1, ge=1, le=15, help="square kernel size (conv, dwconv, deconv, pooling)")
    stride: int = param(1, ge=1, le=8, help="stride (conv, dwconv, deconv, pooling)")
    pad: int = param(0, ge=0, le=8, help="zero padding on each side (conv, dwconv)")
    scale: int = param(2, ge=1, le=8, help="upsample factor")
    m: int = param(0, ge=0, le=1 << 24, help="gemm: rows of the input (M)")
    n: int = param(0, ge=0, le=1 << 24, help="gemm: output features (N)")
    k: int = param(0, ge=0, le=1 << 24, help="gemm: reduction (K)")


@spec_kind("cnn")
@dataclass(frozen=True, kw_only=True)
class CnnSpec:
    """A two-branch camera-LiDAR segmentation network (see :mod:`hwsim.a3fusion.layers`)."""

    name: str = param(help="identifier")
    source: str = param("generated", choices=("generated", "table", "files"),
                        help="generated from the parameters below; table: the [[layers]] "
                             "table; files: SCALE-Sim topology CSVs or ONNX files per branch")
    stages: int = param(4, ge=1, le=6, help="encoder stages (each: depth convs, then 2 x 2 max "
                        "pooling); the decoder has as many upsampling stages")
    fusion_stage: int = param(2, ge=0, le=7, help="where the branches are fused: 0 early (the "
                              "inputs), k after encoder stage k (middle), stages + 1 late (each "
                              "branch's own decoder, the score maps fused)")
    fusion_op: str = param("concat", choices=("add", "concat"),
                           help="add (the narrower branch projected by a 1 x 1 conv when the "
                                "channel counts differ), or concat then a 1 x 1 conv")
    classes: int = param(2, ge=1, le=1024, help="segmentation classes (road / not road: 2)")
    decoder: str = param("deconv", choices=("deconv", "upsample"),
                         help="decoder upsampling: 2 x 2 stride-2 transposed conv, or nearest "
                              "x2 (no MACs); each followed by a 3 x 3 conv")
    height_px: int = param(192, ge=1, le=8192, help="input rows of both branches (the LiDAR "
                           "scan projected into the camera image)")
    width_px: int = param(624, ge=1, le=8192, help="input columns of both branches")
    camera_channels: int = param(3, ge=1, le=64, help="camera input channels (RGB: 3)")
    lidar_channels: int = param(2, ge=1, le=64, help="LiDAR input channels (projected depth "
                                "and intensity: 2)")
    camera_width: int = param(32, ge=1, le=1024, help="camera channels of encoder stage 1; "
                              "each later stage doubles them")
    camera_depth: int = param(2, ge=1, le=8, help="camera 3 x 3 convolutions per stage")
    camera_block: str = param("conv", choices=("conv", "separable"),
                              help="conv: 3 x 3 convolutions; separable: depthwise 3 x 3 + "
                                   "pointwise 1 x 1 (the branch's first conv stays a full one)")
    lidar_width: int = param(16, ge=1, le=1024, help="LiDAR channels of encoder stage 1")
    lidar_depth: int = param(2, ge=1, le=8, help="LiDAR 3 x 3 convolutions per stage")
    lidar_block: str = param("conv", choices=("conv", "separable"), help="as camera_block")
    layers: tuple[LayerSpec, ...] = param((), help="source = table: the layer table")
    camera_file: str = param("", help="source = files: the camera branch (a SCALE-Sim "
                             "topology .csv or an .onnx), a path absolute, relative to the "
                             "working directory, or to models/cnn/")
    lidar_file: str = param("", help="source = files: the LiDAR branch")
    fused_file: str = param("", help="source = files: the layers after the fusion (may be "
                            "empty: the fusion layer ends the network)")
    note: str = param("", help="where the network comes from")

    def __post_init__(self) -> None:
        from hwsim.a3fusion.layers import build_layers

        build_layers(self)  # raises on a table that does not chain, or an input it cannot map


@spec_kind("cnn-accuracy", folder="cnn")
@dataclass(frozen=True, kw_only=True)
class AccuracySpec:
    """Where the accuracy of a network configuration comes from (:mod:`.accuracy`).

    ``proxy``: ``floor + (ceiling - floor) * (1 - exp(-capacity / capacity_scale))`` with
    ``capacity = (cam.width * cam.depth + lidar_weight * lid.width * lid.depth)
    * (1 + fusion_gain * fusion_stage / (stages + 1)) * (1 + concat_gain [concat])``:
    monotone and saturating in every width, depth and the fusion point. It is not a measured
    accuracy. ``table``: a CSV of measured accuracies, interpolated.
    """

    name: str = param(help="identifier")
    model: str = param("proxy", choices=("proxy", "table"),
                       help="proxy: the documented formula; table: a CSV of measured accuracies")
    table_file: str = param("", help="model = table: the CSV (columns: accuracy and any of "
                            "camera_width, camera_depth, lidar_width, lidar_depth, "
                            "fusion_stage, stages, fusion_op)")
    floor: float = param(0.5, ge=0, le=1, help="proxy accuracy of a network with no capacity")
    ceiling: float = param(0.95, ge=0, le=1, help="proxy accuracy the capacity saturates at")
    capacity_scale: float = param(128.0, gt=0, help="capacity at which 63% of the way from "
                                  "floor to ceiling is reached (channels x convs per stage)")
    lidar_weight: float = param(0.5, ge=0, help="weight of the LiDAR branch's capacity")
    fusion_gain: float = param(0.5, ge=0, help="capacity gained by fusing late rather than "
                               "early (the branches' own layers)")
    concat_gain: float = param(0.05, ge=0, help="capacity gained by concat + 1 x 1 conv over add")
    note: str = param("", help="where the constants or the table come from")

    def __post_init__(self) -> None:
        if self.floor >= self.ceiling:
            raise ValueError(f"floor = {self.floor} must be below ceiling = {self.ceiling}")
        if self.model == "table" and not self.table_file:
            raise ValueError("model = 'table' needs table_file (a CSV of measured accuracies)")


@spec_kind("a3fusion-accel", folder="a3fusion")
@dataclass(frozen=True, kw_only=True)
class AccelSpec:
    """The A3Fusion-style accelerator: a systolic PE array with per-operand buffers."""

    name: str = param(help="identifier")
    rows: int = param(16, ge=2, le=256, help="PE rows (S_R: K for ws and is, M for os)")
    cols: int = param(16, ge=2, le=256, help="PE columns (S_C: N for ws and os, M for is)")
    dataflow: str = param("ws", choices=DATAFLOWS,
                          help="weight-, output- or input-stationary (hwsim.systolic.timing)")
    operand_width: int = param(8, unit="bit", ge=8, le=16, help="width of activations and "
                               "weights (the measured resource table has 8 and 16)")
    acc_width: int = param(32, unit="bit", ge=16, le=64, help="accumulator and partial-sum "
                           "width (the measured resource table has 32)")
    clock_MHz: float = param(300.0, unit="MHz", gt=0, le=1000, help="array clock")
    ifmap_buffer_KiB: float = param(128.0, unit="KiB", ge=4, le=1 << 20,
                                    help="input-activation buffer, both halves (double-buffered)")
    filter_buffer_KiB: float = param(128.0, unit="KiB", ge=4, le=1 << 20,
                                     help="weight buffer, both halves")
    ofmap_buffer_KiB: float = param(64.0, unit="KiB", ge=4, le=1 << 20,
                                    help="output and partial-sum buffer, both halves")
    loop_order: str = param("auto", choices=LOOP_ORDERS,
                            help="per-layer outer loop: weights-outer (weights read once, inputs "
                                 "re-read per weight block unless they fit), inputs-outer (the "
                                 "reverse), auto (the one with less DRAM traffic, per layer)")
    branch_mode: str = param("partitioned", choices=("shared", "partitioned"),
                             help="shared: the branches time-multiplexed on the whole array, "
                                  "layer by layer; partitioned: the columns split between them, "
                                  "both running until the fusion layer")
    camera_cols: int = param(0, ge=0, le=255, help="partitioned: columns given to the camera "
                             "branch (the rest to LiDAR); 0 = aligned: the split at which both "
                             "branches reach the fusion layer soonest")
    vector_lanes: int = param(8, ge=1, le=64, help="elements per cycle of the vector / fusion "
                              "unit (hwsim.rtl.fusion.FusionUnit lanes) that runs pooling, "
                              "upsampling, add and concat")
    dram_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak DRAM bandwidth "
                                   "(1 = the board's peak; not calibrated)")

    def __post_init__(self) -> None:
        if self.acc_width < 2 * self.operand_width:
            raise ValueError(f"acc_width = {self.acc_width} must be at least 2 * operand_width "
                             f"= {2 * self.operand_width} (a product must fit the accumulator)")
        if self.camera_cols and self.camera_cols >= self.cols:
            raise ValueError(f"key 'camera_cols' = {self.camera_cols}: must leave the LiDAR "
                             f"branch at least one of the {self.cols} columns")


@spec_kind("op-energy", folder="a3fusion")
@dataclass(frozen=True, kw_only=True)
class OpEnergySpec:
    """Energy per operation: integer add and multiply at two widths, SRAM access by size, DRAM.

    Widths between and beyond the two given are interpolated on a log-log line through them
    (multiply energy grows about with width squared, add about linearly); an SRAM access of a
    buffer of any size likewise through the three sizes.
    """

    name: str = param(help="identifier")
    add_8bit_pJ: float = param(unit="pJ", gt=0, help="8-bit integer add")
    add_32bit_pJ: float = param(unit="pJ", gt=0, help="32-bit integer add")
    mult_8bit_pJ: float = param(unit="pJ", gt=0, help="8-bit integer multiply")
    mult_32bit_pJ: float = param(unit="pJ", gt=0, help="32-bit integer multiply")
    sram_8KiB_pJ_per_64bit: float = param(unit="pJ", gt=0, help="64-bit access of an 8 KiB SRAM")
    sram_32KiB_pJ_per_64bit: float = param(unit="pJ", gt=0,
                                           help="64-bit access of a 32 KiB SRAM")
    sram_1MiB_pJ_per_64bit: float = param(unit="pJ", gt=0, help="64-bit access of a 1 MiB SRAM")
    dram_pJ_per_64bit: float = param(unit="pJ", gt=0, help="64-bit DRAM access")
    technology: str = param("", help="process and supply the figures are for")
    source: str = param("", help="where the figures come from")
