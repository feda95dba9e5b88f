"""Step model of LLM serving on HBM accelerators (GPUs, TPUs), on the shared LLM performance
model :mod:`hwsim.llm.perf`.

Every kernel is timed by the roofline of :mod:`hwsim.llm.perf` (Williams et al., CACM 2009): the
larger of its HBM bytes over the *achieved* bandwidth and its FLOPs over the *achieved* compute
(peak times the efficiencies of the device's ``gpu-calibration``). Per decoder layer: the weight
GEMMs with their Megatron split (Shoeybi et al. 2019), attention over the KV cache, ring all-reduces
across the tensor-parallel group; plus, on the last stage, the vocabulary-parallel LM head. Pipeline
stages hold contiguous layer groups (uneven when the layers do not divide); stage-to-stage transfers
are separate, so the DES can treat the links as resources of their own.

:class:`Kernels` holds the per-layer kernel times and the HBM footprint with every numeric input
allowed to be a numpy array (one value per design point): the batch evaluator
(:mod:`hwsim.gpu_serving.batch`) and the per-stage :class:`RooflineStepModel` (the DES) both use
it, so there is one implementation of the step model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving.spec import DTYPE_BYTES, GpuCalibrationSpec, GpuMappingSpec
from hwsim.hw.gpu import GpuSpec
from hwsim.llm import model as llm_model
from hwsim.llm import perf
from hwsim.llm.spec import LlmSpec

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

    @classmethod
    def build(cls, gpu: Any, cal: Any, llm: LlmSpec, mapping: Any) -> Kernels:
        """From a ``gpu`` spec, its calibration and a mapping (spec objects, or look-alikes
        whose numeric fields are arrays: ``tensor_parallel``, the device's rates, the
        efficiencies)."""
        t = np.asarray(mapping.tensor_parallel, dtype=float)
        wb, kvb = DTYPE_BYTES[mapping.weight_dtype], DTYPE_BYTES[mapping.kv_dtype]
        shape = llm_model.layer_shape(llm, bytes_per_value=wb)
        shape = dataclasses.replace(shape, kv_bytes_per_token=shape.kv_bytes_per_token / wb * kvb)
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
        return cls(llm=llm, shape=shape, device=device, tp=t,
                   batch_sharded=(mapping.attention_sharding == "batch") & (t > 1),
                   act_bytes=DTYPE_BYTES[mapping.activation_dtype],
                   overhead_s=np.asarray(cal.layer_overhead_us, dtype=float) * 1e-6)

    def layer_s(self, seqs: ArrayLike, q_len: ArrayLike, kv_len: ArrayLike) -> np.ndarray:
        """One decoder layer: weight GEMMs, attention, all-reduces and the fixed overhead."""
        tp, dev, shape = self.tp, self.device, self.shape
        rows = np.asarray(seqs, dtype=float) * q_len
        t = sum(perf.gemm_s(g, rows, tp, dev, shape.bytes_per_value) for g in shape.gemms)
        t = t + self.attention_s(seqs, q_len, kv_len)
        nbytes = rows * shape.d_model * self.act_bytes
        t = t + shape.allreduces * perf.ring_allreduce_s(nbytes, tp, dev.tp_link_Bps,
                                                        dev.link_latency_s)
        return t + self.overhead_s

    def attention_s(self, seqs: ArrayLike, q_len: ArrayLike, kv_len: ArrayLike) -> np.ndarray:
        """Attention of one layer on one device. Head-sharded: ``perf.attention_s`` over the
        group. Batch-sharded (Pope et al. 2022, sec. 3.3): each device runs every head of
        ``ceil(seqs / tp)`` whole sequences against their KV cache, after an all-to-all that
        hands it those sequences' queries and before one that returns the outputs."""
        tp, dev, shape = self.tp, self.device, self.shape
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
        return perf.gemm_s(head, seqs, self.tp, self.device, self.shape.bytes_per_value)

    def kv_split(self) -> np.ndarray:
        """Devices the KV cache of a sequence is spread over."""
        return np.where(self.batch_sharded, self.tp,
                        np.minimum(self.tp, float(self.shape.kv_heads)))

    def device_bytes(self, layers: ArrayLike, first: ArrayLike, last: ArrayLike,
                     stages: ArrayLike, sequences: ArrayLike, context: ArrayLike) -> np.ndarray:
        """HBM bytes one device of a stage of ``layers`` layers holds: its weights (the
        embeddings on the ``first`` stage, the LM head on the ``last``) and the KV cache of
        ``sequences`` sequences of ``context`` tokens."""
        llm = self.llm
        layers = np.asarray(layers, dtype=float)
        params = layers * llm_model.params_per_layer(llm)
        emb = llm.vocab * llm.d_model + (llm.max_context * llm.d_model
                                         if llm.learned_positions else 0)
        params = params + np.where(first, emb, 0.0)
        untied = (np.asarray(stages) > 1) | (not llm.tied_embeddings)
        params = params + np.where(np.asarray(last) & untied, llm.vocab * llm.d_model, 0.0)
        kv = np.asarray(sequences, dtype=float) * context * layers * \
            self.shape.kv_bytes_per_token / self.kv_split()
        return params / self.tp * self.shape.bytes_per_value + kv


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
    _decode_memo: dict[int, tuple[float, float, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, gpu: GpuSpec, cal: GpuCalibrationSpec, llm: LlmSpec,
              mapping: GpuMappingSpec) -> RooflineStepModel:
        t, p = mapping.tensor_parallel, mapping.pipeline_parallel
        if t > llm.heads and mapping.attention_sharding == "heads":
            raise InfeasibleDesign(f"tensor_parallel {t} exceeds the {llm.heads} heads of "
                                   f"{llm.name} (attention_sharding = 'batch' lifts this)")
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
        t = self.stage_layers[stage] * self._layer_s(batch, prompt_tokens, 0.0)
        return t + (self.head_s(batch) if stage == self.stages - 1 else 0.0)

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

    def decode_roofline_s(self, batch: int, kv_tokens: float) -> float:
        """Lower bound of one decode step of ``batch`` sequences through every stage, at peak
        rates: max(weight + KV bytes / peak HBM bandwidth, FLOPs / peak compute) of one
        tensor-parallel device, summed over the layers of all stages."""
        llm, tp = self.llm, self.mapping.tensor_parallel
        kv_split = tp if self._batch_sharded else min(tp, self.shape.kv_heads)
        kv = batch * (kv_tokens + 1) * llm.layers * self.shape.kv_bytes_per_token / kv_split
        nbytes = llm_model.matmul_params(llm) / tp * self.shape.bytes_per_value + kv
        flops = batch * llm_model.flops_per_token(llm, int(np.floor(kv_tokens))) / tp
        return max(nbytes / (self.gpu.hbm_bandwidth_GBps * 1e9), flops / self.peak_flops)
