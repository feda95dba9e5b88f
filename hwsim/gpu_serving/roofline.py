"""Step model of LLM serving on HBM accelerators (GPUs, TPUs), on the shared LLM performance
model :mod:`hwsim.llm.perf`.

Every kernel is timed by the roofline of :mod:`hwsim.llm.perf` (Williams et al., CACM 2009): the
larger of its HBM bytes over the *achieved* bandwidth and its FLOPs over the *achieved* compute
(peak times the device's calibrated efficiencies). Per decoder layer: the weight GEMMs with
their Megatron split (Shoeybi et al. 2019), attention over the KV cache, ring all-reduces across
the tensor-parallel group; plus, on the last stage, the vocabulary-parallel LM head. Pipeline
stages hold contiguous layer groups (uneven when the layers do not divide); stage-to-stage
transfers are separate, so the DES can treat the links as resources of their own.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving.spec import DTYPE_BYTES, GpuMappingSpec, GpuSpec
from hwsim.llm import model as llm_model
from hwsim.llm import perf
from hwsim.llm.spec import LlmSpec


@dataclass(frozen=True)
class RooflineStepModel:
    """Per-stage prefill and decode step times of one replica on ``gpu`` devices.

    Implements :class:`hwsim.serving.step.StepModel`; ``kv_tokens`` is the mean number of
    tokens already in each sequence's KV cache.
    """

    gpu: GpuSpec
    llm: LlmSpec
    mapping: GpuMappingSpec
    shape: llm_model.LayerShape
    device: perf.Device
    stage_layers: tuple[int, ...]
    #: per decode batch size: (layer time without attention, attention time per cached token,
    #: LM head time)
    _decode_memo: dict[int, tuple[float, float, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, gpu: GpuSpec, llm: LlmSpec, mapping: GpuMappingSpec) -> RooflineStepModel:
        t, p = mapping.tensor_parallel, mapping.pipeline_parallel
        if t > llm.heads and mapping.attention_sharding == "heads":
            raise InfeasibleDesign(f"tensor_parallel {t} exceeds the {llm.heads} heads of "
                                   f"{llm.name} (attention_sharding = 'batch' lifts this)")
        if p > llm.layers:
            raise InfeasibleDesign(f"pipeline_parallel {p} exceeds the {llm.layers} layers of "
                                   f"{llm.name}")
        wb, kvb = DTYPE_BYTES[mapping.weight_dtype], DTYPE_BYTES[mapping.kv_dtype]
        shape = llm_model.layer_shape(llm, bytes_per_value=wb)
        shape = dataclasses.replace(shape, kv_bytes_per_token=shape.kv_bytes_per_token / wb * kvb)
        base, extra = divmod(llm.layers, p)
        layers = tuple(base + (1 if s < extra else 0) for s in range(p))
        eff_peak = gpu.peak_8bit_TFLOPS if wb == 1 and gpu.peak_8bit_TFLOPS > 0 else \
            gpu.peak_16bit_TFLOPS
        tp_link = (gpu.network_bandwidth_GBps if t > gpu.devices_per_server
                   else gpu.interconnect_bandwidth_GBps)
        device = perf.Device(
            peak_flops=eff_peak * 1e12,
            mem_bw_Bps=gpu.hbm_bandwidth_GBps * 1e9,
            compute_efficiency=gpu.compute_efficiency,
            memory_efficiency=gpu.bandwidth_efficiency,
            tp_link_Bps=tp_link * 1e9 * gpu.interconnect_efficiency,
            pp_link_Bps=gpu.network_bandwidth_GBps * 1e9 * gpu.interconnect_efficiency,
            link_latency_s=gpu.interconnect_latency_us * 1e-6,
        )
        return cls(gpu=gpu, llm=llm, mapping=mapping, shape=shape, device=device,
                   stage_layers=layers)

    # ---------------------------------------------------------------------------------------

    @property
    def stages(self) -> int:
        return self.mapping.pipeline_parallel

    @property
    def peak_flops(self) -> float:
        """Peak matrix FLOP/s of one device for the mapping's weight type."""
        return float(self.device.peak_flops)

    @property
    def _act_bytes(self) -> int:
        return DTYPE_BYTES[self.mapping.activation_dtype]

    def _layer_s(self, seqs: float, q_len: float, kv_len: float) -> float:
        """One decoder layer on one device of the tensor-parallel group."""
        tp, dev, shape = self.mapping.tensor_parallel, self.device, self.shape
        rows = seqs * q_len
        t = sum(float(perf.gemm_s(g, rows, tp, dev, shape.bytes_per_value)) for g in shape.gemms)
        t += self._attention_s(seqs, q_len, kv_len)
        nbytes = rows * shape.d_model * self._act_bytes
        t += shape.allreduces * float(
            perf.ring_allreduce_s(nbytes, tp, dev.tp_link_Bps, dev.link_latency_s))
        return t + self.gpu.layer_overhead_us * 1e-6

    @property
    def _batch_sharded(self) -> bool:
        return self.mapping.attention_sharding == "batch" and self.mapping.tensor_parallel > 1

    def _attention_s(self, seqs: float, q_len: float, kv_len: float) -> float:
        """Attention of one layer on one device. Head-sharded: ``perf.attention_s`` over the
        group. Batch-sharded (Pope et al. 2022, sec. 3.3): each device runs every head of
        ``ceil(seqs / tp)`` whole sequences against their KV cache, after an all-to-all that
        hands it those sequences' queries and before one that returns the outputs."""
        tp, dev, shape = self.mapping.tensor_parallel, self.device, self.shape
        if not self._batch_sharded:
            return float(perf.attention_s(shape, seqs, q_len, kv_len, tp, dev))
        own = math.ceil(seqs / tp)
        t = float(perf.attention_s(shape, own, q_len, kv_len, 1, dev))
        # two all-to-alls, each device sending (tp - 1) / tp of its rows x q_width / tp share
        nbytes = seqs * q_len * shape.q_width / tp * self._act_bytes * (tp - 1) / tp
        return t + 2 * float(perf.transfer_s(nbytes, dev.tp_link_Bps, dev.link_latency_s))

    def head_s(self, seqs: float) -> float:
        """The LM head (vocabulary split across the tensor-parallel group), one row per
        sequence."""
        head = llm_model.Gemm("lm_head", self.llm.d_model, self.llm.vocab, "col")
        return float(perf.gemm_s(head, seqs, self.mapping.tensor_parallel, self.device,
                                 self.shape.bytes_per_value))

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
        t, per = self.mapping.tensor_parallel, self.gpu.devices_per_server
        return t > per or (stage + 1) % max(per // t, 1) == 0

    def link(self, stage: int) -> tuple[float, float]:
        g = self.gpu
        bw = g.network_bandwidth_GBps if self.stage_crosses_servers(stage) else \
            g.interconnect_bandwidth_GBps
        # each of the tp devices of the stage sends its share of the activation
        return (bw * 1e9 * g.interconnect_efficiency * self.mapping.tensor_parallel,
                g.interconnect_latency_us * 1e-6)

    def transfer_bytes(self, stage: int, tokens: int) -> float:
        return float(tokens * self.llm.d_model * self._act_bytes)

    # ---------------------------------------------------------------------------------------
    # capacity and bounds

    def device_bytes(self, stage: int, sequences: int, context_tokens: int) -> float:
        """HBM bytes one device of ``stage`` holds: its weights and the KV cache."""
        llm, t = self.llm, self.mapping.tensor_parallel
        params = self.stage_layers[stage] * llm_model.params_per_layer(llm)
        if stage == 0:
            params += llm.vocab * llm.d_model + (llm.max_context * llm.d_model
                                                 if llm.learned_positions else 0)
        if stage == self.stages - 1 and (self.stages > 1 or not llm.tied_embeddings):
            params += llm.vocab * llm.d_model
        kv_split = t if self._batch_sharded else min(t, self.shape.kv_heads)
        kv = sequences * context_tokens * self.stage_layers[stage] * \
            self.shape.kv_bytes_per_token / kv_split
        return params / t * self.shape.bytes_per_value + kv

    def check_fits(self, sequences: int, context_tokens: int) -> None:
        """Raise InfeasibleDesign when a stage's weights and KV cache exceed usable HBM."""
        cap = self.gpu.hbm_capacity_GB * 1e9 * self.gpu.hbm_usable_fraction
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
