"""Step model of LLM serving on HBM accelerators (GPUs, TPUs), on the shared LLM performance
model :mod:`hwsim.llm.perf`.

Every kernel is timed by the roofline of :mod:`hwsim.llm.perf` (Williams et al., CACM 2009): the
larger of its HBM bytes over the *achieved* bandwidth and its FLOPs over the *achieved* compute
(peak times the efficiencies of the device's ``gpu-calibration``). Per decoder layer: the weight
GEMMs with their Megatron split (Shoeybi et al. 2019), attention over the KV cache, all-reduces
across the tensor-parallel group (a ring, or on a device whose interconnect is a torus, rings
along each torus dimension in turn: :func:`hwsim.llm.perf.torus_allreduce_s`); plus, on the
last stage, the vocabulary-parallel LM head. Pipeline stages hold contiguous layer groups (uneven
when the layers do not divide); stage-to-stage transfers are separate, so the DES can treat the
links as resources of their own.

:class:`Kernels` holds the per-layer kernel times and the HBM footprint with every numeric input
allowed to be a numpy array (one value per design point): the batch evaluator
(:mod:`hwsim.gpu_serving.batch`) and the per-stage :class:`RooflineStepModel` (the DES) both use
it, so there is one implementation of the step model.

With a calibration whose ``model`` is ``"kernels"`` (the A100, H100 and H200 files) each kernel is
timed by the per-operator fits of :mod:`hwsim.gpu_serving.kernels` instead: the GEMMs with tile
and wave quantisation, decode and prefill attention, the norms, adds, activation and rotary
embedding (the share of their unfused time the serving framework pays), the framework's
all-reduce, and once per step the LM head, the final norm, the embedding gather and the
framework's fixed step overhead. The ``roofline`` model (TPU v4, the uncalibrated fallback) is
unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving import kernels as kn
from hwsim.gpu_serving.spec import DTYPE_BYTES, GpuCalibrationSpec, GpuMappingSpec
from hwsim.hw.gpu import GpuSpec
from hwsim.llm import model as llm_model
from hwsim.llm import perf
from hwsim.llm.spec import LlmSpec
from hwsim.sparse import format as sfmt
from hwsim.sparse import kernels as sk

ArrayLike = Any  # float | int | np.ndarray


def crosses_servers(stage: ArrayLike, tp: ArrayLike, devices_per_server: ArrayLike) -> np.ndarray:
    """Whether the link from ``stage`` to the next leaves the server: a tensor-parallel group
    wider than a server, or the last stage group that fits in one."""
    tp = np.asarray(tp)
    per = np.asarray(devices_per_server)
    groups = np.maximum(per // np.maximum(tp, 1), 1)
    return (tp > per) | ((np.asarray(stage) + 1) % groups == 0)


def stage_link_Bps(gpu: Any, cal: Any, crosses: ArrayLike, tp: ArrayLike) -> np.ndarray:
    """Bandwidth of a stage-to-stage link: each of the ``tp`` devices of the stage sends its
    share of the activation, over the network when the link leaves the server."""
    bw = np.where(crosses, gpu.network_bandwidth_GBps, gpu.interconnect_bandwidth_GBps)
    return bw * 1e9 * np.asarray(cal.interconnect_efficiency) * np.asarray(tp)


def kv_charge_tokens(mapping: Any, prompt: ArrayLike, output: ArrayLike,
                     longest: ArrayLike) -> np.ndarray:
    """KV-cache tokens one running sequence holds, in whole blocks: its longest context
    (``kv_reservation = "full"``) or its mean context ``prompt + output / 2`` (``"mean"``)."""
    t = (np.asarray(longest, dtype=float) if mapping.kv_reservation == "full"
         else np.asarray(prompt, dtype=float) + np.asarray(output, dtype=float) / 2.0)
    blk = np.asarray(mapping.kv_block_tokens, dtype=float)
    return np.ceil(t / blk) * blk


def _sparse_kernel(gpu: Any, weight_format: str, density: float) -> tuple[dict, sk.Device]:
    """The kernel model's fields (``models/spmm-kernel/<kernel>`` and its constants on the
    device) and the device's figures for a sparse ``weight_format``; InfeasibleDesign where the
    device lacks the figures or the kernel cannot hold the format's tiles."""
    from hwsim.gpu_serving.spec import FORMAT_KERNELS

    need = ("sms", "boost_clock_MHz", "smem_per_sm_KiB", "smem_bytes_per_clk_per_sm",
            "peak_fp32_TFLOPS")
    missing = [k for k in need if not np.all(np.asarray(getattr(gpu, k, 0)) > 0)]
    if missing:
        raise InfeasibleDesign(f"weight_format '{weight_format}' needs the SpMM kernel model's "
                               f"figures of {gpu.name}: {', '.join(missing)}")
    kernel = FORMAT_KERNELS[weight_format]
    ker = sk.kernel_constants(kernel, gpu.name)
    if weight_format == "tiled-csl" and density > ker["max_tile_density"] + 1e-12:
        raise InfeasibleDesign(
            f"weight_format 'tiled-csl' at sparsity {1 - density:.3g}: Flash-LLM buffers at most "
            f"{ker['max_tile_density']:.0%} nonzeros per 128x64 tile (its register budget; denser "
            "tiles are silently truncated), so weight_sparsity must be at least "
            f"{1 - ker['max_tile_density']:.3g}")
    return ker, sk.device_arrays(gpu)


