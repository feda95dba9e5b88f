"""The ``queue`` spec kind."""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("queue")
@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    """One service station fed by one arrival stream."""

    name: str = param(help="identifier")
    arrival_process: str = param("poisson", choices=("poisson", "deterministic"),
                                 help="inter-arrival distribution")
    arrival_rate_per_s: float = param(unit="1/s", gt=0, help="mean arrival rate lambda")
    service_distribution: str = param(
        "exponential", choices=("exponential", "deterministic", "erlang"),
        help="service-time distribution",
    )
    mean_service_s: float = param(unit="s", gt=0, help="mean service time E[S]")
    erlang_k: int = param(2, ge=1, le=10_000, help="phases of the Erlang service distribution "
                          "(<= 10,000: nearer deterministic than any measurement resolves)")
    servers: int = param(1, ge=1, le=4096, help="identical servers sharing one FIFO queue")
    customers: int = param(200_000, ge=100, le=10_000_000, help="customers measured by the DES "
                           "(<= 1e7: one event and a few array entries per customer)")
    warmup_customers: int = param(20_000, ge=0, le=10_000_000, help="customers discarded before "
                                  "measuring (DES; <= 1e7, as customers)")
