"""Closed forms for the single-station queue.

- M/M/c: Erlang C, ``Wq = C(c, a) / (c mu - lambda)`` (Kleinrock, *Queueing Systems* vol. 1,
  1975, eq. 3.40 and 3.42).
- M/G/1: Pollaczek-Khinchine, ``Wq = lambda E[S^2] / (2 (1 - rho))`` (Kleinrock eq. 5.105).
- G/G/c otherwise: Allen-Cunneen, ``Wq ~ (ca^2 + cs^2) / 2 * Wq(M/M/c)`` (Allen, *Probability,
  Statistics and Queueing Theory*, 1990), exact for the two cases above.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim.batch import REASON
from hwsim.system import Inputs

#: keys the block evaluates as arrays (every key the model reads)
VECTOR_KEYS = frozenset(f"queue.{k}" for k in (
    "arrival_rate_per_s", "mean_service_s", "servers", "erlang_k", "arrival_process",
    "service_distribution"))


def erlang_c(servers: Any, offered_load: Any) -> np.ndarray:
    """Probability that an arrival waits in M/M/c with offered load ``a = lambda / mu``
    (arrays broadcast): Erlang B by its stable recursion, every point advancing while
    ``k <= `` its own server count, then C from B."""
    c = np.asarray(servers, dtype=np.int64)
    a = np.asarray(offered_load, dtype=float)
    c, a = np.broadcast_arrays(c, a)
    b = np.ones(a.shape)
    for k in range(1, int(c.max(initial=1)) + 1):
        b = np.where(k <= c, a * b / (k + a * b), b)
    rho = a / c
    with np.errstate(divide="ignore", invalid="ignore"):
        return b / (1.0 - rho + rho * b)


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every metric of ``n`` points: ``points`` maps ``queue.<key>`` to arrays; other keys take
    the value of ``inputs["queue"]``. Points with utilisation >= 1 are infeasible."""
    q = inputs["queue"]

    def get(key: str, dtype: Any) -> np.ndarray:
        v = points.get(f"queue.{key}")
        return np.broadcast_to(np.asarray(getattr(q, key) if v is None else v, dtype=dtype),
                               (n,))

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
    with np.errstate(divide="ignore", invalid="ignore"):
        wq = 0.5 * (ca2 + cs2) * erlang_c(c, a) * es / (c * (1.0 - rho))
    reason = np.full(n, "", dtype=object)
    reason[~ok] = [f"utilisation {r:.3g} >= 1: arrivals outpace service and the queue grows "
                   "forever" for r in rho[~ok]]
    nan = np.full(n, np.nan)
    return {
        "utilization": np.where(ok, rho, nan),
        "mean_wait_s": np.where(ok, wq, nan),
        "mean_sojourn_s": np.where(ok, wq + es, nan),
        "mean_queue_length": np.where(ok, lam * wq, nan),
        "throughput_per_s": np.where(ok, lam, nan),
        REASON: reason,
    }
