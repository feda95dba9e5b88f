"""What follows from an LLM's shape: parameters, FLOPs, KV-cache bytes and the per-layer GEMMs.

Everything here is a function of an :class:`~hwsim.llm.spec.LlmSpec` alone. The counts follow the
standard decoder-only transformer (Vaswani et al. 2017; Megatron-LM's accounting, Narayanan et
al. 2021, sec. 5.1): per layer, the query/key/value and output projections, the feed-forward
matrices (three for gated units, Shazeer 2020), the norms and the biases; then the token
embedding, an untied output projection and a learned position table where the model has them.

:func:`layer_shape` describes one layer as the GEMMs a tensor-parallel mapping splits (Megatron
column/row partitioning, Shoeybi et al. 2019), which :mod:`hwsim.llm.perf` times.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.llm.spec import LlmSpec


def attention_params_per_layer(spec: LlmSpec) -> int:
    """Weights (and biases) of the Q, K, V and output projections of one layer."""
    d, h, kv, dh = spec.d_model, spec.heads, spec.n_kv_heads, spec.d_head
    q, k_v = h * dh, kv * dh
    n = d * q + 2 * d * k_v + q * d
    if spec.relative_position_projection:
        n += d * q
    if spec.bias:
        n += q + 2 * k_v + d
    return n


def expert_params(spec: LlmSpec) -> int:
    """Weights (and biases) of one feed-forward expert (the whole FFN when dense)."""
    d, f = spec.d_model, spec.d_ff
    mats = 3 if spec.ffn in ("swiglu", "geglu") else 2
    n = mats * d * f
    if spec.bias:
        n += (mats - 1) * f + d
    return n


def router_params(spec: LlmSpec) -> int:
    """The router of a mixture-of-experts layer (d_model x experts); 0 when dense."""
    return spec.d_model * spec.experts if spec.is_moe else 0


def ffn_params_per_layer(spec: LlmSpec) -> int:
    """Weights (and biases) of the feed-forward block of one layer: every expert and the
    router."""
    return spec.experts * expert_params(spec) + router_params(spec)


def active_ffn_params_per_layer(spec: LlmSpec) -> int:
    """FFN weights one token multiplies by: its experts_per_token experts and the router."""
    return spec.experts_per_token * expert_params(spec) + router_params(spec)


def _norm_params(spec: LlmSpec) -> int:
    return spec.d_model * (2 if spec.norm == "layernorm" else 1)


def params_per_layer(spec: LlmSpec) -> int:
    """All parameters of one transformer block (one shared norm with parallel attention)."""
    norms = 1 if spec.parallel_attention else 2
    return attention_params_per_layer(spec) + ffn_params_per_layer(spec) + norms * _norm_params(
        spec)


def embedding_params(spec: LlmSpec) -> int:
    """Token embedding, untied output projection, learned positions and the final norm (and
    the projections in and out of a narrower embedding)."""
    n = spec.vocab * spec.d_embed + _embed_projections(spec)
    if not spec.tied_embeddings:
        n += spec.vocab * spec.d_embed
    if spec.learned_positions:
        n += spec.max_context * spec.d_model
    return n + _norm_params(spec)


def _embed_projections(spec: LlmSpec) -> int:
    """The d_model x embed_dim projections in and out of a narrower embedding (no biases)."""
    return 0 if spec.d_embed == spec.d_model else 2 * spec.d_model * spec.d_embed


def params(spec: LlmSpec) -> int:
    """Total parameter count derived from the shape."""
    return spec.layers * params_per_layer(spec) + embedding_params(spec)


def matmul_params(spec: LlmSpec) -> int:
    """Weights that take part in a matrix product per token (layers plus the output head; of a
    mixture of experts the token's own experts only)."""
    per_layer = attention_params_per_layer(spec) + active_ffn_params_per_layer(spec)
    out = spec.vocab * spec.d_embed + (_embed_projections(spec) // 2)
    return spec.layers * per_layer + out


def flops_per_token(spec: LlmSpec, context: int = 0) -> float:
    """Forward FLOPs to produce one token with ``context`` tokens already cached.

    2 FLOPs per matmul weight, plus the attention scores and the weighted sum of values:
    2 x 2 x layers x heads x head_dim x context (Kaplan et al. 2020, table 1).
    """
    attn = 4.0 * spec.layers * spec.heads * spec.d_head * context
    return 2.0 * matmul_params(spec) + attn


def kv_bytes_per_token(spec: LlmSpec, bytes_per_value: float = 2.0) -> float:
    """KV-cache bytes one token adds: keys and values of every layer's KV heads."""
    return 2.0 * spec.layers * spec.n_kv_heads * spec.d_head * bytes_per_value


# --------------------------------------------------------------------------------------------
# one layer as tensor-parallel GEMMs


@dataclass(frozen=True)
class Gemm:
    """A weight GEMM ``(rows x k) @ (k x n)``; ``split`` says how tensor parallelism cuts it.

    ``col``: the output columns ``n`` are split (no communication after it); ``row``: the inner
    dimension ``k`` is split and the partial sums need an all-reduce (Shoeybi et al. 2019).
    """

    name: str
    k: int
    n: int
    split: str
    #: a mixture-of-experts GEMM: one of ``experts`` matrices, ``active`` of which each row
    #: (token) is multiplied by
    experts: int = 1
    active: int = 1


@dataclass(frozen=True)
class LayerShape:
    """One decoder layer as the performance model sees it."""

    gemms: tuple[Gemm, ...]
    d_model: int
    #: query heads x head size (the width of attention scores' inner products)
    q_width: int
    heads: int
    kv_heads: int
    #: bytes of K and V one token adds to one layer's cache
    kv_bytes_per_token: float
    #: all-reduces of a (rows x d_model) activation per layer
    allreduces: int
    #: bytes per weight or activation value
    bytes_per_value: float
    layers: int

    @property
    def weights_per_layer(self) -> int:
        """GEMM weights held per layer (every expert)."""
        return sum(g.k * g.n * g.experts for g in self.gemms)

    @property
    def active_weights_per_layer(self) -> int:
        """GEMM weights one token multiplies by per layer (its experts only)."""
        return sum(g.k * g.n * g.active for g in self.gemms)

    @property
    def weight_bytes(self) -> float:
        """Bytes of all the layers' GEMM weights (embeddings excluded)."""
        return float(self.layers * self.weights_per_layer * self.bytes_per_value)

    @property
    def flops_per_token(self) -> float:
        """2 FLOPs per GEMM weight a token uses, all layers (no attention scores)."""
        return 2.0 * self.layers * self.active_weights_per_layer


def layer_shape(spec: LlmSpec, *, simplified: bool = False,
                bytes_per_value: float = 2.0) -> LayerShape:
    """The GEMMs of one layer of ``spec``.

    ``simplified=True`` is Chiplet Cloud v1's model (arXiv 2307.02666 v1; authors' code at reallm
    commit f194ed6, ``software_evaluation/opt_mapping.py``): every layer is four square-ish GEMMs
    d x 3d, d x d, d x 4d and 4d x d (12 d^2 weights, whatever the real FFN), and the KV cache of
    a token is 2 d values divided by heads / kv_heads (so multi-query PaLM divides by 48).
    """
    d = spec.d_model
    if simplified:
        gemms = (
            Gemm("qkv", d, 3 * d, "col"),
            Gemm("attn_out", d, d, "row"),
            Gemm("ffn_in", d, 4 * d, "col"),
            Gemm("ffn_out", 4 * d, d, "row"),
        )
        kv = 2.0 * d * bytes_per_value * spec.n_kv_heads / spec.heads
        return LayerShape(gemms=gemms, d_model=d, q_width=d, heads=spec.heads,
                          kv_heads=spec.n_kv_heads, kv_bytes_per_token=kv, allreduces=2,
                          bytes_per_value=bytes_per_value, layers=spec.layers)
    q = spec.heads * spec.d_head
    k_v = spec.n_kv_heads * spec.d_head
    ffn_in = 2 * spec.d_ff if spec.ffn in ("swiglu", "geglu") else spec.d_ff
    qkv_n = q + 2 * k_v + (q if spec.relative_position_projection else 0)
    e, a = spec.experts, spec.experts_per_token
    gemms = (
        Gemm("qkv", d, qkv_n, "col"),
        Gemm("attn_out", q, d, "row"),
        *((Gemm("router", d, e, "col"),) if spec.is_moe else ()),
        Gemm("ffn_in", d, ffn_in, "col", experts=e, active=a),
        Gemm("ffn_out", spec.d_ff, d, "row", experts=e, active=a),
    )
    return LayerShape(
        gemms=gemms, d_model=d, q_width=q, heads=spec.heads, kv_heads=spec.n_kv_heads,
        kv_bytes_per_token=2.0 * k_v * bytes_per_value,
        # attention and FFN read the same input: their partial sums reduce together
        allreduces=1 if spec.parallel_attention else 2,
        bytes_per_value=bytes_per_value, layers=spec.layers,
    )
