"""The analytical diffusion model: a roofline per operator, and a call that takes the longer of
its GPU work and its host time.

For each component call (text encoders once per prompt, the denoiser once per step, the VAE
decoder once per image batch) every operator takes the longer of its compute time,
``FLOPs / (peak x compute_efficiency)``, and its HBM time, ``bytes / (bandwidth x
bandwidth_efficiency)``. A convolution (an implicit GEMM: M = rows x output pixels, N = output
channels, K = input channels x kernel area) or a linear layer (M = rows x tokens) computes in
whole waves of output tiles over the GPU's SMs (the shared tile model,
:func:`hwsim.hw.gemm.tile_wave_compute_s`, every tile at ``compute_efficiency``: no small-tile
penalty is fitted here), so a small level or a small batch that leaves SMs idle takes longer
than its FLOPs alone say; attention (fused or not) and GPUs without an SM count stay at the
plain rate. The host issues the call's operators asynchronously, each in
``host_s_per_operator`` (eager-mode dispatch and launch, the scheduler step folded in), so the
call takes the longer of its GPU sum and its operator count times that (torch.compile with
CUDA graphs: no host time, pointwise operators fused). Bytes are the operator's weights (read
once per call, whatever the batch), its input and output activations and, without a fused
attention kernel, four passes over the ``heads x N x M`` score tensor (written by Q K^T, read
and written by the softmax, read by the product with V).
The GPU's figures come from the shared ``gpu`` kind (hwsim.hw); the tile model is shared with
gpu-serving's GEMM model, its constants are not (they are fitted on another system's data).

Every array has one entry per design point: batch, resolution, steps and the calibration's
three constants are vectorised (the calibration fit evaluates a whole grid in one call).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim.batch import REASON
from hwsim.diffusion import arch
from hwsim.diffusion.spec import VAE_FACTOR, DiffusionModelSpec
from hwsim.errors import InfeasibleDesign
from hwsim.hw.gemm import tile_wave_compute_s
from hwsim.hw.tco import HOURS_PER_YEAR, server_tco
from hwsim.system import Inputs

#: the head dimensions FlashAttention v1 (the fused kernel of PyTorch 2.0's SDPA) is built for:
#: ``run_fmha_fwd`` runs a head dimension up to 32, 64 or 128 on the kernel of that size
#: (pytorch ``aten/src/ATen/native/transformers/cuda/flash_attn/fmha_api.cpp``, flash-attention
#: v1 ``csrc/flash_attn/fmha_api.cpp``), so SD1.5's heads of 40 and 80 compute as 64 and 128;
#: a larger head (SD1.5's 160, the VAE's 512) runs another kernel, taken unpadded here
FLASH_HEAD_DIMS = (32.0, 64.0, 128.0)


def padded_head_dim(head_dim: np.ndarray) -> np.ndarray:
    """The head dimension a fused attention kernel computes for heads of ``head_dim``."""
    hd = np.asarray(head_dim, dtype=float)
    out = hd.copy()
    for size in reversed(FLASH_HEAD_DIMS):
        out = np.where(hd <= size, size, out)
    return np.where(hd > 0, out, hd)


#: keys the block evaluates as arrays
VECTOR_KEYS = frozenset({"pipeline.batch", "pipeline.resolution_px", "pipeline.steps",
                         "calibration.compute_efficiency", "calibration.host_s_per_operator",
                         "calibration.bandwidth_efficiency"})

GB = 1e9


def _net_arrays(m: DiffusionModelSpec) -> dict[str, Any]:
    den = arch.denoiser(m)
    return {"denoiser": den.arrays(), "live": den.live,
            "text": [arch.text_encoder(t).arrays() for t in m.text_encoders],
            "vae": arch.vae_decoder(m.vae).arrays()}


def call_time(a: dict[str, np.ndarray], s: np.ndarray, rows: np.ndarray, bpp: float,
              fused: bool, peaks: tuple[Any, Any], bandwidth: Any, host_s: Any,
              compiled: bool = False, sms: int = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Time of one call of a component on ``rows`` rows at latent pixels ``s`` (arrays of
    points): (seconds, seconds in memory-bound operators, seconds in compute-bound operators,
    FLOPs). On the GPU each operator takes the longer of its compute time (convolutions at
    ``peaks[0]``, other matmuls at ``peaks[1]``, FLOP/s; convolutions and linears in whole
    waves of tiles over ``sms`` SMs when it is given) and its HBM time. The host issues
    the call's operators asynchronously, ``host_s`` each: the call takes the longer of the
    GPU's sum and the host time (operators x ``host_s``). ``compiled`` drops the pointwise
    operators (fused into their neighbours) and the host time (CUDA graphs)."""
    keep = ~a["eltwise"] if compiled else np.ones(a["eltwise"].shape, dtype=bool)
    macs = arch.evaluate_poly(a["macs"][keep], s) * rows
    acts = arch.evaluate_poly(a["acts"][keep], s)
    if not fused:
        acts = acts + 4.0 * arch.evaluate_poly(a["scores"][keep], s)
    byts = a["params"][keep][:, None] * bpp + acts * rows * bpp
    conv = a["conv"][keep][:, None]
    rate = np.where(conv, np.asarray(peaks[0])[None, ...], np.asarray(peaks[1])[None, ...])
    t_c = 2.0 * macs / rate
    if fused:   # the kernel computes its padded head dimension
        hd = a["head_dim"][keep]
        attn = hd > 0
        t_c[attn] = t_c[attn] * (padded_head_dim(hd[attn]) / hd[attn])[:, None]
    gemm = a["gemm_n"][keep] > 0
    if sms > 0 and gemm.any():
        # convolutions (implicit GEMMs) and linears: whole waves of output tiles over the SMs
        n_col = a["gemm_n"][keep][gemm][:, None]
        k_in = a["gemm_k"][keep][gemm][:, None]
        t_c[gemm] = tile_wave_compute_s(macs[gemm] / (n_col * k_in), n_col, k_in,
                                        np.broadcast_to(rate, t_c.shape)[gemm], sms, 1.0, 1.0)
    t_m = byts / bandwidth
    t = np.maximum(t_c, t_m)
    mem = np.where(t_m >= t_c, t, 0.0).sum(axis=0)
    comp = np.where(t_c > t_m, t, 0.0).sum(axis=0)
    gpu = t.sum(axis=0)
    host = 0.0 if compiled else a["eltwise"].size * np.asarray(host_s)
    return np.maximum(gpu, host), mem, comp, 2.0 * macs.sum(axis=0)


