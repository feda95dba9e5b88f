"""Discrete-event kernel on SimPy: the building blocks every simulated system reuses.

- :class:`FairShare`: processor sharing of a time-varying capacity (the bandwidth mechanism);
- :class:`Link`: bandwidth, latency, loss, bandwidth over time, fair sharing among transfers;
- :class:`Memory` (alias :data:`Buffer`): capacity and fairly shared bandwidth;
- :class:`ComputeUnit`: a SimPy resource of ``n`` units with a peak rate and efficiency;
- :class:`Pipeline` of :class:`Stage`: bounded buffers between stages (double buffering);
- :class:`Stats`: samples, counters, time-weighted levels, percentiles, batch means;
- :class:`~hwsim.des.trace.TraceRecorder`: Chrome/Perfetto trace export.

Randomness always comes from a ``numpy.random.Generator`` passed in (see :func:`rng`).
"""

from __future__ import annotations

import numpy as np

from hwsim.des.compute import ComputeUnit
from hwsim.des.link import Link, markov_factors
from hwsim.des.memory import Buffer, Memory
from hwsim.des.pipeline import Pipeline, Stage
from hwsim.des.share import FairShare, settle
from hwsim.des.stats import (
    Stats,
    Summary,
    TimeWeighted,
    batch_means,
    control_variate_mean,
    summarize,
)
from hwsim.des.trace import TraceRecorder

__all__ = [
    "Buffer",
    "ComputeUnit",
    "FairShare",
    "Link",
    "Memory",
    "Pipeline",
    "Stage",
    "Stats",
    "Summary",
    "TimeWeighted",
    "TraceRecorder",
    "batch_means",
    "control_variate_mean",
    "markov_factors",
    "rng",
    "settle",
    "summarize",
]


def rng(seed: int | np.random.SeedSequence | None) -> np.random.Generator:
    """The seeded generator a simulation draws from (PCG64; never numpy's global state)."""
    return np.random.default_rng(seed)
