"""Spec kinds of the ``diffusion`` system: the model (denoiser, text encoders, VAE decoder),
the pipeline (steps, guidance, resolution, batch) and the latency calibration.

A model is described by its architecture, never by a table of totals: parameter counts and
FLOPs per call come out of :mod:`hwsim.diffusion.arch`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

#: the VAE's spatial down-sampling factor (KL-f8, the same for SD1/2/XL, DiT and PixArt)
VAE_FACTOR = 8


@dataclass(frozen=True, kw_only=True)
class UnetArch:
    """A UNet denoiser after the latent-diffusion UNet (diffusers ``UNet2DConditionModel``)."""

    in_channels: int = param(4, ge=1, le=1024, help="latent channels in and out")
    block_channels: tuple[int, ...] = param((320, 640, 1280, 1280), ge=1, le=65536,
                                            help="output channels of each resolution level")
    layers_per_block: int = param(2, ge=1, le=16,
                                  help="residual blocks per down level (up levels have one more)")
    transformer_depth: tuple[int, ...] = param(
        (1, 1, 1, 0), ge=0, le=64,
        help="transformer blocks per attention module at each level (0 = none)")
    mid_transformer_depth: int = param(1, ge=0, le=64, help="transformer blocks in the middle")
    head_dim: int = param(0, ge=0, le=4096, help="channels per attention head (0: use heads)")
    heads: int = param(8, ge=0, le=1024, help="attention heads when head_dim = 0")
    context_dim: int = param(768, ge=1, le=65536, help="cross-attention context width")
    time_embed_dim: int = param(1280, ge=1, le=65536, help="time-embedding width")
    addition_embed_in: int = param(0, ge=0, le=65536,
                                   help="input width of the added (pooled text + size) embedding; "
                                   "0 = none (SDXL: 2816)")

    def __post_init__(self) -> None:
        if len(self.transformer_depth) != len(self.block_channels):
            raise ValueError(f"transformer_depth has {len(self.transformer_depth)} entries, "
                             f"block_channels {len(self.block_channels)}; one per level")
        for c, d in zip(self.block_channels, self.transformer_depth, strict=True):
            if c < 1 or d < 0:
                raise ValueError(f"block_channels must be >= 1 and transformer_depth >= 0 "
                                 f"(got {c}, {d})")
            if d and c % 32:
                raise ValueError(f"{c} channels do not divide into 32 GroupNorm groups")
            if d and self.head_dim and c % self.head_dim:
                raise ValueError(f"head_dim {self.head_dim} does not divide {c} channels")
            if d and not self.head_dim and (self.heads < 1 or c % self.heads):
                raise ValueError(f"{self.heads} heads do not divide {c} channels")


@dataclass(frozen=True, kw_only=True)
class DitArch:
    """A diffusion transformer after DiT (Peebles & Xie, arXiv 2212.09748): adaLN-Zero blocks
    on patches of the latent; ``cross_attention`` adds PixArt-alpha's text cross-attention."""

    depth: int = param(28, ge=1, le=1024, help="transformer blocks")
    width: int = param(1152, ge=1, le=65536, help="hidden size")
    heads: int = param(16, ge=1, le=1024, help="attention heads")
    patch: int = param(2, ge=1, le=64, help="patch size in latent pixels")
    in_channels: int = param(4, ge=1, le=1024, help="latent channels in")
    out_channels: int = param(8, ge=1, le=1024, help="channels out (8: noise and variance)")
    mlp_ratio: float = param(4.0, gt=0, le=64, help="MLP hidden / width")
    classes: int = param(1000, ge=0, le=10_000_000,
                         help="class labels (+1 null label for guidance); 0 = none")
    cross_attention: bool = param(False, help="a text cross-attention per block (PixArt-alpha)")
    context_dim: int = param(4096, ge=1, le=65536, help="text-encoder width (cross-attention)")
    adaln_single: bool = param(False, help="one shared adaLN modulation (PixArt-alpha's "
                               "adaLN-single) instead of one per block")
    micro_conditions: bool = param(False, help="PixArt-alpha multi-scale (1024-MS) resolution "
                                   "and aspect-ratio embedders, each width / 3 wide")

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"{self.heads} heads do not divide width {self.width}")
        if self.micro_conditions and self.width % 3:
            raise ValueError(f"micro_conditions need a width divisible by 3 (got {self.width})")


