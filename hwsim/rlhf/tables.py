"""``hwsim simulate rlhf``: the metrics and a table of one iteration's phases (seconds and GPU
memory each); the cross-spec checks run first, so bad input is one error line."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.errors import InfeasibleDesign
from hwsim.rlhf.analytical import GB, check, cluster, solve, step3_memory, step3_times
from hwsim.system import Inputs, get_system


def phase_rows(inputs: Inputs) -> list[dict[str, Any]]:
    """One row per step-3 phase of the chosen configuration: seconds and GB per GPU."""
    sol = solve(inputs, {}, 1)
    if not sol["feasible"][0]:
        return []
    actor, critic, run = inputs["actor"], inputs["critic"], inputs["run"]
    c, _ = cluster(inputs, {}, 1)
    tp, b = sol["tp"], sol["batch"]
    t = step3_times(actor, critic, run, c, tp, b)
    m = step3_memory(actor, critic, run, c, tp, b)
    rows = [("generation", t["generation"], m["generation"]),
            ("  gather + re-slice", t["gather"], m["generation"]),
            ("  prefill", t["prefill"], m["generation"]),
            ("  decode", t["decode"], m["generation"]),
            ("scoring", t["scoring"], m["scoring"]),
            ("actor training", t["actor_training"], m["actor_training"]),
            ("critic training", t["critic_training"], m["critic_training"])]
    return [{"phase": name, "seconds": float(s[0]),
             "memory_GB": float(np.asarray(mem).reshape(-1)[0] / GB)}
            for name, s, mem in rows]


def tables(inputs: Inputs, fidelity: str, *, seed: int = 0, trace: Any = None
           ) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """Metrics of ``fidelity`` and, for the analytical model, the phase table."""
    check(inputs)
    system = get_system("rlhf")
    metrics = system.evaluate(inputs, fidelity, seed=seed, trace=trace)
    if fidelity != "analytical":
        return metrics, {}
    try:
        return metrics, {"phases": phase_rows(inputs)}
    except InfeasibleDesign:
        return metrics, {}
