"""The measured serving rows (``data/serving_measured.csv``) as gpu-serving design points: their
conditions, which ones fit the framework constants, and their validation cases.

Two sources (the row's ``source`` column names the file and commit):

- **LMDeploy v0.1.0a1** (TurboMind, A100 80 GB, FP16, ``profile_generation.py``): ``batch``
  client threads each sending 10 requests of fixed lengths one after another, each timed from
  its own sending. Served here as that benchmark (:mod:`hwsim.gpu_serving.turbomind`): the
  clients on TurboMind's persistent batch (admission in arrival order, KV blocks of 128 tokens
  taken as tokens are generated, one token ahead, lower-priority sequences preempted when the
  blocks run out, losing the blocks taken from their tail and recomputing those, a request
  seen from the iteration after it was sent), 95% of HBM for weights
  and cache (the benchmark table reports 73.6-78.4 GB in use per GPU), on the same step model.
  Metrics: output throughput, mean time to first token, the median per-token latency (rounded
  to 1 ms by the source: its ``reference_error``). Calibration ``lmdeploy-a100-sxm-80gb``.
- **TensorRT-LLM 0.10-0.12** (NVIDIA's perf-overview tables, A100 and H100, FP16 and FP8):
  every request queued at once (maximum load), in-flight batching with chunked context, KV
  blocks reserved for a request's whole length (guaranteed-no-evict), 64-token blocks. Served
  here as closed traffic with chunked prefill (``max_batch_tokens``), ``batch`` as the engine's
  ``max_batch_size``, the KV cache a share of the memory the weights leave
  (``kv_cache_free_gpu_mem_fraction``). Engine settings per version (:data:`TRT_SETTINGS`):
  0.10 states max_batch_size and max_num_tokens 2048 (the default memory fraction 0.9); 0.11
  states the fraction 0.99 and names per-model settings that are not in the data (0.10's
  assumed); 0.12 (trtllm-bench) takes its per-model settings from
  ``tensorrt_llm/bench/build/benchmark_config.yml`` (NVIDIA/TensorRT-LLM@32ed92e; the tag of
  that stored version is not known: an assumption), memory fraction 0.9 assumed. Metric: output
  throughput. FP8 rows: FP8 weights and KV cache, the embedding table and the LM head 16-bit
  (``mapping.vocab_dtype``: TensorRT-LLM's quantization flow leaves ``*lm_head*`` unquantized,
  ``tensorrt_llm/quantization/quantize_by_ammo.py``; the embedding is a lookup table).

**Calibration and held-out rows.** LMDeploy: the batch-1 rows (three models, five lengths: one
request on an idle engine, no batching, no KV limit) fit ``lmdeploy-a100-sxm-80gb``'s step
overhead, all-reduce latency and share of the element-wise kernels; every row at batch 16, 32
and 64 is held out. TensorRT-LLM, one calibration per GPU and version (``roofline-<device>``:
0.12, the role's default; ``trtllm0.10-<device>``, ``trtllm0.11-<device>``): the rows of
Llama-2-7B and Llama-2-70B fit the step overhead, the all-reduce's fixed time and the
element-wise share (on the H100 with the FP8 rows: the FP8 GEMM speed-up too); every row of
GPT-J-6B, Llama-3-8B, Llama-3-70B and Mistral-7B is held out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.validation import Case, data_rows

DATA = Path(__file__).resolve().parent / "data"
SERVING_CSV = DATA / "serving_measured.csv"
SOURCE_FILE = "hwsim/gpu_serving/data/serving_measured.csv"

#: model names of the data -> llm spec files
MODELS = {"Llama-2-7B": "llama2-7b", "Llama-2-13B": "llama2-13b", "Llama-2-70B": "llama2-70b",
          "Llama-3-8B": "llama3-8b", "Llama-3-70B": "llama3-70b", "Mistral-7B": "mistral-7b",
          "GPT-J-6B": "gptj-6b", "InternLM-20B": "internlm-20b"}
DEVICES = {"A100": "a100-sxm-80gb", "H100": "h100-sxm-80gb"}

#: metric of the data -> (gpu-serving metric, scale to its unit)
LMDEPLOY_METRICS = {"throughput_out_tok_s_total": ("throughput_tokens_per_s", 1.0),
                    "ttft_mean_s": ("ttft_ms", 1e3),
                    "token_latency_p50_s": ("latency_ms_per_token", 1e3)}
TRT_METRICS = {"throughput_out_tok_s_total": ("throughput_tokens_per_s", 1.0)}

LMDEPLOY_SET = {"mapping.kv_overflow": "queue", "mapping.kv_reservation": "mean",
                "mapping.kv_block_tokens": 128, "mapping.hbm_usable_fraction": 0.95,
                "mapping.kv_memory": "total", "traffic.arrival": "closed",
                "traffic.batching": "static", "traffic.length_distribution": "fixed"}
TRT_SET = {"mapping.kv_overflow": "queue", "mapping.kv_reservation": "full",
           "mapping.kv_block_tokens": 64, "mapping.kv_memory": "free",
           "traffic.arrival": "closed", "traffic.batching": "continuous",
           "traffic.length_distribution": "fixed"}

#: trtllm-bench's per-model engine settings (max_batch_size, max_num_tokens) by tensor
#: parallelism, NVIDIA/TensorRT-LLM@32ed92e tensorrt_llm/bench/build/benchmark_config.yml
#: ("general" entries; GPT-J's 2048/2048 is its entry for 256-token sequences)
BENCH_CONFIG = {
    ("Llama-2-7B", 1): (4096, 8192), ("Llama-2-70B", 2): (2048, 2048),
    ("Llama-2-70B", 4): (4096, 8192), ("Llama-2-70B", 8): (8192, 16384),
    ("GPT-J-6B", 1): (128, 2048), ("Llama-3-8B", 1): (2048, 8192),
    ("Llama-3-70B", 4): (2048, 1024), ("Llama-3-70B", 8): (8192, 16384),
    ("Mistral-7B", 1): (4098, 8192),
}


def trt_settings(version: str, model: str, tp: int, input_len: int, output_len: int
                 ) -> tuple[int, int, float, str]:
    """(max_batch_size, max_num_tokens, KV share of free memory, how known) of a TensorRT-LLM
    row."""
    if version == "0.10.0":
        return 2048, 2048, 0.9, "stated (memory fraction: the default 0.9)"
    if version == "0.11.0":
        return 2048, 2048, 0.99, "fraction 0.99 stated; batch and token limits 0.10's (assumed)"
    mb, mt = BENCH_CONFIG.get((model, tp), (2048, 2048))
    if model == "GPT-J-6B" and input_len + output_len <= 256:
        mb, mt = 2048, 2048
    return mb, mt, 0.9, "trtllm-bench benchmark_config.yml (assumed for 0.12), fraction 0.9"


@dataclass(frozen=True)
class ServingRow:
    """One measured value and the gpu-serving design point that predicts it."""

    key: str
    source: str
    framework: str
    gpu: str
    model: str
    tp: int
    precision: str
    batch: str
    input_len: int
    output_len: int
    metric: str
    value: float
    notes: str
    #: gpu-serving: calibration file, spec roles, overrides, metric and scale
    calibration: str
    specs: tuple[tuple[str, str], ...]
    sets: tuple[tuple[str, Any], ...]
    ours: str
    scale: float
    role: str
    settings: str

    @property
    def reference(self) -> float:
        return self.value * self.scale

    @property
    def is_lmdeploy(self) -> bool:
        return self.framework.startswith("LMDeploy")

    @property
    def version(self) -> str:
        m = re.search(r"(\d+\.\d+\.\d+)", self.framework)
        return m.group(1) if m else ""

    def inputs(self, calibration: Any = None) -> Any:
        """The resolved inputs (with ``calibration`` in place of the committed one)."""
        from hwsim.system import Inputs

        base = _resolved(self.specs, self.sets)
        if calibration is None:
            return base
        data = dict(base)
        data["calibration"] = calibration
        return Inputs(data, base.explicit)

    def predict(self, calibration: Any = None) -> float:
        """The row's metric: LMDeploy's rows from the benchmark as it ran (closed-loop
        clients on TurboMind's persistent batch, :mod:`hwsim.gpu_serving.turbomind`),
        TensorRT-LLM's from the batch evaluator."""
        if self.is_lmdeploy:
            return lmdeploy_benchmark(self.specs, self.sets, calibration).metric(self.ours)
        from hwsim.batch import evaluate_one
        from hwsim.system import get_system

        return evaluate_one(get_system("gpu-serving"), self.inputs(calibration))[self.ours]

    def conditions(self) -> str:
        what = (f"{self.tp} x {self.gpu}, {self.model}, {self.precision}, {self.framework}, "
                f"batch {self.batch}, {self.input_len} in / {self.output_len} out")
        if not self.is_lmdeploy:
            what += f"; engine settings: {self.settings}"
        return what


@cache
def _resolved(spec_args: tuple[tuple[str, str], ...], sets: tuple[tuple[str, Any], ...]) -> Any:
    from hwsim.system import get_system

    return get_system("gpu-serving").resolve([f"{r}={n}" for r, n in spec_args], dict(sets))


#: the KV cache of LMDeploy's benchmark, in 128-token blocks: ``cache_max_entry_count`` as the
#: benchmark scripts set it (InternLM/lmdeploy benchmark/benchmark-7b.sh@4818dac: 1000;
#: benchmark_13b.sh and benchmark_20b.sh@05e6ef3: 500 and 700), a block count when above 1
#: (TurboMind's BlockManager); with the weights it is the memory the table reports (Llama-2-7B:
#: 1000 x 128 x 512 KiB = 62.5 GiB + 12.6 GiB of weights, 76.6 GiB measured; 13B: 48.8 + 24.2,
#: 74.8-77.1; InternLM-20B per GPU: 51.3 + 18.6, 73.6-76.3)
LMDEPLOY_CACHE_BLOCKS = {"llama2-7b": 1000, "llama2-13b": 500, "internlm-20b": 700}


@cache
def lmdeploy_benchmark(spec_args: tuple[tuple[str, str], ...], sets: tuple[tuple[str, Any], ...],
                       calibration: Any = None) -> Any:
    """profile_generation.py's run of one LMDeploy row's conditions (``mapping.batch``
    clients, 10 requests each) on the step model of its inputs (``calibration`` in place of
    the committed one): a :class:`hwsim.gpu_serving.turbomind.BenchmarkResult`."""
    from hwsim.gpu_serving import turbomind
    from hwsim.gpu_serving.analytical import build
    from hwsim.system import Inputs

    inputs = _resolved(spec_args, sets)
    if calibration is not None:
        data = dict(inputs)
        data["calibration"] = calibration
        inputs = Inputs(data, inputs.explicit)
    traffic = inputs["traffic"]
    llm = inputs["llm"].name
    return turbomind.run(build(inputs), clients=inputs["mapping"].batch,
                         prompt=traffic.prompt_tokens, output=traffic.output_tokens,
                         blocks=LMDEPLOY_CACHE_BLOCKS.get(llm))


def _read() -> list[dict[str, str]]:
    return data_rows(SERVING_CSV)


@cache
def serving_rows() -> tuple[ServingRow, ...]:
    """Every row a gpu-serving case predicts (LMDeploy: throughput, mean TTFT, median
    per-token latency; TensorRT-LLM: throughput)."""
    out = []
    for i, r in enumerate(_read(), start=1):
        lmd = r["framework"].startswith("LMDeploy")
        table = LMDEPLOY_METRICS if lmd else TRT_METRICS
        if r["metric"] not in table or r["model"] not in MODELS:
            continue
        ours, scale = table[r["metric"]]
        gpu = DEVICES[r["gpu"]]
        tp, p, o = int(r["tp"]), int(r["input_len"]), int(r["output_len"])
        fp8 = r["precision"] == "fp8"
        dtype = "fp8" if fp8 else "fp16"
        sets: dict[str, Any] = {"mapping.tensor_parallel": tp, "mapping.pipeline_parallel": 1,
                                "mapping.weight_dtype": dtype, "mapping.kv_dtype": dtype,
                                "mapping.activation_dtype": "fp16",
                                "traffic.prompt_tokens": p, "traffic.output_tokens": o}
        if lmd:
            b = int(r["batch"])
            cal = "lmdeploy-a100-sxm-80gb"
            sets.update(LMDEPLOY_SET)
            sets.update({"mapping.batch": b, "mapping.micro_batch": 0,
                         "traffic.requests": b, "mapping.max_batch_tokens": 0})
            role = "calibration" if b == 1 else "held-out"
            settings = ""
        else:
            version = re.search(r"(\d+\.\d+\.\d+)", r["framework"]).group(1)  # type: ignore
            mb, mt, frac, settings = trt_settings(version, r["model"], tp, p, o)
            cal = trt_calibration(version, gpu)
            sets.update(TRT_SET)
            sets.update({"mapping.batch": mb, "mapping.micro_batch": 0,
                         "mapping.max_batch_tokens": mt, "mapping.hbm_usable_fraction": frac,
                         "traffic.requests": 2000})
            if fp8:  # the FP8 checkpoint's embedding table and LM head stay 16-bit
                sets["mapping.vocab_dtype"] = "fp16"
            role = "calibration" if r["model"] in ("Llama-2-7B", "Llama-2-70B") else "held-out"
        spec_args = (("device", gpu), ("llm", MODELS[r["model"]]), ("calibration", cal))
        out.append(ServingRow(
            key=f"row {i}", source=r["source"], framework=r["framework"], gpu=gpu,
            model=r["model"], tp=tp, precision=r["precision"], batch=r["batch"], input_len=p,
            output_len=o, metric=r["metric"], value=float(r["value"]), notes=r["notes"],
            calibration=cal, specs=spec_args, sets=tuple(sorted(sets.items())), ours=ours,
            scale=scale, role=role, settings=settings))
    return tuple(out)


def rows_for(calibration: str, role: str | None = None) -> list[ServingRow]:
    return [r for r in serving_rows() if r.calibration == calibration
            and (role is None or r.role == role)]


# --------------------------------------------------------------------------------------------
# fitting a framework's constants

#: the framework fields fitted per calibration file, with bounds
def trt_calibration(version: str, gpu: str) -> str:
    """The calibration file of a TensorRT-LLM version on ``gpu``: the newest (0.12) is the
    role's default ``roofline-<device>``."""
    return f"roofline-{gpu}" if version == "0.12.0" else f"trtllm{version[:4]}-{gpu}"


def framework_fields(name: str) -> tuple[tuple[str, float, float], ...]:
    """The framework fields fitted for calibration file ``name``, with bounds."""
    if name.startswith("lmdeploy"):
        # TurboMind's batch-1 rows: its step overhead, its all-reduce (InternLM-20B on two
        # GPUs), its kernel fusion
        return (("step_overhead_us", 0.0, 20000.0), ("allreduce_latency_us", 0.0, 200.0),
                ("elementwise_share", 0.0, 1.0))
    # throughput at maximum load: the fixed cost per step, the all-reduce's (under load, with
    # the group's synchronisation: well above NCCL's idle latency), the fusion
    out = (("step_overhead_us", 0.0, 20000.0), ("allreduce_latency_us", 0.0, 300.0),
           ("elementwise_share", 0.0, 1.0))
    if "h100" in name:
        out += (("fp8_speedup", 0.25, 4.0),)
    return out


def with_framework(cal: Any, values: dict[str, float]) -> Any:
    return replace(cal, framework=replace(cal.framework, **values))


def framework_loss(cal: Any, rows: list[ServingRow]) -> np.ndarray:
    """log(predicted / measured) of ``rows`` with the calibration ``cal``."""
    out = []
    for r in rows:
        try:
            p = r.predict(cal)
        except Exception:  # an infeasible point during a fit: a large error
            p = math.nan
        out.append(math.log(p / r.reference) if p > 0 and math.isfinite(p) else 5.0)
    return np.asarray(out)


def fit_framework(name: str) -> dict[str, float]:
    """The framework constants of calibration ``name`` fitted on its calibration rows (least
    squares of the log errors), the operator constants held."""
    from scipy.optimize import least_squares

    from hwsim.gpu_serving.calibration import load_calibration_file

    cal = load_calibration_file(name)
    fields = framework_fields(name)
    rows = rows_for(name, "calibration")

    def residual(x: np.ndarray) -> np.ndarray:
        c = with_framework(cal, {f: float(v) for (f, _, _), v in zip(fields, x, strict=True)})
        return framework_loss(c, rows)

    x0 = [min(max(getattr(cal.framework, f), lo), hi) for f, lo, hi in fields]
    x0 = [v if v > lo else (lo + hi) / 20 for v, (_, lo, hi) in zip(x0, fields, strict=True)]
    res = least_squares(residual, np.asarray(x0, dtype=float),
                        bounds=([f[1] for f in fields], [f[2] for f in fields]),
                        x_scale="jac", diff_step=1e-3, max_nfev=400)
    return {f: float(v) for (f, _, _), v in zip(fields, res.x, strict=True)}


# --------------------------------------------------------------------------------------------
# validation cases

TOLERANCE = 0.30


def _group(r: ServingRow) -> str:
    fw = "LMDeploy 0.1" if r.is_lmdeploy else "TensorRT-LLM"
    gpu = r.gpu.split("-")[0].upper()
    prec = " FP8" if r.precision == "fp8" else ""
    metric = {"throughput_tokens_per_s": "throughput", "ttft_ms": "TTFT",
              "latency_ms_per_token": "decode step"}[r.ours]
    return f"{fw} {gpu}{prec} {metric}"


def _reference_error(r: ServingRow) -> float:
    """The source rounds LMDeploy's latencies to 1 ms (3 decimals of a second)."""
    if r.is_lmdeploy and r.ours in ("ttft_ms", "latency_ms_per_token"):
        return 0.5 / r.reference
    return 0.0


def cases(known: dict[str, tuple[str, float]] | None = None,
          group_mape: dict[str, float] | None = None) -> list[Case]:
    """One case per measured serving row; ``known`` maps a row's case name to its known
    deviation (reason, ceiling), ``group_mape`` a held-out group to its claim."""
    known = known or {}
    group_mape = group_mape or {}
    out = []
    for r in serving_rows():
        name = case_name(r)
        reason, ceiling = known.get(name, ("", None))
        group = _group(r)
        out.append(Case(
            system="gpu-serving", case=name, metric=r.ours, reference=r.reference,
            tolerance=TOLERANCE, source=f"{SOURCE_FILE} {r.key}: {r.source}",
            conditions=r.conditions(), predict=_predictor(r), role=r.role, group=group,
            group_mape=group_mape.get(group) if r.role == "held-out" else None,
            reference_error=_reference_error(r), known_deviation=reason, ceiling=ceiling))
    return out


def _predictor(r: ServingRow) -> Callable[[], float]:
    return lambda: r.predict()


def case_name(r: ServingRow) -> str:
    fw = "lmdeploy" if r.is_lmdeploy else f"trtllm-{r.version}"
    metric = {"throughput_tokens_per_s": "thr", "ttft_ms": "ttft",
              "latency_ms_per_token": "tpot"}[r.ours]
    b = f" b{r.batch}" if r.is_lmdeploy else ""
    return (f"{fw} {r.gpu.split('-')[0]} {r.precision.split('(')[0]} {r.model} tp{r.tp}{b} "
            f"{r.input_len}/{r.output_len} {metric}")
