"""The radio link's DES held to queueing theory: Poisson messages, exponential or fixed sizes,
one fixed-rate lossless link, first in first out.

The message delay (from ready to its last bit sent; propagation is 0 here) is then the sojourn
time of an M/M/1 or M/D/1 queue. The mean is estimated with the sample means of the sizes and
of the inter-arrival times as control variates (their expectations are known exactly;
:func:`hwsim.des.control_variate_mean`), the estimator the queue system uses.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import simpy

from hwsim.des import control_variate_mean
from hwsim.hw.link import LinkSpec
from hwsim.iaad.channel import constant
from hwsim.iaad.radio import Message, RadioLink

RATE_BPS = 1e6          # the link: 1 MB/s
MEAN_BYTES = 1e4        # messages of 10 kB on average: E[S] = 10 ms
MEAN_S = MEAN_BYTES / RATE_BPS

LINK = LinkSpec(name="queueing-check", technology="fixed", rate_cap_Mbps=RATE_BPS * 8 / 1e6,
                loss_good=0.0, bad_fraction=0.0, header_bytes=0, payload_bytes=65_536,
                max_transmissions=1, base_latency_ms=0.0, jitter_ms=0.0, arq_delay_ms=0.0)


def theory_delay_s(rho: float, service: str, mean_s: float = MEAN_S) -> float:
    """Mean sojourn of M/M/1 (``exponential``) or M/D/1 (``deterministic``)."""
    if service == "exponential":
        return mean_s / (1.0 - rho)
    return mean_s * (1.0 + rho / (2.0 * (1.0 - rho)))


def draws(rho: float, service: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inter-arrival times and sizes (bytes)."""
    rng = np.random.default_rng(seed)
    ia = rng.exponential(MEAN_S / rho, n)
    size = rng.exponential(MEAN_BYTES, n) if service == "exponential" else np.full(n, MEAN_BYTES)
    return ia, size


def des_delays(ia: np.ndarray, size: np.ndarray,
               link: LinkSpec = LINK) -> tuple[np.ndarray, RadioLink]:
    """Each message's delay (ready to last bit sent) through the DES radio link."""
    env = simpy.Environment()
    radio = RadioLink(env, link, constant(link.rate_cap_Mbps * 1e6 / 8), np.random.default_rng(0))
    t = np.cumsum(ia).tolist()
    b = size.tolist()
    n = len(t)
    msgs: list[Message] = []

    def arrive(ev: simpy.Event) -> None:
        k = ev._value
        m = Message("x", "x", b[k], t[k], t[k], math.inf)
        msgs.append(m)
        radio.send(m)
        if k + 1 < n:
            env.timeout(t[k + 1] - t[k], k + 1).callbacks.append(arrive)

    env.timeout(t[0], 0).callbacks.append(arrive)
    env.run()
    return np.asarray([m.sent_end - m.ready for m in msgs]), radio


@functools.lru_cache(maxsize=16)
def des_mean_delay_s(rho: float, service: str, n: int, seed: int = 1) -> float:
    """Control-variate mean delay of ``n`` messages (the first 10% more are warm-up); cached,
    as the validation cases and the tests ask for the same runs."""
    warm = n // 10
    ia, size = draws(rho, service, n + warm, seed)
    d, _ = des_delays(ia, size)
    d, ia, svc = d[warm:], ia[warm:], size[warm:] / RATE_BPS
    return control_variate_mean(d, [svc, ia], [MEAN_S, MEAN_S / rho], 25)


def lindley_delays(ia: np.ndarray, size: np.ndarray, rate_Bps: float = RATE_BPS) -> np.ndarray:
    """The exact FIFO sojourn times of the same draws, vectorised: the waiting time is
    ``W_k = X_k - min_{j <= k} X_j`` for the netput walk ``X_k = sum_{i<k} (S_i - A_{i+1})``."""
    s = size / rate_Bps
    x = np.concatenate([[0.0], np.cumsum(s[:-1] - ia[1:])])
    return x - np.minimum.accumulate(x) + s
