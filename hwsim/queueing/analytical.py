"""Closed forms for the single-station queue.

- M/M/c: Erlang C, ``Wq = C(c, a) / (c mu - lambda)`` (Kleinrock, *Queueing Systems* vol. 1,
  1975, eq. 3.40 and 3.42).
- M/G/1: Pollaczek-Khinchine, ``Wq = lambda E[S^2] / (2 (1 - rho))`` (Kleinrock eq. 5.105).
- G/G/c otherwise: Allen-Cunneen, ``Wq ~ (ca^2 + cs^2) / 2 * Wq(M/M/c)`` (Allen, *Probability,
  Statistics and Queueing Theory*, 1990), exact for the two cases above.
"""

from __future__ import annotations

import math

from hwsim.errors import InfeasibleDesign
from hwsim.system import Inputs, Metrics


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``a = lambda / mu``."""
    c, a = servers, offered_load
    # Erlang B by its stable recursion, then C from B.
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho + rho * b)


def evaluate(inputs: Inputs) -> Metrics:
    q = inputs["queue"]
    lam, es, c = q.arrival_rate_per_s, q.mean_service_s, q.servers
    rho = lam * es / c
    if rho >= 1.0:
        raise InfeasibleDesign(
            f"utilisation {rho:.3g} >= 1: arrivals outpace service and the queue grows forever"
        )
    wq_mmc = erlang_c(c, lam * es) * es / (c * (1.0 - rho))
    wq = 0.5 * (q.arrival_scv() + q.service_scv()) * wq_mmc
    if math.isnan(wq):  # pragma: no cover
        wq = math.inf
    return {
        "utilization": rho,
        "mean_wait_s": wq,
        "mean_sojourn_s": wq + es,
        "mean_queue_length": lam * wq,
        "throughput_per_s": lam,
    }
