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
- ``weight_decay`` may be a ``LearningRateSchedule`` or a callable, as in
  tensorflow-addons' optimizers: evaluated at ``iterations`` like the
  learning rate, for Keras' decoupled decay and the algorithms that own
  their decay alike, and serialized by ``get_config``;
- ``skip_nonfinite``: a step whose gradients hold a NaN or an infinity
  changes nothing (weights, slots, ``iterations``), as under
  ``LossScaleOptimizer`` but without loss scaling. Without it such a step
  is applied and its NaN or infinity reaches the weights and slots, as in
  Keras' own optimizers;
- ``lazy_rows``: only the rows (slices along the first axis) of a
  variable whose gradient is non-zero are updated; the others and their
  slots keep their values, as tensorflow-addons' LazyAdam does for
  embeddings. For element-wise algorithms only;
- sparse gradients (TensorFlow's ``IndexedSlices`` from an ``Embedding``,
  JAX's ``BCOO``) are made dense before the update, so they give the
  dense result (``lazy_rows`` keeps the untouched rows as they are);
- ``gradient_centralization``: every gradient of rank >= 2 has its mean
  over all axes but the last removed before clipping (Yong et al., 2020),
  for any keras_opts optimizer;
- ``get_config`` that merges the subclass' algorithm arguments (the
  learning rate written as the shortest decimal of its stored value), and
  ``from_config`` that, as Keras', gives a missing argument its default;
- a default ``name`` that is the lower-cased class name (``"radam"``),
  made unique as Keras does;
- the update written once (``_kernel``, see ``keras_opts._core.kernels``): the
  base class runs it per variable through ``keras.ops`` on TensorFlow and
  JAX, and over all variables at once through ``torch._foreach_*`` on
  torch. A subclass that overrides ``update_step`` gets Keras' loop over
  its own ``update_step`` instead.

