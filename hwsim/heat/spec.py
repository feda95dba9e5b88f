"""Spec kinds of the ``heat`` system: the dataset, the training run (model width, negatives,
sampler and its tile, threads, baseline batch) and the two calibrations (HEAT's kernels on one
CPU; the PyTorch-style baseline on one GPU)."""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("heat-dataset")
@dataclass(frozen=True, kw_only=True)
class HeatDatasetSpec:
    """An implicit-feedback dataset: users, items and the training interactions."""

    name: str = param(help="identifier")
    users: int = param(ge=1, le=10**10, help="users (rows of the user embedding matrix)")
    items: int = param(ge=1, le=10**10, help="items (rows of the item embedding matrix)")
    train_interactions: int = param(ge=1, le=10**12, help="training interactions (positive "
                                    "samples per epoch)")
    source: str = param("", help="where the sizes come from")


@spec_kind("heat-training")
@dataclass(frozen=True, kw_only=True)
class HeatTrainingSpec:
    """One SimpleX / MF training run with the cosine contrastive loss (CCL)."""

    name: str = param(help="identifier")
    embedding_dim: int = param(128, ge=1, le=65536, help="K: floats per embedding row")
    negatives: int = param(64, ge=1, le=100_000, help="sampled negatives per positive")
    similarity: str = param("cosine", choices=("cosine", "dot"),
                            help="cosine (norms: n+2 self dot products more) or dot product")
    history_items: int = param(0, ge=0, le=10_000, help="behaviour aggregation: historical "
                               "items averaged through a K x K layer per user; 0 = none")
    aggregation_sync_interval: int = param(32, ge=1, le=10**6, help="iterations between "
                                           "applications of a thread's local K x K gradient")
    sampler: str = param("uniform", choices=("uniform", "tile"),
                         help="negatives drawn uniformly from all items, or from a per-thread "
                         "tile of random items (HEAT's random tiling)")
    tile_rows: int = param(1024, ge=1, le=10**9, help="N1: items in a thread's tile")
    refresh_interval: int = param(4096, ge=1, le=10**9,
                                  help="N2: negative draws of a thread between its tile's "
                                  "refreshes (the unit of Algorithm 1's read-time model)")
    row_tables: int = param(2, ge=1, le=2, help="rows a sample reads and writes back per "
                            "embedding id: 2 = the weight row and its row of the same-shape "
                            "gradient table the released engine keeps beside each embedding "
                            "table (hipdac-lab/ICS23-HEAT, embedding.cpp and "
                            "matrix_factorization.cpp); 1 = weights only")
    threads: int = param(128, ge=1, le=65536, help="OpenMP threads")
    thread_placement: str = param("compact", choices=("compact", "scatter"),
                                  help="where the threads run, one per core (more threads "
                                  "than cores share cores by SMT): compact fills socket 0 "
                                  "core by core, L3 domain by L3 domain (OMP_PLACES=cores "
                                  "OMP_PROC_BIND=close); scatter spreads them evenly over "
                                  "the sockets, then over the L3 domains (OMP_PLACES=cores "
                                  "OMP_PROC_BIND=spread, Intel KMP_AFFINITY=scatter). Intel's "
                                  "KMP_AFFINITY=compact, which puts SMT siblings together, "
                                  "is not modelled")
    memory_placement: str = param("interleave", choices=("interleave", "first-touch"),
                                  help="embedding pages spread over every NUMA node, or all on "
                                  "the node of the thread that initialised them")
    float_bytes: int = param(4, ge=1, le=8, unit="B", help="bytes per embedding element")
    baseline_batch: int = param(1024, ge=1, le=10**7, help="positives per step of the "
                                "PyTorch-style baseline")
    baseline_gradient: str = param("dense", choices=("dense", "sparse"),
                                   help="the baseline's embedding gradients: dense (whole "
                                   "tables every step; Table 1's faster CPU option) or sparse "
                                   "(only the gathered rows; not validated)")
    cloud_gpu_memory_GB: float = param(16.0, gt=0, unit="GB", help="memory of one rented "
                                       "GPU (AWS p3.2xlarge: V100 16 GB)")
    des_chunk_samples: int = param(512, ge=1, le=10**9, help="DES: samples per scheduled "
                                   "chunk (the released engine's dynamic schedule, 512)")
    des_max_chunks: int = param(20_000, ge=20, le=10**7, help="DES: most chunks simulated "
                                "(the epoch time is scaled from them)")


@spec_kind("heat-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class HeatCalibrationSpec:
    """Fitted constants of HEAT's two kernels (row reads, vector arithmetic) and of the
    PyTorch-style baseline on one CPU."""

    name: str = param(help="identifier: heat-<cpu>")
    cpu: str = param("", help="the cpu spec these constants were fitted for; empty = any")
    fitted_on: str = param(help="the data the constants were fitted on (file and rows)")
    memory_level_parallelism: float = param(4.0, gt=0, le=1024,
                                            help="cache lines of one embedding row a thread "
                                            "has in flight after the first (row-read kernel)")
    cycles_per_simd_vector: float = param(1.0, gt=0, le=10_000, unit="cycles",
                                          help="core cycles per SIMD vector of a K-long dot, "
                                          "norm or update (vector kernel)")
    baseline_bandwidth_efficiency: float = param(1.0, gt=0, le=1,
                                                 help="PyTorch-style baseline on this CPU: "
                                                 "achieved / peak DRAM bandwidth")


@spec_kind("heat-gpu-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class HeatGpuCalibrationSpec:
    """Constants of the PyTorch-style baseline on one GPU."""

    name: str = param(help="identifier: heat-baseline-<gpu>")
    gpu: str = param("", help="the gpu spec these constants are for; empty = any")
    fitted_on: str = param(help="the data the constants were fitted on, or where an assumed "
                           "value comes from")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak HBM bandwidth")
    overhead_s_per_step: float = param(0.0, ge=0, le=10, unit="s",
                                       help="host time per training step (operator launches)")
    memory_per_row_B: float = param(2048.0, gt=0, le=10**7, unit="B",
                                    help="GPU memory per embedding row (users + items): "
                                    "weights, dense gradients, optimiser state, activations")
