"""``hwsim rtl GENERATOR [--spec FILE] [--set k=v ...] --out DIR [--vcd] [--no-synth]``."""

from __future__ import annotations

import argparse
import json
import logging

from hwsim import specs
from hwsim.errors import InputError

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "rtl", help="generate Verilog for an accelerator dataflow",
        description="Write GENERATOR's Verilog, a JSON description (ports, parameters, latency, "
                    "initiation interval) and, where yosys is installed, synthesis statistics "
                    "(generic cells; Xilinx 7-series LUT, FF, DSP48E1, BRAM).",
    )
    s.add_argument("generator", help="systolic, sparse-decoder, fusion-unit (or 'list')")
    s.add_argument("--spec", metavar="FILE|NAME",
                   help="spec file, or a name under models/<kind>/ (default: 'default')")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. --set rows=16")
    s.add_argument("--out", metavar="DIR", help="output folder (required unless 'list')")
    s.add_argument("--vcd", action="store_true",
                   help="also simulate a random vector set and write DIR/<top>.vcd")
    synth = s.add_mutually_exclusive_group()
    synth.add_argument("--no-synth", dest="synth", action="store_false", default=None,
                       help="skip synthesis statistics")
    synth.add_argument("--synth", dest="synth", action="store_true",
                       help="require synthesis statistics (error if no yosys)")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hwsim.rtl import generate as g

    if args.generator == "list":
        for gen in g.GENERATORS.values():
            print(f"{gen.name:16s} kind={gen.kind:16s} {gen.summary}")
        return 0
    gen = g.get_generator(args.generator)
    if not args.out:
        raise InputError("hwsim rtl: --out DIR is required")
    from hwsim.cli import output_dir

    overrides = dict(specs.parse_override(s) for s in args.set)
    spec = g.load_spec(gen.name, args.spec, overrides)
    output_dir(args.out, "--out")
    result = g.generate(gen.name, spec, args.out, synth=args.synth, vcd=args.vcd)
    desc = json.loads(result.description.read_text())
    stats = json.loads(result.synthesis.read_text()) if result.synthesis else None
    if args.json:
        print(json.dumps({
            "generator": gen.name,
            "files": {k: str(v) for k, v in (("verilog", result.verilog),
                                              ("description", result.description),
                                              ("synthesis", result.synthesis),
                                              ("vcd", result.vcd)) if v},
            "timing": desc["timing"],
            "xilinx7": {k: v for k, v in stats["xilinx7"].items() if k != "cell_types"}
            if stats else None,
            "seconds": result.seconds,
        }, indent=2))
        return 0
    print(f"# {gen.name} ({spec.name}) -> {args.out}")
    for label, path in (("verilog", result.verilog), ("description", result.description),
                        ("synthesis", result.synthesis), ("waveform", result.vcd)):
        if path:
            print(f"{label:12s} {path}")
    t = desc["timing"]
    print(f"{'latency':12s} {t['latency_cycles']} cycles, II {t['initiation_interval_cycles']}")
    if stats:
        x = stats["xilinx7"]
        print(f"{'xc7':12s} LUT {x['lut']}  FF {x['ff']}  DSP48E1 {x['dsp48e1']}  "
              f"BRAM36 {x['bram36']:g}  ({stats['tool']})")
        print(f"{'generic':12s} {stats['generic']['cells']} cells, no latches")
    return 0
