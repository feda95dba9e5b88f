"""The ``llm`` spec kind: a decoder-only transformer described by its shape.

Parameter counts are derived from the shape (and checked in tests against the published totals);
FLOPs and KV-cache bytes per token follow from the same shape, so every LLM-serving model in
hwsim (Chiplet Cloud, GPU and TPU baselines) reads one description.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("llm")
@dataclass(frozen=True, kw_only=True)
class LlmSpec:
    """A decoder-only transformer."""

    name: str = param(help="identifier")
    layers: int = param(ge=1, le=10_000, help="transformer blocks (<= 10,000: more than any "
                        "published model; bounds the per-layer loops and the pipeline-depth "
                        "search over its divisors)")
    d_model: int = param(ge=1, le=1_048_576, help="hidden size (<= 2^20: 40 times any published "
                         "model)")
    heads: int = param(ge=1, le=65_536, help="attention (query) heads (<= 65,536: bounds the "
                       "tensor-parallel splits tried)")
    kv_heads: int = param(0, ge=0, le=65_536, help="key/value heads: = heads for MHA, 1 for MQA, "
                          "else GQA; 0 means = heads (<= 65,536, as heads)")
    head_dim: int = param(0, ge=0, le=65_536, help="size of one head; 0 means d_model / heads "
                          "(<= 65,536)")
    d_ff: int = param(ge=1, le=4_194_304, help="feed-forward inner size (<= 2^22: 50 times any "
                      "published model)")
    ffn: str = param("gelu", choices=("gelu", "relu", "swiglu", "geglu"),
                     help="feed-forward type: gated (swiglu, geglu) has three matrices")
    parallel_attention: bool = param(False, help="attention and FFN read the same input "
                                     "(GPT-J / PaLM style)")
    vocab: int = param(ge=1, le=16_777_216, help="vocabulary size (<= 2^24: 60 times any "
                       "published model)")
    max_context: int = param(2048, ge=1, le=100_000_000, unit="tokens",
                             help="longest context trained for (<= 1e8: ten times the longest "
                             "published; bounds the KV-cache arithmetic)")
    embed_dim: int = param(0, ge=0, le=1_048_576, help="width of the token embedding when it "
                           "differs from d_model, with a d_model x embed_dim projection in and "
                           "out (OPT-350M's word_embed_proj_dim); 0 means = d_model")
    tied_embeddings: bool = param(True, help="output projection shares the input embedding")
    learned_positions: bool = param(False, help="a learned position-embedding table (GPT-2/3)")
    bias: bool = param(True, help="linear layers carry biases")
    relative_position_projection: bool = param(
        False, help="each layer has a d_model x (heads*head_dim) relative-position key projection "
        "(Transformer-XL style, Dai et al. 2019; used by Gopher)")
    norm: str = param("layernorm", choices=("layernorm", "rmsnorm"),
                      help="normalisation: layernorm has a scale and a shift, rmsnorm a scale")
    experts: int = param(1, ge=1, le=4096, help="feed-forward experts per layer (mixture of "
                         "experts: each token's FFN is experts_per_token of them, chosen by a "
                         "router); 1 = a dense FFN")
    experts_per_token: int = param(1, ge=1, le=4096, help="experts each token is routed to "
                                   "(top-k routing)")
    published_params_B: float = param(0.0, ge=0, unit="1e9 params",
                                      help="the published parameter count (for checks only)")
    published_params_nominal: bool = param(False, help="the published figure is a size label "
                                           "(a script's '25B'), not a count: the parameter "
                                           "check does not apply")
    source: str = param("", help="where the shape comes from")

    def __post_init__(self) -> None:
        if self.heads and self.d_model % self.heads and not self.head_dim:
            raise ValueError(f"d_model {self.d_model} is not a multiple of heads {self.heads}; "
                             "give head_dim")
        if self.experts_per_token > self.experts:
            raise ValueError(f"experts_per_token {self.experts_per_token} exceeds the "
                             f"{self.experts} experts")
        if self.n_kv_heads and self.heads % self.n_kv_heads:
            raise ValueError(f"heads {self.heads} is not a multiple of kv_heads {self.kv_heads}")

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.heads

    @property
    def d_embed(self) -> int:
        """Width of the token embedding (and the tied output projection)."""
        return self.embed_dim or self.d_model

    @property
    def d_head(self) -> int:
        return self.head_dim or self.d_model // self.heads
