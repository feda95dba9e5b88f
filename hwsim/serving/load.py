"""The analytical serving replica under open arrivals: occupancy, time per token, stability.

Closed traffic (every request waiting at t = 0) saturates a replica: its batch is always full
(:mod:`hwsim.serving.saturation`). Under Poisson or trace arrivals at rate ``lambda`` with
continuous batching, a request decodes alongside the others held at the time, so its time per
output token is the decode round at that occupancy. By Little's law the mean number of other
sequences in decode is ``lambda x (O - 1) x R(1 + others)`` for requests of ``O`` output tokens
and a round time ``R(s)`` at ``s`` sequences; :func:`occupancy` solves that fixed point (``R``
grows with ``s``, so iterating from 0 climbs monotonically to the least solution), capped at the
replica's batch. Arrivals see the time average (PASTA), so ``R(1 + others)`` is the mean time per
output token. The offered output rate ``lambda x O`` must stay below the saturated capacity;
at or above it the queue grows without bound and the point is infeasible.

Prefill-first scheduling stops the decode steps while a newcomer's prompt is prefilled (a
one-request prefill takes ``T_p``; prefills keep the replica busy a share ``lambda T_p`` of the
time). A request's decode window of ``(O - 1) R`` is stretched twice (:func:`per_token_s`): a
prefill already running when the window opens (probability ``lambda T_p``, PASTA) holds it for
its residual, ``T_p / 2`` on average; and each of the ``lambda x window`` arrivals during the
window holds it ``T_p``, so the window is ``((O - 1) R + lambda T_p^2 / 2) / (1 - lambda T_p)``.
Both are first order in ``lambda T_p`` and exact as it goes to 0. In a pipeline a decode step
that trails a prefill down the stages waits a little longer still; the DES shows by how much
(``docs/serving.md``). ``lambda T_p >= 1`` cannot be served.

A free lane takes each new request (the DES's lanes wake on every arrival), so ``s`` sequences
spread over ``min(lanes, max(s, 1))`` active lanes of ``s / active`` sequences each:
:func:`spread` gives that split for the systems' round-time functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hwsim.serving.spec import ServingSpec

#: iterations of the fixed point (it converges geometrically; 200 bounds the worst case)
ITERATIONS = 200


def arrival_rate(traffic: ServingSpec) -> float | None:
    """Requests per second of open traffic (Poisson: the spec's rate; trace: the requests
    served over the span of their arrivals, as the DES measures a rate), or None for closed
    traffic (saturation)."""
    if traffic.arrival == "closed":
        return None
    if traffic.arrival == "poisson":
        return traffic.arrival_rate_per_s
    from hwsim.serving.des import make_requests

    req = make_requests(traffic)
    span = float(req.arrival_s.max() - req.arrival_s.min())
    if len(req) < 2 or not span > 0:
        return math.inf  # every request at once: as closed traffic, saturating
    return len(req) / span


def spread(sequences: Any, lanes: Any) -> tuple[np.ndarray, np.ndarray]:
    """(active lanes, sequences per active lane) when ``sequences`` are spread over free lanes."""
    s = np.asarray(sequences, dtype=float)
    active = np.minimum(np.asarray(lanes, dtype=float), np.maximum(s, 1.0))
    return active, s / active


def interference(rate_per_s: Any, prefill_s: Any) -> np.ndarray:
    """``1 / (1 - lambda T_p)``: how much newcomers' prefills stretch a decode window; inf when
    the prefills alone keep the replica busy."""
    busy = np.asarray(rate_per_s, dtype=float) * np.asarray(prefill_s, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(busy < 1.0, 1.0 / (1.0 - busy), np.inf)


def per_token_s(round_s: Any, rate_per_s: Any, prefill_s: Any, output_tokens: Any) -> np.ndarray:
    """Mean time per output token after the first: the decode round ``round_s`` at the
    occupancy, stretched by the prefills of newcomers (see the module docstring)."""
    lam = np.asarray(rate_per_s, dtype=float)
    t_p = np.asarray(prefill_s, dtype=float)
    steps = np.maximum(np.asarray(output_tokens, dtype=float) - 1.0, 1.0)
    residual = lam * t_p * t_p / 2.0 / steps
    return (np.asarray(round_s, dtype=float) + residual) * interference(lam, t_p)


def first_token_s(prefill_s: Any, rate_per_s: Any, step_s: Any, output_tokens: Any) -> np.ndarray:
    """Mean time to first token under open arrivals: the request's own prefill ``T_p`` after
    the residual of the step it arrives during (PASTA): a prefill (busy ``lambda T_p`` of the
    time, residual ``T_p / 2``) or a decode step (busy ``lambda (O - 1) step_s``, capped at 1;
    residual ``step_s / 2``)."""
    lam = np.asarray(rate_per_s, dtype=float)
    t_p = np.asarray(prefill_s, dtype=float)
    step = np.asarray(step_s, dtype=float)
    decoding = np.minimum(lam * np.maximum(np.asarray(output_tokens, float) - 1.0, 0.0) * step,
                          1.0)
    return t_p + lam * t_p * t_p / 2.0 + decoding * step / 2.0


def occupancy(rate_per_s: Any, output_tokens: Any, batch: Any,
              round_s: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Sequences in decode that a request decodes among, itself included: the least solution of
    ``others = rate x (O - 1) x round_s(1 + others)``, capped at ``batch - 1`` others
    (``round_s``: the time per output token at an occupancy, prefill stalls included)."""
    rate = np.asarray(rate_per_s, dtype=float)
    out = np.asarray(output_tokens, dtype=float)
    cap = np.asarray(batch, dtype=float) - 1.0
    shape = np.broadcast_shapes(rate.shape, out.shape, cap.shape)
    others = np.zeros(shape)
    for _ in range(ITERATIONS):
        nxt = np.minimum(rate * np.maximum(out - 1.0, 0.0) * round_s(1.0 + others), cap)
        nxt = np.where(np.isfinite(nxt), nxt, cap)
        done = np.all(np.abs(nxt - others) <= 1e-9 * np.maximum(1.0, nxt))
        others = nxt
        if done:
            break
    return 1.0 + others
