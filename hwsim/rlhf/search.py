"""Searches over the OPT family: the largest actor that fits (the DeepSpeed-Chat blog's table 3)
and whether one fits at all (table 1's "does not fit" cell), as validation cases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwsim.system import get_system
from hwsim.validation import Case

#: the OPT actors of the blog's tables, smallest first
OPT_FAMILY = ("opt-1.3b", "opt-2.7b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b")

SOURCE = ("DeepSpeed-Chat blog (microsoft/DeepSpeed blogs/deepspeed-chat/README.md; Yao et al. "
          "arXiv 2308.01320)")


def feasible(device: str, actors: Sequence[str], run: str = "deepspeed-chat-1gpu",
             sets: Sequence[str] = ()) -> np.ndarray:
    """Whether step 3 fits with each actor on ``device`` (one batch evaluation)."""
    s = get_system("rlhf")
    inputs = s.resolve([f"device={device}", f"run={run}"], list(sets))
    return np.asarray(s.analytical_batch(inputs, {"actor": list(actors)}).feasible, dtype=bool)


def largest_actor(device: str, run: str = "deepspeed-chat-1gpu",
                  family: Sequence[str] = OPT_FAMILY) -> float:
    """Published size (billions) of the largest actor of ``family`` that fits; 0 when none."""
    from hwsim import specs

    ok = feasible(device, family, run)
    sizes = [specs.load_spec(specs.find_spec_file("llm", a), "llm").published_params_B
             for a in family]
    fitting = [sz for sz, f in zip(sizes, ok, strict=True) if f]
    return max(fitting) if fitting else 0.0


def largest_actor_cases() -> list[Case]:
    """Table 3 (largest actor per GPU) and the "does not fit" cell of table 1."""
    table3 = (("v100-sxm2-32gb", 2.7), ("rtx-a6000-48gb", 6.7), ("a100-sxm-40gb", 6.7),
              ("a100-sxm-80gb", 13.0))
    out = [Case(system="rlhf", case=f"largest actor on one {dev}", metric="largest_actor_B",
                reference=ref, tolerance=0.0, role="held-out",
                group="memory model: what fits (DeepSpeed-Chat tables 1 and 3)",
                source=SOURCE + ", table 3 (max model size on a single GPU)",
                conditions=f"one {dev}, Hybrid Engine, ZeRO 0, LoRA dim 128 on a frozen base, "
                "actor gradient checkpointing, OPT-350M critic and reward; the largest OPT "
                "actor with step 3 fitting at one pair per GPU or more",
                predict=lambda dev=dev: largest_actor(dev))
           for dev, ref in table3]
    out.append(Case(
        system="rlhf", case="opt-66b on 8 x a100-sxm-40gb does not fit", metric="fits",
        reference=0.0, tolerance=0.0, role="held-out",
        group="memory model: what fits (DeepSpeed-Chat tables 1 and 3)",
        source=SOURCE + ", table 1 (8 x A100-40GB, OPT-66B: does not fit)",
        conditions="one node of 8 x A100-40GB, ZeRO-3 actor and critic, any inference TP "
        "dividing the heads and the node, any per-device batch; 1 = fits, 0 = does not",
        predict=lambda: float(feasible("a100-sxm-40gb", ["opt-66b"],
                                       run="deepspeed-chat-1node")[0])))
    return out
