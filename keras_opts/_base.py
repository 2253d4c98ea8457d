"""The thin base class every keras_opts optimizer derives from.

It adds four things to ``keras.optimizers.Optimizer``:

- the learning rate and the base-class numbers (``weight_decay``, clipping,
  ``loss_scale_factor``) are checked before Keras creates any variable;
- ``coupled_weight_decay``: L2 regularisation folded into the gradient
  (``g <- g + lambda * w``), the ``weight_decay`` of torch.optim's Adam, SGD
  and RAdam. Keras' own ``weight_decay`` stays the decoupled form
  ``w <- w - lr * lambda * w`` applied by the base class before
  ``update_step``; the two are independent and never applied twice;
- a subclass can scale Keras' decoupled decay by ``_weight_decay_factor``
  (AdamW's paper form);
- ``get_config`` that merges the subclass' algorithm arguments.

Private Keras API used here, and nowhere else: ``_use_weight_decay`` (which
honours ``exclude_from_weight_decay``), ``_get_variable_index`` and the
``_apply_weight_decay`` hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_opts import _checks

_BASE_CHECKS = {
    "weight_decay": _checks.non_negative,
    "clipnorm": _checks.positive,
    "clipvalue": _checks.positive,
    "global_clipnorm": _checks.positive,
    "loss_scale_factor": _checks.positive,
}


class Optimizer(keras.optimizers.Optimizer):
    """Base class: subclasses pass their checked algorithm arguments as
    ``algorithm`` (they become attributes, saved by ``get_config``) and
    write ``build`` and ``update_step``."""

    def __init__(
        self,
        learning_rate: Any,
        algorithm: Mapping[str, Any],
        *,
        coupled_weight_decay: float = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        _checks.learning_rate(learning_rate)
        coupled = _checks.non_negative(
            "coupled_weight_decay", coupled_weight_decay
        )
        # Keras checks ema_momentum, ema_overwrite_frequency and
        # gradient_accumulation_steps itself, before creating variables.
        for key, check in _BASE_CHECKS.items():
            if kwargs.get(key) is not None:
                kwargs[key] = check(key, kwargs[key])
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.coupled_weight_decay = coupled
        #: Names of the algorithm arguments, saved by ``get_config``.
        self._config_keys = tuple(algorithm)
        for key, value in algorithm.items():
            setattr(self, key, value)

    def _slot(self, slots: list, variable) -> Any:
        """The slot of ``slots`` that belongs to ``variable``."""
        return slots[self._get_variable_index(variable)]

    def _gradient(self, gradient, variable):
        """The gradient in the variable's dtype, with coupled L2 added."""
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay and self._use_weight_decay(variable):
            gradient = gradient + self.coupled_weight_decay * variable
        return gradient

    def _step(self, variable):
        """``t``, the 1-based count of this update, in the variable's dtype.

        ``iterations`` already counts only real updates under gradient
        accumulation, and skipped loss-scale overflow steps do not count.
        """
        return ops.cast(self.iterations + 1, variable.dtype)

    def _weight_decay_factor(self) -> float:
        """Keras' decoupled decay is ``w -= lr * weight_decay * factor * w``.

        1 here; a subclass overrides it.
        """
        return 1.0

    def _apply_weight_decay(self, variables):
        factor = self._weight_decay_factor()
        if self.weight_decay is None or factor == 1.0:
            return super()._apply_weight_decay(variables)
        # Each backend's _apply_weight_decay (TensorFlow's is
        # distribution-aware) reads `weight_decay` when traced: scale the
        # attribute around the call to reuse them unchanged.
        coefficient = self.weight_decay
        self.weight_decay = coefficient * factor
        try:
            return super()._apply_weight_decay(variables)
        finally:
            self.weight_decay = coefficient

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["coupled_weight_decay"] = self.coupled_weight_decay
        config.update({key: getattr(self, key) for key in self._config_keys})
        return config
