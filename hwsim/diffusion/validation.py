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
    ("sd15", "vae", 83_653_863,
     "the KL-f8 AutoencoderKL of SD1.5 / SDXL (vae/, encoder and decoder)"),
    ("sd15", "text_encoder_0_clip-vit-l-14", 123_060_480,
     "openai/clip-vit-large-patch14 text tower (SD1.5 text_encoder/; 123,060,557 tensor "
     "elements less the 77 position_ids)"),
    ("sdxl", "text_encoder_1_openclip-vit-bigg-14", 694_659_840,
     "laion OpenCLIP ViT-bigG/14 text tower with projection (SDXL text_encoder_2/; SDXL's "
     "two encoders total 817,720,320 = 123,060,480 + 694,659,840)"),
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


def cases() -> list[Case]:
    """Every diffusion validation case."""
    return (load_cases("diffusion", Path(__file__).with_name("validation.toml"))
            + checkpoint_cases())