@dataclass(frozen=True, kw_only=True)
class MmditArch:
    """A multimodal diffusion transformer (SD3's MMDiT, Esser et al. arXiv 2403.03206; FLUX.1):
    ``depth`` joint blocks with separate image and text weights over one joint attention, then
    ``single_depth`` single-stream blocks (FLUX.1) whose attention and MLP share one input
    projection over the concatenated tokens."""

    depth: int = param(24, ge=1, le=1024, help="joint (double-stream) blocks")
    single_depth: int = param(0, ge=0, le=1024, help="single-stream blocks (FLUX.1: 38)")
    width: int = param(1536, ge=1, le=65536, help="hidden size")
    heads: int = param(24, ge=1, le=1024, help="attention heads")
    patch: int = param(2, ge=1, le=64, help="patch size in latent pixels")
    in_channels: int = param(16, ge=1, le=1024, help="latent channels")
    out_channels: int = param(16, ge=1, le=1024, help="channels out")
    mlp_ratio: float = param(4.0, gt=0, le=64, help="MLP hidden / width")
    context_dim: int = param(4096, ge=1, le=65536, help="text-token width in")
    context_tokens: int = param(333, ge=1, le=1_000_000, help="text tokens in the joint "
                                "sequence (SD3: 77 CLIP + 256 T5; FLUX.1: 512 T5)")
    pooled_dim: int = param(2048, ge=1, le=65536, help="pooled text vector width in")
    guidance_embed: bool = param(False, help="a guidance-scale embedder (FLUX.1-dev)")
    qk_norm: bool = param(False, help="RMSNorm on queries and keys per head (FLUX.1)")
    context_pre_only_last: bool = param(True, help="the last joint block updates only the "
                                        "image stream (SD3)")

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"{self.heads} heads do not divide width {self.width}")


@dataclass(frozen=True, kw_only=True)
class TextEncoderArch:
    """A transformer text encoder (CLIP text tower or T5 encoder)."""

    name: str = param("", help="which encoder (clip-vit-l, openclip-bigg, t5-xxl ...)")
    layers: int = param(ge=1, le=1024, help="transformer layers used")
    width: int = param(ge=1, le=65536, help="hidden size")
    heads: int = param(ge=1, le=1024, help="attention heads")
    ff_dim: int = param(ge=1, le=262144, help="feed-forward hidden size")
    vocab: int = param(49408, ge=1, le=10_000_000, help="token vocabulary")
    max_positions: int = param(77, ge=0, le=1_000_000,
                               help="learned absolute positions (0: relative bias, T5)")
    tokens: int = param(77, ge=1, le=1_000_000, help="tokens encoded per prompt")
    gated_ff: bool = param(False, help="gated feed-forward (T5 v1.1: two input projections)")
    bias: bool = param(True, help="linear layers and norms carry biases (CLIP yes, T5 no)")
    projection_dim: int = param(0, ge=0, le=65536, help="output projection width (0 = none)")
    relative_buckets: int = param(0, ge=0, le=4096,
                                  help="relative-position buckets of T5's first layer")

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"{self.heads} heads do not divide width {self.width}")


@dataclass(frozen=True, kw_only=True)
class VaeArch:
    """The KL autoencoder's decoder (latent-diffusion ``AutoencoderKL``); the encoder is counted
    for the parameter total only (text-to-image decodes, it does not encode)."""

    latent_channels: int = param(4, ge=1, le=1024, help="latent channels")
    base_channels: int = param(128, ge=1, le=65536, help="channels of the full-resolution level")
    channel_mult: tuple[int, ...] = param((1, 2, 4, 4), ge=1, le=64,
                                          help="channel multiple per level")
    layers_per_block: int = param(2, ge=1, le=16, help="residual blocks per encoder level "
                                  "(decoder levels have one more)")
    quant_convs: bool = param(True, help="the 1x1 quant_conv / post_quant_conv around the "
                              "latent (SD1/2/XL yes; SD3 and FLUX.1 autoencoders no)")

    def __post_init__(self) -> None:
        if 2 ** (len(self.channel_mult) - 1) != VAE_FACTOR:
            raise ValueError(f"{len(self.channel_mult)} levels down-sample by "
                             f"{2 ** (len(self.channel_mult) - 1)}, not {VAE_FACTOR}")


