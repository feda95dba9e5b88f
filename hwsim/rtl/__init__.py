"""RTL generators (Amaranth) for the accelerator dataflows, Verilog emission and synthesis.

The toolkit every generator shares; the generators themselves live with the system that owns
them and register there (``systolic`` in :mod:`hwsim.systolic_fpga`, ``sparse-decoder`` in
:mod:`hwsim.spmm`), or here when no system owns them yet (``fusion-unit``).

- :mod:`hwsim.rtl.registry`: the registry of generators (name, spec kind, component, timing);
- :mod:`hwsim.rtl.sim`: the cycle-by-cycle stream harness on Amaranth's simulator;
- :mod:`hwsim.rtl.iverilog`: re-checking the emitted Verilog in Icarus Verilog;
- :mod:`hwsim.rtl.generate`: Verilog, JSON descriptions, synthesis statistics;
- :mod:`hwsim.rtl.fusion`, :mod:`hwsim.rtl.spec`, :mod:`hwsim.rtl.blocks`: the shared
  ``fusion-unit`` block, its spec kind and its registration;
- :mod:`hwsim.rtl.cli`: ``hwsim rtl``.

See docs/rtl.md.
"""