#: prefill times a step model remembers (distinct stage, batch and prompt length)
PREFILL_MEMO = 1 << 16


@dataclass(frozen=True)
class KvPlan:
    """What fits on the devices of a replica, per point."""

    #: the weights fit (with room for at least nothing else)
    weights_fit: np.ndarray
    #: sequences whose KV cache (``charge`` tokens each) fits on every stage
    sequences: np.ndarray
    #: KV-cache tokens the tightest stage holds
    tokens: np.ndarray
    #: the batch's KV cache fits as well (``sequences >= batch``, computed as HBM bytes)
    batch_fits: np.ndarray


def kv_plan(k: Kernels, gpu: Any, mapping: Any, batch: ArrayLike, charge: ArrayLike,
            stage_layers: Sequence[tuple[ArrayLike, ArrayLike, ArrayLike]],
            stages: ArrayLike) -> KvPlan:
    """The HBM budget of the stages ``(layers, is first, is last)`` (the largest ones: stage 0
    and the last): with ``kv_memory = "total"`` weights and KV cache share
    ``hbm_usable_fraction`` of HBM; with ``"free"`` the KV cache gets that share of what the
    weights leave."""
    hbm = np.asarray(gpu.hbm_capacity_GB, dtype=float) * 1e9
    frac = np.asarray(mapping.hbm_usable_fraction, dtype=float)
    total = mapping.kv_memory == "total"
    w_ok, seqs, toks, fits = True, np.inf, np.inf, True
    for layers, first, last in stage_layers:
        w = k.weight_bytes(layers, first, last, stages)
        room = hbm * frac - w if total else frac * (hbm - w)
        per_token = k.kv_bytes(layers, 1.0, 1.0)
        w_ok = w_ok & (w <= (hbm * frac if total else hbm))
        toks = np.minimum(toks, np.maximum(room, 0.0) / per_token)
        seqs = np.minimum(seqs, np.floor(np.maximum(room, 0.0) / (per_token * charge)))
        kv = k.kv_bytes(layers, batch, charge)
        fits = fits & ((w + kv <= hbm * frac) if total else (w <= hbm) & (kv <= room))
    return KvPlan(weights_fit=np.asarray(w_ok), sequences=np.asarray(seqs),
                  tokens=np.asarray(toks), batch_fits=np.asarray(fits))


