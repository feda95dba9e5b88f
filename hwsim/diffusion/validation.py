"""The diffusion system's validation cases (hwsim/diffusion/validation.toml)."""

from __future__ import annotations

from pathlib import Path

from hwsim.validation import Case, load_cases


def cases() -> list[Case]:
    return load_cases("diffusion", Path(__file__).with_name("validation.toml"))
