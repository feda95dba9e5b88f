"""Parameter counts, FLOPs and activation sizes from a diffusion model's architecture.

Every component (denoiser, text encoder, VAE decoder) is built as a list of operators, each
with its parameters and with its multiply-accumulates (MACs), activation elements and attention
scores as polynomials in ``S``, the latent pixels per image ((resolution / 8)^2): a coefficient
of ``S^0``, ``S^1`` and ``S^2``. A convolution at a UNet level ``l`` scales with ``S / 4^l``;
self-attention over ``N`` tokens scales with ``N^2``. So one list evaluates every resolution
at once (numpy broadcasting).

FLOP convention (derived here, stated in docs/diffusion.md): 2 FLOPs per multiply-accumulate
of convolutions, linear layers and both attention matmuls (Q K^T and scores x V); norms,
activations, softmax and embeddings count no FLOPs (they count memory traffic).

The operators follow the layer structure of the latent-diffusion UNet and the KL autoencoder
(Rombach et al., arXiv 2112.10752; the diffusers ``UNet2DConditionModel`` and
``AutoencoderKL`` layer layout), DiT (Peebles & Xie, arXiv 2212.09748, section 3.2) and the
CLIP / T5 text transformers (Radford et al., arXiv 2103.00020; Raffel et al., arXiv
1910.10683). The code is written here from those descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwsim.diffusion.spec import (
    DiffusionModelSpec,
    DitArch,
    MmditArch,
    TextEncoderArch,
    UnetArch,
    VaeArch,
)


def _poly(coef: float, power: int) -> np.ndarray:
    p = np.zeros(3)
    p[power] = coef
    return p


@dataclass
class Net:
    """Operators of one component; rows of the arrays are operators."""

    name: str
    params: list[float] = field(default_factory=list)
    macs: list[np.ndarray] = field(default_factory=list)
    acts: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    #: the implicit GEMM's output columns N and inner size K of a convolution or linear layer
    #: (0 for other operators); its rows M per image row are ``macs / (N K)``
    gemm_n: list[float] = field(default_factory=list)
    gemm_k: list[float] = field(default_factory=list)
    #: the head dimension of an attention operator (0 for other operators)
    head_dim: list[float] = field(default_factory=list)
    #: each operator's shape as it was added (channels, kernel, size as (coefficient, power of
    #: S), heads, ...), for whoever needs the layer itself (the device measurement script)
    shapes: list[dict] = field(default_factory=list)
    #: elements held across operators per row (the UNet's skip tensors), a polynomial in S
    live: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def add(self, kind: str, params: float, macs: np.ndarray, acts: np.ndarray,
            scores: np.ndarray | None = None, gemm: tuple[float, float] = (0.0, 0.0),
            head_dim: float = 0.0, shape: dict | None = None) -> None:
        self.kinds.append(kind)
        self.shapes.append(shape or {})
        self.head_dim.append(float(head_dim))
        self.gemm_n.append(float(gemm[0]))
        self.gemm_k.append(float(gemm[1]))
        self.params.append(float(params))
        self.macs.append(macs)
        self.acts.append(acts)
        self.scores.append(np.zeros(3) if scores is None else scores)

    # one size is (coefficient, power of S): pixels or tokens of a row
    def conv(self, cin: int, cout: int, k: int, size: tuple[float, int], bias: bool = True,
             stride_in: float = 1.0) -> None:
        c, p = size
        self.add("conv", cin * cout * k * k + cout * bias, _poly(cin * cout * k * k * c, p),
                 _poly((cin * stride_in + cout) * c, p), gemm=(cout, cin * k * k),
                 shape={"cin": cin, "cout": cout, "kernel": k, "size": size,
                        "stride_in": stride_in})

    def linear(self, din: int, dout: int, size: tuple[float, int], bias: bool = True) -> None:
        c, p = size
        self.add("linear", din * dout + dout * bias, _poly(din * dout * c, p),
                 _poly((din + dout) * c, p), gemm=(dout, din),
                 shape={"din": din, "dout": dout, "size": size, "bias": bias})

    def norm(self, ch: int, size: tuple[float, int], affine: int = 2, layer: str = "") -> None:
        """A normalisation over ``ch`` channels; ``layer`` names it where it matters
        ("groupnorm", "layernorm": the UNet's), nothing else depends on it."""
        c, p = size
        self.add("norm", affine * ch, np.zeros(3), _poly(2 * ch * c, p),
                 shape={"ch": ch, "size": size, "layer": layer})

    def eltwise(self, ch: int, size: tuple[float, int], passes: int = 2) -> None:
        """A pointwise operator (activation, residual add, gate product) over ``ch`` channels:
        ``passes`` tensor reads and writes (2 unary, 3 binary); no parameters, no MACs. A
        compiler that fuses pointwise work into its neighbours (torch.compile) removes it."""
        c, p = size
        self.add("eltwise", 0, np.zeros(3), _poly(passes * ch * c, p))

    def embedding(self, rows: int, dim: int, size: tuple[float, int]) -> None:
        c, p = size
        self.add("embedding", rows * dim, np.zeros(3), _poly(dim * c, p))

    def attention(self, n: tuple[float, int], m: tuple[float, int], ch: int,
                  heads: int) -> None:
        """Both matmuls of multi-head attention of ``n`` queries over ``m`` keys (no params)."""
        (cn, pn), (cm, pm) = n, m
        self.add("attention", 0, _poly(2 * cn * cm * ch, pn + pm),
                 _poly(2 * cn * ch, pn) + _poly(2 * cm * ch, pm),
                 _poly(heads * cn * cm, pn + pm), head_dim=ch / heads,
                 shape={"n": n, "m": m, "ch": ch, "heads": heads})

    def linear_poly(self, din: int, dout: int, tokens: np.ndarray, bias: bool = True) -> None:
        """A linear layer over ``tokens`` rows given as a polynomial in ``S``."""
        self.add("linear", din * dout + dout * bias, din * dout * tokens, (din + dout) * tokens,
                 gemm=(dout, din))

    def eltwise_poly(self, ch: int, tokens: np.ndarray, passes: int = 2) -> None:
        self.add("eltwise", 0, np.zeros(3), passes * ch * tokens)

    def attention_poly(self, n: np.ndarray, ch: int, heads: int) -> None:
        """Self-attention over ``n`` tokens given as a polynomial of degree <= 1 in ``S``."""
        sq = np.array([n[0] * n[0], 2 * n[0] * n[1], n[1] * n[1]])
        self.add("attention", 0, 2 * ch * sq, 4 * ch * n, heads * sq, head_dim=ch / heads)

    def arrays(self) -> dict[str, np.ndarray]:
        """The operator rows as arrays; ``eltwise`` marks the pointwise rows."""
        return {"params": np.array(self.params), "macs": np.array(self.macs).reshape(-1, 3),
                "acts": np.array(self.acts).reshape(-1, 3),
                "scores": np.array(self.scores).reshape(-1, 3),
                "eltwise": np.array([k == "eltwise" for k in self.kinds], dtype=bool),
                "conv": np.array([k == "conv" for k in self.kinds], dtype=bool),
                "gemm_n": np.array(self.gemm_n), "gemm_k": np.array(self.gemm_k),
                "head_dim": np.array(self.head_dim)}

    @property
    def total_params(self) -> int:
        return round(sum(self.params))


def _heads(u: UnetArch, ch: int) -> int:
    return ch // u.head_dim if u.head_dim else u.heads


def _resnet(net: Net, cin: int, cout: int, size: tuple[float, int], temb: int) -> None:
    net.norm(cin, size, layer="groupnorm")
    net.eltwise(cin, size)                        # SiLU
    net.conv(cin, cout, 3, size)
    if temb:
        net.linear(temb, cout, (1, 0))
        net.eltwise(cout, size, 3)                # + time embedding (broadcast)
    net.norm(cout, size, layer="groupnorm")
    net.eltwise(cout, size)                       # SiLU
    net.conv(cout, cout, 3, size)
    if cin != cout:
        net.conv(cin, cout, 1, size)
    net.eltwise(cout, size, 3)                    # + shortcut


def _spatial_transformer(net: Net, ch: int, depth: int, heads: int, ctx: int,
                         size: tuple[float, int], ctx_tokens: int) -> None:
    net.norm(ch, size, layer="groupnorm")
    net.linear(ch, ch, size)                      # proj_in (1x1 conv or linear: same count)
    m = (float(ctx_tokens), 0)
    for _ in range(depth):
        net.norm(ch, size, layer="layernorm")   # self-attention
        for _ in range(3):
            net.linear(ch, ch, size, bias=False)
        net.attention(size, size, ch, heads)
        net.linear(ch, ch, size)
        net.eltwise(ch, size, 3)                  # + residual
        net.norm(ch, size, layer="layernorm")   # cross-attention on the text context
        net.linear(ch, ch, size, bias=False)
        net.linear(ctx, ch, m, bias=False)
        net.linear(ctx, ch, m, bias=False)
        net.attention(size, m, ch, heads)
        net.linear(ch, ch, size)
        net.eltwise(ch, size, 3)                  # + residual
        net.norm(ch, size, layer="layernorm")   # GEGLU feed-forward
        net.linear(ch, 8 * ch, size)
        net.eltwise(4 * ch, size, 4)              # GELU(gate) x value: read 2, write 1, GELU
        net.linear(4 * ch, ch, size)
        net.eltwise(ch, size, 3)                  # + residual
    net.linear(ch, ch, size)                      # proj_out
    net.eltwise(ch, size, 3)                      # + the block's input


def unet(u: UnetArch, ctx_tokens: int) -> Net:
    """The UNet's operators for one row (one latent) at ``S`` latent pixels."""
    net = Net("unet")
    base = u.block_channels[0]
    temb = u.time_embed_dim
    px = (1.0, 1)
    net.conv(u.in_channels, base, 3, px)
    net.linear(base, temb, (1, 0))                # time embedding MLP
    net.linear(temb, temb, (1, 0))
    if u.addition_embed_in:
        net.linear(u.addition_embed_in, temb, (1, 0))
        net.linear(temb, temb, (1, 0))
    skips = [base]
    net.live = net.live + _poly(base, 1)
    ch = base
    n = len(u.block_channels)
    for lvl, (out, depth) in enumerate(zip(u.block_channels, u.transformer_depth, strict=True)):
        size = (4.0 ** -lvl, 1)
        for _ in range(u.layers_per_block):
            _resnet(net, ch, out, size, temb)
            ch = out
            if depth:
                _spatial_transformer(net, ch, depth, _heads(u, ch), u.context_dim, size,
                                     ctx_tokens)
            skips.append(ch)
            net.live = net.live + _poly(ch * 4.0 ** -lvl, 1)
        if lvl < n - 1:
            net.conv(ch, ch, 3, (4.0 ** -(lvl + 1), 1), stride_in=4.0)
            skips.append(ch)
            net.live = net.live + _poly(ch * 4.0 ** -(lvl + 1), 1)
    size = (4.0 ** -(n - 1), 1)
    _resnet(net, ch, ch, size, temb)
    if u.mid_transformer_depth:
        _spatial_transformer(net, ch, u.mid_transformer_depth, _heads(u, ch), u.context_dim,
                             size, ctx_tokens)
    _resnet(net, ch, ch, size, temb)
    for lvl in reversed(range(n)):
        out = u.block_channels[lvl]
        depth = u.transformer_depth[lvl]
        size = (4.0 ** -lvl, 1)
        for _ in range(u.layers_per_block + 1):
            _resnet(net, ch + skips.pop(), out, size, temb)
            ch = out
            if depth:
                _spatial_transformer(net, ch, depth, _heads(u, ch), u.context_dim, size,
                                     ctx_tokens)
        if lvl > 0:
            net.conv(ch, ch, 3, (4.0 ** -(lvl - 1), 1))   # nearest up-sampling, then a conv
    net.norm(ch, px, layer="groupnorm")
    net.eltwise(ch, px)                           # SiLU
    net.conv(ch, u.in_channels, 3, px)
    return net


def dit(d: DitArch, ctx_tokens: int) -> Net:
    """The diffusion transformer's operators for one row at ``S`` latent pixels."""
    net = Net("dit")
    w = d.width
    tok = (1.0 / d.patch ** 2, 1)
    one = (1.0, 0)
    net.conv(d.in_channels, w, d.patch, tok)
    net.linear(256, w, one)                       # timestep frequency embedding MLP
    net.linear(w, w, one)
    if d.classes:
        net.embedding(d.classes + 1, w, one)      # + the null label of guidance
    m = (float(ctx_tokens), 0)
    if d.cross_attention:
        net.linear(d.context_dim, w, m)           # caption projection MLP
        net.linear(w, w, m)
    if d.adaln_single:
        net.linear(w, 6 * w, one)
    if d.micro_conditions:                        # resolution and aspect-ratio embedders
        for _ in range(2):
            net.linear(256, w // 3, (2.0, 0))
            net.linear(w // 3, w // 3, (2.0, 0))
    hidden = round(d.mlp_ratio * w)
    for _ in range(d.depth):
        if d.adaln_single:
            net.add("table", 6 * w, np.zeros(3), np.zeros(3))
        else:
            net.linear(w, 6 * w, one)             # adaLN-Zero modulation
        net.norm(w, tok, affine=0)
        net.eltwise(w, tok)                       # x (1 + scale) + shift
        net.linear(w, 3 * w, tok)
        net.attention(tok, tok, w, d.heads)
        net.linear(w, w, tok)
        net.eltwise(w, tok, 3)                    # + gate x attention
        if d.cross_attention:
            net.linear(w, w, tok)
            net.linear(w, 2 * w, m)
            net.attention(tok, m, w, d.heads)
            net.linear(w, w, tok)
            net.eltwise(w, tok, 3)                # + residual
        net.norm(w, tok, affine=0)
        net.eltwise(w, tok)                       # modulation
        net.linear(w, hidden, tok)
        net.eltwise(hidden, tok)                  # GELU
        net.linear(hidden, w, tok)
        net.eltwise(w, tok, 3)                    # + gate x MLP
    if d.adaln_single:
        net.add("table", 2 * w, np.zeros(3), np.zeros(3))
    else:
        net.linear(w, 2 * w, one)
    net.norm(w, tok, affine=0)
    net.linear(w, d.patch ** 2 * d.out_channels, tok)
    return net


def mmdit(d: MmditArch) -> Net:
    """The multimodal transformer's operators for one row at ``S`` latent pixels: image
    tokens ``S / patch^2``, text tokens ``context_tokens``, attention over both."""
    net = Net("mmdit")
    w = d.width
    hd = w // d.heads
    img = _poly(1.0 / d.patch ** 2, 1)
    txt = _poly(float(d.context_tokens), 0)
    joint = img + txt
    one = _poly(1.0, 0)
    hidden = round(d.mlp_ratio * w)
    net.linear_poly(d.in_channels * d.patch ** 2, w, img)     # patch embedding
    embedders = [256, d.pooled_dim] + ([256] if d.guidance_embed else [])
    for din in embedders:                                     # time, pooled text, guidance
        net.linear_poly(din, w, one)
        net.linear_poly(w, w, one)
    net.linear_poly(d.context_dim, w, txt)                    # context embedder
    for i in range(d.depth):
        pre_only = d.context_pre_only_last and i == d.depth - 1
        for stream, tok in (("img", img), ("txt", txt)):
            only_in = pre_only and stream == "txt"
            net.linear_poly(w, (2 if only_in else 6) * w, one)    # adaLN modulation
            net.eltwise_poly(w, tok)                              # norm and modulation
            net.linear_poly(w, 3 * w, tok)                        # q, k, v
            if d.qk_norm:
                net.add("norm", 2 * hd, np.zeros(3), 4 * w * tok)
        net.attention_poly(joint, w, d.heads)
        for stream, tok in (("img", img), ("txt", txt)):
            if pre_only and stream == "txt":
                continue
            net.linear_poly(w, w, tok)                            # output projection
            net.eltwise_poly(w, tok, 3)                           # + gate x attention
            net.eltwise_poly(w, tok)                              # norm and modulation
            net.linear_poly(w, hidden, tok)
            net.eltwise_poly(hidden, tok)                         # GELU
            net.linear_poly(hidden, w, tok)
            net.eltwise_poly(w, tok, 3)                           # + gate x MLP
    for _ in range(d.single_depth):
        net.linear_poly(w, 3 * w, one)                            # modulation
        net.eltwise_poly(w, joint)                                # norm and modulation
        net.linear_poly(w, 3 * w + hidden, joint)                 # q, k, v and MLP in
        if d.qk_norm:
            net.add("norm", 2 * hd, np.zeros(3), 4 * w * joint)
        net.attention_poly(joint, w, d.heads)
        net.eltwise_poly(hidden, joint)                           # GELU
        net.linear_poly(w + hidden, w, joint)                     # attention out and MLP out
        net.eltwise_poly(w, joint, 3)                             # + gate x output
    net.linear_poly(w, 2 * w, one)                                # final adaLN
    net.eltwise_poly(w, img)
    net.linear_poly(w, d.patch ** 2 * d.out_channels, img)
    return net


def text_encoder(t: TextEncoderArch) -> Net:
    """A text transformer's operators for one prompt (no dependence on ``S``)."""
    net = Net(t.name or "text-encoder")
    size = (float(t.tokens), 0)
    w = t.width
    affine = 2 if t.bias else 1                   # LayerNorm (CLIP) or RMSNorm (T5)
    net.embedding(t.vocab, w, size)
    if t.max_positions:
        net.embedding(t.max_positions, w, (0.0, 0))
    if t.relative_buckets:
        net.add("embedding", t.relative_buckets * t.heads, np.zeros(3), np.zeros(3))
    for _ in range(t.layers):
        net.norm(w, size, affine)
        for _ in range(3):
            net.linear(w, w, size, bias=t.bias)
        net.attention(size, size, w, t.heads)
        net.linear(w, w, size, bias=t.bias)
        net.eltwise(w, size, 3)                   # + residual
        net.norm(w, size, affine)
        for _ in range(2 if t.gated_ff else 1):
            net.linear(w, t.ff_dim, size, bias=t.bias)
        net.eltwise(t.ff_dim, size, 4 if t.gated_ff else 2)   # activation (x gate)
        net.linear(t.ff_dim, w, size, bias=t.bias)
        net.eltwise(w, size, 3)                   # + residual
    net.norm(w, size, affine)
    if t.projection_dim:
        net.linear(w, t.projection_dim, (1.0, 0), bias=False)
    return net


def _vae_attention(net: Net, ch: int, size: tuple[float, int]) -> None:
    net.norm(ch, size)
    for _ in range(3):
        net.linear(ch, ch, size)
    net.attention(size, size, ch, 1)
    net.linear(ch, ch, size)
    net.eltwise(ch, size, 3)                      # + residual


def vae_decoder(v: VaeArch) -> Net:
    """The KL decoder's operators for one image (``post_quant_conv`` included)."""
    net = Net("vae-decoder")
    z = v.latent_channels
    chans = [v.base_channels * m for m in v.channel_mult]
    lat = (1.0, 1)
    if v.quant_convs:
        net.conv(z, z, 1, lat)                    # post_quant_conv
    top = chans[-1]
    net.conv(z, top, 3, lat)
    _resnet(net, top, top, lat, 0)
    _vae_attention(net, top, lat)
    _resnet(net, top, top, lat, 0)
    ch = top
    for i, out in enumerate(reversed(chans)):
        size = (4.0 ** i, 1)
        for _ in range(v.layers_per_block + 1):
            _resnet(net, ch, out, size, 0)
            ch = out
        if i < len(chans) - 1:
            net.conv(ch, ch, 3, (4.0 ** (i + 1), 1))
    full = (4.0 ** (len(chans) - 1), 1)
    net.norm(ch, full)
    net.eltwise(ch, full)                         # SiLU
    net.conv(ch, 3, 3, full)
    return net


def vae_encoder_params(v: VaeArch) -> int:
    """Parameters of the KL encoder (counted in the autoencoder's total; never run here)."""
    net = Net("vae-encoder")
    z = v.latent_channels
    chans = [v.base_channels * m for m in v.channel_mult]
    size = (1.0, 1)
    net.conv(3, chans[0], 3, size)
    ch = chans[0]
    for i, out in enumerate(chans):
        for _ in range(v.layers_per_block):
            _resnet(net, ch, out, size, 0)
            ch = out
        if i < len(chans) - 1:
            net.conv(ch, ch, 3, size)
    _resnet(net, ch, ch, size, 0)
    _vae_attention(net, ch, size)
    _resnet(net, ch, ch, size, 0)
    net.norm(ch, size)
    net.conv(ch, 2 * z, 3, size)
    if v.quant_convs:
        net.conv(2 * z, 2 * z, 1, size)           # quant_conv
    return net.total_params


def denoiser(m: DiffusionModelSpec) -> Net:
    """The model's denoiser, its cross-attention context the first encoder's token count."""
    ctx = max((t.tokens for t in m.text_encoders), default=0)
    if m.denoiser == "mmdit":
        return mmdit(m.mmdit)
    return unet(m.unet, ctx) if m.denoiser == "unet" else dit(m.dit, ctx)


def latent_multiple(m: DiffusionModelSpec) -> int:
    """The latent size must be a multiple of this (UNet: 2^(levels-1); DiT: the patch)."""
    if m.denoiser == "mmdit":
        return m.mmdit.patch
    return 2 ** (len(m.unet.block_channels) - 1) if m.denoiser == "unet" else m.dit.patch


def parameter_counts(m: DiffusionModelSpec) -> dict[str, int]:
    """Parameters of each component, by architecture."""
    out = {"denoiser": denoiser(m).total_params}
    for i, t in enumerate(m.text_encoders):
        out[f"text_encoder_{i}_{t.name}"] = text_encoder(t).total_params
    out["vae_decoder"] = vae_decoder(m.vae).total_params
    out["vae"] = out["vae_decoder"] + vae_encoder_params(m.vae)
    return out


def evaluate_poly(coefs: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``coefs`` (ops, 3) at latent pixels ``s`` (points,) -> (ops, points)."""
    s = np.asarray(s, dtype=float)
    return coefs[:, :1] + coefs[:, 1:2] * s + coefs[:, 2:3] * s * s


def flops_per_row(net: Net, s) -> np.ndarray:
    """FLOPs of one call on one row (2 per MAC) at latent pixels ``s``."""
    return 2.0 * evaluate_poly(net.arrays()["macs"], np.atleast_1d(s)).sum(axis=0)
