"""Text-to-image diffusion on GPUs: a denoiser (UNet or DiT), text encoders and a VAE decoder
built from their architecture; latency, throughput, memory and cost per 1,000 images, by a
roofline-plus-overhead analytical model and by a DES of a queue of image requests.

See docs/diffusion.md.
"""

from __future__ import annotations

from hwsim.batch import BatchModel
from hwsim.diffusion.analytical import VECTOR_KEYS, block, explain
from hwsim.diffusion.spec import (
    DiffusionCalibrationSpec,
    DiffusionModelSpec,
    DiffusionPipelineSpec,
)
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "DiffusionCalibrationSpec", "DiffusionModelSpec", "DiffusionPipelineSpec"]

A = ("analytical",)
D = ("des",)


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.diffusion.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _cases():
    from hwsim.diffusion.validation import cases

    return cases()


SYSTEM = register_system(System(
    name="diffusion",
    summary="text-to-image diffusion (UNet/DiT, text encoders, VAE) on a GPU: latency, "
            "images/s, memory, cost per 1,000 images",
    roles=(
        Role("model", "diffusion-model", "sd15", "the diffusion model (architecture)"),
        Role("pipeline", "diffusion-pipeline", "sd15-512",
             "steps, guidance, resolution, batch, precision, attention kernel; DES traffic"),
        Role("device", "gpu", "a100-sxm-80gb", "the GPU and its server (datasheet)"),
        Role("calibration", "diffusion-calibration", "diffusion-{device}",
             "the latency model's fitted constants for the device", matches=("device",),
             fallback="diffusion-uncalibrated"),
        Role("tco", "tco", "barroso-v1", "TCO constants for owned servers"),
    ),
    metrics=(
        Metric("image_latency_s", "time from a request to its image, the whole pipeline "
               "batch (text encoders, every denoiser step, VAE decoder). Analytical: no "
               "queueing; DES: mean measured, queueing included"),
        Metric("images_per_s", "images per second of one GPU at the pipeline batch",
               fidelities=A),
        Metric("step_latency_s", "one denoiser call (one sampling step) on the whole batch",
               fidelities=A),
        Metric("steps_per_s", "denoiser steps per second on the whole batch, 1 / "
               "step_latency_s (the it/s that diffusers and its benchmarks print)",
               fidelities=A),
        Metric("text_encoder_s", "the text encoders on every prompt of the batch",
               fidelities=A),
        Metric("vae_decoder_s", "the VAE decoder on the batch", fidelities=A),
        Metric("denoiser_tflops_per_call", "TFLOPs of one denoiser call on the batch (2 per "
               "MAC, attention matmuls counted)", fidelities=A),
        Metric("tflops_per_image", "TFLOPs of the whole pipeline per image", fidelities=A),
        Metric("denoiser_params_M", "denoiser parameters (millions), from its architecture",
               fidelities=A),
        Metric("weights_GB", "weights of every component held in HBM", fidelities=A),
        Metric("activations_GB", "activation bytes live at the worst operator (attention "
               "scores included when not fused)", fidelities=A),
        Metric("attention_scores_GB", "the largest N x N attention-score tensor held in HBM "
               "(0 with a fused attention kernel)", fidelities=A),
        Metric("memory_peak_GB", "weights + peak activations", fidelities=A),
        Metric("memory_bound", "here: the operators limited by HBM take longer than those "
               "limited by FLOPs (host-limited operators not counted)", fidelities=A),
        Metric("host_bound", "1 when a denoiser call's host time (its operators x the host's "
               "time per operator: eager dispatch and launch) exceeds its GPU work, so the GPU "
               "waits on the host every step, else 0", fidelities=A),
        Metric("usd_per_1k_images", "owning the GPU's share of its server (tco kind), per "
               "1,000 images at full use; NaN when no server price is published",
               fidelities=A),
        Metric("rental_usd_per_1k_images", "renting the GPU at its $/device-hour, per 1,000 "
               "images at full use", fidelities=A),
        Metric("latency_ci95_s", "95% confidence half-width of the mean latency (batch "
               "means)", fidelities=D),
        Metric("p99_latency_s", "99th-percentile request latency", fidelities=D),
        Metric("served_images_per_s", "images served per second (the offered load when "
               "stable)", fidelities=D),
        Metric("mean_batch", "mean requests per served batch", fidelities=D),
        Metric("gpu_busy_fraction", "fraction of time the GPU is busy", fidelities=D),
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=4096, explain=explain),
    des=_des,
    validation=_cases,
))
