"""Request-level LLM serving: the ``serving`` spec kind, the step-model interface and the DES.

Any hardware with a :class:`~hwsim.serving.step.StepModel` can be served with
:func:`~hwsim.serving.des.serve`.
"""

from hwsim.serving.des import Requests, ServeResult, make_requests, serve
from hwsim.serving.spec import ServingSpec
from hwsim.serving.step import StepModel

__all__ = ["Requests", "ServeResult", "ServingSpec", "StepModel", "make_requests", "serve"]
