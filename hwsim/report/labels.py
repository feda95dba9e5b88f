"""Readable names and units for metrics and parameters on figures and in tables.

A metric name carries its unit (``latency_ms_per_token``); a label says it in words with the
unit apart: ``latency per token [ms]``, ``TCO [USD per 1000 tokens]``, ``server: chips per
lane``. Units come from the metrics catalogue (:mod:`hwsim.metrics`), the spec schemas (for a
parameter ``role.key``), or, failing both, a unit suffix of the name (``_s``, ``_W``, ...).
"""

from __future__ import annotations

import re

from hwsim.metrics import SUFFIX_UNITS
from hwsim.metrics import unit as metric_unit

#: words written in capitals
ACRONYMS = {"tco", "ttft", "tpot", "slo", "dsp", "lut", "ff", "sram", "hbm", "pe", "pes",
            "tp", "pp", "llm", "mac", "io", "dram", "fps", "tops", "nre", "kv", "rsu"}
#: the words of a few names that read better otherwise
NAMES = {"tco_usd_per_1k_tokens": "TCO",
         "decode_tco_usd_per_1k_tokens": "decode-only TCO",
         "tco_at_slo_usd_per_1k_tokens": "TCO of requests within the SLO",
         "latency_ms_per_token": "time per output token (TPOT)",
         "throughput_tokens_per_s": "throughput",
         "ttft_ms": "time to first token (TTFT)",
         "tokens_per_gpu_s": "tokens per GPU-second",
         "fits_in_memory": "fits in memory"}


def _pretty_unit(unit: str) -> str:
    return {"mm2": "mm²", "1": ""}.get(unit, unit)


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[_\s/]+", text) if w]


def _norm(w: str) -> str:
    w = w.lower()
    w = {"1k": "1000", "1m": "1000000", "mtoken": "1000000"}.get(w, w)
    return w[:-1] if len(w) > 3 and w.endswith("s") else w


def _say(words: list[str]) -> str:
    out = [w.upper() if w.lower() in ACRONYMS else w for w in words]
    while out and out[-1].lower() == "per":  # a unit removed after "per"
        out.pop()
    return " ".join(out)


def unit_of(name: str, schema_unit: str = "") -> str:
    """The unit of a metric or parameter name: the schema's, the catalogue's, or its suffix."""
    if schema_unit:
        return _pretty_unit(schema_unit)
    return metric_unit(name)


def readable(name: str, unit: str = "") -> str:
    """``name`` in words, without its unit words (``server_power_W`` -> ``server power``)."""
    role, dot, key = name.partition(".")
    if dot and key:
        return f"{role}: {readable(key, unit)}"
    if name in NAMES:
        return NAMES[name]
    unit_words = {_norm(w) for w in _words(unit)} - {"per"}
    words = _words(name)
    kept = [w for w in words if _norm(w) not in unit_words
            and not (w.lower() in SUFFIX_UNITS and w is words[-1])]
    return _say(kept or words)


def label(name: str, schema_unit: str = "") -> str:
    """An axis label or table header: readable name and ``[unit]`` (``1`` units left out)."""
    u = unit_of(name, schema_unit)
    text = readable(name, u)
    return f"{text} [{u}]" if u else text