def _act_peak(a: dict[str, np.ndarray], s: np.ndarray, rows: np.ndarray, bpp: float,
              fused: bool, live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Activation bytes live at the worst operator (its inputs and outputs, plus the UNet's
    skip tensors) and the attention-score bytes among them."""
    acts = arch.evaluate_poly(a["acts"], s).max(axis=0)
    if live is not None:
        acts = acts + arch.evaluate_poly(live[None, :], s)[0]
    scores = arch.evaluate_poly(a["scores"], s).max(axis=0)
    if fused:
        scores = np.zeros_like(scores)
    return (acts + scores) * rows * bpp, scores * rows * bpp


def _peaks(gpu: Any, precision: str) -> tuple[float, float]:
    """Peak FLOP/s of (convolutions, other matmuls) at a precision: 16-bit tensor cores; fp32
    on TF32 tensor cores where the GPU has them (convolutions by cuDNN's default; matmuls as
    the diffusers fp32 figures imply: their fp32 / bf16 ratio of 1.6 rules out FP32 cores,
    which would make it about 5), else on the FP32 cores."""
    if precision == "16bit":
        f = gpu.peak_16bit_TFLOPS * 1e12
        return f, f
    if gpu.peak_tf32_TFLOPS > 0:
        f = gpu.peak_tf32_TFLOPS * 1e12
        return f, f
    if gpu.peak_fp32_TFLOPS <= 0:
        raise InfeasibleDesign(f"{gpu.name} gives neither peak_tf32_TFLOPS nor "
                               "peak_fp32_TFLOPS; fp32 cannot be timed")
    f = gpu.peak_fp32_TFLOPS * 1e12
    return f, f


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every analytical metric of ``n`` points (batch, resolution and steps as arrays)."""
    m: DiffusionModelSpec = inputs["model"]
    p = inputs["pipeline"]
    gpu = inputs["device"]
    cal = inputs["calibration"]
    tco = inputs["tco"]

    def get(key: str, spec: Any = p, role: str = "pipeline") -> np.ndarray:
        v = points.get(f"{role}.{key}")
        return np.broadcast_to(np.asarray(getattr(spec, key) if v is None else v,
                                          dtype=float), (n,))

    batch, res, steps = get("batch"), get("resolution_px"), get("steps")
    eta = get("compute_efficiency", cal, "calibration")
    nets = _net_arrays(m)
    bpp = p.bytes_per_param
    peaks = _peaks(gpu, p.precision)
    peaks = (peaks[0] * eta, peaks[1] * eta)
    bw = gpu.hbm_bandwidth_GBps * GB * get("bandwidth_efficiency", cal, "calibration")
    ovh = get("host_s_per_operator", cal, "calibration")
    cc = p.compiled
    s = (res / VAE_FACTOR) ** 2
    rows = batch * p.rows_per_image
    t_den, mem_den, comp_den, f_den = call_time(nets["denoiser"], s, rows, bpp,
                                                p.fused_attention, peaks, bw, ovh, cc, gpu.sms)
    prompts = batch * (2 if p.guidance == "cfg" else 1)
    t_text = np.zeros(n)
    f_text = np.zeros(n)
    mem_text = np.zeros(n)
    comp_text = np.zeros(n)
    for a in nets["text"]:
        t, mm, c, f = call_time(a, s, prompts, bpp, p.fused_attention, peaks, bw, ovh, cc,
                                gpu.sms)
        t_text, mem_text, comp_text, f_text = t_text + t, mem_text + mm, comp_text + c, \
            f_text + f
    t_vae, mem_vae, comp_vae, f_vae = call_time(nets["vae"], s, batch, bpp,
                                                p.fused_attention, peaks, bw, ovh, cc, gpu.sms)
    latency = t_text + steps * t_den + t_vae
    mem_time = mem_text + steps * mem_den + mem_vae
    comp_time = comp_text + steps * comp_den + comp_vae

    weights = bpp * sum(arch_total(a) for a in [nets["denoiser"], nets["vae"], *nets["text"]])
    act_den, sc_den = _act_peak(nets["denoiser"], s, rows, bpp, p.fused_attention,
                                nets["live"])
    act_vae, sc_vae = _act_peak(nets["vae"], s, batch, bpp, p.fused_attention)
    acts = np.maximum(act_den, act_vae)
    for a in nets["text"]:
        acts = np.maximum(acts, _act_peak(a, s, prompts, bpp, p.fused_attention)[0])
    peak_mem = weights + acts
    fits = peak_mem <= gpu.hbm_capacity_GB * GB

    lat_mult = arch.latent_multiple(m)
    latent = res / VAE_FACTOR
    ok_res = np.isclose(latent % lat_mult, 0.0)
    images_per_s = batch / latency
    rent = gpu.rental_usd_per_device_hour / 3600.0 / images_per_s * 1000.0
    if gpu.owned_price_known:
        per_hour = float(server_tco(gpu.server_power_W, gpu.server_price_usd, tco, 1.0)) \
            / (tco.server_life_years * HOURS_PER_YEAR) / gpu.devices_per_server
        owned = per_hour / 3600.0 / images_per_s * 1000.0
    else:
        owned = np.full(n, math.nan)
    total_flops = f_text + steps * f_den + f_vae
    ok = ok_res & fits
    reason = np.full(n, "", dtype=object)
    for i in np.flatnonzero(~ok_res):
        reason[i] = (f"resolution {res[i]:g} px: the latent ({latent[i]:g}) is not a multiple "
                     f"of {lat_mult} ({m.denoiser} of {m.name})")
    for i in np.flatnonzero(ok_res & ~fits):
        reason[i] = (f"needs {peak_mem[i] / GB:.1f} GB (weights {weights / GB:.1f} GB, "
                     f"activations {acts[i] / GB:.1f} GB); {gpu.name} has "
                     f"{gpu.hbm_capacity_GB:g} GB")
    nan = np.full(n, np.nan)

    def keep(x: Any) -> np.ndarray:
        return np.where(ok, np.broadcast_to(x, (n,)), nan)

    return {
        "image_latency_s": keep(latency),
        "images_per_s": keep(images_per_s),
        "step_latency_s": keep(t_den),
        "steps_per_s": keep(1.0 / t_den),
        "text_encoder_s": keep(t_text),
        "vae_decoder_s": keep(t_vae),
        "denoiser_tflops_per_call": keep(f_den / 1e12),
        "tflops_per_image": keep(total_flops / batch / 1e12),
        "denoiser_params_M": keep(arch_total(nets["denoiser"]) / 1e6),
        "weights_GB": keep(weights / GB),
        "activations_GB": keep(acts / GB),
        "attention_scores_GB": keep(np.maximum(sc_den, sc_vae) / GB),
        "memory_peak_GB": keep(peak_mem / GB),
        "memory_bound": keep((mem_time > comp_time).astype(float)),
        "host_bound": keep((t_den > (mem_den + comp_den) * (1 + 1e-12)).astype(float)),
        "usd_per_1k_images": keep(owned),
        "rental_usd_per_1k_images": keep(rent),
        REASON: reason,
    }


def arch_total(a: dict[str, np.ndarray]) -> float:
    """Parameters of one component's operator arrays."""
    return float(a["params"].sum())


def explain(inputs: Inputs, reason: str) -> str:
    """The reason of one infeasible point (the block's own reasons are already complete)."""
    return reason
