"""Learning-rate schedules: pure, serializable ``step -> learning rate``."""

from keras_opts.schedules.warmup_linear_decay import WarmupLinearDecay

__all__ = ["WarmupLinearDecay"]
