"""Discrete-event simulation of a Flash-LLM SpMM launch on the shared kernel (:mod:`hwsim.des`).

One event per tile-stage, never per cycle:

- HBM is a :class:`~hwsim.des.Memory` at ``hbm_efficiency`` x peak bandwidth, shared fairly by
  every thread block (CTA) loading at the same time;
- each SM has a :class:`~hwsim.des.FairShare` for its shared memory (work in seconds-alone, so
  ``r`` CTAs extracting at once each take ``r`` times as long) and a
  :class:`~hwsim.des.ComputeUnit` for its tensor cores;
- each CTA runs its K steps in the instruction order of Flash-LLM's ``SpMM_Kernel.cuh`` (the
  analytical model's, :mod:`hwsim.spmm.analytical`): an *issue phase* in which the load of the
  next tile's Tiled-CSL records from HBM, this tile's MMAs (tensor cores) and their operand
  reads (shared memory) run concurrently, then an *extraction phase* (zero-fill and scatter of
  the next tile in shared memory), which needs the loaded registers; the first tile is loaded
  and extracted before the loop, the last step only issues MMAs. Co-resident CTAs interleave
  their phases on the SM's shared memory and tensor cores;
- CTAs are dispatched to SM slots as slots free up (``ctas_per_sm`` per SM); their first tiles
  are served in dispatch order, one at a time, so CTAs start out of phase as on the GPU (without
  it identical CTAs stay in lock step for the whole launch and the time depended on whether the
  tile counts came from a random mask, up to 36%); after its last step a CTA writes its partial
  C; with split-K a reduction kernel follows.

Per-step quantities come from :func:`hwsim.spmm.analytical.flash_llm`, so with no contention
(one CTA, or bandwidth not binding) the DES reproduces the analytical time. Where CTAs contend
for HBM the DES resolves what the analytical wave model averages: dynamic dispatch instead of
waves, the tail of a partial wave, epilogue writes overlapping other CTAs' loads, and, with a
workload ``seed`` >= 0, per-tile nonzero counts drawn from a uniform random mask.
"""

from __future__ import annotations

import logging

import numpy as np
import simpy

from hwsim.des import ComputeUnit, FairShare, Memory, TraceRecorder
from hwsim.errors import InfeasibleDesign, InputError
from hwsim.sparse import format as fmt
from hwsim.spmm import analytical
from hwsim.system import Inputs, Metrics

log = logging.getLogger(__name__)

MAX_ITEMS = 2_000_000  # CTA-steps one run may simulate


