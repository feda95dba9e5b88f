"""A single-station queue (G/G/c): the textbook system that holds the DES kernel to closed forms.

It is the smallest complete system: a spec kind (``queue``), an analytical evaluator (exact for
M/G/1 and M/M/c, the Allen-Cunneen approximation otherwise), a DES evaluator on the shared
kernel, and validation cases against textbook values.
"""

from __future__ import annotations

from pathlib import Path

from hwsim.batch import BatchModel
from hwsim.queueing.analytical import VECTOR_KEYS, block
from hwsim.queueing.spec import QueueSpec
from hwsim.system import Metric, Role, System, register_system
from hwsim.validation import load_cases

__all__ = ["SYSTEM", "QueueSpec"]


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.queueing.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _cases():
    return load_cases("queue", Path(__file__).with_name("validation.toml"))


SYSTEM = register_system(System(
    name="queue",
    summary="single-station G/G/c queue; checks the DES kernel against queueing theory",
    roles=(Role("queue", "queue", "mm1", "arrival and service processes"),),
    metrics=(
        Metric("utilization", "offered load per server, lambda * E[S] / c"),
        Metric("mean_wait_s", "mean time in queue before service"),
        Metric("mean_sojourn_s", "mean time in system (wait + service)"),
        Metric("mean_queue_length", "time-average number waiting (Little's law)"),
        Metric("p50_wait_s", "median wait", fidelities=("des",)),
        Metric("p99_wait_s", "99th-percentile wait", fidelities=("des",)),
        Metric("throughput_per_s", "customers served per second"),
        Metric("customers", "customers measured (after warm-up)", fidelities=("des",)),
    ),
    batch=BatchModel(VECTOR_KEYS, block),
    des=_des,
    validation=_cases,
))
