"""The base class every keras_opts optimizer derives from.

What it adds to ``keras.optimizers.Optimizer``:

- **Arguments**, checked before Keras creates any variable (the learning
  rate, Keras' ``weight_decay``, clipping and ``loss_scale_factor``; a
  subclass checks its own); a default ``name``, the lower-cased class name
  made unique (``"radam"``); ``get_config`` with the subclass' arguments
  (``_config_keys``), ``from_config`` giving a missing one its default.
- **Weight decay** (``keras_opts._core.weight_decay``):
  ``coupled_weight_decay``, L2 folded into the gradient (torch.optim's
  ``weight_decay`` of Adam, SGD, RAdam), beside Keras' decoupled
  ``weight_decay``, which may be a schedule or a callable (as in
  tensorflow-addons), may be scaled by a subclass (AdamW) or applied by
  the algorithm itself (``_decay_in_kernel``); never twice.
- **Gradients** (``keras_opts._core.gradients``): sparse ones made dense;
  ``gradient_centralization`` (Yong et al., 2020); ``skip_nonfinite``, a
  step with a NaN or an infinity in its gradients changes nothing, as
  under ``LossScaleOptimizer``; ``lazy_rows``, only the rows with a
  non-zero gradient change, as tensorflow-addons' LazyAdam.
- ``cautious`` and ``state_dtype``: ``keras_opts._core.step_options``.
- **The update, written once** (``_kernel``, ``keras_opts._core.kernels``):
  per variable through ``keras.ops`` on TensorFlow and JAX, over all
  variables at once through ``torch._foreach_*`` on torch, each prepared by
  ``_run_kernel``. A subclass that overrides ``update_step`` gets Keras'
  loop over it instead.

Private Keras API goes through ``keras_opts._core.keras_api``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import (
    checks,
    foreach,
    gradients,
    keras_api,
    kernels,
    step_options,
    weight_decay,
)
from keras_opts._core.config import (
    checked_config,
    declared_config,
    shortest_float,
)

_BASE_CHECKS = {
    "weight_decay": checks.weight_decay,
    "clipnorm": checks.positive,
    "clipvalue": checks.positive,
    "global_clipnorm": checks.positive,
    "loss_scale_factor": checks.positive,
}


class LearningRate(NamedTuple):
    """The scalars of a step that needs only the learning rate."""

    learning_rate: Any


class Optimizer(step_options.Flags, keras_api.Hooks):
    r"""Base class. A subclass

    - checks its arguments (``keras_opts._core.checks``), calls
      ``super().__init__``, assigns them as attributes of the same names
      and lists those names in ``_config_keys`` (saved by ``get_config``);
    - names its slots: ``_slot_names()`` (one tensor per variable, in
      order), ``_slot_initializer(name)`` (zeros by default) and
      ``_scalar_slot_names`` (one number per variable);
    - writes ``_coefficients(learning_rate, t)``, the scalars of step ``t``
      as a ``NamedTuple`` of its own, and ``_kernel(k, p, g, s, c)``, the
      update.

    Optional: ``_variable_coefficients`` (numbers that differ between
    variables), ``_fused`` (torch's fused kernel), ``_begin_update`` and
    ``_end_update`` (once per step), ``_weight_decay_factor``; the flags
    ``_elementwise`` and ``_decay_in_kernel``; ``step_options.Flags``.

    Arguments of every optimizer beside Keras': ``coupled_weight_decay``,
    ``skip_nonfinite``, ``gradient_centralization``, ``lazy_rows`` (above),
    ``cautious`` (the step masked where it disagrees in sign with the
    gradient, Liang et al. 2024) and ``state_dtype`` (slots in bfloat16 or
    float16, stochastically rounded): ``keras_opts._core.step_options``.
    """

    #: Set to False to run the per-variable ``keras.ops`` loop on torch too.
    use_foreach = True
    #: False where a variable's step depends on the whole variable (a
    #: per-layer norm, a global estimate): no ``lazy_rows`` then.
    _elementwise = True
    #: True where ``weight_decay`` is part of the algorithm (NovoGrad, LARS,
    #: Prodigy): Keras' decoupled decay is not applied, and the kernel gets
    #: each variable's coefficient as ``c.weight_decay`` (0 for a variable
    #: excluded by ``exclude_from_weight_decay``).
    _decay_in_kernel = False
    #: Names of the algorithm's arguments, each an attribute.
    _config_keys: tuple[str, ...] = ()
    #: Slots of one number per variable (NovoGrad's layer-wise second
    #: moment), created after ``_slot_names()``'s.
    _scalar_slot_names: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: Any,
        *,
        coupled_weight_decay: float = 0.0,
        skip_nonfinite: bool = False,
        gradient_centralization: bool = False,
        lazy_rows: bool = False,
        cautious: bool = False,
        state_dtype: str | None = None,
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
        cautious, state_dtype = step_options.checked(
            self,
            cautious,
            state_dtype,
            lazy_rows,
            custom_step=type(self).update_step is not Optimizer.update_step,
        )
        # Keras checks ema_momentum, ema_overwrite_frequency and
        # gradient_accumulation_steps itself, before creating variables.
        for key, check in _BASE_CHECKS.items():
            if kwargs.get(key) is not None:
                kwargs[key] = check(key, kwargs[key])
        if name is None:  # Keras would snake-case the class name: r_adam
            name = keras_api.auto_name(type(self).__name__.lower())
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.coupled_weight_decay = coupled
        self.skip_nonfinite = skip_nonfinite
        self.gradient_centralization = centralize
        self.lazy_rows = lazy_rows
        self.cautious = cautious
        self.state_dtype = state_dtype

    # Gradients: centralized, and a non-finite step skipped.

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
        if self.gradient_centralization and (
            trainable_variables is not None or self.built
        ):
            # Linear, so before Keras' accumulation and unscaling is the
            # same; and before the skip's branch, inside which
            # TensorFlow's all-reduce of new tensors fails ("All
            # custom_gradient outputs should be from the same graph").
            variables = trainable_variables
            if variables is None:
                variables = keras_api.built_variables(self)
            grads = gradients.centralize_all(grads, variables)
        base_apply = super().apply
        if (
            not self.skip_nonfinite
            # Inside stateless_apply, which skips with values.
            or keras_api.in_stateless_scope()
            or gradients.none_given(grads)  # Keras' own error
            or (trainable_variables is None and not self.built)
        ):
            return base_apply(grads, trainable_variables)
        if not self.built:  # never create variables inside a cond branch
            self.build(list(trainable_variables))
        finite = gradients.all_finite(grads)
        if keras.backend.backend() == "jax":
            # Stateful JAX runs eagerly (jit goes through stateless_apply),
            # and lax.cond cannot assign to variables: branch in Python.
            if bool(finite):
                base_apply(grads, trainable_variables)
            return
        if keras.backend.backend() == "torch" and foreach.compiling():
            # torch.compile cannot branch on a tensor without breaking
            # the graph: step, then keep the old values where not finite.
            variables = list(trainable_variables or ())
            variables = variables or keras_api.built_variables(self)
            variables = [*variables, *self.variables]
            before = [ops.copy(v.value) for v in variables]
            base_apply(grads, trainable_variables)
            for variable, old in zip(variables, before):
                variable.assign(ops.where(finite, variable.value, old))
            return
        ops.cond(
            finite, lambda: base_apply(grads, trainable_variables), lambda: None
        )

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """JAX's ``fit()`` path: the same skip, written with values."""
        base_stateless_apply = super().stateless_apply
        if not self.skip_nonfinite or gradients.none_given(grads):
            return base_stateless_apply(
                optimizer_variables, grads, trainable_variables
            )
        # Values, not keras.Variable objects (which Keras' own
        # stateless_apply accepts too): both branches return arrays.
        trainable_variables = [_as_value(v) for v in trainable_variables]
        optimizer_variables = [_as_value(v) for v in optimizer_variables]
        return ops.cond(
            gradients.all_finite(grads),
            lambda: base_stateless_apply(
                optimizer_variables, grads, trainable_variables
            ),
            lambda: (list(trainable_variables), list(optimizer_variables)),
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
            name: step_options.add_slots(self, variables, name)
            for name in self._slot_names()
        }
        self._rounding_seed = step_options.seed(self, variables)
        for name in self._scalar_slot_names:
            self._slots[name] = [
                self.add_variable(
                    shape=(),
                    initializer=self._slot_initializer(name),
                    dtype=variable.dtype,
                    name=f"{step_options.slot_prefix(variable)}_{name}",
                )
                for variable in variables
            ]

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
        if self._decay_in_kernel and self.weight_decay:
            return {"weight_decay": weight_decay.for_kernel(self, variable)}
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
            and not self.lazy_rows
            and keras.backend.backend() == "torch"
            and type(self).update_step is Optimizer.update_step
        ):
            foreach.update(self, grads, variables, learning_rate)
        else:
            super()._update_variables(grads, variables, learning_rate)
        self._end_update()

    def _run_kernel(self, k, grads, variables, learning_rate) -> None:
        """One step of ``_kernel`` over ``variables``, all of one dtype: one
        variable under ``kernels.Single``, all at once under
        ``foreach.Foreach``. The preparation is the same on both paths:
        Keras' decoupled decay where the step applies it, the coupled L2
        term, the slots, the scalars (torch's fused kernel where it
        computes this configuration's update)."""
        p = [k.tensor(v) for v in variables]
        g = [k.gradient(grad, x) for grad, x in zip(grads, p)]
        dtype = variables[0].dtype
        learning_rate = ops.cast(learning_rate, dtype)
        t = self._t(dtype)
        indices = [keras_api.variable_index(self, v) for v in variables]
        s = kernels.Slots(
            {
                name: [k.tensor(slots[i]) for i in indices]
                for name, slots in self._slots.items()
            }
        )
        l2 = self.coupled_weight_decay
        decays = weight_decay.applied_in_step(self)
        decayed = []  # exclude_from_weight_decay, read only where needed
        if l2 or decays:
            decayed = [keras_api.uses_weight_decay(self, v) for v in variables]
        if decays and any(decayed):
            k.decay_(
                [x for x, d in zip(p, decayed) if d],
                weight_decay.decoupled_coefficient(self, dtype),
                learning_rate,
            )
        if not any(decayed):
            l2 = 0.0
        every = all(decayed)
        if l2 and not every:  # into new tensors: g stays the caller's
            chosen = [i for i, d in enumerate(decayed) if d]
            added = k.add_scaled(
                [g[i] for i in chosen], [p[i] for i in chosen], l2
            )
            for i, value in zip(chosen, added):
                g[i] = value
        g, l2 = step_options.prepare(self, k, p, g, l2 if every else 0.0)
        narrowed = step_options.widen(k, s, dtype)
        if not (
            k.fuses
            and self._fused(p, g, s, learning_rate, t, l2 if every else 0.0)
        ):  # else the fused kernel applied any L2 term itself
            if l2 and every:
                g = k.add_scaled(g, p, l2)
            c = self._coefficients(learning_rate, t)
            values = [self._variable_coefficients(v) for v in variables]
            if values[0]:
                c = c._replace(
                    **{
                        name: k.per_variable([v[name] for v in values], p[0])
                        for name in values[0]
                    }
                )
            formed = k.slots({name: k.form(x) for name, x in s.items()})
            self._kernel(k, k.form(p), k.form(g), formed, c)
        step_options.finish(self, k, p, g, narrowed, indices)

    def _t(self, dtype):
        """``t``, the 1-based count of this update, in ``dtype``.

        ``iterations`` already counts only real updates under gradient
        accumulation, and skipped loss-scale overflow steps do not count.
        """
        return ops.cast(self.iterations + 1, dtype)

    # Weight decay.

    def _weight_decay_factor(self) -> float:
        """Keras' decoupled decay is ``w -= lr * weight_decay * factor * w``.

        1 here; a subclass overrides it.
        """
        return 1.0

    def _keras_applies_decay(self) -> bool:
        return not self._decay_in_kernel and not weight_decay.applied_in_step(
            self
        )

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
        config["coupled_weight_decay"] = self.coupled_weight_decay
        config["skip_nonfinite"] = self.skip_nonfinite
        config["gradient_centralization"] = self.gradient_centralization
        config["lazy_rows"] = self.lazy_rows
        config.update(cautious=self.cautious, state_dtype=self.state_dtype)
        config.update(declared_config(self))
        return config


def _as_value(variable):
    """A ``keras.Variable``'s value; a tensor unchanged."""
    if isinstance(variable, keras.Variable):
        return variable.value
    return variable
