"""Closed forms for the single-station queue.

- M/M/c: Erlang C, ``Wq = C(c, a) / (c mu - lambda)`` (Kleinrock, *Queueing Systems* vol. 1,
  1975, eq. 3.40 and 3.42).
- M/G/1: Pollaczek-Khinchine, ``Wq = lambda E[S^2] / (2 (1 - rho))`` (Kleinrock eq. 5.105).
- G/G/c otherwise: Allen-Cunneen, ``Wq ~ (ca^2 + cs^2) / 2 * Wq(M/M/c)`` (Allen, *Probability,
  Statistics and Queueing Theory*, 1990), exact for the two cases above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

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


def evaluate_batch(inputs: Inputs, points: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`evaluate` over many design points at once (numpy, no Python loop per point).

    ``points`` maps ``queue.<key>`` to an array of values (one per point); keys not given take
    the value of ``inputs["queue"]``. Infeasible points (utilisation >= 1) get NaN in every
    metric, as the batch convention says.
    """
    q = inputs["queue"]
    arrays = {k.partition(".")[2]: np.asarray(v) for k, v in points.items()}
    unknown = set(arrays) - set(_BATCH_KEYS)
    if unknown:
        raise ValueError(f"analytical_batch cannot vary queue.{sorted(unknown)[0]}")
    n = max((a.size for a in arrays.values()), default=1)

    def get(key: str, dtype: Any) -> np.ndarray:
        if key in arrays:
            return np.broadcast_to(arrays[key], (n,)).astype(dtype)
        return np.full(n, getattr(q, key), dtype=dtype)

    lam = get("arrival_rate_per_s", float)
    es = get("mean_service_s", float)
    c = get("servers", np.int64)
    k = get("erlang_k", float)
    arrival = get("arrival_process", object)
    service = get("service_distribution", object)
    ca2 = np.where(arrival == "poisson", 1.0, 0.0)
    cs2 = np.where(service == "exponential", 1.0,
                   np.where(service == "deterministic", 0.0, 1.0 / k))
    a = lam * es
    rho = a / c
    ok = rho < 1.0
    # Erlang B by its recursion, every point advancing while k <= its own server count.
    b = np.ones(n)
    for kk in range(1, int(c.max(initial=1)) + 1):
        step = kk <= c
        b = np.where(step, a * b / (kk + a * b), b)
    with np.errstate(divide="ignore", invalid="ignore"):
        erl_c = b / (1.0 - rho + rho * b)
        wq = 0.5 * (ca2 + cs2) * erl_c * es / (c * (1.0 - rho))
    nan = np.full(n, np.nan)
    return {
        "utilization": np.where(ok, rho, nan),
        "mean_wait_s": np.where(ok, wq, nan),
        "mean_sojourn_s": np.where(ok, wq + es, nan),
        "mean_queue_length": np.where(ok, lam * wq, nan),
        "throughput_per_s": np.where(ok, lam, nan),
    }


_BATCH_KEYS = ("arrival_rate_per_s", "mean_service_s", "servers", "erlang_k",
               "arrival_process", "service_distribution")
