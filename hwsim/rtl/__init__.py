"""RTL generators (Amaranth) for the accelerator dataflows, Verilog emission and synthesis.

- :mod:`hwsim.rtl.spec`: the spec kinds ``systolic``, ``sparse-decoder``, ``fusion-unit``;
- :mod:`hwsim.rtl.systolic`, :mod:`hwsim.rtl.sparse`, :mod:`hwsim.rtl.fusion`: the generators
  (``wiring.Component``s), their numpy models and simulation drivers;
- :mod:`hwsim.rtl.sim`: the cycle-by-cycle stream harness on Amaranth's simulator;
- :mod:`hwsim.rtl.iverilog`: re-checking the emitted Verilog in Icarus Verilog;
- :mod:`hwsim.rtl.generate`: the registry, Verilog, JSON descriptions, synthesis statistics;
- :mod:`hwsim.rtl.resources`: measured FPGA resources of the systolic array, fitted;
- :mod:`hwsim.rtl.system`: the ``systolic-fpga`` system for the explorer;
- :mod:`hwsim.rtl.cli`: ``hwsim rtl``.

The systolic timing model they are checked against is :mod:`hwsim.systolic`. See docs/rtl.md.
"""
