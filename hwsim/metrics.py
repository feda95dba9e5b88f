"""What every metric name means: one definition per name, across systems and fidelities.

A system lists the metrics it reports (:class:`hwsim.system.Metric`); a name that more than one
system reports, or that compares systems, is defined here once, with its unit, and each system
computes it to this definition (``tests/test_metrics.py`` checks that every name two systems
share is defined here, and that the analytical and DES evaluators of a system agree on the
names they share at low load). ``hwsim schema SYSTEM`` prints the definitions.

LLM serving (chiplet-cloud and gpu-serving alike) counts **output tokens** (generated tokens;
a prompt token is not a token served) and charges the time the deployment spends on the
prompts: a throughput or a cost per token is that of a deployment serving its ``traffic``,
prefill included. The decode-only steady state that Chiplet Cloud's paper reports has names of
its own (``decode_*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricDef:
    """The one meaning of a metric name, and its unit (also in the name)."""

    name: str
    unit: str
    meaning: str


CATALOGUE: dict[str, MetricDef] = {}


class Measured(dict):
    """Metrics (name -> value) of a DES run with the 95% confidence half-widths of those that
    have one (``ci95``, by name) and how they were estimated (``ci_method``)."""

    def __init__(self, values: Any = (), *, ci95: Mapping[str, float] | None = None,
                 ci_method: str = "") -> None:
        super().__init__(values)
        self.ci95: dict[str, float] = dict(ci95 or {})
        self.ci_method = ci_method



#: unit suffixes of a metric name with no catalogued unit (``mean_wait_s`` -> s)
SUFFIX_UNITS = {"s": "s", "ms": "ms", "us": "µs", "ns": "ns", "w": "W", "j": "J", "mm2": "mm²",
                "mb": "MB", "gb": "GB", "kb": "kB", "mhz": "MHz", "ghz": "GHz", "usd": "USD",
                "gbps": "GB/s", "tflops": "TFLOPS", "mib": "MiB", "kib": "KiB", "pct": "%",
                "cycles": "cycles", "fps": "frames/s", "hours": "h"}


def unit(name: str) -> str:
    """The unit of a metric: the catalogue's (``1``, a pure number, as ""), else the unit
    suffix of its name (``_s``, ``_W``, ``_mm2``), else ""."""
    d = CATALOGUE.get(name)
    if d is not None:
        return {"1": "", "mm2": "mm²"}.get(d.unit, d.unit)
    words = name.split("_")
    u = SUFFIX_UNITS.get(words[-1].lower(), "") if len(words) > 1 else ""
    if u and len(words) > 2 and words[-2] == "per":  # a rate: throughput_per_s
        return f"1/{u}"
    return u


def define(name: str, unit: str, meaning: str) -> MetricDef:
    """Define a metric name; defining it again with another meaning is an error."""
    d = MetricDef(name, unit, meaning)
    old = CATALOGUE.get(name)
    if old is not None and old != d:
        raise ValueError(f"metric {name!r} defined twice with different meanings")
    CATALOGUE[name] = d
    return d


# --- LLM serving ------------------------------------------------------------------------------
define("throughput_tokens_per_s", "tokens/s",
       "output tokens per second the deployment delivers serving its traffic, the time spent on "
       "prompts (prefill) included. Closed traffic: the saturated capacity, a static batch "
       "prefilled then decoded; Poisson or trace arrivals: the offered output rate (an offered "
       "load at or above capacity is infeasible)")
define("tco_usd_per_1k_tokens", "USD per 1000 tokens",
       "what the deployment costs per hour (rented, or the owned servers' lifetime TCO spread "
       "over their life) per 1000 output tokens at throughput_tokens_per_s")
define("rental_usd_per_1k_tokens", "USD per 1000 tokens",
       "cost per 1000 output tokens at throughput_tokens_per_s with the devices rented at "
       "their price per device-hour")
define("owned_usd_per_1k_tokens", "USD per 1000 tokens",
       "cost per 1000 output tokens at throughput_tokens_per_s with the servers owned, their "
       "lifetime TCO spread over their life; NaN where no server price is published")
define("decode_throughput_tokens_per_s", "tokens/s",
       "output tokens per second of the decode steady state alone: a full batch decoding, no "
       "prefill (Chiplet Cloud's paper's accounting)")
define("decode_tco_usd_per_1k_tokens", "USD per 1000 tokens",
       "cost per 1000 output tokens at decode_throughput_tokens_per_s (Chiplet Cloud's "
       "TCO/token)")
define("energy_J_per_token", "J/token",
       "joules per output token: the average wall power the TCO model charges electricity for "
       "(peak x average_power_fraction, x utilisation when utilization_scales_opex) over "
       "throughput_tokens_per_s")
define("latency_ms_per_token", "ms",
       "mean time per output token after the first (TPOT). Analytical: the decode round at the "
       "occupancy the traffic sets (closed: the full batch; open arrivals: Little's law), at "
       "the mean cached context, stretched by newcomers' prefills; DES: the measured mean")
define("ttft_ms", "ms",
       "mean time to first token. Analytical: closed traffic, the first micro-batch at an idle "
       "replica (no queueing); open arrivals, one request's prefill after the residual of the "
       "step it arrives during; DES: measured, queueing included")
define("ttft_p50_ms", "ms", "median time to first token (DES)")
define("ttft_p99_ms", "ms", "99th-percentile time to first token (DES)")
define("tpot_p50_ms", "ms", "median time per output token after the first (DES)")
define("tpot_p99_ms", "ms", "99th-percentile time per output token after the first (DES)")
define("goodput_tokens_per_s", "tokens/s", "output tokens per second of requests that meet "
       "the traffic's SLO (DES)")
define("slo_attainment", "1", "share of requests that meet the traffic's SLO (DES)")
define("tco_at_slo_usd_per_1k_tokens", "USD per 1000 tokens",
       "cost per 1000 output tokens of requests that meet the SLO (DES)")
define("stage_utilization", "1", "mean busy share of the pipeline stages (DES)")
define("requests", "1", "requests measured (DES, after warm-up)")
define("batch_prefill_ms", "ms",
       "prefill of one whole static batch's prompts through the pipeline (its micro-batches "
       "one after another), no queueing")
define("utilization", "1",
       "achieved / peak arithmetic rate of the hardware occupied. LLM serving: FLOP/s of the "
       "prompt and output tokens processed (2 FLOPs per weight per token) at "
       "throughput_tokens_per_s over the peak FLOP/s of the occupied chips")
define("tokens_per_gpu_s", "tokens/s/GPU",
       "output tokens per second per accelerator: throughput_tokens_per_s / chips (Flash-LLM's "
       "tokens per GPU-second)")
define("fits_in_memory", "1",
       "1 when the weights, in their stored format and size, and the KV cache of the whole "
       "batch fit in the usable memory of every device, else 0")
define("chips", "1", "accelerator chips (ASICs, GPUs, TPUs) the deployment occupies")
define("servers", "1", "servers the chips occupy")
define("server_cost_usd", "USD", "purchase price (bill of materials) of one server; NaN when "
       "not published")
define("server_power_W", "W", "peak wall power of one server; NaN when not published")
define("tp", "1", "chips per pipeline stage (tensor parallelism)")
define("pp", "1", "pipeline stages")
define("micro_batch", "1", "sequences per pipeline micro-batch")

# --- accelerators and kernels -----------------------------------------------------------------
define("memory_bound", "1", "1 when off-chip memory bandwidth (HBM, DRAM) limits the steady "
       "state, else 0")
define("latency_s", "s", "time for the whole workload")

# --- systolic accelerators on FPGAs (systolic-fpga, a3fusion) ---------------------------------
define("compute_cycles", "cycles",
       "cycles in which the systolic array (or the accelerator's compute units) works on the "
       "workload, by hwsim.systolic.timing's model (folds back to back, each with its fill and "
       "drain); memory stalls excluded")
define("pes", "1", "processing elements (MAC units) of the systolic array: rows x cols")
define("dsp", "1", "DSP slices the design uses (Yosys synth_xilinx of the generated array, "
       "measured and fitted: one per PE for operands up to 18 bits)")
define("lut", "1", "LUTs the design uses (Yosys synth_xilinx of the generated RTL, measured "
       "and fitted)")
define("ff", "1", "flip-flops the design uses (Yosys synth_xilinx of the generated RTL, "
       "measured and fitted)")
