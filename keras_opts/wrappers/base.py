"""What Lookahead and SWA share: an optimizer that wraps another one.

A wrapper is a ``keras.optimizers.Optimizer`` (so ``compile`` and ``fit``
take it on every backend) that never runs Keras' own update. Each step it

1. runs the subclass' ``_before_inner_step``;
2. lets the inner optimizer update the weights: ``apply`` on TensorFlow,
   torch and eager JAX, ``stateless_apply`` inside JAX's jitted ``fit``;
3. counts the inner optimizer's real updates in its own step counter
   (``_update_count``, Keras' step counter of the wrapper; its public
   ``iterations`` is the inner optimizer's): a step the inner optimizer
   skips (a non-finite gradient under ``skip_nonfinite`` or
   ``LossScaleOptimizer``) or only accumulates
   (``gradient_accumulation_steps``) does not count;
4. runs the subclass' ``_after_inner_step`` with that count.

The hooks assign ``ops.where`` values to variables (through the
optimizer's ``assign``, as Keras asks of an optimizer), never branch in
Python on a tensor, so one program traces once under ``tf.function`` and
``jax.jit``, and the same code runs on variables and, for JAX, inside a
``StatelessScope``.

``variables`` are the wrapper's own followed by the inner optimizer's, so
JAX's training state carries both and ``set_weights`` restores both;
``.keras`` and ``.weights.h5`` files store each optimizer's own variables
under its own path.

A trainable variable with ``overwrite_with_gradient`` (the scales and amax
histories of a float8-quantized layer) gets no slots, as in Keras: the
inner optimizer overwrites it with its "gradient" and the hooks leave it
alone (``_with_slots``). Values are read with ``read``, which also takes
a raw ``tf.Variable``.
``learning_rate``, ``iterations``, ``scale_loss`` and
``finalize_variable_values`` are the inner optimizer's.

Private Keras API goes through ``keras_opts._core.keras_api``.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_opts._core import keras_api
from keras_opts._core.config import (
    checked_config,
    declared_config,
    take_declared,
)


def read(variable):
    """A variable's value as a tensor: ``.value`` of a ``keras.Variable``
    (inside a ``StatelessScope``, the scope's value); on TensorFlow a raw
    ``tf.Variable`` works as a tensor itself (its ``value`` is a method)."""
    if isinstance(variable, keras.Variable):
        return variable.value
    return ops.convert_to_tensor(variable)


def no_grad():
    """torch.no_grad() on torch (no autograd graph for the updates)."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


class Wrapper(keras.optimizers.Optimizer):
    """Base class: a subclass declares its arguments in its signature,
    each annotated with its rule (``sync_period: Annotated[int,
    checks.at_least(1)] = 6``), passes them on
    (``super().__init__(**config.given(locals()))``), which checks them,
    sets them as attributes and saves them (``keras_opts._core.config``),
    and writes ``_build_state``, ``_before_inner_step`` and
    ``_after_inner_step``."""

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        cls = type(self).__name__
        arguments = take_declared(type(self), kwargs)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                f"`optimizer` must be a keras.optimizers.Optimizer instance. "
                f"Received: optimizer={optimizer!r} of type "
                f"{type(optimizer).__name__}."
            )
        if kwargs:
            # Clipping, weight decay, EMA, accumulation and loss scaling
            # belong to the optimizer that computes the update.
            key = sorted(kwargs)[0]
            raise ValueError(
                f"{cls} has no argument `{key}`: set it on the inner "
                f"optimizer. Received: {key}={kwargs[key]!r}"
            )
        # A callable learning rate creates no variable; the property below
        # answers with the inner optimizer's.
        super().__init__(learning_rate=self._inner_learning_rate, name=name)
        self.inner_optimizer = optimizer
        for key, value in arguments.items():
            setattr(self, key, value)

    # The inner optimizer's learning rate, iterations and loss scaling.

    def _inner_learning_rate(self):
        return self.inner_optimizer.learning_rate

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        """The inner optimizer's ``iterations``, which its schedule reads."""
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # State.

    @property
    def variables(self):
        return keras_api.own_variables(self)[:] + self.inner_optimizer.variables

    def build(self, variables):
        if self.built:
            return
        variables = list(variables)
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(variables)
        super().build(variables)
        self._build_state(variables)

    def _build_state(self, variables) -> None:
        """Creates the wrapper's own variables."""

    def _with_slots(self, slots: list, variables) -> list:
        """``(variable, slot)`` for each of ``variables`` that has a slot in
        ``slots``, in order. ``add_optimizer_variables`` creates none (a
        ``None``) for an ``overwrite_with_gradient`` variable."""
        pairs = [
            (v, slots[keras_api.variable_index(self, v)]) for v in variables
        ]
        return [(v, slot) for v, slot in pairs if slot is not None]

    def set_weights(self, weights):
        """Assigns ``weights`` to ``variables``: the wrapper's own, then the
        inner optimizer's, in that order. The whole list is checked first:
        a list of the wrong length or a weight of the wrong shape raises
        ``ValueError`` and changes nothing."""
        if not self.built:
            # Keras' error: there are no variables yet.
            return super().set_weights(weights)
        cls = type(self).__name__
        variables, weights = self.variables, list(weights)
        own = len(keras_api.own_variables(self))
        if len(weights) != len(variables):
            raise ValueError(
                f"{cls}.set_weights expects {len(variables)} weights ({own} "
                f"of its own, then {len(variables) - own} of the inner "
                f"optimizer's), in the order of `variables`. Received: "
                f"{len(weights)} weights."
            )
        for i, (variable, weight) in enumerate(zip(variables, weights)):
            shape = getattr(weight, "shape", None)
            shape = tuple(np.shape(weight) if shape is None else shape)
            if shape != tuple(variable.shape):
                raise ValueError(
                    f"{cls}.set_weights: weight {i} ({variable.path}) must "
                    f"have shape {tuple(variable.shape)}. Received: shape "
                    f"{shape}."
                )
        for variable, weight in zip(variables, weights):
            variable.assign(weight)

    def save_own_variables(self, store):
        """Only the wrapper's own variables: Keras saves the inner
        optimizer, an attribute, under its own path."""
        for i, variable in enumerate(keras_api.own_variables(self)):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        """Like Keras': a saved state that does not fit (an optimizer saved
        before it was built) is skipped with a warning."""
        own = keras_api.own_variables(self)
        if len(store.keys()) != len(own):
            warnings.warn(
                f"Skipping variable loading for optimizer '{self.name}': it "
                f"has {len(own)} variables of its own, the "
                f"saved one {len(store.keys())}.",
                stacklevel=2,
            )
            return
        for i, variable in enumerate(own):
            variable.assign(store[str(i)])

    # The step.

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    f"{type(self).__name__} must be built before `apply` "
                    "is called without `trainable_variables`."
                )
            variables = keras_api.built_variables(self)
        else:
            variables = list(trainable_variables)
            if not self.built:
                with keras.name_scope(self.name, caller=self):
                    self.build(variables)
        grads = list(grads)
        with no_grad():
            self._step(
                variables,
                lambda: self.inner_optimizer.apply(grads, variables),
            )

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """JAX's ``fit()`` path: the same step inside a ``StatelessScope``,
        with the inner optimizer's ``stateless_apply``."""
        if keras.backend.backend() == "tensorflow":
            # Keras' TensorFlow optimizer raises: tf.distribute needs
            # variables.
            return super().stateless_apply(
                optimizer_variables, grads, trainable_variables
            )
        if not self.built:
            raise ValueError(
                f"To call `stateless_apply`, {type(self).__name__} must be "
                "built: call `optimizer.build(trainable_variables)`."
            )
        variables = keras_api.built_variables(self)
        inner = self.inner_optimizer
        if len(optimizer_variables) != len(self.variables) or len(
            trainable_variables
        ) != len(variables):
            raise ValueError(
                f"{type(self).__name__}.stateless_apply expects "
                f"{len(self.variables)} optimizer variables and "
                f"{len(variables)} trainable variables. Received: "
                f"{len(optimizer_variables)} and {len(trainable_variables)}."
            )

        def inner_step():
            new_values, new_state = inner.stateless_apply(
                [v.value for v in inner.variables],
                list(grads),
                [read(v) for v in variables],
            )
            for variable, value in zip(variables, new_values):
                variable.assign(value)
            for variable, value in zip(inner.variables, new_state):
                variable.assign(value)

        mapping = list(zip(variables, trainable_variables)) + list(
            zip(self.variables, optimizer_variables)
        )
        with keras.StatelessScope(state_mapping=mapping) as scope:
            self._step(variables, inner_step)
        return (
            [scope.get_current_value(v) for v in variables],
            [scope.get_current_value(v) for v in self.variables],
        )

    def _step(self, variables, inner_step) -> None:
        inner = self.inner_optimizer
        before = ops.copy(ops.convert_to_tensor(inner.iterations))
        self._before_inner_step(variables)
        inner_step()
        advanced = ops.not_equal(
            ops.convert_to_tensor(inner.iterations), before
        )
        counter = self._update_count
        count = ops.convert_to_tensor(counter) + ops.cast(
            advanced, counter.dtype
        )
        counter.assign(count)
        self._after_inner_step(variables, advanced, count)

    @property
    def _update_count(self):
        """The wrapper's own step counter: the updates the inner optimizer
        made through it (Keras' counter variable, free here since
        ``iterations`` answers with the inner optimizer's)."""
        return keras_api.own_iterations(self)

    def _before_inner_step(self, variables) -> None:
        """Runs before the inner optimizer's step."""

    def _after_inner_step(self, variables, advanced, count) -> None:
        """Runs after it: ``advanced`` (a boolean tensor) says whether the
        inner optimizer made an update, ``count`` is the number of updates
        made through this wrapper so far (its step counter's new value)."""

    # Configuration.

    def get_config(self) -> dict[str, Any]:
        config = {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(
                self.inner_optimizer
            ),
        }
        config.update(declared_config(self))
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Keras' convention, ``cls(**config)``: a missing argument takes
        its default, but the inner ``optimizer`` has none; the inner
        optimizer is deserialized. Unknown keys and bad values fail as in
        ``__init__``."""
        config = checked_config(
            cls,
            config,
            required=("optimizer",),
            objects=("optimizer",),
            custom_objects=custom_objects,
        )
        return cls(**config)
