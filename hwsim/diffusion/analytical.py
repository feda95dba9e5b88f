"""The analytical diffusion model: a roofline per operator plus a host overhead per call.

For each component call (text encoders once per prompt, the denoiser once per step, the VAE
decoder once per image batch) every operator takes the longer of its compute time,
``FLOPs / (peak x compute_efficiency)``, and its HBM time, ``bytes / (bandwidth x
bandwidth_efficiency)``; each call adds ``overhead_s_per_call`` (host time the GPU does not
hide: eager-mode dispatch, the scheduler step). Bytes
are the operator's weights (read once per call, whatever the batch), its input and output
activations and, without a fused attention kernel, four passes over the ``heads x N x M``
score tensor (written by Q K^T, read and written by the softmax, read by the product with V).
The GPU's figures come from the shared ``gpu`` kind (hwsim.hw), not from gpu-serving's
operator model, which belongs to another system.

Every array has one entry per design point: batch, resolution and steps are vectorised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim.batch import REASON
from hwsim.diffusion import arch
from hwsim.diffusion.spec import VAE_FACTOR, DiffusionModelSpec
from hwsim.hw.tco import HOURS_PER_YEAR, server_tco
from hwsim.system import Inputs

#: keys the block evaluates as arrays
VECTOR_KEYS = frozenset({"pipeline.batch", "pipeline.resolution_px", "pipeline.steps"})

GB = 1e9


def _net_arrays(m: DiffusionModelSpec) -> dict[str, Any]:
    den = arch.denoiser(m)
    return {"denoiser": den.arrays(), "live": den.live,
            "text": [arch.text_encoder(t).arrays() for t in m.text_encoders],
            "vae": arch.vae_decoder(m.vae).arrays()}


def call_time(a: dict[str, np.ndarray], s: np.ndarray, rows: np.ndarray, bpp: float,
              fused: bool, peak_flops: float, bandwidth: float, overhead_s: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Time of one call of a component on ``rows`` rows at latent pixels ``s`` (arrays of
    points): (seconds, seconds in memory-bound operators, seconds in compute-bound operators,
    FLOPs). Each operator takes the longer of its compute and HBM times; the call adds the
    host time the GPU does not hide (``overhead_s``, once per call)."""
    macs = arch.evaluate_poly(a["macs"], s) * rows
    acts = arch.evaluate_poly(a["acts"], s)
    if not fused:
        acts = acts + 4.0 * arch.evaluate_poly(a["scores"], s)
    byts = a["params"][:, None] * bpp + acts * rows * bpp
    t_c = 2.0 * macs / peak_flops
    t_m = byts / bandwidth
    t = np.maximum(t_c, t_m)
    mem = np.where(t_m >= t_c, t, 0.0).sum(axis=0)
    comp = np.where(t_c > t_m, t, 0.0).sum(axis=0)
    return t.sum(axis=0) + overhead_s, mem, comp, 2.0 * macs.sum(axis=0)


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


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every analytical metric of ``n`` points (batch, resolution and steps as arrays)."""
    m: DiffusionModelSpec = inputs["model"]
    p = inputs["pipeline"]
    gpu = inputs["device"]
    cal = inputs["calibration"]
    tco = inputs["tco"]

    def get(key: str) -> np.ndarray:
        v = points.get(f"pipeline.{key}")
        return np.broadcast_to(np.asarray(getattr(p, key) if v is None else v, dtype=float),
                               (n,))

    batch, res, steps = get("batch"), get("resolution_px"), get("steps")
    nets = _net_arrays(m)
    bpp = p.bytes_per_param
    peak = gpu.peak_16bit_TFLOPS * 1e12 * cal.compute_efficiency
    bw = gpu.hbm_bandwidth_GBps * GB * cal.bandwidth_efficiency
    ovh = cal.overhead_s_per_call
    s = (res / VAE_FACTOR) ** 2
    rows = batch * p.rows_per_image
    t_den, mem_den, comp_den, f_den = call_time(nets["denoiser"], s, rows, bpp,
                                                p.fused_attention, peak, bw, ovh)
    prompts = batch * (2 if p.guidance == "cfg" else 1)
    t_text = np.zeros(n)
    f_text = np.zeros(n)
    mem_text = np.zeros(n)
    comp_text = np.zeros(n)
    for a in nets["text"]:
        t, mm, cc, f = call_time(a, s, prompts, bpp, p.fused_attention, peak, bw, ovh)
        t_text, mem_text, comp_text, f_text = t_text + t, mem_text + mm, comp_text + cc, \
            f_text + f
    t_vae, mem_vae, comp_vae, f_vae = call_time(nets["vae"], s, batch, bpp,
                                                p.fused_attention, peak, bw, ovh)
    latency = t_text + steps * t_den + t_vae
    mem_time = mem_text + steps * mem_den + mem_vae
    comp_time = comp_text + steps * comp_den + comp_vae
    host_time = latency - mem_time - comp_time

    weights = bpp * sum(arch_total(a) for a in [nets["denoiser"], nets["vae"], *nets["text"]])
    act_den, sc_den = _act_peak(nets["denoiser"], s, rows, bpp, p.fused_attention,
                                nets["live"])
    act_vae, sc_vae = _act_peak(nets["vae"], s, batch, bpp, p.fused_attention)
    acts = np.maximum(act_den, act_vae)
    for a in nets["text"]:
        acts = np.maximum(acts, _act_peak(a, s, prompts, bpp, p.fused_attention)[0])
    peak_mem = weights + acts
    fits = peak_mem <= gpu.hbm_capacity_GB * GB

    lat_mult = 2 ** (len(m.unet.block_channels) - 1) if m.denoiser == "unet" else m.dit.patch
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
        "host_bound": keep((host_time > 0.5 * latency).astype(float)),
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
