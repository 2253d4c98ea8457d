"""Every private Keras name keras_opts uses, and nowhere else.

Keras 3 offers a small public surface to an optimizer (``build``,
``update_step``, ``add_variable``, ``assign``, ``get_config``); a few things
keras_opts does need more: honouring ``exclude_from_weight_decay``, finding a
variable's slot, the wrappers' own step counter, the torch fast path's stored
tensors, SAM's loss metric. Each private access is one function here, so
that a change in Keras shows up in one file, and
``tests/test_keras_api.py`` names the symbol that went missing.

Private hooks of ``keras.optimizers.Optimizer`` overridden by :class:`Hooks`
(and only there), with the signatures the test checks:

- ``_backend_update_step(self, grads, trainable_variables, learning_rate)``:
  updates every variable once clipping and decay are done; keras_opts runs
  its torch multi-tensor path and its once-per-step work from it
  (:meth:`Hooks._update_variables`);
- ``_apply_weight_decay(self, variables)``: Keras' decoupled weight decay
  before ``update_step``; keras_opts skips it where the algorithm or the
  update step applies the decay itself (:meth:`Hooks._keras_applies_decay`).

Tested with Keras 3.15 (``pyproject.toml`` pins the range).
"""

from __future__ import annotations

from typing import Any

import keras
from keras.src.backend.common.stateless_scope import (
    in_stateless_scope as _in_stateless_scope,
)
from keras.src.utils.naming import auto_name as _auto_name

#: The private hooks :class:`Hooks` overrides, with their Keras arguments.
HOOKS = {
    "_backend_update_step": ("grads", "trainable_variables", "learning_rate"),
    "_apply_weight_decay": ("variables",),
}


class Hooks(keras.optimizers.Optimizer):
    """``keras.optimizers.Optimizer`` with the private hooks that keras_opts
    overrides turned into methods of its own."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if _accumulating_on_jax(self):
            _on_update_steps_only(
                self, grads, trainable_variables, learning_rate
            )
            return
        self._update_variables(grads, trainable_variables, learning_rate)

    def _apply_weight_decay(self, variables):
        if self._keras_applies_decay():
            super()._apply_weight_decay(variables)

    def _update_variables(self, grads, variables, learning_rate) -> None:
        """Updates every variable: Keras' loop over ``update_step`` (on
        TensorFlow inside ``tf.distribute``'s update). Overridable."""
        super()._backend_update_step(grads, variables, learning_rate)

    def _keras_applies_decay(self) -> bool:
        """Whether Keras applies its decoupled ``weight_decay`` before
        ``update_step`` (True here). Overridable."""
        return True


def _accumulating_on_jax(optimizer) -> bool:
    """Whether this is a JAX step with gradient accumulation. There Keras
    3.15 runs the whole update on every micro-step and then keeps the old
    values on the micro-steps that only accumulate; TensorFlow
    (``tf.cond``) and torch (a Python branch) update on the last one
    only."""
    return bool(optimizer.gradient_accumulation_steps) and (
        keras.backend.backend() == "jax"
    )


def _on_update_steps_only(optimizer, grads, variables, learning_rate) -> None:
    """Updates ``variables`` on the micro-steps that update only, so that
    the others do none of the work (a matrix preconditioner's products
    and refreshes). Traced, under ``jax.lax.cond``: the model's ``variables``
    and the optimizer's, the ones a step reads and writes (as in Keras'
    ``stateless_apply``), go in as values and come out updated, or
    unchanged where the step only accumulates."""
    import jax

    steps = optimizer.gradient_accumulation_steps
    updating = (own_iterations(optimizer).value + 1) % steps == 0
    if not isinstance(updating, jax.core.Tracer):  # an eager step
        if bool(updating):
            optimizer._update_variables(grads, variables, learning_rate)
        return
    state = [*variables, *optimizer.variables]

    def update_step(values):
        with keras.StatelessScope(list(zip(state, values))) as scope:
            optimizer._update_variables(grads, variables, learning_rate)
        return [scope.get_current_value(v) for v in state]

    values = jax.lax.cond(
        updating, update_step, lambda values: values, [v.value for v in state]
    )
    for variable, value in zip(state, values):
        variable.assign(value)


