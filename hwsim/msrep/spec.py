"""Spec kinds of the multi-GPU sparse system (``msrep``, after MSREP, arXiv 2209.07552):
``sparse-matrix`` (the workload: a Matrix Market file or a generated matrix, and the product),
``multi-gpu-node`` (GPUs, HBM, PCIe switches, NVLink, host) and ``msrep-mapping`` (format,
partition, GPUs used, where the merge runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

GENERATORS = ("rmat", "banded", "uniform")
FORMATS = ("csr", "csc", "coo")
PARTITIONS = ("row-block", "nnz-balanced", "task-pool")


@spec_kind("sparse-matrix")
@dataclass(frozen=True, kw_only=True)
class SparseMatrixSpec:
    """A sparse matrix ``A`` (rows x cols) times ``vectors`` dense columns: SpMV for 1, SpMM
    beyond; ``iterations`` products with the same matrix (it is copied to the GPUs once)."""

    name: str = param(help="identifier")
    source: str = param("generated", choices=("generated", "file"),
                        help="a generated matrix or a Matrix Market file")
    file: str = param("", path=True, help="source = file: a Matrix Market (.mtx) coordinate "
                      "file, read with scipy.io.mmread; a relative path written in a spec file "
                      "is relative to that file's folder, one given with --set to the working "
                      "folder")
    generator: str = param("rmat", choices=GENERATORS,
                           help="source = generated: R-MAT (power law), banded or uniform")
    rows: int = param(1 << 16, ge=1, le=1 << 27, help="rows (rmat: a power of two; <= 2^27: "
                      "the row and column profiles take 8 B per row and column)")
    cols: int = param(0, ge=0, le=1 << 27, help="columns; 0 = rows (rmat: square; <= 2^27)")
    nnz_per_row: float = param(16.0, gt=0, le=1e6, help="mean nonzeros per row (rmat: edges / "
                               "rows; uniform: the expected row length; banded: unused)")
    half_bandwidth: int = param(8, ge=0, le=1 << 20,
                                help="banded: nonzeros at |col - row| <= this")
    rmat_a: float = param(0.57, gt=0, lt=1, help="R-MAT quadrant probabilities a, b, c (d = 1 "
                          "- a - b - c); 0.57/0.19/0.19 is Graph500's (Chakrabarti et al., SDM "
                          "2004; Graph500 specification)")
    rmat_b: float = param(0.19, gt=0, lt=1, help="R-MAT b")
    rmat_c: float = param(0.19, gt=0, lt=1, help="R-MAT c")
    seed: int = param(1, ge=0, le=2**32 - 1, help="seed of the generator (<= 2^32 - 1)")
    permute_rows: bool = param(False, help="source = generated: shuffle the rows (seeded), so "
                               "the degree skew stays but is no longer clustered in row blocks "
                               "(R-MAT puts its heavy rows first; a graph with random vertex "
                               "ids does not)")
    value_bytes: int = param(8, choices=(2, 4, 8), unit="B",
                             help="bytes per value (8: FP64, as the MSREP research code)")
    index_bytes: int = param(4, choices=(4, 8), unit="B", help="bytes per index (int32)")
    vectors: int = param(1, ge=1, le=4096, help="dense columns of x (1 = SpMV)")
    iterations: int = param(1, ge=1, le=1_000_000,
                            help="products with the same matrix (copied to the GPUs once)")

    def __post_init__(self) -> None:
        if self.source == "file":
            if not self.file:
                raise ValueError("source = 'file' needs file (a Matrix Market file)")
            from hwsim.msrep.matrix import profile_of

            profile_of(self)  # a bad file is an input error naming its file and line (cached)
        if self.source == "generated" and self.generator == "rmat":
            if self.rows & (self.rows - 1):
                raise ValueError(f"rmat needs rows a power of two, got {self.rows}")
            if self.cols not in (0, self.rows):
                raise ValueError("rmat matrices are square: cols must be 0 or rows")
            if self.rmat_a + self.rmat_b + self.rmat_c >= 1:
                raise ValueError("rmat_a + rmat_b + rmat_c must be < 1 (d = the rest)")


@spec_kind("multi-gpu-node")
@dataclass(frozen=True, kw_only=True)
class MultiGpuNodeSpec:
    """One multi-GPU server: GPUs with HBM, PCIe switches to the host, NVLink between GPUs."""

    name: str = param(help="identifier")
    gpus: int = param(8, ge=1, le=64, help="GPUs in the node")
    gpu: str = param("", help="the GPU model (informative)")
    hbm_bandwidth_GBps: float = param(900.0, unit="GB/s", gt=0, help="peak HBM bandwidth per GPU")
    hbm_capacity_GB: float = param(16.0, unit="GB", gt=0, help="HBM per GPU")
    pcie_bandwidth_GBps: float = param(15.75, unit="GB/s", gt=0,
                                       help="one PCIe x16 link, one direction")
    gpus_per_pcie_switch: int = param(2, ge=1, le=64, help="GPUs sharing one PCIe switch's "
                                      "uplink to the host")
    nvlink_bandwidth_GBps: float = param(25.0, unit="GB/s", gt=0,
                                         help="GPU-to-GPU bandwidth between ring neighbours, one "
                                         "direction")
    host_memory_bandwidth_GBps: float = param(76.8, unit="GB/s", gt=0,
                                              help="host memory bandwidth of the merge")
    launch_overhead_us: float = param(5.0, unit="us", ge=0, help="fixed time per kernel launch")
    atomic_sector_bytes: int = param(32, unit="B", ge=1, le=4096,
                                     help="the L2 sector: bytes an atomic update, or an x "
                                     "gather that misses the L2, moves")
    l2_cache_KiB: float = param(6144.0, unit="KiB", gt=0, le=1 << 20,
                                help="L2 cache per GPU: what holds the x sectors a row-format "
                                "kernel gathers (V100: 6144 KiB)")
    source: str = param("", help="where the figures come from")


@spec_kind("msrep-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class MsrepCalibrationSpec:
    """The multi-GPU sparse model's fitted constants on one node (``msrep-<node>``)."""

    name: str = param(help="identifier: msrep-<node>")
    node: str = param(help="the multi-gpu-node spec (its name) these constants are for; "
                      "empty = any")
    fitted_on: str = param(help="the data the constants were fitted on, or where an assumed "
                           "value comes from")
    hbm_efficiency: float = param(1.0, gt=0, le=1,
                                  help="achieved / peak HBM bandwidth of the sparse kernels")
    pcie_efficiency: float = param(1.0, gt=0, le=1,
                                   help="achieved / peak PCIe bandwidth of a host-to-device copy")

    CONSTANTS = ("hbm_efficiency", "pcie_efficiency")


@spec_kind("msrep-mapping")
@dataclass(frozen=True, kw_only=True)
class MsrepMappingSpec:
    """How the product is spread over the GPUs."""

    name: str = param(help="identifier")
    format: str = param("csr", choices=FORMATS, help="storage format of A on the GPUs")
    partition: str = param("nnz-balanced", choices=PARTITIONS,
                           help="row-block: equal rows (columns for CSC) per GPU; nnz-balanced: "
                           "equal nonzeros, rows cut at a boundary merged; task-pool: tasks of "
                           "equal nonzeros pulled by the GPUs as they free up")
    gpus: int = param(0, ge=0, le=64, help="GPUs used; 0 = all of the node's")
    tasks_per_gpu: int = param(8, ge=1, le=4096, help="task-pool: tasks per GPU on average")
    streams: int = param(4, ge=1, le=128, help="task-pool: streams per GPU (their launches "
                         "overlap)")
    merge: str = param("host", choices=("host", "nvlink"),
                       help="host: partial results copied back and added on the host (the "
                       "MSREP code); nvlink: exchanged between GPUs, result left on them")
    resident: bool = param(False, help="A is already on the GPUs (no host-to-device copy)")
