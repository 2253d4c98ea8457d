"""NumPy float64 oracles, one module per algorithm, and the base-class harness.

An oracle is built with the same keyword arguments as its optimizer (the
algorithm arguments only) and offers ``init(param) -> state`` and
``step(param, grad, state, lr, t) -> new_param`` with ``t`` counting updates
from 1 (or, where the state couples all parameters, ``step_all(params, grads,
states, lr, t) -> new_params``). :func:`run` adds what
``keras.optimizers.Optimizer`` does around ``update_step`` (loss-scale
unscaling, accumulation, clipping, decoupled weight decay).
"""

from keras_opts.testing.oracles.adabelief import AdaBeliefOracle
from keras_opts.testing.oracles.adadelta import AdadeltaOracle
from keras_opts.testing.oracles.adagrad import AdagradOracle
from keras_opts.testing.oracles.adam import AdamOracle
from keras_opts.testing.oracles.adamw import AdamWOracle
from keras_opts.testing.oracles.adan import AdanOracle
from keras_opts.testing.oracles.ademamix import AdEMAMixOracle
from keras_opts.testing.oracles.adopt import ADOPTOracle
from keras_opts.testing.oracles.harness import run
from keras_opts.testing.oracles.lars import LARSOracle
from keras_opts.testing.oracles.madgrad import MADGRADOracle
from keras_opts.testing.oracles.nadam import NadamOracle
from keras_opts.testing.oracles.novograd import NovoGradOracle
from keras_opts.testing.oracles.prodigy import ProdigyOracle
from keras_opts.testing.oracles.radam import RAdamOracle
from keras_opts.testing.oracles.rmsprop import RMSpropOracle
from keras_opts.testing.oracles.sgd import SGDOracle
from keras_opts.testing.oracles.yogi import YogiOracle

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