def auto_name(prefix: str) -> str:
    """``prefix`` made unique by the counter Keras' own optimizers share
    (``"adam"``, ``"adam_1"``): a default name as Keras would give it,
    without Keras' snake-casing of the class name (``r_adam``)."""
    return _auto_name(prefix)


def in_stateless_scope() -> bool:
    """Whether a ``keras.StatelessScope`` is open: there a variable's value
    is the scope's, and ``stored_value`` must not be read."""
    return _in_stateless_scope()


def stored_value(variable) -> Any:
    """The backend tensor a ``keras.Variable`` stores (``_value``): the
    torch fast path writes to it in place, and the ``value`` property costs
    a few microseconds of scope checks per variable."""
    return variable._value


def uses_weight_decay(optimizer, variable) -> bool:
    """Whether ``variable`` takes weight decay (``_use_weight_decay``):
    False where ``exclude_from_weight_decay`` names it, for the decay an
    algorithm applies itself and for the coupled L2 term."""
    return optimizer._use_weight_decay(variable)


def decide_weight_decay(optimizer, variables) -> None:
    """Decides at ``build()`` which ``variables`` take weight decay, as
    Keras 3.16 does itself: Keras 3.15 fills its exclusion cache at the
    first step instead, which ``torch.compile`` sees change and compiles
    the step again for."""
    for variable in variables:
        optimizer._use_weight_decay(variable)


def variable_index(optimizer, variable) -> int:
    """The position of ``variable`` in the list the optimizer was built
    with (``_get_variable_index``), which is also its slots' position."""
    return optimizer._get_variable_index(variable)


def track_variable(optimizer, variable) -> None:
    """Adds ``variable`` to the optimizer's ``variables``
    (``_track_variable``), so that it is saved, loaded and threaded
    through ``stateless_apply``: a ``keras.random.SeedGenerator``'s state,
    which ``add_variable`` cannot create."""
    optimizer._track_variable(variable)


def layout(variable) -> Any:
    """A variable's distribution layout (``_layout``), which Keras'
    ``add_variable_from_reference`` gives a slot too; None where none."""
    return getattr(variable, "_layout", None)


def own_iterations(optimizer):
    """The optimizer's own step counter variable (``_iterations``): a
    wrapper answers ``iterations`` with its inner optimizer's and counts
    its own updates here."""
    return optimizer._iterations


def built_variables(optimizer) -> list:
    """The trainable variables the optimizer was built with
    (``_trainable_variables``), for a wrapper's steps and averages."""
    return optimizer._trainable_variables


def own_variables(optimizer) -> list:
    """The optimizer's own variables (``_variables``), without those of a
    wrapped optimizer that a wrapper's ``variables`` adds."""
    return optimizer._variables


def stored_learning_rate(optimizer) -> Any:
    """What the optimizer holds as its learning rate (``_learning_rate``):
    a variable, a schedule or a callable, not evaluated (the
    ``learning_rate`` property evaluates a schedule)."""
    return optimizer._learning_rate


def loss_tracker(model):
    """The ``Mean`` metric behind the ``loss`` a trainer logs
    (``_loss_tracker``): SAM's own ``train_step`` updates it as Keras'
    does."""
    return model._loss_tracker


def update_metrics_variables(
    model, metrics_variables, loss, x, y, y_pred, sample_weight
):
    """JAX: the loss tracker and compiled metrics updated from values,
    returning ``(logs, new metrics variables)``
    (``_update_metrics_variables``), as Keras' JAX ``train_step`` ends."""
    return model._update_metrics_variables(
        metrics_variables, loss, x, y, y_pred, sample_weight
    )
