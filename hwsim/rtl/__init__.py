"""RTL generators (Amaranth) for the accelerator dataflows, Verilog emission and synthesis."""
