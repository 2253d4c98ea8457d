"""The base class every keras_opts optimizer derives from.

An optimizer module holds its math and its settings, nothing else:

- **its hyperparameters**, once, in the signature of ``__init__``, each
  annotated with its rule (``beta_1: checks.DecayRate = 0.9``); the body
  passes them on, ``super().__init__(**config.given(locals()))``, and this
  class checks them before Keras creates any variable, sets them as
  attributes of the same names, saves them in ``get_config`` and gives a
  missing one its default in ``from_config``
  (``keras_opts._core.config.declared``);
- **its capabilities**, one frozen record
  (``keras_opts._core.step.Capabilities``): which of the options every
  optimizer has (``lazy_rows``, ``cautious``, ``state_dtype``, Keras'
  ``weight_decay``) its step allows, and how;
- **its state**: ``_slot_names()`` (one tensor per variable, in order),
  ``_slot_initializer(name)`` (zeros by default), ``_scalar_slot_names``
  (one number per variable);
- **its math**: ``_coefficients(learning_rate, t)``, the scalars of step
  ``t`` as a ``NamedTuple`` of its own, and ``_kernel(k, p, g, s, c)``, the
  update, written once in the vocabulary of ``keras_opts._core.kernels``.

Everything around the math, the same for every optimizer, runs in
``keras_opts._core.step`` as named stages in order. Private Keras API
goes through ``keras_opts._core.keras_api``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras

from keras_opts._core import (
    checks,
    foreach,
    gradients,
    keras_api,
    kernels,
    step,
)
from keras_opts._core.config import (
    checked_config,
    declared,
    shortest_float,
    take_declared,
)
from keras_opts._core.step import Capabilities

#: Keras' own arguments, checked here before Keras sees them (Keras checks
#: ema_momentum, ema_overwrite_frequency and gradient_accumulation_steps
#: itself, before creating variables).
_KERAS_CHECKS = {
    "weight_decay": checks.weight_decay,
    "clipnorm": checks.positive,
    "clipvalue": checks.positive,
    "global_clipnorm": checks.positive,
    "loss_scale_factor": checks.positive,
}


class LearningRate(NamedTuple):
    """The scalars of a step that needs only the learning rate."""

    learning_rate: Any


class Optimizer(keras_api.Hooks):
    r"""Base class (see the module docstring for what a subclass writes).

    Optional: ``_variable_coefficients`` (numbers that differ between
    variables), ``_fused`` (torch's fused kernel), ``_begin_update`` and
    ``_end_update`` (once per step), ``_weight_decay_factor``,
    ``_check_arguments`` (checks of several arguments together).

    Arguments of every optimizer beside Keras': ``coupled_weight_decay``
    (L2 folded into the gradient, torch.optim's ``weight_decay`` of Adam,
    SGD, RAdam), ``skip_nonfinite`` (a step with a NaN or an infinity in
    its gradients changes nothing, as under ``LossScaleOptimizer``),
    ``gradient_centralization`` (Yong et al., 2020), ``lazy_rows`` (only
    the rows with a non-zero gradient change, as tensorflow-addons'
    LazyAdam), ``cautious`` (the step masked where it disagrees in sign
    with the gradient, Liang et al. 2024), ``cautious_weight_decay`` (the
    decoupled decay only where the step and the weight agree in sign, Chen
    et al. 2025) and ``state_dtype`` (slots in
    bfloat16 or float16, stochastically rounded):
    ``keras_opts._core.step``.
    """

    #: What the step allows of the shared options (``step.Capabilities``).
    capabilities = Capabilities()
    #: Set to False to run the per-variable ``keras.ops`` loop on torch too.
    use_foreach = True
    #: Slots of one number per variable (NovoGrad's layer-wise second
    #: moment), created after ``_slot_names()``'s.
    _scalar_slot_names: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: Any,
        *,
        coupled_weight_decay: checks.NonNegative = 0.0,
        skip_nonfinite: checks.Flag = False,
        gradient_centralization: checks.Flag = False,
        lazy_rows: checks.Flag = False,
        cautious: checks.Flag = False,
        cautious_weight_decay: checks.Flag = False,
        state_dtype: checks.StateDtype = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        checks.learning_rate(learning_rate)
        given = dict(
            kwargs,
            coupled_weight_decay=coupled_weight_decay,
            skip_nonfinite=skip_nonfinite,
            gradient_centralization=gradient_centralization,
            lazy_rows=lazy_rows,
            cautious=cautious,
            cautious_weight_decay=cautious_weight_decay,
            state_dtype=state_dtype,
        )
        arguments = take_declared(type(self), given)
        step.checked(
            self,
            arguments,
            custom_step=type(self).update_step is not Optimizer.update_step,
        )
        self._check_arguments(dict(arguments, learning_rate=learning_rate))
        for key, check in _KERAS_CHECKS.items():
            if key in arguments:  # a Keras argument the algorithm declares
                given[key] = arguments.pop(key)
            elif given.get(key) is not None:
                given[key] = check(key, given[key])
        if name is None:  # Keras would snake-case the class name: r_adam
            name = keras_api.auto_name(type(self).__name__.lower())
        super().__init__(learning_rate=learning_rate, name=name, **given)
        for key, value in arguments.items():
            setattr(self, key, value)

    def _check_arguments(self, arguments: dict[str, Any]) -> None:
        """Checks of several arguments together (each is checked alone
        already), before any variable exists; ``arguments`` holds the
        declared hyperparameters and ``learning_rate``."""

    # Gradients: centralized, and a non-finite step skipped.

    def apply(self, grads, trainable_variables=None):
        return step.apply(self, super().apply, grads, trainable_variables)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """JAX's ``fit()`` path: the same skip, written with values."""
        return step.stateless_apply(
            self,
            super().stateless_apply,
            optimizer_variables,
            grads,
            trainable_variables,
        )

    # State.

    def _slot_names(self) -> tuple[str, ...]:
        """The per-variable slots this configuration needs, in order."""
        return ()

    def _slot_initializer(self, name: str) -> Any:
        return "zeros"

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        keras_api.decide_weight_decay(self, variables)
        self._slots = {
            name: step.add_slots(self, variables, name)
            for name in self._slot_names()
        }
        self._rounding_seed = step.rounding_seed(self, variables)
        for name in self._scalar_slot_names:
            self._slots[name] = step.add_scalar_slots(self, variables, name)

    # The algorithm: what a subclass writes.

    def _coefficients(self, learning_rate, t) -> NamedTuple:
        """The scalars of step ``t`` (the 1-based count of updates) from
        the learning rate, both 0-d tensors of the variables' dtype;
        computed once per step on torch."""
        return LearningRate(learning_rate)

    def _kernel(self, k, p, g, s, c) -> None:
        """The update of parameter ``p`` from gradient ``g``, slots ``s``
        and scalars ``c`` (``_coefficients``), written with the ops of
        ``k`` (``keras_opts._core.kernels``)."""
        raise NotImplementedError

    def _variable_coefficients(self, variable) -> dict[str, Any]:
        """Fields of ``c`` that differ between variables, a float (or a 0-d
        tensor) each; on torch's foreach path each becomes a 1-D tensor
        with one entry per variable. ``weight_decay`` where the algorithm
        applies a decay itself, none otherwise."""
        if self.capabilities.decay_in_kernel and self.weight_decay:
            return {"weight_decay": step.kernel_weight_decay(self, variable)}
        return {}

    def _fused(self, p, g, s, learning_rate, t, l2) -> bool:
        """torch only: apply torch's fused kernel to the lists ``p``, ``g``
        and slots ``s``, with ``l2`` as its coupled L2 term (its
        ``weight_decay``), and return True, where it computes this
        configuration's update; else return False (the default)."""
        return False

    def _begin_update(self) -> None:
        """Runs once per step before the variables are updated."""

    def _end_update(self) -> None:
        """Runs once per step after every variable is updated (a global
        quantity computed from every variable's slots: Prodigy's d)."""

    # The update.

    def update_step(self, gradient, variable, learning_rate):
        if 0 in tuple(variable.shape):
            # Nothing to update; and Keras' TensorFlow `add` turns some
            # empty shapes into a failing `bias_add`.
            return
        k = kernels.Single(self)
        if not self.lazy_rows or not variable.shape:
            self._run_kernel(k, [gradient], [variable], learning_rate)
            return
        index = keras_api.variable_index(self, variable)
        state = [variable] + [slots[index] for slots in self._slots.values()]
        with gradients.untouched_rows_kept(self, gradient, state):
            self._run_kernel(k, [gradient], [variable], learning_rate)

    def _update_variables(self, grads, variables, learning_rate):
        self._begin_update()
        if (
            self.use_foreach
            and self.capabilities.foreach
            and not self.lazy_rows
            # 8-bit slots are read and written variable by variable.
            and self.state_dtype != "int8"
            and keras.backend.backend() == "torch"
            and type(self).update_step is Optimizer.update_step
        ):
            foreach.update(self, grads, variables, learning_rate)
        else:
            super()._update_variables(grads, variables, learning_rate)
        self._end_update()

    def _run_kernel(self, k, grads, variables, learning_rate) -> None:
        """One step over ``variables``, all of one dtype: one variable
        under ``kernels.Single``, all at once under ``foreach.Foreach``
        (``keras_opts._core.step.run``)."""
        step.run(self, k, grads, variables, learning_rate)

    def _t(self, dtype):
        """``t``, the 1-based count of this update, in ``dtype``."""
        return keras.ops.cast(self.iterations + 1, dtype)

    # Weight decay.

    def _weight_decay_factor(self) -> float:
        """Keras' decoupled decay is ``w -= lr * weight_decay * factor * w``.

        1 here; a subclass overrides it.
        """
        return 1.0

    def _keras_applies_decay(self) -> bool:
        return step.keras_applies_decay(self)

    # Configuration.

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Keras' convention, ``cls(**config)``: a missing argument takes
        its default (``keras.optimizers.get("keras_opts>RAdam")`` passes
        an empty config); unknown keys and bad values fail as in
        ``__init__``. A ``weight_decay`` schedule is deserialized like the
        learning rate's."""
        config = checked_config(
            cls,
            config,
            objects=("weight_decay",),
            custom_objects=custom_objects,
        )
        return super().from_config(config, custom_objects)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        learning_rate = keras_api.stored_learning_rate(self)
        if isinstance(learning_rate, keras.Variable):
            # 0.001, not float32's 0.0010000000474974513: the shortest
            # decimal that gives the same stored value.
            config["learning_rate"] = shortest_float(learning_rate)
        if callable(self.weight_decay):  # a schedule, as Keras saves one
            config["weight_decay"] = keras.saving.serialize_keras_object(
                self.weight_decay
            )
        config.update(
            {
                key: getattr(self, key)
                for key in declared(type(self))
                if key not in _KERAS_CHECKS  # saved by Keras above
            }
        )
        return config
