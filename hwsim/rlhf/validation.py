"""The rlhf system's validation cases: the TOML ones (hwsim/rlhf/validation.toml) and the
largest-actor-per-GPU cases, which search the OPT family."""

from __future__ import annotations

from pathlib import Path

from hwsim.validation import Case, load_cases


def cases() -> list[Case]:
    out = load_cases("rlhf", Path(__file__).with_name("validation.toml"))
    from hwsim.rlhf.search import largest_actor_cases

    return out + largest_actor_cases()
