"""Learning-rate schedules: pure, serializable ``step -> learning rate``.

Each is a ``keras.optimizers.schedules.LearningRateSchedule`` written with
``keras.ops`` only, registered under the ``keras_opts`` package, usable as
the learning rate of any Keras optimizer. ``step`` is the optimizer's
``iterations``: 0 at the first update.
"""

from keras_opts.schedules.cyclical import Cyclical, OneCycle
from keras_opts.schedules.decays import (
    ExponentialDecay,
    GeometricDecay,
    InverseSqrtDecay,
    InverseTimeDecay,
    StaircaseDecay,
)
from keras_opts.schedules.warmup import Warmup, WarmupStableDecay
from keras_opts.schedules.warmup_linear_decay import WarmupLinearDecay

__all__ = [
    "Cyclical",
    "ExponentialDecay",
    "GeometricDecay",
    "InverseSqrtDecay",
    "InverseTimeDecay",
    "OneCycle",
    "StaircaseDecay",
    "Warmup",
    "WarmupLinearDecay",
    "WarmupStableDecay",
]
