"""Large language models as workloads: shapes, parameter counts, FLOPs and KV-cache bytes."""

from hwsim.llm.spec import LlmSpec

__all__ = ["LlmSpec"]