@dataclass(frozen=True)
class Kernels:
    """Kernel times of one decoder layer on one device of the tensor-parallel group, and the
    HBM a stage needs; ``tp``, the device's rates and ``overhead_s`` may be arrays."""

    llm: LlmSpec
    shape: llm_model.LayerShape
    device: perf.Device
    tp: np.ndarray
    #: attention sharded by sequences (and tp > 1), per point
    batch_sharded: np.ndarray
    act_bytes: int
    overhead_s: np.ndarray
    #: the kernels model: the calibration (a spec or a look-alike with arrays); None = roofline
    fits: Any = None
    #: the kernels model: peak 16-bit FLOP/s (prefill attention), SMs, devices per server
    peak16_flops: Any = None
    sms: Any = None
    devices_per_server: Any = None
    #: mixture of experts: whole experts per device (all-to-all dispatch) instead of every
    #: expert split over the tensor-parallel group
    expert_parallel: bool = False
    #: the linear layers' weight format (``dense``, ``tiled-csl``, ``2:4``), the share of
    #: nonzero weights, and for a sparse format its kernel's fields and the device's figures
    #: (:mod:`hwsim.sparse.kernels`)
    weight_format: str = "dense"
    density: float = 1.0
    sparse_kernel: Any = None
    sparse_device: Any = None
    #: bytes per value of the embedding table and the LM head, and the LM head GEMM's peak
    #: FLOP/s (None: the weights' type and the device's peak)
    vocab_bytes: Any = None
    vocab_peak_flops: Any = None
    #: the roofline model's all-reduce: the extents of the device's interconnect torus
    #: (``GpuSpec.ici_torus_dims``; empty: one ring over the group)
    torus_dims: tuple[int, ...] = ()

    @property
    def uses_kernels(self) -> bool:
        return self.fits is not None

    @classmethod
    def build(cls, gpu: Any, cal: Any, llm: LlmSpec, mapping: Any) -> Kernels:
        """From a ``gpu`` spec, its calibration and a mapping (spec objects, or look-alikes
        whose numeric fields are arrays: ``tensor_parallel``, the device's rates, the
        efficiencies)."""
        t = np.asarray(mapping.tensor_parallel, dtype=float)
        wb, kvb = DTYPE_BYTES[mapping.weight_dtype], DTYPE_BYTES[mapping.kv_dtype]
        shape = llm_model.layer_shape(llm, bytes_per_value=wb)
        shape = dataclasses.replace(shape, kv_bytes_per_token=shape.kv_bytes_per_token / wb * kvb)
        # the embedding table and the LM head: their own data type (16-bit in an FP8
        # checkpoint of TensorRT-LLM), the LM head's GEMM at that type's peak
        vb = DTYPE_BYTES[getattr(mapping, "vocab_dtype", "") or mapping.weight_dtype]
        p16 = np.asarray(gpu.peak_16bit_TFLOPS, dtype=float)
        p8 = np.asarray(gpu.peak_8bit_TFLOPS, dtype=float)
        eff_peak = np.where(p8 > 0, p8, p16) if wb == 1 else p16
        tp_link = np.where(t > gpu.devices_per_server, gpu.network_bandwidth_GBps,
                           gpu.interconnect_bandwidth_GBps)
        ieff = np.asarray(cal.interconnect_efficiency, dtype=float)
        device = perf.Device(
            peak_flops=eff_peak * 1e12,
            mem_bw_Bps=np.asarray(gpu.hbm_bandwidth_GBps, dtype=float) * 1e9,
            compute_efficiency=np.asarray(cal.compute_efficiency, dtype=float),
            memory_efficiency=np.asarray(cal.bandwidth_efficiency, dtype=float),
            tp_link_Bps=tp_link * 1e9 * ieff,
            pp_link_Bps=np.asarray(gpu.network_bandwidth_GBps, dtype=float) * 1e9 * ieff,
            link_latency_s=np.asarray(cal.interconnect_latency_us, dtype=float) * 1e-6,
        )
        kernels_model = getattr(cal, "model", "roofline") == "kernels"
        wfmt = getattr(mapping, "weight_format", "dense")
        density = 1.0 - float(getattr(mapping, "weight_sparsity", 0.0))
        sker = sdev = None
        if wfmt != "dense":
            sker, sdev = _sparse_kernel(gpu, wfmt, density)
        vocab_peak = (np.where(p8 > 0, p8, p16) if vb == 1 else p16) * 1e12
        if kernels_model and wb == 1:  # the 8-bit GEMMs: the fit at the 8-bit peak, scaled
            eff_peak = eff_peak * np.asarray(cal.framework.fp8_speedup, dtype=float)
            device = dataclasses.replace(device, peak_flops=eff_peak * 1e12)
        if kernels_model and vb == 1:
            vocab_peak = vocab_peak * np.asarray(cal.framework.fp8_speedup, dtype=float)
        return cls(llm=llm, shape=shape, device=device, tp=t,
                   batch_sharded=(mapping.attention_sharding == "batch") & (t > 1),
                   act_bytes=DTYPE_BYTES[mapping.activation_dtype],
                   overhead_s=np.asarray(cal.layer_overhead_us, dtype=float) * 1e-6,
                   fits=cal if kernels_model else None,
                   peak16_flops=p16 * 1e12,
                   sms=np.asarray(gpu.sms, dtype=float) if kernels_model else None,
                   devices_per_server=gpu.devices_per_server,
                   expert_parallel=bool(getattr(mapping, "expert_parallel", False))
                   and llm.is_moe,
                   weight_format=wfmt, density=density, sparse_kernel=sker, sparse_device=sdev,
                   vocab_bytes=vb, vocab_peak_flops=vocab_peak,
                   torus_dims=tuple(int(d) for d in getattr(gpu, "ici_torus_dims", ())))

    def layer_s(self, seqs: ArrayLike, q_len: ArrayLike, kv_len: ArrayLike) -> np.ndarray:
        """One decoder layer: weight GEMMs, attention, all-reduces and the fixed overhead
        (``q_len`` new tokens per sequence after ``kv_len`` cached ones; decode: ``q_len`` 1)."""
        if self.uses_kernels:
            seqs = np.asarray(seqs, dtype=float)
            q = np.asarray(q_len, dtype=float)
            kv = np.asarray(kv_len, dtype=float)
            if np.all(q > 1.0):  # prefills only: only their branch
                dec = 0.0
            else:
                dec = self.step_layer_s(seqs, kv, 0.0, 0.0, 0.0)
            if q.ndim == 0 and float(q) <= 1.0:  # one decode
                return np.asarray(dec)
            if np.all(q <= 1.0):  # decodes only
                return np.where(q <= 1.0, dec, 0.0)
            if self.fits.framework.last_prompt_token_decoded:
                # TurboMind: the prefill covers q - 1 tokens, a decode step the last one
                pre = (self.step_layer_s(0.0, 0.0, seqs, q - 1.0, kv)
                       + self.step_layer_s(seqs, kv + q - 1.0, 0.0, 0.0, 0.0))
            else:
                pre = self.step_layer_s(0.0, 0.0, seqs, q, kv)
            return np.where(q <= 1.0, dec, pre)
        rows = np.asarray(seqs, dtype=float) * q_len
        t = self._roofline_gemms_s(rows)
        t = t + self.attention_s(seqs, q_len, kv_len)
        return t + self._roofline_comm_s(rows) + self.overhead_s

    # -- weight GEMMs and communication, dense or mixture of experts -------------------------

    def expert_gemm(self, g: llm_model.Gemm, rows: ArrayLike
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """How ``g`` runs for ``rows`` tokens on one device: (rows of each GEMM, GEMMs on this
        device, tensor-parallel split of each). Dense: one GEMM of every row, split over the
        group. Mixture of experts: one GEMM per expert the rows reach (uniform independent
        routing reaches ``E (1 - (1 - k/E)^rows)`` of the ``E`` experts), each over its share
        ``rows k / reached`` of the rows; every expert split over the group, or with expert
        parallelism whole experts, ``reached / tp`` of them per device (on average: the
        routing's imbalance across devices is not modelled)."""
        rows = np.asarray(rows, dtype=float)
        if g.experts == 1:
            return rows, np.ones_like(rows), np.asarray(self.tp, dtype=float)
        e, a = float(g.experts), float(g.active)
        reached = e * (1.0 - (1.0 - a / e) ** rows)
        per = np.where(reached > 0, rows * a / np.maximum(reached, 1e-30), 0.0)
        if self.expert_parallel:
            return per, reached / self.tp, np.ones_like(rows)
        return per, reached, np.asarray(self.tp, dtype=float)

    def _roofline_gemms_s(self, rows: ArrayLike) -> np.ndarray:
        t = 0.0
        for g in self.shape.gemms:
            r, count, split = self.expert_gemm(g, rows)
            if self.weight_format == "dense":
                t = t + count * perf.gemm_s(g, r, split, self.device, self.shape.bytes_per_value)
            else:
                t = t + count * self.sparse_gemm_s(r, *self.local_shape(g, split))
        return np.asarray(t)

    # -- the linear layers' weight format ---------------------------------------------------

    @staticmethod
    def local_shape(g: llm_model.Gemm, split: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(output features, inner size) of the shard of ``g`` one device holds."""
        if g.split == "col":
            return np.ceil(g.n / np.asarray(split, dtype=float)), np.asarray(float(g.k))
        return np.asarray(float(g.n)), np.ceil(g.k / np.asarray(split, dtype=float))

    def sparse_gemm_s(self, rows: ArrayLike, n_out: ArrayLike, k_in: ArrayLike) -> np.ndarray:
        """A linear layer's shard in the sparse weight format, ``rows`` tokens: Flash-LLM's
        SpMM for Tiled-CSL (its split-K table by output features), cuSPARSELt for 2:4
        (:mod:`hwsim.sparse.kernels`, with that kernel's constants on this device); 0 without
        rows."""
        rows = np.asarray(rows, dtype=float)
        ker, dev = self.sparse_kernel, self.sparse_device
        if self.weight_format == "tiled-csl":
            nnz = float(sfmt.padded(np.ceil(self.density * sfmt.TILE_ELEMS - 1e-9)))
            t = sk.flash_llm(n_out, k_in, rows, nnz, sk.default_split_k(n_out), ker,
                             dev)["latency_s"]
        else:
            t = sk.two_four(n_out, k_in, rows, ker, dev)["latency_s"]
        return np.where(rows > 0, t, 0.0)

    def encoded_bytes(self, n_out: ArrayLike, k_in: ArrayLike) -> np.ndarray:
        """HBM bytes of one ``n_out x k_in`` weight shard in the weight format: Tiled-CSL's
        records and tile offsets (:func:`hwsim.sparse.format.expected_tiled_csl_bytes`), 2:4's
        values and indices, or dense values."""
        if self.weight_format == "tiled-csl":
            return np.asarray(sfmt.expected_tiled_csl_bytes(n_out, k_in, self.density))
        if self.weight_format == "2:4":
            return np.asarray(sfmt.two_four_bytes(n_out, k_in, self.shape.bytes_per_value))
        return np.asarray(n_out, dtype=float) * k_in * self.shape.bytes_per_value

    def linear_bytes_per_layer(self) -> np.ndarray:
        """HBM bytes of one layer's linear weights (every expert) on one device, encoded: each
        GEMM's tensor-parallel shard, or with expert parallelism ``experts / tp`` whole
        experts."""
        t = 0.0
        for g in self.shape.gemms:
            if g.experts > 1 and self.expert_parallel:
                t = t + g.experts / self.tp * self.encoded_bytes(float(g.n), float(g.k))
            else:
                t = t + g.experts * self.encoded_bytes(*self.local_shape(g, self.tp))
        return np.asarray(t)

    @property
    def _allreduces(self) -> int:
        """All-reduces per layer: with expert parallelism the FFN's is replaced by the
        dispatch and combine all-to-alls (the attention's stays)."""
        a = self.shape.allreduces
        return a - 1 if self.expert_parallel and a > 1 else a

    def all_to_all_bytes(self, rows: ArrayLike) -> np.ndarray:
        """Bytes one device sends in one all-to-all of expert parallelism: its rows' copies
        for the experts of the other devices."""
        k = float(self.llm.experts_per_token)
        tp = np.asarray(self.tp, dtype=float)
        return (np.asarray(rows, dtype=float) / tp * k * self.shape.d_model * self.act_bytes
                * (tp - 1.0) / tp)

    def _roofline_comm_s(self, rows: ArrayLike) -> np.ndarray:
        dev, shape = self.device, self.shape
        nbytes = np.asarray(rows, dtype=float) * shape.d_model * self.act_bytes
        t = self._allreduces * perf.torus_allreduce_s(nbytes, self.tp, self.torus_dims,
                                                      dev.tp_link_Bps, dev.link_latency_s)
        if self.expert_parallel:
            a2a = dev.link_latency_s + self.all_to_all_bytes(rows) / dev.tp_link_Bps
            t = t + 2.0 * np.where(np.asarray(self.tp) > 1, a2a, 0.0)
        return t

    # -- the kernels model ------------------------------------------------------------------

    @property
    def heads_local(self) -> np.ndarray:
        """Query heads on one device of the tensor-parallel group."""
        return np.ceil(self.shape.heads / self.tp)

    @property
    def kv_heads_local(self) -> np.ndarray:
        """KV heads on one device (at least one: replicated when tp exceeds them)."""
        return np.ceil(self.shape.kv_heads / self.kv_split())

    @property
    def kv_bytes_local(self) -> np.ndarray:
        """KV-cache bytes one token adds to one layer on one device."""
        return self.shape.kv_bytes_per_token / self.kv_split()

    def allreduce_latency_us(self) -> np.ndarray:
        fw = np.asarray(self.fits.framework.allreduce_latency_us, dtype=float)
        return np.where(fw >= 0, fw, np.asarray(self.fits.collectives.allreduce_latency_us,
                                                dtype=float))

    def allreduce_bus_Bps(self) -> np.ndarray:
        """The all-reduce's bus bandwidth: the NCCL fit within a server, the network (ring
        traffic over each device's link) across servers."""
        inside = (np.asarray(self.fits.collectives.allreduce_bus_bandwidth_GBps, dtype=float)
                  * np.asarray(self.fits.framework.allreduce_bandwidth_share, dtype=float))
        across = self.device.tp_link_Bps / 1e9
        return np.where(self.tp > self.devices_per_server, np.minimum(inside, across),
                        inside) * 1e9

    def _gemms_s(self, rows: ArrayLike) -> np.ndarray:
        shape, f = self.shape, self.fits
        t = 0.0
        for g in shape.gemms:
            r, count, split = self.expert_gemm(g, rows)
            if g.split == "col":
                n, k = np.ceil(g.n / split), float(g.k)
            else:
                n, k = float(g.n), np.ceil(g.k / split)
            if self.weight_format != "dense":
                t = t + count * self.sparse_gemm_s(r, n, k)
                continue
            t = t + count * kn.gemm_s(r, n, k, shape.bytes_per_value, self.device.peak_flops,
                                      self.device.mem_bw_Bps, self.sms, f.gemm)
        return t

    def _elementwise_s(self, rows: ArrayLike) -> np.ndarray:
        """The unfused element-wise kernels of one layer (two norms, two residual adds, the
        activation, the rotary embedding) for ``rows`` tokens."""
        f, shape, llm = self.fits, self.shape, self.llm
        d, b, bw = float(shape.d_model), float(self.act_bytes), self.device.mem_bw_Bps
        rows = np.asarray(rows, dtype=float)
        ff = np.ceil(llm.d_ff / self.tp)
        gated = llm.ffn in ("swiglu", "geglu")
        qk = np.ceil((llm.heads + llm.n_kv_heads) / self.tp) * llm.d_head
        norms = 1 if llm.parallel_attention else 2
        t = (norms * kn.elementwise_s(d, 2 * rows * d * b, bw, f.norm)
             + 2 * kn.elementwise_s(d, 3 * rows * d * b, bw, f.add)
             # SiLU x gate: its own kernel; an ungated GELU: PyTorch's element-wise loop (the
             # residual add's constants)
             + kn.elementwise_s(ff, (3 if gated else 2) * rows * ff * b, bw,
                                f.activation if gated else f.add)
             + kn.elementwise_s(qk, 2 * rows * qk * b, bw, f.rope))
        return np.asarray(f.framework.elementwise_share, dtype=float) * t

    def step_layer_s(self, dec_seqs: ArrayLike, dec_kv: ArrayLike, pre_seqs: ArrayLike,
                     pre_q: ArrayLike, pre_kv: ArrayLike) -> np.ndarray:
        """One decoder layer of a step that decodes ``dec_seqs`` sequences (``dec_kv`` tokens
        cached each, the new one not counted) and prefills ``pre_seqs`` sequences of ``pre_q``
        new tokens after ``pre_kv`` cached ones (mixed: chunked prefill)."""
        dec_seqs = np.asarray(dec_seqs, dtype=float)
        pre_seqs = np.asarray(pre_seqs, dtype=float)
        pre_q = np.asarray(pre_q, dtype=float)
        rows = dec_seqs + pre_seqs * pre_q
        shape, dev = self.shape, self.device
        if not self.uses_kernels:
            t = self._roofline_gemms_s(rows)
            t = t + self.attention_s(dec_seqs, 1.0, dec_kv)
            t = t + np.where(pre_seqs * pre_q > 0, self.attention_s(pre_seqs, pre_q, pre_kv),
                             0.0)
            return t + self._roofline_comm_s(rows) + self.overhead_s
        f = self.fits
        t = self._gemms_s(rows)
        t = t + kn.decode_attention_s(dec_seqs, np.asarray(dec_kv, dtype=float) + 1.0,
                                      self.kv_heads_local, self.kv_bytes_local,
                                      dev.mem_bw_Bps, f.attention_decode)
        t = t + kn.prefill_attention_s(pre_seqs, pre_q, pre_kv, self.heads_local,
                                       shape.q_width / shape.heads, self.peak16_flops,
                                       f.attention_prefill)
        t = t + self._elementwise_s(rows)
        nbytes = rows * shape.d_model * self.act_bytes
        lat, bus = self.allreduce_latency_us(), self.allreduce_bus_Bps()
        t = t + self._allreduces * kn.allreduce_s(nbytes, self.tp, lat, bus)
        if self.expert_parallel:  # dispatch and combine: each device's share over the bus
            a2a = lat * 1e-6 + self.all_to_all_bytes(rows) / bus
            t = t + 2.0 * np.where(np.asarray(self.tp) > 1, a2a, 0.0)
        return t + self.overhead_s

    def attention_s(self, seqs: ArrayLike, q_len: ArrayLike, kv_len: ArrayLike) -> np.ndarray:
        """Attention of one layer on one device. Head-sharded: ``perf.attention_s`` over the
        group. Batch-sharded (Pope et al. 2022, sec. 3.3): each device runs every head of
        ``ceil(seqs / tp)`` whole sequences against their KV cache, after an all-to-all that
        hands it those sequences' queries and before one that returns the outputs."""
        tp, dev, shape = self.tp, self.device, self.shape
        if self.uses_kernels:
            f = self.fits
            q = np.asarray(q_len, dtype=float)
            dec = kn.decode_attention_s(seqs, np.asarray(kv_len, dtype=float) + 1.0,
                                        self.kv_heads_local, self.kv_bytes_local,
                                        dev.mem_bw_Bps, f.attention_decode)
            pre = kn.prefill_attention_s(seqs, q, kv_len, self.heads_local,
                                         shape.q_width / shape.heads, self.peak16_flops,
                                         f.attention_prefill)
            return np.where(q <= 1.0, dec, pre)
        heads = perf.attention_s(shape, seqs, q_len, kv_len, tp, dev)
        if not np.any(self.batch_sharded):
            return heads
        seqs = np.asarray(seqs, dtype=float)
        own = np.ceil(seqs / tp)
        t = perf.attention_s(shape, own, q_len, kv_len, 1, dev)
        # two all-to-alls, each device sending (tp - 1) / tp of its rows x q_width / tp share
        nbytes = seqs * q_len * shape.q_width / tp * self.act_bytes * (tp - 1) / tp
        sharded = t + 2 * perf.transfer_s(nbytes, dev.tp_link_Bps, dev.link_latency_s)
        return np.where(self.batch_sharded, sharded, heads)

    def head_s(self, seqs: ArrayLike) -> np.ndarray:
        """The LM head (vocabulary split across the tensor-parallel group), one row per
        sequence."""
        head = llm_model.Gemm("lm_head", self.llm.d_model, self.llm.vocab, "col")
        if self.uses_kernels:
            # once per step: the LM head, the final norm, the embedding gather and the
            # framework's fixed overhead
            f, d, b = self.fits, float(self.llm.d_model), float(self.act_bytes)
            bw = self.device.mem_bw_Bps
            seqs = np.asarray(seqs, dtype=float)
            t = kn.gemm_s(seqs, np.ceil(self.llm.vocab / self.tp), d, self._vocab_bytes,
                          self._vocab_peak, bw, self.sms, f.gemm)
            t = t + np.asarray(f.framework.elementwise_share, dtype=float) * kn.elementwise_s(
                d, 2 * seqs * d * b, bw, f.norm)
            t = t + kn.embedding_s(seqs, d, 2 * seqs * d * b, bw, f.embedding)
            return t + np.asarray(f.framework.step_overhead_us, dtype=float) * 1e-6
        return perf.gemm_s(head, seqs, self.tp, self.device, self._vocab_bytes)

    @property
    def _vocab_bytes(self) -> Any:
        return self.shape.bytes_per_value if self.vocab_bytes is None else self.vocab_bytes

    @property
    def _vocab_peak(self) -> Any:
        return self.device.peak_flops if self.vocab_peak_flops is None else \
            self.vocab_peak_flops

    def kv_split(self) -> np.ndarray:
        """Devices the KV cache of a sequence is spread over."""
        return np.where(self.batch_sharded, self.tp,
                        np.minimum(self.tp, float(self.shape.kv_heads)))

    def weight_bytes(self, layers: ArrayLike, first: ArrayLike, last: ArrayLike,
                     stages: ArrayLike) -> np.ndarray:
        """HBM bytes of the weights one device of a stage of ``layers`` layers holds (the
        embeddings on the ``first`` stage, the LM head on the ``last``)."""
        llm = self.llm
        layers = np.asarray(layers, dtype=float)
        params = layers * llm_model.params_per_layer(llm)
        emb = llm.vocab * llm.d_model + (llm.max_context * llm.d_model
                                         if llm.learned_positions else 0)
        untied = (np.asarray(stages) > 1) | (not llm.tied_embeddings)
        vocab = np.where(first, emb, 0.0) + np.where(np.asarray(last) & untied,
                                                     llm.vocab * llm.d_model, 0.0)
        # the embedding table and the LM head in their own type
        vocab_extra = vocab / self.tp * (self._vocab_bytes - self.shape.bytes_per_value)
        params = params + vocab
        if self.weight_format == "dense":
            return params / self.tp * self.shape.bytes_per_value + vocab_extra
        # the linear layers encoded; biases, norms and embeddings dense
        params = params - layers * self.shape.weights_per_layer
        return params / self.tp * self.shape.bytes_per_value + layers * \
            self.linear_bytes_per_layer() + vocab_extra

    def kv_bytes(self, layers: ArrayLike, sequences: ArrayLike, context: ArrayLike
                 ) -> np.ndarray:
        """HBM bytes of the KV cache of ``sequences`` sequences of ``context`` tokens on one
        device of a stage of ``layers`` layers."""
        return np.asarray(sequences, dtype=float) * context * np.asarray(layers, dtype=float) \
            * self.shape.kv_bytes_per_token / self.kv_split()

    def device_bytes(self, layers: ArrayLike, first: ArrayLike, last: ArrayLike,
                     stages: ArrayLike, sequences: ArrayLike, context: ArrayLike) -> np.ndarray:
        """HBM bytes one device of a stage of ``layers`` layers holds: its weights (the
        embeddings on the ``first`` stage, the LM head on the ``last``) and the KV cache of
        ``sequences`` sequences of ``context`` tokens."""
        return (self.weight_bytes(layers, first, last, stages)
                + self.kv_bytes(layers, sequences, context))


@dataclass(frozen=True)
class RooflineStepModel:
    """Per-stage prefill and decode step times of one replica on ``gpu`` devices.

    Implements :class:`hwsim.serving.step.StepModel`; ``kv_tokens`` is the mean number of
    tokens already in each sequence's KV cache.
    """

    gpu: GpuSpec
    cal: GpuCalibrationSpec
    llm: LlmSpec
    mapping: GpuMappingSpec
    kernels: Kernels
    stage_layers: tuple[int, ...]
    #: per decode batch size: (layer time without attention, attention time per cached token,
    #: LM head time)
    _prefill_memo: dict[tuple[int, int, float], float] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _decode_memo: dict[int, tuple[float, float, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, gpu: GpuSpec, cal: GpuCalibrationSpec, llm: LlmSpec,
              mapping: GpuMappingSpec) -> RooflineStepModel:
        t, p = mapping.tensor_parallel, mapping.pipeline_parallel
        if t > llm.heads and mapping.attention_sharding == "heads":
            raise InfeasibleDesign(f"tensor_parallel {t} exceeds the {llm.heads} heads of "
                                   f"{llm.name} (attention_sharding = 'batch' lifts this)")
        if mapping.expert_parallel and llm.is_moe and llm.experts % t:
            raise InfeasibleDesign(f"expert_parallel: the {llm.experts} experts of {llm.name} "
                                   f"do not split evenly over tensor_parallel {t}")
        if p > llm.layers:
            raise InfeasibleDesign(f"pipeline_parallel {p} exceeds the {llm.layers} layers of "
                                   f"{llm.name}")
        base, extra = divmod(llm.layers, p)
        layers = tuple(base + (1 if s < extra else 0) for s in range(p))
        return cls(gpu=gpu, cal=cal, llm=llm, mapping=mapping,
                   kernels=Kernels.build(gpu, cal, llm, mapping), stage_layers=layers)

    # ---------------------------------------------------------------------------------------

    @property
    def shape(self) -> llm_model.LayerShape:
        return self.kernels.shape

    @property
    def device(self) -> perf.Device:
        return self.kernels.device

    @property
    def stages(self) -> int:
        return self.mapping.pipeline_parallel

    @property
    def peak_flops(self) -> float:
        """Peak matrix FLOP/s of one device for the mapping's weight type."""
        return float(self.device.peak_flops)

    @property
    def _act_bytes(self) -> int:
        return self.kernels.act_bytes

    def _layer_s(self, seqs: float, q_len: float, kv_len: float) -> float:
        """One decoder layer on one device of the tensor-parallel group."""
        return float(self.kernels.layer_s(seqs, q_len, kv_len))

    @property
    def _batch_sharded(self) -> bool:
        return bool(self.kernels.batch_sharded)

    def _attention_s(self, seqs: float, q_len: float, kv_len: float) -> float:
        """Attention of one layer on one device (:meth:`Kernels.attention_s`)."""
        return float(self.kernels.attention_s(seqs, q_len, kv_len))

    def head_s(self, seqs: float) -> float:
        """The LM head, one row per sequence (:meth:`Kernels.head_s`)."""
        return float(self.kernels.head_s(seqs))

    def layer_decode_s(self, batch: int, kv_tokens: float) -> float:
        """One decoder layer, one decode step of ``batch`` sequences."""
        return self._layer_s(batch, 1.0, kv_tokens)

    def prefill_s(self, stage: int, batch: int, prompt_tokens: float) -> float:
        """Time of ``stage`` to prefill ``batch`` prompts of mean length ``prompt_tokens``
        (memoised: the DES asks for the same batches and lengths again and again)."""
        key = (stage, batch, float(prompt_tokens))
        t = self._prefill_memo.get(key)
        if t is None:
            t = self.stage_layers[stage] * self._layer_s(batch, prompt_tokens, 0.0)
            t += self.head_s(batch) if stage == self.stages - 1 else 0.0
            if len(self._prefill_memo) < PREFILL_MEMO:
                self._prefill_memo[key] = t
        return t

    def _decode_parts(self, batch: int) -> tuple[float, float, float]:
        """A decode layer as ``fixed + per_token x (kv_tokens + 1)``: with one new token per
        sequence both the attention FLOPs and the KV bytes of :func:`hwsim.llm.perf.
        attention_s` are proportional to ``kv_tokens + 1``, so the step is exactly linear in
        the context; memoised per batch size (the DES asks for the same sizes again and
        again)."""
        parts = self._decode_memo.get(batch)
        if parts is None:
            # the attention's part proportional to the context (the all-to-alls are not)
            attn = self._attention_s(batch, 1.0, 1.0) - self._attention_s(batch, 1.0, 0.0)
            fixed = self._layer_s(batch, 1.0, 0.0) - attn
            parts = self._decode_memo[batch] = (fixed, attn, self.head_s(batch))
        return parts

    def decode_s(self, stage: int, batch: int, kv_tokens: float) -> float:
        fixed, attn, head = self._decode_parts(batch)
        t = self.stage_layers[stage] * (fixed + attn * (kv_tokens + 1.0))
        return t + (head if stage == self.stages - 1 else 0.0)

    def mixed_s(self, stage: int, decodes: float, decode_context: float, chunks: float,
                chunk_tokens: float, chunk_context: float, rows_out: float) -> float:
        """A chunked-prefill step of ``stage``: ``decodes`` sequences decode (``decode_context``
        tokens cached each) beside ``chunks`` prompt chunks of ``chunk_tokens`` new tokens after
        ``chunk_context`` prefilled ones; the LM head (last stage) for the ``rows_out``
        sequences that produce a token."""
        t = self.stage_layers[stage] * float(self.kernels.step_layer_s(
            decodes, decode_context, chunks, chunk_tokens, chunk_context))
        return t + (self.head_s(rows_out) if stage == self.stages - 1 else 0.0)

    def stage_crosses_servers(self, stage: int) -> bool:
        """Whether the link from ``stage`` to the next leaves the server."""
        return bool(crosses_servers(stage, self.mapping.tensor_parallel,
                                    self.gpu.devices_per_server))

    def link(self, stage: int) -> tuple[float, float]:
        bw = stage_link_Bps(self.gpu, self.cal, self.stage_crosses_servers(stage),
                            self.mapping.tensor_parallel)
        return float(bw), self.cal.interconnect_latency_us * 1e-6

    def transfer_bytes(self, stage: int, tokens: int) -> float:
        return float(tokens * self.llm.d_model * self._act_bytes)

    # ---------------------------------------------------------------------------------------
    # capacity and bounds

    def device_bytes(self, stage: int, sequences: int, context_tokens: int) -> float:
        """HBM bytes one device of ``stage`` holds: its weights and the KV cache."""
        return float(self.kernels.device_bytes(
            self.stage_layers[stage], stage == 0, stage == self.stages - 1, self.stages,
            sequences, context_tokens))

    def check_fits(self, sequences: int, context_tokens: int) -> None:
        """Raise InfeasibleDesign when a stage's weights and KV cache exceed usable HBM."""
        cap = self.gpu.hbm_capacity_GB * 1e9 * self.mapping.hbm_usable_fraction
        for stage in range(self.stages):
            need = self.device_bytes(stage, sequences, context_tokens)
            if need > cap:
                raise InfeasibleDesign(
                    f"{self.llm.name} does not fit {self.mapping.devices} x {self.gpu.name} "
                    f"(tp {self.mapping.tensor_parallel}, pp {self.stages}): stage {stage} "
                    f"needs {need / 1e9:.1f} GB per device for its weights and the KV cache "
                    f"of {sequences} sequences x {context_tokens} tokens; "
                    f"{cap / 1e9:.1f} GB is usable"
                )

    def kv_plan(self, prompt_tokens: float, output_tokens: float, longest: float) -> KvPlan:
        """What fits in HBM for this traffic (:func:`kv_plan` on the largest stages)."""
        charge = kv_charge_tokens(self.mapping, prompt_tokens, output_tokens, longest)
        last = self.stages - 1
        stages = [(self.stage_layers[0], True, last == 0),
                  (self.stage_layers[last], last == 0, True)]
        return kv_plan(self.kernels, self.gpu, self.mapping, self.mapping.batch, charge, stages,
                       self.stages)

    def concurrent_sequences(self, prompt_tokens: float, output_tokens: float,
                             longest: float) -> int:
        """Sequences the replica runs at once: the batch when its KV cache fits; with
        ``kv_overflow = "queue"`` as many as fit (the rest wait for a free slot). Raises
        InfeasibleDesign when the weights, or not one sequence, or (``"infeasible"``) not the
        whole batch fits."""
        mp = self.mapping
        exact = mp.kv_memory == "total" and mp.kv_reservation == "full" and \
            mp.kv_block_tokens == 1
        if mp.kv_overflow == "infeasible" and exact:
            self.check_fits(mp.batch, int(longest))  # the detailed message
        plan = self.kv_plan(prompt_tokens, output_tokens, longest)
        where = (f"{self.llm.name} does not fit {mp.devices} x {self.gpu.name} (tp "
                 f"{mp.tensor_parallel}, pp {self.stages})")
        if not bool(plan.weights_fit):
            raise InfeasibleDesign(f"{where}: the weights exceed the usable HBM of a device")
        fit = int(min(plan.sequences, 1 << 30))
        if mp.kv_overflow == "queue":
            if fit < 1:
                raise InfeasibleDesign(f"{where}: not one sequence's KV cache fits beside the "
                                       "weights in the usable HBM")
            return min(mp.batch, fit)
        if not bool(plan.batch_fits):
            raise InfeasibleDesign(
                f"{where}: the KV cache of the batch of {mp.batch} does not fit (room for "
                f"{fit} sequences); kv_overflow = 'queue' runs what fits and queues the rest")
        return mp.batch

    def decode_roofline_s(self, batch: int, kv_tokens: float) -> float:
        """Lower bound of one decode step of ``batch`` sequences through every stage, at peak
        rates: max(weight + KV bytes / peak HBM bandwidth, FLOPs / peak compute) of one
        tensor-parallel device, summed over the layers of all stages."""
        llm, tp = self.llm, self.mapping.tensor_parallel
        kv_split = tp if self._batch_sharded else min(tp, self.shape.kv_heads)
        kv = batch * (kv_tokens + 1) * llm.layers * self.shape.kv_bytes_per_token / kv_split
        nbytes = llm_model.matmul_params(llm) / tp * self.shape.bytes_per_value + kv
        if self.kernels.weight_format != "dense":  # the layers' weights as encoded
            nbytes += llm.layers * (float(self.kernels.linear_bytes_per_layer())
                                    - self.shape.active_weights_per_layer / tp
                                    * self.shape.bytes_per_value)
        flops = batch * llm_model.flops_per_token(llm, int(np.floor(kv_tokens))) / tp
        return max(nbytes / (self.gpu.hbm_bandwidth_GBps * 1e9), flops / self.peak_flops)