@spec_kind("diffusion-model")
@dataclass(frozen=True, kw_only=True)
class DiffusionModelSpec:
    """A text-to-image (or class-to-image) latent diffusion model."""

    name: str = param(help="identifier")
    denoiser: str = param("unet", choices=("unet", "dit", "mmdit"),
                          help="denoiser architecture")
    unet: UnetArch = param(default_factory=UnetArch, help="the UNet (denoiser = unet)")
    dit: DitArch = param(default_factory=DitArch, help="the transformer (denoiser = dit)")
    mmdit: MmditArch = param(default_factory=MmditArch,
                             help="the multimodal transformer (denoiser = mmdit)")
    text_encoders: tuple[TextEncoderArch, ...] = param((), help="text encoders run once per "
                                                       "prompt (none: class-conditional)")
    vae: VaeArch = param(default_factory=VaeArch, help="the KL autoencoder")
    native_resolution_px: int = param(512, ge=8, le=16384, help="training resolution")
    source: str = param("", help="where the architecture comes from")


@spec_kind("diffusion-pipeline")
@dataclass(frozen=True, kw_only=True)
class DiffusionPipelineSpec:
    """How images are generated: steps, guidance, size, batch, precision, attention kernel."""

    name: str = param(help="identifier")
    steps: int = param(50, ge=1, le=10_000, help="denoiser sampling steps")
    guidance: str = param("cfg", choices=("cfg", "embedded", "none"),
                          help="cfg: classifier-free guidance, two denoiser rows per image "
                          "(batch doubling); embedded: guidance scale as an input (FLUX.1-dev); "
                          "none")
    resolution_px: int = param(512, ge=8, le=16384, help="image height = width")
    batch: int = param(1, ge=1, le=4096, help="images generated together")
    bytes_per_param: float = param(2.0, gt=0, le=8, help="weight and activation bytes "
                                   "(2: fp16/bf16)")
    fused_attention: bool = param(True, help="a fused attention kernel (SDPA/FlashAttention): "
                                  "no N x N score tensor in HBM")
    precision: str = param("16bit", choices=("16bit", "fp32"),
                           help="16bit: fp16/bf16 tensor cores; fp32: 4-byte values on TF32 "
                           "tensor cores where the GPU has them, else its FP32 cores")
    compiled: bool = param(False, help="torch.compile with CUDA graphs (reduce-overhead / "
                           "max-autotune): pointwise operators fused into their neighbours, "
                           "no host time per call")
    max_batch: int = param(8, ge=1, le=4096, help="DES: most requests served as one batch")
    arrival_rate_per_s: float = param(0.05, gt=0, unit="1/s", help="DES: Poisson image "
                                      "requests per second")
    requests: int = param(4000, ge=100, le=1_000_000, help="DES: requests measured")
    warmup_requests: int = param(400, ge=0, le=1_000_000, help="DES: requests discarded first")

    def __post_init__(self) -> None:
        if self.precision == "fp32" and self.bytes_per_param != 4:
            raise ValueError(f"precision fp32 holds 4 bytes per value, bytes_per_param is "
                             f"{self.bytes_per_param:g}; set bytes_per_param = 4")
        if self.resolution_px % VAE_FACTOR:
            raise ValueError(f"resolution_px {self.resolution_px} is not divisible by the VAE "
                             f"factor {VAE_FACTOR}")

    @property
    def rows_per_image(self) -> int:
        """Denoiser rows per image: 2 with classifier-free guidance, else 1."""
        return 2 if self.guidance == "cfg" else 1


@spec_kind("diffusion-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class DiffusionCalibrationSpec:
    """The constants of the diffusion latency model for one device and software stack."""

    name: str = param(help="identifier: diffusion-<device>")
    device: str = param("", help="the gpu spec these constants were fitted for; empty = any")
    fitted_on: str = param(help="the data the constants were fitted on (file and rows)")
    compute_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak 16-bit tensor "
                                      "FLOP rate of convolutions, linears and attention")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak HBM bandwidth")
    host_s_per_operator: float = param(0.0, ge=0, le=0.01, unit="s", help="host time to "
                                       "issue one operator of a component call (eager PyTorch "
                                       "dispatch and launch; the scheduler step folded in): a "
                                       "call's host time is its operator count times this, "
                                       "and a call takes the longer of that and its GPU work")
