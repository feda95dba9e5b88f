"""Chiplet Cloud's two-phase design search, exhaustive, from the command line.

Phase 1 elaborates every server of the v1 hardware space (die area x chips per lane x MAC
ratio); phase 2 maps each LLM onto every valid server with every mapping. Prints the
TCO-optimal and latency-optimal designs and, with ``--csv``, writes the TCO-latency Pareto front.

    python explore/chiplet_cloud_search.py gpt3-175b palm-540b             # the paper's v1
    python explore/chiplet_cloud_search.py llama3-70b --full --context 8192 --csv front.csv
    python explore/chiplet_cloud_search.py gpt3-175b --chip cc-7nm-ccmem-60sparse
    python explore/chiplet_cloud_search.py gpt3-175b --objective e2e --prompt 1920 --output 128

``--full`` uses the LLM's real layer shapes and times attention scores and KV-cache reads;
without it the search makes the paper's v1 assumptions (12 d^2 layers, KV as capacity only).
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from hwsim import specs
from hwsim.chiplet_cloud import search
from hwsim.cli import output_file, run_guarded


def _load(kind: str, name: str):
    return specs.load_spec(specs.find_spec_file(kind, name), kind)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llms", nargs="+", help="LLM spec names or files (models/llm/)")
    ap.add_argument("--chip", default="cc-7nm-v1")
    ap.add_argument("--server", default="cc-server-v1")
    ap.add_argument("--tco", default="barroso-v1")
    ap.add_argument("--context", type=int, nargs="+", default=[2048],
                    help="KV-cache lengths to try (v1 code: 256 2048 8196)")
    ap.add_argument("--full", action="store_true",
                    help="real layer shapes, attention and KV reads timed")
    ap.add_argument("--objective", choices=("decode", "e2e"), default="decode",
                    help="decode: v1's TCO per decoded token; e2e: counting a static batch's "
                    "prefill of --prompt tokens before --output decode steps")
    ap.add_argument("--prompt", type=int, default=1920)
    ap.add_argument("--output", type=int, default=128)
    ap.add_argument("--csv", help="write the Pareto front(s) here")
    args = ap.parse_args()
    if args.csv:
        output_file(args.csv, "--csv")  # before the search, not after
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    asic, srv, tco = _load("asic", args.chip), _load("server", args.server), _load("tco", args.tco)
    llms = [_load("llm", name) for name in args.llms]  # every name checked before the search
    servers = search.phase1(asic, srv)
    print(f"phase 1: {len(servers)} valid servers of {servers.evaluated}")
    space = search.MappingSpace(contexts=tuple(args.context), attention=args.full,
                                simplified_layers=not args.full, objective=args.objective,
                                prompt_tokens=args.prompt, output_tokens=args.output)
    fronts = []
    for llm in llms:
        res = search.phase2(llm, servers, asic, srv, tco, space)
        print(f"\n{llm.name}: {res.mappings_evaluated:,} mappings in {res.seconds:.2f} s")
        for label, d in (("TCO-optimal", res.best), ("latency-optimal", res.best_latency)):
            print(f"  {label}: ${d['objective']:.4g}/1K tokens ({args.objective}), "
                  f"{d['latency_ms_per_token']:.3g} ms/token, {d['throughput_tokens_per_s']:,.0f} "
                  f"tokens/s; {d['die_area_mm2']:g} mm2 die ({d['chip_tops']:.3g} TOPS, "
                  f"{d['chip_sram_MB']:.0f} MB), {d['chips_per_server']:g} chips/server, "
                  f"{d['servers']:g} servers, tp {d['tp']:g} x pp {d['pp']:g}, batch "
                  f"{d['batch']:g} / micro-batch {d['micro_batch']:g}, ctx {d['context']:g}")
        front = pd.DataFrame(res.pareto)
        front.insert(0, "llm", llm.name)
        fronts.append(front)
    if args.csv:
        pd.concat(fronts).to_csv(args.csv, index=False)
        print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    raise SystemExit(run_guarded(main))  # an unknown name: one error: line, exit 2