Private Keras API used here, and nowhere else: ``_use_weight_decay`` (which
honours ``exclude_from_weight_decay``), ``_get_variable_index``, the
``_apply_weight_decay`` hook and ``keras.src.utils.naming.auto_name`` (the
name counter Keras' own optimizers share).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops
from keras.src.utils.naming import auto_name

from keras_opts._core import checks, kernels

_BASE_CHECKS = {
    "weight_decay": checks.weight_decay,
    "clipnorm": checks.positive,
    "clipvalue": checks.positive,
    "global_clipnorm": checks.positive,
    "loss_scale_factor": checks.positive,
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
        checks.learning_rate(learning_rate)
        lazy_rows = checks.boolean("lazy_rows", lazy_rows)
        if lazy_rows and not self._elementwise:
            raise ValueError(
                f"{type(self).__name__} cannot update rows lazily: its step "
                "depends on the whole variable, not on each entry alone. "
                f"Received: lazy_rows={lazy_rows!r}"
            )
        skip_nonfinite = checks.boolean("skip_nonfinite", skip_nonfinite)
        centralize = checks.boolean(
            "gradient_centralization", gradient_centralization
        )
        coupled = checks.non_negative(
            "coupled_weight_decay", coupled_weight_decay
        )
        # Keras checks ema_momentum, ema_overwrite_frequency and
        # gradient_accumulation_steps itself, before creating variables.
        for key, check in _BASE_CHECKS.items():
            if kwargs.get(key) is not None:
                kwargs[key] = check(key, kwargs[key])
        if name is None:  # Keras would snake-case the class name: r_adam
            name = auto_name(type(self).__name__.lower())
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
        if (
            not self.skip_nonfinite
            or self._inside_stateless_apply
            or _no_gradient(grads)  # Keras' own error
            or (trainable_variables is None and not self.built)
        ):
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
        if not self.skip_nonfinite or _no_gradient(grads):
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
                    name=f"{_slot_prefix(variable)}_{name}",
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
        (``keras_opts._core.kernels``)."""
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
        slots = kernels._Slots(
            {
                name: self._slot(slot, variable)
                for name, slot in self._slots.items()
            }
        )
        if not self.lazy_rows or not variable.shape:
            self._decoupled_decay(variable, learning_rate)
            self._kernel(
                kernels.Single(self),
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
        if axes:
            touched = ops.any(touched, axis=axes, keepdims=True)
        state = [variable, *slots.values()]
        # Copies of the values (torch assigns in place).
        before = [ops.copy(ops.convert_to_tensor(x)) for x in state]
        self._decoupled_decay(variable, learning_rate)
        gradient = self._gradient(gradient, variable)
        self._kernel(
            kernels.Single(self), variable, gradient, slots, coefficients
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
            kernels.foreach_update(
                self, grads, trainable_variables, learning_rate
            )
        else:
            super()._backend_update_step(
                grads, trainable_variables, learning_rate
            )
        self._end_update()

    def _kernel_decay(self, variable) -> Any:
        """``weight_decay`` for ``variable`` now (a float, or a 0-d tensor
        of its dtype where it is a schedule), 0 where it is excluded."""
        if not self.weight_decay or not self._use_weight_decay(variable):
            return 0.0
        value = self._current_weight_decay()
        if isinstance(value, numbers.Real):
            return float(value)
        return ops.cast(value, variable.dtype)

    def _current_weight_decay(self) -> Any:
        """``weight_decay`` at this step: a schedule is evaluated at
        ``iterations`` and a callable called, as Keras does for the
        learning rate."""
        value = self.weight_decay
        if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
            return value(self.iterations)
        if callable(value):
            return value()
        return value

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

    def _decays_in_step(self) -> bool:
        """Whether Keras' decoupled decay is applied with each variable's
        update (``_decoupled_decay``) rather than by Keras before all of
        them: under ``lazy_rows`` (untouched rows escape it), for a
        scheduled ``weight_decay`` and for a scaled one (AdamW's
        ``_weight_decay_factor``). Each backend's own
        ``_apply_weight_decay`` reads a constant ``weight_decay``; the
        update step runs per variable in TensorFlow's distributed update
        context, where reading the schedule is safe."""
        return bool(
            self.weight_decay
            and not self._decay_in_kernel
            and (
                self.lazy_rows
                or not isinstance(self.weight_decay, numbers.Real)
                or self._weight_decay_factor() != 1.0
            )
        )

    def _decoupled_coefficient(self, dtype) -> Any:
        """``weight_decay * _weight_decay_factor()`` now, in ``dtype``."""
        value = self._current_weight_decay()
        factor = self._weight_decay_factor()
        if factor != 1.0:
            value = value * factor
        return ops.cast(value, dtype)

    def _decoupled_decay(self, variable, learning_rate) -> None:
        """Keras' ``w <- w - w * weight_decay * lr`` where it is applied in
        the update step (``_decays_in_step``), written as each backend's
        ``_apply_weight_decay`` writes it on TensorFlow and JAX."""
        if not self._decays_in_step() or not self._use_weight_decay(variable):
            return
        lr = ops.cast(learning_rate, variable.dtype)
        wd = self._decoupled_coefficient(variable.dtype)
        self.assign_sub(variable, variable * wd * lr)

    def _apply_weight_decay(self, variables):
        if self._decay_in_kernel:
            return None  # the algorithm applies it (``c["decay"]``)
        if self._decays_in_step():
            return None  # update_step applies it (``_decoupled_decay``)
        return super()._apply_weight_decay(variables)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Keras' convention, ``cls(**config)``: a missing argument takes
        its default (``keras.optimizers.get("keras_opts>RAdam")`` passes
        an empty config); unknown keys and bad values fail as in
        ``__init__``. A ``weight_decay`` schedule is deserialized like the
        learning rate's."""
        checks.config_dict(cls, config)
        config = dict(config)
        if isinstance(config.get("weight_decay"), dict):
            config["weight_decay"] = keras.saving.deserialize_keras_object(
                config["weight_decay"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if isinstance(self._learning_rate, keras.Variable):
            # 0.001, not float32's 0.0010000000474974513: the shortest
            # decimal that gives the same stored value.
            config["learning_rate"] = _shortest_float(self._learning_rate)
        if callable(self.weight_decay):  # a schedule, as Keras saves one
            config["weight_decay"] = keras.saving.serialize_keras_object(
                self.weight_decay
            )
        config["coupled_weight_decay"] = self.coupled_weight_decay
        config["skip_nonfinite"] = self.skip_nonfinite
        config["gradient_centralization"] = self.gradient_centralization
        config["lazy_rows"] = self.lazy_rows
        config.update({key: getattr(self, key) for key in self._config_keys})
        return config


def _dense(gradient):
    """A sparse gradient as a dense tensor, duplicate indices summed:
    TensorFlow's ``IndexedSlices`` (an ``Embedding``'s gradient) and
    ``SparseTensor``, JAX's ``BCOO``; anything else unchanged."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
        if isinstance(gradient, tf.SparseTensor):
            return tf.sparse.to_dense(gradient)
    elif backend == "jax":
        from jax.experimental import sparse

        if isinstance(gradient, sparse.JAXSparse):
            return gradient.todense()
    return gradient


def _centralize(gradient):
    if gradient is None:
        return gradient
    # Dense first: the shape of an IndexedSlices built with a tuple
    # `dense_shape` cannot be read.
    gradient = _dense(gradient)
    if len(gradient.shape) < 2:
        return gradient
    axes = tuple(range(len(gradient.shape) - 1))
    return gradient - ops.mean(gradient, axis=axes, keepdims=True)


def _no_gradient(grads) -> bool:
    """Every gradient is None: Keras raises "No gradients provided"."""
    return len(grads) > 0 and all(g is None for g in grads)


def _all_finite(grads):
    """One boolean: every entry of every gradient is finite."""
    flags = [ops.all(ops.isfinite(_dense(g))) for g in grads if g is not None]
    return ops.all(ops.stack(flags))


def _slot_prefix(variable) -> str:
    """The name a slot of ``variable`` starts with, as Keras'
    ``add_variable_from_reference`` writes it: from ``path``, or from
    ``name`` for a plain ``tf.Variable``, which has no path."""
    if hasattr(variable, "path"):
        return variable.path.replace("/", "_")
    return str(variable.name).replace("/", "_").replace(":", "_")


def _shortest_float(variable) -> float:
    """The shortest decimal that rounds to ``variable``'s stored value
    (NumPy prints a scalar of each dtype that way)."""
    return float(str(np.asarray(keras.ops.convert_to_numpy(variable))[()]))
