"""The diffusion system's validation cases: the TOML cases (hwsim/diffusion/validation.toml)
and, built here, the parameter count of each component against its checkpoint's total.

A component's count is not a metric of a design point (the system reports the denoiser's), so
those cases call :func:`hwsim.diffusion.arch.parameter_counts` on the model file directly.
"""

from __future__ import annotations

from pathlib import Path

from hwsim.diffusion import arch
from hwsim.validation import Case, load_cases

#: the tensor-element totals of the public checkpoints (the sum of every weight's size in the
#: released safetensors, buffers such as CLIP's position_ids left out), as logged by public
#: training and memory-estimation tools that load them; (model file, component, total,
#: checkpoint, what the number is)
CHECKPOINT_TOTALS: tuple[tuple[str, str, int, str], ...] = (
    ("sd15", "denoiser", 859_520_964,
     "runwayml/stable-diffusion-v1-5 unet/ (diffusers UNet2DConditionModel)"),
    ("sdxl", "denoiser", 2_567_463_684,
     "stabilityai/stable-diffusion-xl-base-1.0 unet/"),
    ("sd21", "denoiser", 865_910_724, "stabilityai/stable-diffusion-2-1 unet/"),
    ("sd21", "text_encoder_0_openclip-vit-h-14", 340_387_840,
     "stabilityai/stable-diffusion-2-1 text_encoder/ (23 of OpenCLIP ViT-H/14's 24 layers)"),
    ("sd15", "vae", 83_653_863,
     "the KL-f8 AutoencoderKL of SD1.5 / SDXL (vae/, encoder and decoder)"),
    ("sd15", "text_encoder_0_clip-vit-l-14", 123_060_480,
     "openai/clip-vit-large-patch14 text tower (SD1.5 text_encoder/; 123,060,557 tensor "
     "elements less the 77 position_ids)"),
    ("sdxl", "text_encoder_1_openclip-vit-bigg-14", 694_659_840,
     "laion OpenCLIP ViT-bigG/14 text tower with projection (SDXL text_encoder_2/; SDXL's "
     "two encoders total 817,720,320 = 123,060,480 + 694,659,840)"),
    ("sd3-medium", "denoiser", 2_028_328_000,
     "stabilityai/stable-diffusion-3-medium-diffusers transformer/ (SD3Transformer2DModel)"),
    ("flux1-dev", "denoiser", 11_901_408_320,
     "black-forest-labs/FLUX.1-dev transformer/ (FluxTransformer2DModel)"),
    ("pixart-alpha", "text_encoder_0_t5-v1_1-xxl", 4_762_310_656,
     "google/t5-v1_1-xxl encoder (T5EncoderModel, the text_encoder/ of PixArt-alpha, SD3 and "
     "FLUX.1)"),
)

SOURCE = ("tensor totals of the released checkpoints (Hugging Face model repositories named in "
          "the conditions), as loaded and logged by public tools")


def _model(name: str):
    from hwsim.specs import find_spec_file, load_spec

    return load_spec(find_spec_file("diffusion-model", name), "diffusion-model")


def _count(model: str, part: str) -> float:
    return arch.parameter_counts(_model(model))[part] / 1e6


def checkpoint_cases() -> list[Case]:
    """Each component's count from its architecture against its checkpoint's total (0.1%)."""
    out = []
    for model, part, total, what in CHECKPOINT_TOTALS:
        label = part.split("_", 3)[-1] if part.startswith("text_encoder") else part
        out.append(Case(
            system="diffusion", case=f"{model} {label} parameters = checkpoint",
            metric="component_params_M", reference=total / 1e6, tolerance=0.001, source=SOURCE,
            conditions=f"{what}; counted from the architecture in models/diffusion-model/"
                       f"{model}.toml",
            predict=lambda m=model, p=part: _count(m, p), role="held-out",
            group="parameter counts against checkpoint totals"))
    return out


#: the group of each measured row (by name prefix)
GROUPS = (
    ("sd15-a100-b16-compiled", "SD1.5, torch.compile (diffusers torch 2.0 benchmark)"),
    ("sd15-a100-compiled", "SD1.5, torch.compile (diffusers torch 2.0 benchmark)"),
    ("sd15-a100", "SD1.5 on A100, eager (diffusers torch 2.0 benchmark)"),
    ("sd15-", "SD1.5 on V100, T4, RTX 3090, RTX 4090, eager (same benchmark)"),
    ("sdxl-a100-40gb", "SDXL fp32, 4 images, A100-40GB (HF simple SDXL optimizations blog)"),
    ("sdxl-", "SDXL on A100-80GB (diffusers fast-diffusion tutorial)"),
)

_TUTORIAL = ("SDXL runs at a larger fraction of the A100's tensor peak than SD1.5 on the same "
             "software, which the one efficiency fitted on SD1.5 cannot carry: the torch 2.0 "
             "benchmark's own A100 SDXL rows (the 2023 stack of the calibration rows; "
             "data/torch2_benchmark_other_rows.csv, not cases) are 28-38% faster in it/s than "
             "the model, 44% of the peak at batch 16 against SD1.5's 25%; the tutorial's later "
             "stack (2024 PyTorch nightly, A100-80GB 400 W at its maximum clock) adds about "
             "12% (the benchmark's nightly column: 0.72 against 0.64 it/s at batch 16); its "
             "steps (30) and CFG (default guidance 5.0, UNet at batch 2) are those modelled, and "
             "the 2023 blog's SDXL fp32 row within 5% is then no evidence that the SDXL rate is "
             "right")
