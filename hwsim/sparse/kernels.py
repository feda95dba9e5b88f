"""Closed-form timing of skinny sparse and dense GEMMs on a GPU, per kernel: the models the
``spmm`` system times one product with and ``gpu-serving``'s step model times its linear layers
with (a weight format per layer: :mod:`hwsim.gpu_serving.roofline`). One product is
``C[M,N] = A[M,K] @ B[K,N]``, ``A`` the weights (M output features, K inputs), N the tokens.

**Flash-LLM** (Load-as-Sparse, Compute-as-Dense; Xia et al., arXiv 2309.10285; facts from its
code, github.com/AlibabaResearch/flash-llm commit 1d2828a: ``csrc/SpMM_API.cu``,
``csrc/TilingConfig.h``, ``csrc/SpMM_Kernel.cuh``, ``csrc/MatMulUtilities.cuh``). A thread block
(CTA) owns ``tile_m`` rows of A and ``tile_n`` columns of B and walks its K slice in steps of
``tile_k`` = 64. Each step follows the instruction order of ``SpMM_Kernel.cuh``:

1. *issue phase*: ``LDG.128`` of the **next** tile's Tiled-CSL records into registers (HBM,
   ``4 B`` per padded nonzero plus the tile offsets) and the B ``cp.async``, while the tensor
   cores run this tile's MMAs on operands read with ``ldmatrix`` (shared memory);
2. *extraction phase*: after ``cp.async.wait_group`` and ``__syncthreads`` the zero-fill of the
   next dense A buffer is complete and each thread scatters its register-held nonzeros into it
   (one 16-bit store each). The scatter reads the registers the load fills, so it cannot start
   before the load lands: the load overlaps the MMAs, **not** the extraction.

So one CTA advances at ``max(t_load, t_mma, t_operands) + t_fill + t_scatter`` per step, where
``t_load = load_latency + bytes / (eta_hbm BW / sms)``: the tile arrives after the memory
latency (the calibrated constant, ``load_latency_us``) and its transfer at its SM's share of
HBM (while one of an SM's CTAs loads, the other extracts). At N <= 32 the MMAs of a step are
far shorter than that, so the load is exposed once per step, in series with the extraction:
the step is linear in the nonzeros (``4 B / (2 eta_hbm BW)`` per nonzero over the GPU with 2
CTAs per SM, plus the scatter) with no kink, as the digitised times are. (The
earlier ``max(t_load, t_extract + t_mma)`` let the load hide the extraction too, which the code
order does not allow; it made the model 10-20% optimistic where load and on-chip times are
close, at 80% sparsity.) The zero-fill is counted in the extraction phase because the scatter
waits on it (``wait_group 1``) and it shares the shared-memory port with the MMAs' operand
reads; a variant hiding the fill under the MMAs fits the N = 16 calibration rows worse (MAPE
5.8% vs 4.3%).

**Co-resident CTAs** (2 per A100 SM for Flash-LLM's 68-72 KiB CTAs) run independently: one's
issue phase (load, MMAs) proceeds while the other extracts, so their steps interleave. The SM's
shared-memory port and tensor cores still serve all ``r`` of them, so a step takes
``max(chain, r (t_fill + t_operands + t_scatter), r t_mma)``: the per-CTA chain above, or the
SM's shared memory (tensor cores) busy with every resident CTA's work, whichever is longer. (The
earlier model charged ``r (t_extract + t_mma)`` in series, ignoring this overlap, which the DES
showed; :mod:`hwsim.spmm.des` runs the same two phases per CTA.)

- HBM is a throughput bound shared by the ``c`` CTAs in flight, which run out of phase (one
  loads while another extracts): a step moves every CTA's records, ``c x bytes / (eta_hbm
  BW)``; only the first tile, which all load at launch, is lock-step (the earlier lock-step
  sharing, all load then all extract, made 70% sparsity 8-13% pessimistic); shared memory
  and the tensor cores of an SM are shared by its resident CTAs (at most what fits in shared
  memory and the thread limit: 2 on an A100 for Flash-LLM's 68-72 KiB CTAs).
- Shared-memory time counts bytes at ``smem_bytes_per_clk_per_sm`` (32 banks x 4 B) times
  ``smem_efficiency`` (zero-fill ``tile_m x 64 x 2 B``; operands: ``ldmatrix`` of the dense A
  tile, the B tile's ``cp.async`` copy in and its ``ldmatrix`` by every warp row: at N <= 32
  the 4 warps are stacked along M, ``TilingConfig<4, 1, .>``, and each reads the whole B tile,
  :func:`flash_llm_warp_grid`), and one store per nonzero at 32 lanes per clock
  (bank-conflict-free after Flash-LLM's ahead-of-time reordering).
- Pipeline fill and drain: the first tile is loaded and extracted before the loop and the last
  step issues MMAs only, so a CTA takes ``t_load + t_extract + (steps - 1) T + max(t_mma,
  t_operands)`` for a step time ``T``.
- Wave quantisation: ``grid = ceil(M / tile_m) * split_k * ceil(N / tile_n)`` CTAs run in full
  waves of ``sms * ctas_per_sm`` and one partial wave with fewer CTAs (more bandwidth each).
- Split-K: each CTA writes its partial C (``split_k * M * N * 2 B``); a second kernel reads the
  workspace and writes C; each launch costs ``launch_overhead_us``.
- TFLOPS count dense-equivalent FLOPs ``2 M N K``, as Flash-LLM reports.

**cuBLAS** (dense tensor cores): a roofline, ``max(bytes / (eta_hbm BW), 2 M N K / (eta_tc
peak))`` plus a launch overhead, bytes ``2 (M K + K N + M N)``. At N <= 32 it is bandwidth bound.

**Sputnik** (1-D tiling, CUDA cores; its tile table by N): warp instructions per nonzero over
the SM issue rate; **cuSPARSE**: scalar work per (nonzero, column); **SparTA**: a 2:4 part on
sparse tensor cores (half of A's values plus 2-bit indices; half the MACs at twice the dense
rate; the compressed A streamed in waves of CTAs, each bound by its bytes in flight over the
load latency) and the residual with the Sputnik model, back to back. Each function says its
sources.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.errors import InputError
from hwsim.sparse import format as fmt
from hwsim.sparse.spec import FLASH_LLM_SPLIT_K, SpmmCalibrationSpec

log = logging.getLogger(__name__)

#: numeric codes of the ``bound`` metric
BOUND_CODES: dict[str, int] = {"hbm": 0, "smem": 1, "compute": 2}
SMEM_STORES_PER_CLK = 32  # one 16-bit store per lane per clock, bank-conflict-free
_SPLIT_K_TABLE = np.array(sorted(FLASH_LLM_SPLIT_K.items()), dtype=np.int64)


@dataclass(frozen=True)
class Device:
    """The GPU figures the kernel model reads (arrays broadcast over design points)."""

    sms: Any
    clock_Hz: Any
    smem_per_sm_B: Any
    smem_Bpc: Any
    hbm_Bps: Any
    tensor_flops: Any
    fp32_flops: Any
    l2_B: Any = 0.0  # L2 capacity (0 = not given: the CSR kernels then assume it never fits)


def device_of(gpu: Any) -> Device:
    """The kernel model's view of a ``gpu`` spec; an InputError if a figure is missing."""
    missing = [k for k in ("sms", "boost_clock_MHz", "smem_per_sm_KiB", "peak_fp32_TFLOPS")
               if not getattr(gpu, k)]
    if missing:
        raise InputError(f"gpu '{gpu.name}' lacks {', '.join(missing)}, which the SpMM model "
                         "needs", key=f"device.{missing[0]}")
    return Device(sms=gpu.sms, clock_Hz=gpu.boost_clock_MHz * 1e6,
                  smem_per_sm_B=gpu.smem_per_sm_KiB * 1024.0,
                  smem_Bpc=gpu.smem_bytes_per_clk_per_sm, hbm_Bps=gpu.hbm_bandwidth_GBps * 1e9,
                  tensor_flops=gpu.peak_16bit_TFLOPS * 1e12,
                  fp32_flops=gpu.peak_fp32_TFLOPS * 1e12, l2_B=gpu.l2_MiB * 2.0**20)


