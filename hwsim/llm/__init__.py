"""Large language models as workloads: shapes, parameter counts, FLOPs and KV-cache bytes.

- :mod:`hwsim.llm.spec`: the ``llm`` spec kind (a decoder-only transformer's shape);
- :mod:`hwsim.llm.model`: parameters, FLOPs and KV bytes per token, one layer as GEMMs;
- :mod:`hwsim.llm.perf`: the analytical prefill / decode-step model on a TP x PP mapping;
- :mod:`hwsim.llm.training`: the training step: FLOPs, memory under ZeRO and LoRA,
  activations with and without checkpointing, data/tensor/sequence/pipeline communication.
"""

from hwsim.llm.model import (
    Gemm,
    LayerShape,
    flops_per_token,
    kv_bytes_per_token,
    layer_shape,
    params,
)
from hwsim.llm.perf import Device, Mapping, StepTime, decode_step, prefill
from hwsim.llm.spec import LlmSpec

__all__ = [
    "Device",
    "Gemm",
    "LayerShape",
    "LlmSpec",
    "Mapping",
    "StepTime",
    "decode_step",
    "flops_per_token",
    "kv_bytes_per_token",
    "layer_shape",
    "params",
    "prefill",
]
