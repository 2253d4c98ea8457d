"""AdamW: Adam with weight decay decoupled from the gradient."""

from __future__ import annotations

from typing import Annotated, Any

import keras

from keras_opts._core import checks, config, formulas
from keras_opts.optimizers.adam import Adam

SCALINGS = ("learning_rate", "schedule")


@keras.saving.register_keras_serializable(package="keras_opts")
class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019), Algorithm 2.

    L2 regularisation added to the gradient is divided by Adam's adaptive
    denominator, so weights with large gradients are barely regularised.
    AdamW shrinks the weights directly instead, outside the adaptive step,
    so every weight decays at the same rate.

    Symbols: $\alpha$ = ``base_learning_rate``, $\eta_t$ the
    schedule multiplier, $\lambda$ = ``weight_decay``; the learning
    rate in effect at step $t$ is $\text{lr}_t = \alpha\eta_t$;
    $\hat m_t, \hat v_t$ and epsilon as in :class:`Adam`.

    $$
    \theta_t = \theta_{t-1} - \text{lr}_t\,
        \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} - d_t\,\theta_{t-1}
    $$

    with $d_t = \text{lr}_t \lambda$ for
    ``weight_decay_scaling="learning_rate"`` (the default: torch.optim.AdamW,
    Keras' AdamW and optax.adamw, whose recipes tune $\lambda$ for
    this form) and $d_t = \eta_t \lambda = \text{lr}_t \lambda /
    \alpha$ for ``"schedule"`` (the paper's Algorithm 2, where the decay
    follows the schedule but not the base learning rate, so
    $\lambda$ and $\alpha$ can be tuned separately).

    The decay is Keras' own decoupled ``weight_decay`` of the base class,
    applied once before the Adam step; ``exclude_from_weight_decay``
    applies.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        weight_decay: $\lambda \ge 0$, or a schedule of the step (a
            ``LearningRateSchedule`` or callable). Default 0.01 (torch's).
        weight_decay_scaling: ``"learning_rate"`` or ``"schedule"``.
        base_learning_rate: $\alpha$ for ``"schedule"`` scaling.
            Defaults to ``learning_rate`` when that is a number; needed when
            it is a schedule.
        beta_1: as in ``Adam``. Default 0.9.
        beta_2: as in ``Adam``. Default 0.999.
        epsilon: as in ``Adam``. Default 1e-8.
        amsgrad: as in ``Adam``. Default False.
        epsilon_mode: as in ``Adam``. Default ``"corrected"``.
        coupled_weight_decay: as in ``Adam``. Default 0.
        **kwargs: the other ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``torch.optim.AdamW(lr, betas, eps, weight_decay=w, amsgrad=a)`` and
      ``optax.adamw(lr, b1, b2, eps, weight_decay=w)`` =
      ``AdamW(lr, weight_decay=w, beta_1=b1, beta_2=b2, epsilon=eps,
      amsgrad=a)``;
    - ``keras.optimizers.AdamW(lr, weight_decay=w, epsilon=e)`` =
      ``AdamW(lr, weight_decay=w, epsilon=e, epsilon_mode="uncorrected")``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.AdamW(learning_rate=0.1, weight_decay=0.5)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]  # 0.95 w - 0.1 sign(g)
    [0.85, -1.8]

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR
        2019, https://arxiv.org/abs/1711.05101; authors' code:
        https://github.com/loshchil/AdamW-and-SGDW
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: checks.WeightDecay = 0.01,
        weight_decay_scaling: Annotated[str, checks.one_of(*SCALINGS)] = (
            "learning_rate"
        ),
        base_learning_rate: checks.OptionalPositive = None,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-8,
        amsgrad: checks.Flag = False,
        epsilon_mode: formulas.EpsilonMode = "corrected",
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))
        if self.base_learning_rate is None and self.weight_decay_scaling == (
            "schedule"
        ):
            self.base_learning_rate = float(learning_rate)

    def _check_arguments(self, arguments):
        if (
            arguments["weight_decay_scaling"] == "schedule"
            and arguments["base_learning_rate"] is None
            and callable(arguments["learning_rate"])
        ):
            raise ValueError(
                "`weight_decay_scaling='schedule'` with a learning-rate "
                "schedule needs `base_learning_rate` (the paper's alpha; "
                "the decay is lr_t * weight_decay / alpha). Received: "
                "base_learning_rate=None"
            )

    def _weight_decay_factor(self) -> float:
        if self.weight_decay_scaling == "learning_rate":
            return 1.0
        return 1.0 / self.base_learning_rate  # lr_t / alpha = eta_t
