"""NumPy float64 oracles, one module per algorithm, and the base-class harness.

An oracle is built with the same keyword arguments as its optimizer (the
algorithm arguments only) and offers ``init(param) -> state`` and
``step(param, grad, state, lr, t) -> new_param`` with ``t`` counting updates
from 1 (or, where the state couples all parameters, ``step_all(params, grads,
states, lr, t) -> new_params``). :func:`run` adds what
``keras.optimizers.Optimizer`` does around ``update_step`` (loss-scale
unscaling, accumulation, clipping, decoupled weight decay).
"""

from tests.oracles.adabelief import AdaBeliefOracle
from tests.oracles.adadelta import AdadeltaOracle
from tests.oracles.adagrad import AdagradOracle
from tests.oracles.adam import AdamOracle
from tests.oracles.adamw import AdamWOracle
from tests.oracles.adan import AdanOracle
from tests.oracles.ademamix import AdEMAMixOracle
from tests.oracles.adopt import ADOPTOracle
from tests.oracles.harness import run
from tests.oracles.lars import LARSOracle
from tests.oracles.madgrad import MADGRADOracle
from tests.oracles.nadam import NadamOracle
from tests.oracles.novograd import NovoGradOracle
from tests.oracles.prodigy import ProdigyOracle
from tests.oracles.radam import RAdamOracle
from tests.oracles.rmsprop import RMSpropOracle
from tests.oracles.sgd import SGDOracle
from tests.oracles.yogi import YogiOracle

__all__ = [
    "ADOPTOracle",
    "AdEMAMixOracle",
    "AdaBeliefOracle",
    "AdadeltaOracle",
    "AdagradOracle",
    "AdamOracle",
    "AdamWOracle",
    "AdanOracle",
    "LARSOracle",
    "MADGRADOracle",
    "NadamOracle",
    "NovoGradOracle",
    "ProdigyOracle",
    "RAdamOracle",
    "RMSpropOracle",
    "SGDOracle",
    "YogiOracle",
    "run",
]
