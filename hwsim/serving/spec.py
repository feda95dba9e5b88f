"""The ``serving`` spec kind: the request stream and the batching policy of an LLM service.

Shared by every LLM-serving system (GPU/TPU baselines, Chiplet Cloud): it says what arrives
(closed batch at t=0, Poisson, or a trace file), how long prompts and outputs are, how the
server batches them, and the latency objective (SLO) that goodput and TCO-at-SLO are held to.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("serving")
@dataclass(frozen=True, kw_only=True)
class ServingSpec:
    """Requests, batching and the latency SLO of an LLM service."""

    name: str = param(help="identifier")
    arrival: str = param("closed", choices=("closed", "poisson", "trace"),
                         help="closed: every request waits at t=0 (saturation); poisson: "
                         "open arrivals at arrival_rate_per_s; trace: times and lengths from "
                         "trace_file")
    arrival_rate_per_s: float = param(0.0, unit="1/s", ge=0, help="Poisson arrival rate")
    trace_file: str = param("", path=True,
                            help="CSV with columns arrival_s, prompt_tokens, output_tokens, "
                            "a regular file of at most 256 MiB; a relative path written in a "
                            "spec file is relative to that file's folder, one given with --set "
                            "to the working folder")
    prompt_tokens: int = param(2048, ge=1, le=100_000_000, unit="tokens",
                               help="mean prompt length (<= 1e8: longer than any model's "
                               "context; bounds the KV-cache arithmetic)")
    output_tokens: int = param(128, ge=1, le=1_000_000, unit="tokens",
                               help="mean generated tokens per request (<= 1e6: the DES runs a "
                               "decode step per token)")
    length_distribution: str = param("fixed", choices=("fixed", "uniform"),
                                     help="fixed lengths, or uniform on [1, 2 mean - 1]")
    batching: str = param("continuous", choices=("static", "continuous"),
                          help="static: a batch runs until all its requests finish; "
                          "continuous: finished slots refill at every step")
    requests: int = param(2000, ge=1, le=10_000_000, help="requests measured by the DES "
                          "(<= 1e7: the DES holds a few arrays of this length)")
    warmup_requests: int = param(0, ge=0, le=10_000_000, help="requests discarded before "
                                 "measuring (<= 1e7, as requests)")
    slo_ttft_ms: float = param(0.0, unit="ms", ge=0,
                               help="time-to-first-token objective; 0 = none")
    slo_tpot_ms: float = param(0.0, unit="ms", ge=0,
                               help="time-per-output-token objective; 0 = none")

    def __post_init__(self) -> None:
        if self.arrival == "poisson" and self.arrival_rate_per_s <= 0:
            raise ValueError("arrival = 'poisson' needs arrival_rate_per_s > 0")
        if self.arrival == "trace" and not self.trace_file:
            raise ValueError("arrival = 'trace' needs trace_file")
        if self.arrival == "trace":  # checked (every row) when the spec is built, read once
            from hwsim.serving.des import trace_requests

            trace_requests(self.trace_file)
