"""Request-level LLM serving: the ``serving`` spec kind, the step-model interface and the DES.

Any hardware with a :class:`~hwsim.serving.step.StepModel` can be served with
:func:`~hwsim.serving.des.serve`; :class:`~hwsim.serving.perf_model.PerfStepModel` makes one from
the shared :mod:`hwsim.llm.perf` model, and :mod:`hwsim.serving.saturation` gives the closed
forms the DES agrees with at saturation.
"""

from hwsim.serving.des import Requests, ServeResult, make_requests, serve
from hwsim.serving.perf_model import PerfStepModel
from hwsim.serving.spec import ServingSpec
from hwsim.serving.step import StepModel

__all__ = ["PerfStepModel", "Requests", "ServeResult", "ServingSpec", "StepModel", "make_requests",
           "serve"]
