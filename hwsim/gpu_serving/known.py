"""Known deviations of the measured serving cases (reason and ceiling per case), and the
held-out MAPE each group claims. Filled from the report of ``hwsim validate gpu-serving``; each
reason names the data that shows it. A case listed here that starts passing fails
``tests/test_gpu_serving.py`` (drop it here and in ``docs/serving.md``)."""

from __future__ import annotations

#: (reason, ceiling, case names)
_DEVIATIONS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("TensorRT-LLM 0.10's published FP8 GPT-J-6B rows with 128-token prompts are 1.4x and 7.2x "
     "0.11's under the same conditions (34,955 vs 24,457 tokens/s at 128/128; 54,940 vs 7,643 "
     "at 128/2048); the model agrees with 0.11 and 0.12 within 13% on these rows", 0.9,
     ("trtllm-0.10.0 h100 fp8 GPT-J-6B tp1 128/128 thr",
      "trtllm-0.10.0 h100 fp8 GPT-J-6B tp1 128/2048 thr")),
    ("TensorRT-LLM 0.10's Llama-3-8B rows are 0.42-0.79x 0.11's under the same conditions "
     "(H100 FP8 2048/2048: 3,501 vs 8,399 tokens/s; A100 128/2048: 3,386 vs 4,838), while its "
     "Llama-2-7B rows (the fit) are within 10% of 0.11's; the model, fitted per version on "
     "Llama-2, predicts 0.11 and 0.12 within 20% on these rows", 1.5,
     ("trtllm-0.10.0 h100 fp8 Llama-3-8B tp1 128/128 thr",
      "trtllm-0.10.0 h100 fp16 Llama-3-8B tp1 128/128 thr",
      "trtllm-0.10.0 h100 fp8 Llama-3-8B tp1 128/2048 thr",
      "trtllm-0.10.0 h100 fp16 Llama-3-8B tp1 128/2048 thr",
      "trtllm-0.10.0 a100 fp16 Llama-3-8B tp1 128/2048 thr",
      "trtllm-0.10.0 h100 fp8 Llama-3-8B tp1 2048/2048 thr",
      "trtllm-0.10.0 h100 fp16 Llama-3-8B tp1 2048/2048 thr",
      "trtllm-0.10.0 a100 fp16 Llama-3-8B tp1 2048/2048 thr")),
    ("Llama-2-70B in FP8 on one H100: 69.5 GB of weights (the embedding table and LM head "
     "16-bit) leave about 10.5 GB, and the throughput "
     "is proportional to the KV cache that fits; the model gives the cache 90% of what the "
     "weights leave and subtracts no activation workspace, which the engine's (not "
     "published) takes from that little room", 0.5,
     ("trtllm-0.10.0 h100 fp8 Llama-2-70B tp1 128/128 thr",
      "trtllm-0.10.0 h100 fp8 Llama-2-70B tp1 2048/128 thr")),
    ("Llama-3-70B at TP8 with long outputs: measured 5-36% below Llama-2-70B's rows of the "
     "same version, GPU and lengths (0.11 A100 128/2048: 3,374 vs 5,097 tokens/s), though the "
     "two share every layer's shape and differ only in the vocabulary (128,256 vs 32,000), "
     "which the model counts in the LM head; the engine settings of these rows are not "
     "published, and the model predicts Llama-2-70B's within 26%", 0.8,
     ("trtllm-0.10.0 h100 fp8 Llama-3-70B tp8 128/2048 thr",
      "trtllm-0.11.0 h100 fp8 Llama-3-70B tp8 128/2048 thr",
      "trtllm-0.11.0 a100 fp16 Llama-3-70B tp8 128/2048 thr",
      "trtllm-0.11.0 h100 fp8 Llama-3-70B tp8 2048/2048 thr",
      "trtllm-0.11.0 a100 fp16 Llama-3-70B tp8 2048/2048 thr",
      "trtllm-0.12.0 h100 mixed Llama-3-70B tp8 128/2048 thr",
      "trtllm-0.12.0 a100 mixed Llama-3-70B tp8 128/2048 thr",
      "trtllm-0.12.0 h100 fp8 Llama-3-70B tp8 128/4096 thr",
      "trtllm-0.12.0 h100 mixed Llama-3-70B tp8 128/4096 thr",
      "trtllm-0.12.0 a100 mixed Llama-3-70B tp8 128/4096 thr",
      "trtllm-0.12.0 h100 mixed Llama-3-70B tp8 2048/2048 thr")),
    ("Llama-3-70B in FP16 on two GPUs: 70.6 GB of weights per 80 GB device leave about 9 GB "
     "for the KV cache, so the throughput is proportional to a small remainder that the "
     "engine's activation workspace (not published) shrinks; the source's README flags the "
     "A100 2048/2048 value (87.54 tokens/s) as suspiciously low", 1.2,
     ("trtllm-0.12.0 h100 mixed Llama-3-70B tp2 128/2048 thr",
      "trtllm-0.12.0 a100 mixed Llama-3-70B tp2 2048/2048 thr")),
    ("a stall in the run: its mean first-token latency is carried by a few requests (FTL max "
     "725 ms at batch 32, 210 ms at batch 64, against the modelled 20-21 ms, a decode step of "
     "the lone request an idle engine wakes on plus the others' step), while the other seven "
     "1-token rows are within 27%; the batch-32 run's own per-token latency (11 ms, 2,909 "
     "tokens/s) implies 36% more than the throughput it reports", 0.9,
     ("lmdeploy a100 fp16 Llama-2-7B tp1 b32 1/128 ttft",
      "lmdeploy a100 fp16 Llama-2-7B tp1 b64 1/128 ttft",
      "lmdeploy a100 fp16 Llama-2-7B tp1 b32 1/128 thr")),
    ("KV-cache exhaustion at the end of each round: 64 sequences of 128 + 2,048 tokens need "
     "17 blocks each (1,088) of the 1,000 the benchmark script sets, so the model preempts "
     "about 50 sequences near the ends of rounds and their clients' next requests start "
     "later; measured, the mean first token is only 0.1 s above the 128/128 row's (0.535 vs "
     "0.440 s, longest 1.23 vs 1.06 s), as if the blocks sufficed (with 1,088 blocks the "
     "model gives 0.476 s, -11%); the other 14 rows whose batch needs more blocks than the "
     "cache are within 29%", 0.5,
     ("lmdeploy a100 fp16 Llama-2-7B tp1 b64 128/2048 ttft",)),
    ("a batch-64 prefill of 64 x 127 tokens (8,128 rows per GEMM) over-predicted by about "
     "30%, though not by the GEMM model's reach past the 4,096 rows of Vidur's operator data: "
     "on LLMCompass's A100 matmul sweep (held out; N = K = 12,288) the model's time is 1.18x "
     "the measured at M = 4,096 and 1.20x at 8,192, as from M = 256 up (1.15-1.21x); the "
     "measured first token grows less than the prefill work from batch 32 to 64 (x1.52 for "
     "this model, x1.68 InternLM-20B, x2.06 Llama-2-7B) where the model's doubles (x1.92), "
     "and the batch-16 and -32 rows of the same lengths are within 18%", 0.5,
     ("lmdeploy a100 fp16 Llama-2-13B tp1 b64 128/128 ttft",)),
)

#: case name -> (reason, ceiling)
KNOWN: dict[str, tuple[str, float]] = {
    name: (reason, ceiling) for reason, ceiling, names in _DEVIATIONS for name in names}

#: held-out group -> the MAPE it claims (the issue's target is 15%; the groups that miss it
#: claim what they reach, and docs/serving.md says so)
GROUP_MAPE: dict[str, float] = {
    "LMDeploy 0.1 A100 throughput": 0.15,
    "LMDeploy 0.1 A100 decode step": 0.15,
    "LMDeploy 0.1 A100 TTFT": 0.15,
    "TensorRT-LLM A100 throughput": 0.15,
    "TensorRT-LLM H100 throughput": 0.15,
    "TensorRT-LLM H100 FP8 throughput": 0.20,
}
