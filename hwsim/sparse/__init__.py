"""Sparse weights on GPUs, shared by the ``spmm`` and ``gpu-serving`` systems: the storage
formats and their encoders (:mod:`hwsim.sparse.format`: Tiled-CSL, 2:4, int8), the kernel
models (:mod:`hwsim.sparse.kernels`: Flash-LLM, cuBLAS, Sputnik, cuSPARSE, SparTA, cuSPARSELt)
and their spec kinds (:mod:`hwsim.sparse.spec`: ``spmm-kernel``, ``spmm-calibration``)."""
