"""RLHF fine-tuning after DeepSpeed-Chat (arXiv 2308.01320): step 3 (PPO: Hybrid-Engine
generation, scoring by the reference, reward and critic models, training of actor and critic)
and steps 1 and 2 as plain training, on a cluster of GPUs; time per iteration and epoch,
GPU-hours, cost, generation share and the memory check, by an analytical model and a DES of the
iterations.

See docs/rlhf.md.
"""

from __future__ import annotations

from typing import Any

from hwsim.batch import BatchModel
from hwsim.rlhf.analytical import VECTOR_KEYS, block, explain
from hwsim.rlhf.spec import RlhfCalibrationSpec, RlhfRunSpec
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "RlhfCalibrationSpec", "RlhfRunSpec"]

D = ("des",)


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.rlhf.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _cases():
    from hwsim.rlhf.validation import cases

    return cases()


def _tables(inputs, fidelity: str, *, seed: int = 0, trace: Any = None):
    from hwsim.rlhf.tables import tables

    return tables(inputs, fidelity, seed=seed, trace=trace)


SYSTEM = register_system(System(
    name="rlhf",
    summary="RLHF fine-tuning after DeepSpeed-Chat (generation, scoring, PPO training; steps "
            "1-2 as training) on GPUs: hours, GPU-hours, cost, generation share, what fits",
    roles=(
        Role("actor", "llm", "opt-13b", "the actor (and reference) model"),
        Role("critic", "llm", "opt-350m", "the critic (and reward) model"),
        Role("device", "gpu", "a100-sxm-80gb", "the GPU and its server (datasheet)"),
        Role("run", "rlhf-run", "deepspeed-chat-1node",
             "GPUs, workload (pairs, prompt and answer tokens) and the engine's settings"),
        Role("calibration", "rlhf-calibration", "rlhf-{device}",
             "the time model's fitted efficiency for the device", matches=("device",),
             fallback="rlhf-uncalibrated"),
    ),
    metrics=(
        Metric("step3_hours", "wall time of one step-3 (PPO) epoch over the run's pairs. "
               "Analytical: iterations x iteration time; DES: the simulated clock"),
        Metric("step3_gpu_hours", "GPU-hours of one step-3 epoch (hours x GPUs)"),
        Metric("step3_cost_usd", "step-3 GPU-hours at the run's price per GPU-hour"),
        Metric("iteration_s", "one step-3 iteration: generation + scoring + training"),
        Metric("generation_s", "generation phase of one iteration (Hybrid Engine gather and "
               "re-slice, prefill, decode)"),
        Metric("scoring_s", "forward passes of actor, reference, reward and critic in one "
               "iteration"),
        Metric("training_s", "forward + backward + optimizer of actor and critic in one "
               "iteration"),
        Metric("generation_share", "generation_s / iteration_s"),
        Metric("generation_flops_share", "generation's share of one iteration's FLOPs (the "
               "time share is larger: decode is HBM-bound)", fidelities=("analytical",)),
        Metric("iterations", "step-3 iterations per epoch: ceil(pairs / (GPUs x per-device "
               "batch))"),
        Metric("per_device_batch", "pairs per GPU per iteration (chosen: the largest that fits "
               "under the global-batch cap, unless given)"),
        Metric("max_per_device_batch", "the largest per-device batch the memory allows at the "
               "chosen inference TP", fidelities=("analytical",)),
        Metric("inference_tp", "the Hybrid Engine's generation tensor parallelism (chosen: the "
               "fastest that fits, unless given)"),
        Metric("memory_per_gpu_GB", "GPU memory at the worst phase of an iteration",
               fidelities=("analytical",)),
        Metric("model_states_GB", "weights, gradients and optimizer states of the four models "
               "per GPU", fidelities=("analytical",)),
        Metric("kv_cache_GB", "generation KV cache per GPU (its 16-bit keys and values)",
               fidelities=("analytical",)),
        Metric("inference_workspace_GB", "the DeepSpeed-Inference workspace per GPU, which "
               "holds the KV cache, activations and attention scores (kept through the "
               "iteration unless released)", fidelities=("analytical",)),
        Metric("step1_hours", "step 1: supervised fine-tuning of the actor (every weight), "
               "one epoch; NaN when it does not fit", fidelities=("analytical",)),
        Metric("step2_hours", "step 2: reward-model training on chosen/rejected pairs, one "
               "epoch; NaN when it does not fit", fidelities=("analytical",)),
        Metric("all_steps_hours", "steps 1 + 2 + 3", fidelities=("analytical",)),
        Metric("all_steps_cost_usd", "steps 1 + 2 + 3 at the run's price per GPU-hour",
               fidelities=("analytical",)),
        Metric("events", "DES events (phases) simulated", fidelities=D),
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=4096, explain=explain),
    des=_des,
    validation=_cases,
    tables=_tables,
))