def evaluate(inputs: Inputs, *, seed: int = 0, trace: TraceRecorder | None = None) -> Metrics:
    """Simulate one Flash-LLM launch. The workload's ``seed`` (if >= 0) draws the per-tile
    nonzero counts; otherwise every tile holds its expected count and the run is deterministic
    (``seed`` is then unused)."""
    w = inputs["workload"]
    ker = inputs["kernel"]
    if ker.kernel != "flash-llm":
        raise InputError(f"the spmm DES models the flash-llm kernel only, not '{ker.kernel}'; "
                         "use --fidelity analytical", key="kernel.kernel", value=ker.kernel,
                         has_value=True)
    from hwsim.system import get_system

    # feasibility checks and the cuBLAS comparison
    base = get_system("spmm").analytical(inputs)
    dev = analytical.device_of(inputs["device"])
    kf = analytical.kernel_fields(ker, inputs["calibration"])
    sk = ker.split_k or int(analytical.default_split_k(w.m))
    kf["split_k"] = sk
    expected = analytical._nnz_tile({"sparsity": w.sparsity})
    p = {key: float(np.asarray(v)) for key, v in analytical.flash_llm(
        w.m, w.k, w.n, expected, sk, kf, dev).items()}
    if not p["feasible"]:
        raise InfeasibleDesign("a thread block does not fit in one SM")
    grid, steps, cap = int(p["ctas"]), int(p["steps"]), int(p["ctas_per_sm"])
    if grid * steps > MAX_ITEMS:
        raise InputError(f"{grid} thread blocks x {steps} steps is more than the DES's "
                         f"{MAX_ITEMS} tile-steps; use --fidelity analytical",
                         key="workload.m", value=w.m, has_value=True)
    # K tiles split over the split_k slices: some slices take one step fewer
    k_tiles = int(np.ceil(w.k / ker.tile_k))
    steps_of = [k_tiles // sk + (j < k_tiles % sk) for j in range(sk)]
    tiles = round(p["fmt_tiles_per_step"])
    if w.seed >= 0:
        counts = np.random.default_rng(w.seed).binomial(
            fmt.TILE_ELEMS, w.density, size=(grid, steps, max(tiles, 1)))
        nnz = fmt.padded(counts).sum(axis=2).astype(float) * (p["fmt_tiles_per_step"]
                                                                / max(tiles, 1))
    else:
        nnz = np.full((grid, steps), p["nnz_step"])
    load_B = fmt.RECORD_BYTES * nnz + fmt.OFFSET_BYTES * p["fmt_tiles_per_step"]
    extract_s = p["fill_s"] + p["scatter_per_nnz_s"] * nnz

    env = simpy.Environment()
    sms = int(dev.sms)
    hbm = Memory(env, inputs["device"].hbm_capacity_GB * 1e9, p["hbm_Bps"], name="hbm",
                 recorder=trace)
    smem = [FairShare(env, 1.0) for _ in range(sms)]
    # a thread block's tile transfer runs at most at one SM's share of HBM, bw / sms (the
    # analytical chain's transfer); HBM as a whole is shared fairly by every transfer
    per_cta_Bps = p["hbm_Bps"] / sms
    lat = inputs["calibration"].load_latency_us * 1e-6
    tensor_eff = inputs["calibration"].tensor_efficiency
    tc = [ComputeUnit(env, dev.tensor_flops / sms, tensor_eff, 1, name=f"tc{i}", recorder=trace)
          for i in range(sms)]
    c_per_cta = p["c_out_B"] / grid
    first_tiles = simpy.Resource(env, capacity=1)
    pending = list(range(grid - 1, -1, -1))  # CTAs not yet dispatched (pop from the end)
    finished: list[float] = []

    def next_tile(nbytes: float):
        """A K-step's sparse-tile load: the latency, then the transfer through HBM at most at
        one SM's share of it."""
        yield env.timeout(lat)
        yield simpy.AllOf(env, [hbm.read(nbytes), env.timeout(nbytes / per_cta_Bps)])

    def cta_proc(sm: int, cta: int):
        n_steps = steps_of[cta % sk]
        yield env.timeout(lat)
        with first_tiles.request() as turn:  # first tiles served in dispatch order
            yield turn
            yield hbm.read(float(load_B[cta, 0]))
        yield smem[sm].submit(float(extract_s[cta, 0]))
        for step in range(n_steps):
            issue = [tc[sm].run(p["mma_flops"]), smem[sm].submit(p["operand_s"])]
            if step + 1 < n_steps:
                issue.append(env.process(next_tile(float(load_B[cta, step + 1]))))
            yield simpy.AllOf(env, issue)
            if step + 1 < n_steps:
                yield smem[sm].submit(float(extract_s[cta, step + 1]))
        yield hbm.write(c_per_cta)
        finished.append(env.now)

    def slot(sm: int):
        while pending:
            yield env.process(cta_proc(sm, pending.pop()))

    launch = inputs["calibration"].launch_overhead_us * 1e-6
    # fill SMs breadth-first (one CTA per SM, then a second ...), as the hardware dispatcher does
    for _ in range(cap):
        for sm in range(sms):
            if pending:
                env.process(slot(sm))
    env.run()
    main_end = max(finished) if finished else 0.0
    latency = main_end + launch
    if p["reduce_B"] > 0:
        latency += launch + p["reduce_B"] / p["hbm_Bps"]
    hbm_bytes = hbm.bytes_read + hbm.bytes_written + p["reduce_B"] + w.k * w.n * 2.0
    flops = w.dense_flops
    log.debug("spmm DES: %d CTAs x %d steps, %.3f us", grid, steps, latency * 1e6)
    cublas_us = base["latency_us"] * base["speedup_vs_cublas"]
    return {
        "latency_us": latency * 1e6,
        "tflops": flops / latency / 1e12,
        "speedup_vs_cublas": cublas_us / (latency * 1e6),
        "hbm_bytes": hbm_bytes,
        "arithmetic_intensity_flop_per_byte": flops / hbm_bytes,
        "memory_bytes": base["memory_bytes"],
        "compression_vs_dense": base["compression_vs_dense"],
        "hbm_utilization": hbm_bytes / (latency * inputs["device"].hbm_bandwidth_GBps * 1e9),
        "ctas": float(grid),
        "waves": base["waves"],
    }
