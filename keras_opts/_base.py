"""The thin base class every keras_opts optimizer derives from.

It adds five things to ``keras.optimizers.Optimizer``:

- the learning rate and the base-class numbers (``weight_decay``, clipping,
  ``loss_scale_factor``) are checked before Keras creates any variable;
- ``coupled_weight_decay``: L2 regularisation folded into the gradient
  (``g <- g + lambda * w``), the ``weight_decay`` of torch.optim's Adam, SGD
  and RAdam. Keras' own ``weight_decay`` stays the decoupled form
  ``w <- w - lr * lambda * w`` applied by the base class before
  ``update_step``; the two are independent and never applied twice;
- a subclass can scale Keras' decoupled decay by ``_weight_decay_factor``
  (AdamW's paper form);
- ``skip_nonfinite``: a step whose gradients hold a NaN or an infinity
  changes nothing (weights, slots, ``iterations``), as under
  ``LossScaleOptimizer`` but without loss scaling. Without it such a step
  is applied and its NaN or infinity reaches the weights and slots, as in
  Keras' own optimizers;
- ``lazy_rows``: only the rows (slices along the first axis) of a
  variable whose gradient is non-zero are updated; the others and their
  slots keep their values, as tensorflow-addons' LazyAdam does for
  embeddings. For element-wise algorithms only;
- sparse gradients (TensorFlow's ``IndexedSlices`` from an ``Embedding``)
  are made dense before the update, so they give the dense result;
- ``gradient_centralization``: every gradient of rank >= 2 has its mean
  over all axes but the last removed before clipping (Yong et al., 2020),
  for any keras_opts optimizer;
- ``get_config`` that merges the subclass' algorithm arguments;
- the update written once (``_kernel``, see ``keras_opts._kernels``): the
  base class runs it per variable through ``keras.ops`` on TensorFlow and
  JAX, and over all variables at once through ``torch._foreach_*`` on
  torch. A subclass that overrides ``update_step`` gets Keras' loop over
  its own ``update_step`` instead.

Private Keras API used here, and nowhere else: ``_use_weight_decay`` (which
honours ``exclude_from_weight_decay``), ``_get_variable_index`` and the
``_apply_weight_decay`` hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_opts import _checks, _kernels

_BASE_CHECKS = {
    "weight_decay": _checks.non_negative,
    "clipnorm": _checks.positive,
    "clipvalue": _checks.positive,
    "global_clipnorm": _checks.positive,
    "loss_scale_factor": _checks.positive,
}


class Optimizer(keras.optimizers.Optimizer):
    """Base class: subclasses pass their checked algorithm arguments as
    ``algorithm`` (they become attributes, saved by ``get_config``), name
    their slots in ``_slot_names`` and write ``_coefficients`` (the scalars
    of a step) and ``_kernel`` (the update)."""

    #: Set to False to run the per-variable ``keras.ops`` loop on torch too.
    use_foreach = True
    #: False where a variable's step depends on the whole variable (a
    #: per-layer norm, a global estimate): no ``lazy_rows`` then.
    _elementwise = True
    #: True where ``weight_decay`` is part of the algorithm (NovoGrad, LARS,
    #: Prodigy): Keras' decoupled decay is not applied, and the kernel gets
    #: each variable's coefficient as ``c["decay"]`` (0 for a variable
    #: excluded by ``exclude_from_weight_decay``).
    _decay_in_kernel = False

    def __init__(
        self,
        learning_rate: Any,
        algorithm: Mapping[str, Any],
        *,
        coupled_weight_decay: float = 0.0,
        skip_nonfinite: bool = False,
        gradient_centralization: bool = False,
        lazy_rows: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        _checks.learning_rate(learning_rate)
        lazy_rows = _checks.boolean("lazy_rows", lazy_rows)
        if lazy_rows and not self._elementwise:
            raise ValueError(
                f"{type(self).__name__} cannot update rows lazily: its step "
                "depends on the whole variable, not on each entry alone. "
                f"Received: lazy_rows={lazy_rows!r}"
            )
        skip_nonfinite = _checks.boolean("skip_nonfinite", skip_nonfinite)
        centralize = _checks.boolean(
            "gradient_centralization", gradient_centralization
        )
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
        self.skip_nonfinite = skip_nonfinite
        self.gradient_centralization = centralize
        self.lazy_rows = lazy_rows
        self._inside_stateless_apply = False
        #: Names of the algorithm arguments, saved by ``get_config``.
        self._config_keys = tuple(algorithm)
        for key, value in algorithm.items():
            setattr(self, key, value)

    def apply(self, grads, trainable_variables=None):
        if not self.skip_nonfinite or self._inside_stateless_apply:
            return super().apply(grads, trainable_variables)
        if not self.built:  # never create variables inside a cond branch
            self.build(list(trainable_variables))
        base_apply = keras.optimizers.Optimizer.apply
        # Centralized (a linear map, so before accumulation and unscaling
        # is the same) before the branch: inside it, TensorFlow's
        # all-reduce of the centralized gradients fails ("All
        # custom_gradient outputs should be from the same graph").
        if self.gradient_centralization:
            grads = [_centralize(g) for g in grads]
        finite = _all_finite(grads)
        centralize, self.gradient_centralization = (
            self.gradient_centralization,
            False,
        )
        try:
            if keras.backend.backend() == "jax":
                # Stateful JAX runs eagerly (jit goes through
                # stateless_apply), and lax.cond cannot assign to
                # variables: branch in Python.
                if bool(finite):
                    base_apply(self, grads, trainable_variables)
                return
            ops.cond(
                finite,
                lambda: base_apply(self, grads, trainable_variables),
                lambda: None,
            )
        finally:
            self.gradient_centralization = centralize

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """JAX's ``fit()`` path: the same skip, written with values."""
        if not self.skip_nonfinite:
            return super().stateless_apply(
                optimizer_variables, grads, trainable_variables
            )

        def finite():
            self._inside_stateless_apply = True
            try:
                return keras.optimizers.Optimizer.stateless_apply(
                    self, optimizer_variables, grads, trainable_variables
                )
            finally:
                self._inside_stateless_apply = False

        return ops.cond(
            _all_finite(grads),
            finite,
            lambda: (list(trainable_variables), list(optimizer_variables)),
        )

    def _slot_names(self) -> tuple[str, ...]:
        """The per-variable slots this configuration needs, in order."""
        return ()

    def _slot_initializer(self, name: str) -> Any:
        return "zeros"

    def _scalar_slot_names(self) -> tuple[str, ...]:
        """The per-variable scalar slots (one number per variable, as
        NovoGrad's layer-wise second moment), in order."""
        return ()

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._slots = {
            name: self.add_optimizer_variables(
                variables, name, initializer=self._slot_initializer(name)
            )
            for name in self._slot_names()
        }
        for name in self._scalar_slot_names():
            self._slots[name] = [
                self.add_variable(
                    shape=(),
                    initializer=self._slot_initializer(name),
                    dtype=variable.dtype,
                    name=f"{variable.path.replace('/', '_')}_{name}",
                )
                for variable in variables
            ]

    def _coefficients(self, learning_rate, step) -> dict[str, Any]:
        """The scalars of one step, from the learning rate and ``t`` (0-d
        tensors of the variables' dtype); computed once per step on torch."""
        return {"lr": learning_rate}

    def _kernel(self, k, p, g, s, c) -> None:
        """The update of parameter ``p`` from gradient ``g``, slots ``s`` and
        scalars ``c``, written with the ops of ``k``
        (``keras_opts._kernels``)."""
        raise NotImplementedError

    def _fused(self, p, g, s, learning_rate, step, weight_decay) -> bool:
        """torch only: apply torch's fused kernel to the lists ``p``, ``g``
        and slots ``s``, with ``weight_decay`` as its coupled L2 term, and
        return True, where it computes this configuration's update; else
        return False (the default)."""
        return False

    def _variable_coefficients(self, variable) -> dict[str, float]:
        """Numbers of the kernel's ``c`` that differ between variables
        (LARS' layer-adaptation mask), as floats; on torch's foreach
        path each becomes a 1-D tensor with one entry per variable. None
        by default."""
        return {}

    def _begin_update(self) -> None:
        """Runs once per step before the variables are updated."""

    def _end_update(self) -> None:
        """Runs once per step after every variable is updated (a global
        quantity computed from every variable's slots: Prodigy's d)."""

    def update_step(self, gradient, variable, learning_rate):
        if 0 in tuple(variable.shape):
            # Nothing to update; and Keras' TensorFlow `add` turns some
            # empty shapes into a failing `bias_add`.
            return
        coefficients = self._coefficients(
            ops.cast(learning_rate, variable.dtype), self._step(variable)
        )
        if self._decay_in_kernel:
            coefficients["decay"] = self._kernel_decay(variable)
        coefficients.update(self._variable_coefficients(variable))
        slots = _kernels._Slots(
            {
                name: self._slot(slot, variable)
                for name, slot in self._slots.items()
            }
        )
        if not self.lazy_rows or not variable.shape:
            self._kernel(
                _kernels.Single(self),
                variable,
                self._gradient(gradient, variable),
                slots,
                coefficients,
            )
            return
        # Update everything, then put back the rows the gradient (before
        # any L2 term, which touches every row) missed.
        axes = tuple(range(1, len(variable.shape)))
        touched = ops.not_equal(_dense(gradient), 0)
        gradient = self._gradient(gradient, variable)
        if axes:
            touched = ops.any(touched, axis=axes, keepdims=True)
        state = [variable, *slots.values()]
        # Copies of the values (torch assigns in place).
        before = [ops.copy(ops.convert_to_tensor(x)) for x in state]
        if self._lazy_decay(variable):  # Keras' decoupled decay, here
            factor = self.weight_decay * self._weight_decay_factor()
            rate = ops.cast(learning_rate, variable.dtype) * factor
            self.assign(variable, variable - variable * rate)
        self._kernel(
            _kernels.Single(self), variable, gradient, slots, coefficients
        )
        for x, old in zip(state, before):
            new = ops.convert_to_tensor(x)
            self.assign(x, ops.where(touched, new, old))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self._begin_update()
        if (
            self.use_foreach
            and not self.lazy_rows
            and keras.backend.backend() == "torch"
            and type(self).update_step is Optimizer.update_step
        ):
            _kernels.foreach_update(
                self, grads, trainable_variables, learning_rate
            )
        else:
            super()._backend_update_step(
                grads, trainable_variables, learning_rate
            )
        self._end_update()

    def _kernel_decay(self, variable) -> float:
        """``weight_decay`` for ``variable``, 0 where it is excluded."""
        if not self.weight_decay or not self._use_weight_decay(variable):
            return 0.0
        return float(self.weight_decay)

    def _clip_gradients(self, grads):
        """Gradient centralization (Yong et al., 2020), then Keras'
        clipping: a gradient of rank >= 2 loses its mean over every axis
        but the last (the output units of a Dense or conv kernel)."""
        if self.gradient_centralization:
            grads = [_centralize(g) for g in grads]
        return super()._clip_gradients(grads)

    def _slot(self, slots: list, variable) -> Any:
        """The slot of ``slots`` that belongs to ``variable``."""
        return slots[self._get_variable_index(variable)]

    def _gradient(self, gradient, variable):
        """The gradient, dense, in the variable's dtype, with coupled L2
        added."""
        gradient = ops.cast(_dense(gradient), variable.dtype)
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

    def _lazy_decay(self, variable) -> bool:
        """Whether ``update_step`` applies Keras' decoupled decay to
        ``variable`` (under ``lazy_rows``, so untouched rows escape it)."""
        return bool(
            self.lazy_rows
            and self.weight_decay
            and not self._decay_in_kernel
            and self._use_weight_decay(variable)
        )

    def _apply_weight_decay(self, variables):
        if self._decay_in_kernel:
            return None  # the algorithm applies it (``c["decay"]``)
        if self.lazy_rows:
            # update_step applies it with the rows; a rank-0 variable has
            # no rows and gets it here.
            variables = [v for v in variables if not v.shape]
            if not variables:
                return None
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

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Like Keras', but a config must name every argument of the class
        (a missing one would silently become its default); unknown keys
        and bad values fail as in ``__init__``."""
        required = _checks.init_arguments(cls) - {"name"}
        _checks.config_keys(cls, config, required)
        return super().from_config(dict(config), custom_objects)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["coupled_weight_decay"] = self.coupled_weight_decay
        config["skip_nonfinite"] = self.skip_nonfinite
        config["gradient_centralization"] = self.gradient_centralization
        config["lazy_rows"] = self.lazy_rows
        config.update({key: getattr(self, key) for key in self._config_keys})
        return config


def _dense(gradient):
    """TensorFlow's ``IndexedSlices`` (an ``Embedding``'s gradient) as a
    dense tensor, duplicate indices summed; anything else unchanged."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
    return gradient


def _centralize(gradient):
    if gradient is None or len(gradient.shape) < 2:
        return gradient
    gradient = _dense(gradient)
    axes = tuple(range(len(gradient.shape) - 1))
    return gradient - ops.mean(gradient, axis=axes, keepdims=True)


def _all_finite(grads):
    """One boolean: every entry of every gradient is finite."""
    flags = [ops.all(ops.isfinite(_dense(g))) for g in grads if g is not None]
    return ops.all(ops.stack(flags))