def default_split_k(m: Any) -> np.ndarray:
    """Flash-LLM's SplitK table by M (1 for an M it does not list)."""
    m = np.asarray(m, dtype=np.int64)
    keys, vals = _SPLIT_K_TABLE[:, 0], _SPLIT_K_TABLE[:, 1]
    idx = np.clip(np.searchsorted(keys, m), 0, keys.size - 1)
    return np.where(keys[idx] == m, vals[idx], 1)


def flash_llm_tiles(n: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flash-LLM's (TILE_M, TILE_N) for N (TilingConfig.h: 256/16, 256/32, 128/64, 128/128)."""
    n = np.asarray(n)
    tm = np.where(n <= 32, 256, 128)
    tn = np.select([n <= 16, n <= 32, n <= 64], [16, 32, 64], 128)
    return tm, tn


#: rows of A one warp multiplies: WARP_ROW_TENSORS x MMA_M = 4 x 16 (TilingConfig.h)
WARP_ROWS = 64


def flash_llm_warp_grid(tile_m: Any, threads_per_cta: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flash-LLM's warps per CTA as (BLOCK_ROW_WARPS, BLOCK_COL_WARPS): ``TILE_M / 64`` warp
    rows, the rest of the warps side by side along N (SpMM_API.cu @ 1d2828a: TilingConfig<4, 1,
    .> for N <= 32, <2, 2, .> for N = 64/128). Each warp ``ldmatrix``-loads its 64 rows of the
    dense A tile and its share of the B tile, so a CTA reads A ``BLOCK_COL_WARPS`` times and B
    ``BLOCK_ROW_WARPS`` times per K-step (4 times at N <= 32: every warp reads the whole B
    tile)."""
    warps = np.maximum(np.asarray(threads_per_cta, dtype=float) / 32.0, 1.0)
    rows = np.clip(np.asarray(tile_m, dtype=float) / WARP_ROWS, 1.0, warps)
    return rows, np.maximum(np.floor(warps / rows), 1.0)


def _ceil(x: Any) -> np.ndarray:
    return np.ceil(np.asarray(x, dtype=float) - 1e-9)


def flash_llm(m: Any, k: Any, n: Any, nnz_tile: Any, split_k: Any, ker: Mapping[str, Any],
              dev: Device) -> dict[str, np.ndarray]:
    """Flash-LLM's time and traffic; ``nnz_tile`` is the mean padded nonzeros per format tile."""
    m, k, n = (np.asarray(x, dtype=float) for x in (m, k, n))
    sk = np.asarray(split_k, dtype=float)
    tm0, tn0 = flash_llm_tiles(n)
    tm = np.where(np.asarray(ker["tile_m"]) > 0, ker["tile_m"], tm0).astype(float)
    tn = np.where(np.asarray(ker["tile_n"]) > 0, ker["tile_n"], tn0).astype(float)
    tk = np.asarray(ker["tile_k"], dtype=float)
    # shared memory per CTA: staged A and B tiles, or the FP32 C tile of the epilogue
    smem_cta = np.maximum(ker["stages"] * (tm + tn) * tk * 2.0, (tm + 4.0) * tn * 4.0)
    per_sm_cap = np.minimum(np.floor(dev.smem_per_sm_B / smem_cta),
                            np.floor(ker["max_threads_per_sm"] / ker["threads_per_cta"]))
    feasible = per_sm_cap >= 1
    cap = np.maximum(per_sm_cap, 1.0)
    grid = _ceil(m / tm) * sk * np.maximum(_ceil(n / tn), 1.0)
    steps = _ceil(k / (sk * tk))
    fmt_tiles = tm * tk / fmt.TILE_ELEMS  # format tiles a CTA reads per step
    nnz_step = nnz_tile * fmt_tiles
    a_step = fmt.RECORD_BYTES * nnz_step + fmt.OFFSET_BYTES * fmt_tiles
    n_mma = np.minimum(tn, 8.0 * _ceil(n / 8.0))  # N = 8 issues m16n8 MMAs only
    eta_s = ker["smem_efficiency"]
    smem_Bps = dev.smem_Bpc * eta_s * dev.clock_Hz
    fill_B = tm * tk * 2.0  # zero-fill of the next dense A buffer
    row_warps, col_warps = flash_llm_warp_grid(tm, ker["threads_per_cta"])
    # ldmatrix of A (each 64-row strip by the col_warps warps that share it), the B tile
    # written once (8 rows when N = 8, TILE_N2) and read whole by each of the row_warps warps
    operand_B = (col_warps * tm * tk * 2.0 + n_mma * tk * 2.0 + row_warps * tn * tk * 2.0)
    scatter_per_nnz = 1.0 / (SMEM_STORES_PER_CLK * eta_s * dev.clock_Hz)
    t_extract = fill_B / smem_Bps + nnz_step * scatter_per_nnz
    t_operand = operand_B / smem_Bps
    t_mma = 2.0 * tm * n_mma * tk / (dev.tensor_flops / dev.sms * ker["tensor_efficiency"])
    bw = dev.hbm_Bps * ker["hbm_efficiency"]
    lat = np.asarray(ker["load_latency_us"], dtype=float) * 1e-6
    slots = dev.sms * cap
    full = np.floor(grid / slots)
    rem = grid - full * slots

    def wave(c: np.ndarray) -> tuple[np.ndarray, ...]:
        """A wave of ``c`` CTAs: its time and the three bounds on its step period (HBM
        throughput, the SM's shared memory or tensor cores, one CTA's own chain)."""
        resident = np.minimum(_ceil(c / dev.sms), cap)
        t_load = lat + a_step * c / bw  # the first tile: every CTA loads at once
        t_hbm = a_step * c / bw  # HBM throughput: every CTA's step of records per period
        # one CTA's issue phase: its next tile arrives after the load latency and its transfer
        # at its SM's share of HBM (the SM's other CTA extracts meanwhile), or the MMAs
        own = np.maximum(np.maximum(lat + a_step * dev.sms / bw, t_mma), t_operand)
        t_chip = np.maximum(resident * (t_extract + t_operand), resident * t_mma)
        period = np.maximum(np.maximum(t_hbm, own + t_extract), t_chip)
        t = t_load + t_extract + (steps - 1.0) * period + np.maximum(t_mma, t_operand)
        return t, t_hbm, t_chip, own + t_extract

    t_full, load_full, chip_full, chain_full = wave(slots)
    t_rem, load_rem, chip_rem, chain_rem = wave(np.maximum(rem, 1.0))
    main = full * t_full + np.where(rem > 0, t_rem, 0.0)
    c_out = sk * m * n * 2.0  # partial C per slice (or C itself)
    reduce_bytes = np.where(sk > 1, c_out + m * n * 2.0, 0.0)
    launches = np.where(sk > 1, 2.0, 1.0)
    latency = (main + c_out / bw + reduce_bytes / bw
               + launches * ker["launch_overhead_us"] * 1e-6)
    a_bytes = (fmt.RECORD_BYTES * nnz_tile * _ceil(m / fmt.TILE_ROWS) * _ceil(k / fmt.TILE_COLS)
               + fmt.OFFSET_BYTES * (_ceil(m / fmt.TILE_ROWS) * _ceil(k / fmt.TILE_COLS) + 2))
    hbm = a_bytes + k * n * 2.0 + c_out + reduce_bytes
    load = np.where(full > 0, load_full, load_rem)
    chip = np.where(full > 0, chip_full, chip_rem)
    chain = np.where(full > 0, chain_full, chain_rem)
    on_chip = np.where(t_extract + t_operand >= t_mma, BOUND_CODES["smem"],
                       BOUND_CODES["compute"])
    # a CTA's own chain binds: the memory (latency and transfer of its load) or its extraction
    chain_code = np.where(lat + a_step * dev.sms / bw >= t_extract, BOUND_CODES["hbm"],
                          BOUND_CODES["smem"])
    bound = np.where(load >= np.maximum(chip, chain), BOUND_CODES["hbm"],
                     np.where(chip >= chain, on_chip, chain_code))
    return {"latency_s": latency, "hbm_bytes": hbm, "memory_bytes": a_bytes,
            "bound": bound.astype(float), "ctas": grid, "waves": grid / slots,
            "ctas_per_sm": cap, "feasible": feasible,
            # per-CTA step quantities, for the DES (hwsim.spmm.des)
            "steps": steps, "fmt_tiles_per_step": fmt_tiles, "nnz_step": nnz_step,
            "fill_s": fill_B / smem_Bps, "operand_s": t_operand,
            "scatter_per_nnz_s": scatter_per_nnz,
            "mma_flops": 2.0 * tm * n_mma * tk, "hbm_Bps": bw, "c_out_B": c_out,
            "reduce_B": reduce_bytes, "launches": launches}


def cublas(m: Any, k: Any, n: Any, ker: Mapping[str, Any], dev: Device,
           elem_bytes: float = 2.0) -> dict[str, np.ndarray]:
    """Dense tensor-core GEMM as a roofline (bandwidth vs tensor throughput) plus a launch."""
    m, k, n = (np.asarray(x, dtype=float) for x in (m, k, n))
    a_bytes = elem_bytes * m * k
    hbm = a_bytes + elem_bytes * (k * n + m * n)
    t_mem = hbm / (dev.hbm_Bps * ker["hbm_efficiency"])
    t_cmp = 2.0 * m * n * k / (dev.tensor_flops * ker["tensor_efficiency"])
    latency = np.maximum(t_mem, t_cmp) + ker["launch_overhead_us"] * 1e-6
    bound = np.where(t_mem >= t_cmp, BOUND_CODES["hbm"], BOUND_CODES["compute"])
    return {"latency_s": latency, "hbm_bytes": hbm, "memory_bytes": a_bytes,
            "bound": bound.astype(float)}


#: warp instructions an SM can issue per clock: 4 schedulers, one each (NVIDIA A100 and H100
#: whitepapers: 4 processing blocks per SM)
WARP_ISSUE_PER_CLK = 4.0


#: mean zeros Sputnik's benchmark matrix adds per non-empty row (rows padded to a multiple of 4
#: nonzeros, ``pad_rows_to = 4``; a row's length mod 4 taken as uniform: (0 + 3 + 2 + 1) / 4)
SPUTNIK_ROW_PAD_MEAN = 1.5


def sputnik_tile(n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sputnik's half-precision tile for N: (rows per block, threads per row, output columns
    per block), from its kernel selection (google-research/sputnik @ 1231afc,
    ``sputnik/spmm/cuda_spmm.cu.cc``, ``CudaSpmmBiasRelu`` for half2): N <= 16: 4 rows x 8
    threads x 16 columns; N <= 32: 4 x 8 x 32; N a multiple of 64: 4 x 8 x 64; else
    2 x 16 x 64. A block is one warp (rows x threads = 32) in every case."""
    n = np.asarray(n, dtype=float)
    big = np.mod(n, 64) == 0
    rows = np.where((n <= 32) | big, 4.0, 2.0)
    width = 32.0 / rows
    cols = np.select([n <= 16, n <= 32], [16.0, 32.0], 64.0)
    return rows, width, cols


def sputnik(m: Any, k: Any, n: Any, nnz: Any, ker: Mapping[str, Any], dev: Device,
            elem_bytes: float = 2.0) -> dict[str, np.ndarray]:
    """Sputnik (Gale et al., SC'20, arXiv 2006.10901): 1-D tiling, one subwarp per row of A,
    CUDA-core FMAs, vector loads. As Flash-LLM benchmarks it (``kernel_benchmark/spmm_test.cu``
    and ``sputnik_utils.h`` @ 1d2828a: ``SparseMatrix(M, K, A, IDENTITY, 4)``) the rows run in
    their natural order (the identity row swizzle, not the length-sorted one; with a uniform
    random mask the rows are alike anyway) and each row is padded with zeros to a multiple of 4
    nonzeros, on average 1.5 per non-empty row (its length mod 4 uniform, derived here), which
    the kernel loads and multiplies like any other.

    Each subwarp walks its row's nonzeros; per nonzero every thread reads the column index and
    the value (shared memory), gathers its ``c`` columns of that B row (one vector load) and
    issues ``c`` FMAs and ``c / 2`` half-to-float conversions: ``4 + 1.5 c`` instructions
    (derived here from the loop body of ``cuda_spmm.cu.cc``). ``c`` is the block's output
    columns over its threads (2 for N <= 16: N = 8 pays for 16 columns, the strong dependence
    on N). The launch is issue-bound: warp instructions over ``4 x SMs x clock x
    issue_efficiency``, or HBM-bound on its CSR (16-bit indices, the half kernel's ``short2``)
    plus B and C; plus a fixed time per launch."""
    m, k, n, nnz = (np.asarray(x, dtype=float) for x in (m, k, n, nnz))
    nnz = nnz + SPUTNIK_ROW_PAD_MEAN * m * -np.expm1(-nnz / np.maximum(m, 1.0))
    rows, width, cols = sputnik_tile(n)
    c = cols / width
    col_tiles = _ceil(n / cols)
    warp_instr = nnz / rows * col_tiles * (4.0 + 1.5 * c)
    t_issue = warp_instr / (WARP_ISSUE_PER_CLK * dev.sms * dev.clock_Hz
                            * ker["issue_efficiency"])
    a_bytes = (elem_bytes + 2.0) * nnz + 4.0 * (m + 1) + 4.0 * m  # + the row index map
    hbm = a_bytes + elem_bytes * (k * n + m * n)
    t_mem = hbm / (dev.hbm_Bps * ker["hbm_efficiency"])
    latency = np.maximum(t_mem, t_issue) + ker["launch_overhead_us"] * 1e-6
    bound = np.where(t_mem >= t_issue, BOUND_CODES["hbm"], BOUND_CODES["compute"])
    return {"latency_s": latency, "hbm_bytes": hbm, "memory_bytes": a_bytes,
            "bound": bound.astype(float)}


#: bytes of one L1/L2 sector, the unit a scattered load moves (NVIDIA CUDA C++ best practices
#: guide, "coalesced access to global memory": 32-byte segments)
SECTOR_BYTES = 32.0
#: steps of a warp's tree reduction of 32 partial sums (log2 32 shuffle-and-add steps)
WARP_REDUCE_STEPS = 5.0


def cusparse(m: Any, k: Any, n: Any, nnz: Any, ker: Mapping[str, Any], dev: Device,
             elem_bytes: float = 2.0) -> dict[str, np.ndarray]:
    """cuSPARSE ``cusparseSpMM`` as Flash-LLM's benchmark calls it (``kernel_benchmark/
    spmm_test.cu`` @ 1d2828a): CSR with 32-bit indices and FP16 values, **column-major** B and C,
    ``CUSPARSE_SPMM_CSR_ALG1``, FP32 compute.

    Mechanism: row-wise CSR on CUDA cores (CSR-vector, a warp per row striding over its
    nonzeros; Bell and Garland, SC'09), one pass over A per column of B. With B column-major,
    ``B[k, j]`` and ``B[k, j+1]`` lie K elements apart, so a loaded index and value serve one
    column only and every column re-reads them (the access pattern Yang, Buluc and Owens,
    Euro-Par 2018, arXiv 1803.08601, identify as what limits CSR SpMM with column-major B;
    row-major B lets a warp read a row of B at once). Per (nonzero, column): the 4-B index and
    2-B value (contiguous along the row: ``6/32`` of a sector) and the gather of
    ``B[index, j]``, a separate 32-B sector for 2 useful bytes. Per (row, column): the two row
    pointers, a 5-step warp reduction (one sector-sized shuffle each) and the 2-B store of C.
    Two bounds: those sectors through the SM's L1 (the unified L1/shared-memory port,
    ``smem_bytes_per_clk_per_sm`` / 32 sectors per clock) at ``smem_efficiency``, and HBM,
    which streams the CSR once per column when it exceeds the L2 (and once when it fits), plus B
    and C; plus a fixed time per launch. Time grows with ``nnz x N``, so TFLOPS do not grow with
    N. The fitted ``smem_efficiency`` (a few percent) says the gathers are latency-bound:
    each depends on the index load before it (docs/spmm.md)."""
    m, k, n, nnz = (np.asarray(x, dtype=float) for x in (m, k, n, nnz))
    pairs = nnz * n
    row_passes = m * n
    sectors = (pairs * (1.0 + (elem_bytes + 4.0) / SECTOR_BYTES)
               + row_passes * (8.0 / SECTOR_BYTES + WARP_REDUCE_STEPS + 1.0))
    sector_rate = dev.sms * dev.smem_Bpc / SECTOR_BYTES * dev.clock_Hz * ker["smem_efficiency"]
    t_l1 = sectors / sector_rate
    a_bytes = fmt.csr_bytes(m, nnz, int(elem_bytes))
    passes = np.where(a_bytes > np.asarray(dev.l2_B, dtype=float), n, 1.0)
    hbm = a_bytes * passes + elem_bytes * (k * n + m * n)
    t_mem = hbm / (dev.hbm_Bps * ker["hbm_efficiency"])
    latency = np.maximum(t_mem, t_l1) + ker["launch_overhead_us"] * 1e-6
    bound = np.where(t_mem >= t_l1, BOUND_CODES["hbm"], BOUND_CODES["smem"])
    return {"latency_s": latency, "hbm_bytes": hbm, "memory_bytes": a_bytes,
            "bound": bound.astype(float)}


def two_four_split(density: Any) -> tuple[np.ndarray, np.ndarray]:
    """Shares of A's elements kept by the 2:4 part and left to the residual, for a uniform
    random mask: per group of 4 the 2:4 part keeps ``E[min(X, 2)]``, ``X ~ Bin(4, d)``."""
    d = np.asarray(density, dtype=float)
    q = 1.0 - d
    p1 = 4.0 * d * q**3
    kept = (p1 + 2.0 * (1.0 - q**4 - p1)) / 4.0
    return kept, np.maximum(d - kept, 0.0)


#: the cuSPARSELt kernel's tile (rows of A x columns of B x logical K) and pipeline depth: the
#: sm80 FP16 sparse kernel cuSPARSELt runs is named
#: ``sm80_xmma_sparse_gemm_f16f16_f16f32_f32_..._tilesize128x128x64_stage3_warpsize2x2x1_
#: sptensor16x8x32`` in profiler traces (NVIDIA developer forum, "Cusparselt can't choose the
#: best kernel (sometime)?", thread 279838, names the family); CUTLASS ships the same
#: configuration for sm80 2:4 FP16 (github.com/NVIDIA/cutlass, tools/library/scripts/
#: generator.py, GenerateSM80_SparseTensorOp_16832: TileDescription([128, 128, 64], 3,
#: [2, 2, 1]))
CUSPARSELT_TILE_M = 128
CUSPARSELT_TILE_N = 128
CUSPARSELT_TILE_K = 64
CUSPARSELT_STAGES = 3


def two_four_ctas(m: Any, n: Any, dev: Device, elem_bytes: float = 2.0) -> dict[str, np.ndarray]:
    """The cuSPARSELt kernel's launch (:data:`CUSPARSELT_TILE_M` ...): its CTAs (one per
    ``128 x 128`` tile of C, no split-K), how many fit on an SM (shared memory: ``stages`` x
    (the compressed A tile, values and indices, + the B tile); 2 on an A100, 75 KB each of
    164 KiB) and the bytes of A each CTA has in flight, the ``stages - 1`` tiles its
    ``cp.async`` pipeline prefetches (18 KB; derived here)."""
    m, n = (np.asarray(x, dtype=float) for x in (m, n))
    a_tile = fmt.two_four_bytes(CUSPARSELT_TILE_M, CUSPARSELT_TILE_K, elem_bytes)
    smem = CUSPARSELT_STAGES * (a_tile + elem_bytes * CUSPARSELT_TILE_K * CUSPARSELT_TILE_N)
    per_sm = np.maximum(np.floor(np.asarray(dev.smem_per_sm_B, dtype=float) / smem), 1.0)
    ctas = np.ceil(m / CUSPARSELT_TILE_M) * np.ceil(n / CUSPARSELT_TILE_N)
    return {"ctas": ctas, "ctas_per_sm": per_sm,
            "in_flight_B": (CUSPARSELT_STAGES - 1.0) * a_tile}


def two_four(m: Any, k: Any, n: Any, ker: Mapping[str, Any], dev: Device,
             elem_bytes: float = 2.0) -> dict[str, np.ndarray]:
    """A 2:4 structured-sparse GEMM on the sparse tensor cores (cuSPARSELt, NVIDIA's 2:4 format:
    two of every four weights kept, each with a 2-bit index; NVIDIA, "Exploiting NVIDIA Ampere
    structured sparsity with cuSPARSELt", developer blog 2020).

    It stores half of A's values plus their indices (:func:`hwsim.sparse.format.two_four_bytes`)
    and skips the pruned half of the MACs: the sparse tensor cores run twice the dense rate in
    dense-equivalent FLOPs (A100: 624 against 312 TFLOPS, NVIDIA A100 datasheet). (Counting
    half the MACs *and* twice the rate, as this model once did, was a 4x speedup, twice the
    hardware's; it never bound at N <= 32, where the kernel is memory bound.)

    **Memory time, in waves of latency-bound CTAs** (:func:`two_four_ctas`): each CTA streams
    its 128-row slice of the compressed A over the whole K, and its ``cp.async`` pipeline keeps
    ``stages - 1`` tiles in flight, so by Little's law one CTA moves at most ``in_flight /
    load_latency_us`` (the loaded HBM latency; 18 KB / 1.02 us = 18 GB/s on the A100). The CTAs
    run in waves of ``sms x ctas_per_sm``; a wave of ``c`` CTAs takes ``max(c x its bytes /
    (hbm_efficiency BW), one CTA's bytes / that rate)``: a wave with most SMs busy is HBM-bound,
    a short one (56 CTAs on OPT-30B out-proj and FFN2; FFN1's 8-CTA tail past 216 slots) is
    bound by its CTAs' latency. ``load_latency_us`` 0 (no constants) drops the CTA bound.
    Then ``max(memory, 2 M N K / (2 tensor_efficiency peak))`` plus a launch."""
    m, k, n = (np.asarray(x, dtype=float) for x in (m, k, n))
    a_bytes = fmt.two_four_bytes(m, k, elem_bytes)
    hbm = a_bytes + elem_bytes * (k * n + m * n)
    g = two_four_ctas(m, n, dev, elem_bytes)
    ctas, slots = g["ctas"], g["ctas_per_sm"] * np.asarray(dev.sms, dtype=float)
    bw = dev.hbm_Bps * ker["hbm_efficiency"]
    lat = np.asarray(ker.get("load_latency_us", 0.0), dtype=float) * 1e-6
    # one CTA's A bytes over its own rate (0 without a latency)
    t_cta = (a_bytes / ctas) * lat / g["in_flight_B"]
    full = np.floor(ctas / slots)
    tail = ctas - full * slots
    per_cta_hbm = hbm / ctas
    t_mem = (full * np.maximum(slots * per_cta_hbm / bw, t_cta)
             + np.where(tail > 0, np.maximum(tail * per_cta_hbm / bw, t_cta), 0.0))
    t_cmp = 2.0 * m * n * k / (2.0 * dev.tensor_flops * ker["tensor_efficiency"])
    latency = np.maximum(t_mem, t_cmp) + ker["launch_overhead_us"] * 1e-6
    bound = np.where(t_mem >= t_cmp, BOUND_CODES["hbm"], BOUND_CODES["compute"])
    waves = full + (tail > 0)
    return {"latency_s": latency, "hbm_bytes": hbm, "memory_bytes": a_bytes,
            "bound": bound.astype(float), "ctas": ctas, "waves": waves}


def sparta(m: Any, k: Any, n: Any, density: Any, ker: Mapping[str, Any], dev: Device,
           elem_bytes: float = 2.0) -> dict[str, np.ndarray]:
    """SparTA as Flash-LLM benchmarks it (``kernel_benchmark/sparTA.h``): A split per group of
    4 into a 2:4 part on the sparse tensor cores (cuSPARSELt, :func:`two_four`) and the
    residual nonzeros with Sputnik, run back to back; the residual is :func:`sputnik` with
    this file's issue efficiency (Sputnik's)."""
    m, k, n, d = (np.asarray(x, dtype=float) for x in (m, k, n, density))
    _, residual = two_four_split(d)
    r24 = two_four(m, k, n, ker, dev, elem_bytes)
    res = sputnik(m, k, n, residual * m * k, ker, dev, elem_bytes)
    return {"latency_s": r24["latency_s"] + res["latency_s"],
            "hbm_bytes": r24["hbm_bytes"] + res["hbm_bytes"],
            "memory_bytes": r24["memory_bytes"] + res["memory_bytes"], "bound": r24["bound"],
            "ctas": r24["ctas"], "waves": r24["waves"]}


# ---------------------------------------------------------------------------------------------
# the constants of a kernel on a device


def kernel_fields(ker: Any, cal: Any) -> dict[str, Any]:
    """What the kernel model reads: the kernel's own fields (an ``spmm-kernel`` spec) and its
    calibrated constants (an ``spmm-calibration`` spec)."""
    out = {f: getattr(ker, f) for f in specs.to_dict(ker) if f not in ("name", "source")}
    out.update({f: getattr(cal, f) for f in SpmmCalibrationSpec.CONSTANTS})
    return out


def load_calibration(kernel: str, device: str) -> SpmmCalibrationSpec:
    """The committed constants of ``kernel`` on ``device`` (``spmm-<kernel>-<device>``)."""
    path = specs.find_spec_file("spmm-calibration", f"spmm-{kernel}-{device}")
    return specs.load_spec(path, kind="spmm-calibration")


@cache
def kernel_constants(kernel: str, device: str) -> dict[str, Any]:
    """The kernel model's fields for ``kernel`` (``models/spmm-kernel/<kernel>``) with its
    constants on ``device`` (``models/calibration/spmm-<kernel>-<device>``; without that file
    ``spmm-uncalibrated``, every efficiency 1, with a warning)."""
    ker = specs.load_spec(specs.find_spec_file("spmm-kernel", kernel), kind="spmm-kernel")
    try:
        cal = load_calibration(kernel, device)
    except InputError:
        log.warning("no constants of kernel '%s' on '%s' (models/calibration/spmm-%s-%s.toml): "
                    "using spmm-uncalibrated (every efficiency 1)", kernel, device, kernel,
                    device)
        cal = specs.load_spec(specs.find_spec_file("spmm-calibration", "spmm-uncalibrated"),
                              kind="spmm-calibration")
    return kernel_fields(ker, cal)


def device_arrays(gpu: Any) -> Device:
    """The kernel model's view of a ``gpu`` spec or a look-alike whose fields are arrays (no
    check that the figures are there: :func:`device_of` checks a spec)."""
    f = np.asarray
    return Device(sms=f(gpu.sms, dtype=float), clock_Hz=f(gpu.boost_clock_MHz, dtype=float) * 1e6,
                  smem_per_sm_B=f(gpu.smem_per_sm_KiB, dtype=float) * 1024.0,
                  smem_Bpc=f(gpu.smem_bytes_per_clk_per_sm, dtype=float),
                  hbm_Bps=f(gpu.hbm_bandwidth_GBps, dtype=float) * 1e9,
                  tensor_flops=f(gpu.peak_16bit_TFLOPS, dtype=float) * 1e12,
                  fp32_flops=f(gpu.peak_fp32_TFLOPS, dtype=float) * 1e12,
                  l2_B=f(getattr(gpu, "l2_MiB", 0.0), dtype=float) * 2.0**20)
