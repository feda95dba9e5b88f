"""The rlhf system's validation cases: the TOML ones (hwsim/rlhf/validation.toml), the
largest-actor-per-GPU cases, which search the OPT family, and a ratio of two metrics."""

from __future__ import annotations

from pathlib import Path

from hwsim.system import get_system
from hwsim.validation import Case, load_cases


def _time_over_flops_share() -> float:
    s = get_system("rlhf")
    m = s.evaluate(s.resolve(["actor=opt-13b", "device=a100-sxm-80gb",
                              "run=deepspeed-chat-1node"], []))
    return m["generation_share"] / m["generation_flops_share"]


def cases() -> list[Case]:
    out = load_cases("rlhf", Path(__file__).with_name("validation.toml"))
    from hwsim.rlhf.search import largest_actor_cases

    out.append(Case(
        system="rlhf", case="generation takes more of the time than of the flops, opt-13b",
        metric="generation_time_over_flops_share", reference=1.0, tolerance=0.0,
        bounds=(1.0, 10.0), role="held-out", group="phase shares (DeepSpeed-Chat)",
        source="DeepSpeed-Chat (Yao et al. arXiv 2308.01320, sec. 5): generation is about 20% "
        "of the computation but memory-bandwidth-bound",
        conditions="OPT-13B on 8 x A100-80GB, the chosen batch and inference TP: the "
        "generation share of the time over its share of the FLOPs; above 1 when decode is "
        "HBM-bound",
        predict=_time_over_flops_share))
    return out + largest_actor_cases()