_RATE = ("the fraction of the fp32-accumulate tensor peak reached differs by GPU and by "
         "workload: on SD1.5 at batch 16 the benchmark implies (measured it/s x the model's 25.7 "
         "TFLOP per UNet call) A100 25%, V100 34%, RTX 3090 62%, RTX 4090 49%, i.e. 256, 174, "
         "157 and 126 achieved FMA per SM per clock against 1024, 512, 256 and 256 tensor FMA "
         "per SM per clock, and on SDXL the same benchmark gives the A100 44% and the RTX 4090 "
         "68%; the benchmark's own batch 1/4/16 rows give the V100 and the RTX 3090 the same "
         "18 ms per extra UNet row despite 1.76x different tensor peaks, with equal bandwidth "
         "(900, 936 GB/s) and L2 (6 MB), which no sum of a tensor term and a bandwidth or "
         "SM-clock term with one efficiency fits; examined and too small or unphysical: "
         "tile/wave quantisation (modelled, under 2% at batch 16), the memory-bound passes (7% "
         "of the modelled call), torch 2.0's GroupNorm copying a channels_last input to NCHW "
         "and the next convolution copying it back (14 GB per batch-16 call, 3% of the A100's "
         "time), a per-tile fixed cost (over 60 us per wave on the A100), fp16 accumulation "
         "(PyTorch asks cuDNN and cuBLAS for fp32 accumulation); and the A100 rows are 18% "
         "slower at batch 16 than the same table's torch nightly column, where the other GPUs' "
         "rows are within 2%")
_HOST = ("host time belongs to the benchmark's host, not the GPU: the 4090 runs a batch-1 "
         "step in 24.7 ms, less than the A100 server's fitted 46 ms host time, so that desktop "
         "host issues a UNet call faster (the benchmark names no host CPU); and ")
_T4 = ("the T4's 70 W cap holds its sustained clock below the 1,590 MHz boost under tensor "
       "load (it reaches 18% of its 65 TFLOPS where the A100 reaches 25% of 312); a sustained "
       "clock of about 1.14 GHz would close the gap, but no citable sustained figure was "
       "found, so none is modelled")

#: rows the model misses, the mechanism and the largest error it explains
KNOWN_DEVIATIONS: dict[str, tuple[str, float]] = {
    "sdxl-a100-bf16-sdpa": (_TUTORIAL, 0.75),
    "sdxl-a100-fp32": (_TUTORIAL, 0.65),
    "sdxl-a100-compiled": (_TUTORIAL + "; max-autotune also picks faster GEMM/conv kernels, "
                           "which the model (pointwise fusion, no host time) does not carry",
                           1.1),
    "sdxl-a100-bf16-no-sdpa": (_TUTORIAL + "; partly offset by the unfused attention's extra "
                               "passes the model under-counts", 0.35),
    "sd15-a100-b16-compiled": ("torch.compile also fuses GroupNorm with its neighbours and "
                               "autotunes convolutions: measured 26% faster than eager at "
                               "batch 16, the model's pointwise fusion gives 6%", 0.25),
    "sd15-t4": (_T4 + " (batch 1 is GPU-bound on a T4)", 0.45),
    "sd15-t4-b4": (_T4, 0.40),
    "sd15-v100-b16": (_RATE, 0.35),
    "sd15-rtx3090": ("GPU-bound in the model too (94 ms of GPU work against 46 ms of host "
                     "time), so not the host: " + _RATE, 0.55),
    "sd15-rtx4090": (_HOST + _RATE, 0.55),
    "sd15-rtx3090-b16": (_RATE, 0.65),
    "sd15-rtx4090-b16": (_RATE, 0.60),
}


def _measured_predict(row: dict[str, str]):
    from hwsim.diffusion.calibration import predict

    return lambda: predict(row)


def measured_cases() -> list[Case]:
    """One case per row of data/latency_measured.csv: A100 rows fitted the calibration."""
    from hwsim.diffusion.calibration import DATA_SOURCE, rows

    out = []
    for r in rows():
        group = next(g for prefix, g in GROUPS if r["name"].startswith(prefix))
        dev, ceiling = KNOWN_DEVIATIONS.get(r["name"], ("", None))
        cal = r["role"] == "calibration"
        out.append(Case(
            system="diffusion", case=r["name"], metric=r["metric"], reference=float(r["value"]),
            tolerance=0.05 if cal else 0.15, source=DATA_SOURCE,
            conditions=(f"{r['model']}, pipeline {r['pipeline']}, {r['device']}"
                        + (f", {r['set'].replace(';', ', ')}" if r["set"] else "")
                        + (" (it/s)" if r["unit"] == "it/s" else "")),
            predict=_measured_predict(r), role=r["role"], group=group,
            known_deviation=dev, ceiling=ceiling))
    return out


def cases() -> list[Case]:
    """Every diffusion validation case."""
    return (load_cases("diffusion", Path(__file__).with_name("validation.toml"))
            + checkpoint_cases() + measured_cases())
