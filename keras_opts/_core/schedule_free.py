r"""What the schedule-free optimizers share (Defazio et al., 2024).

Schedule-free training keeps three sequences: $z$, the base optimizer's
iterate; $x$, a weighted average of the $z$'s; and $y = (1 - \beta) z +
\beta x$, the point where the gradient is taken. The model's variables hold
$y$ during training, as in the authors' code and Keras' own
``ScheduleFreeAdamW``; $z$ is a slot, and $x$ is never stored: it is
$(y - (1 - \beta) z) / \beta$, which :meth:`ScheduleFree.averaged` swaps
into the variables for evaluation.

A step with gradient direction $u$ (the SGD, Adam or RAdam direction plus
the decay $\lambda y$), $\gamma_t$ the learning rate in effect and
$c_{t+1}$ the averaging weight:

$$
\begin{aligned}
z_{t+1} &= z_t - \gamma_t u_t \\
x_{t+1} &= (1 - c_{t+1}) x_t + c_{t+1} z_{t+1} \\
y_{t+1} &= (1 - \beta) z_{t+1} + \beta x_{t+1}
    = (1 - c_{t+1}) y_t + c_{t+1} z_t
      + \gamma_t \big(\beta (1 - c_{t+1}) - 1\big) u_t
\end{aligned}
$$

The last form updates $y$ from $y_t$ and $z_t$ alone (no $x$), as the
authors' code does. The averaging weight is $c_{t+1} = w_t / \sum_{i \le t}
w_i$ with $w_t = t^r (\max_{i \le t} \gamma_i)^p$; the running maximum
and the sum are two float32 scalars of the optimizer, updated once per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, keras_api
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities

#: ``beta_1`` of a schedule-free method: the interpolation between z and
#: the average x, in (0, 1) (x = y at 0 and 1 would divide by zero).
Beta = Annotated[
    float, checks.in_range(low=0.0, high=1.0, low_open=True, high_open=True)
]


class ScheduleFreeCoefficients(NamedTuple):
    """The scalars of a schedule-free step ``t``."""

    #: $\gamma_t$: the learning rate in effect (warm-up, and the bias
    #: correction or rectifier where the method folds it in): $z$'s step.
    learning_rate: Any
    #: $c_{t+1}$, the weight of $z_{t+1}$ in the average $x_{t+1}$.
    average_weight: Any
    #: $\gamma_t (\beta (1 - c_{t+1}) - 1)$: $y$'s step along $u_t$.
    interpolated_step: Any
    #: $1 - \beta_2^t$ where the second moment is divided by it, else 1.
    second_moment_correction: Any = 1.0
    #: RAdam: the adaptive step is taken (its variance is tractable).
    adaptive: Any = True
    #: This variable's ``weight_decay`` (0 where it is excluded).
    weight_decay: Any = 0.0


class ScheduleFree(Optimizer):
    r"""Base class of the schedule-free optimizers.

    A subclass names its slots after ``"z"`` (``_slot_names``), writes
    ``_learning_rate_in_effect(learning_rate, t)`` ($\gamma_t$ from the
    base rate) and ``_kernel``, which forms the direction $u_t$ and ends
    with :func:`step_`.
    """

    capabilities = Capabilities(
        # weight_decay is the algorithm's lambda y term, applied with the
        # step.
        decay_in_kernel=True,
        # x averages every step: a row that skipped steps (lazy_rows)
        # would average other iterates than the rest of its variable.
        elementwise=False,
        # The step moves y and z together; masking y's part would break
        # x = (y - (1 - beta_1) z) / beta_1, which ``averaged()`` reads.
        cautious_refusal=(
            "cannot be cautious: the mask would apply to y's step but not "
            "to z's, and x, the weights `averaged()` gives, is read from "
            "the two."
        ),
        # z is a sequence of weights, not a moment: kept at full precision.
        full_precision_slots=("z",),
    )

    # State: z (a slot, z_1 = y_1) and two scalars.

    def _slot_names(self) -> tuple[str, ...]:
        return ("z",)

    def build(self, variables):
        if self.built:
            return
        _refuse_several_replicas(self)
        super().build(variables)
        # float32 whatever the variables' dtype; "only_first_replica": one
        # value for all replicas, updated once per step.
        self._lr_max = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="float32",
            aggregation="only_first_replica",
            name="lr_max",
        )
        self._weight_sum = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="float32",
            aggregation="only_first_replica",
            name="weight_sum",
        )
        # z_1 = x_1 = y_1: the weights now. Keras' TensorFlow fit() builds
        # the optimizer inside the first trace of its train step; an
        # assignment there would belong to that graph, not run now (z
        # stayed 0), so it runs outside any trace.
        with _outside_trace():
            for z, variable in zip(self._slots["z"], variables):
                if z is not None:
                    self.assign(z, ops.copy(_read(variable)))

    # The learning rate in effect and the averaging weight.

    def _learning_rate_in_effect(self, learning_rate, t):
        r"""$\gamma_t$ from the base rate at step ``t`` (0-d tensors)."""
        return learning_rate

    def _average_weight_term(self, lr_max, t):
        r"""$w_t = t^r (\max_{i \le t} \gamma_i)^p$ ($0^0 = 1$)."""
        weight = ops.ones_like(t)
        if self.r:
            weight = weight * ops.power(t, self.r)
        if self.weight_lr_power:
            # 0^p = 0 for every p > 0, also a p that float32 rounds to 0.
            power = ops.power(lr_max, self.weight_lr_power)
            weight = weight * ops.where(lr_max > 0, power, 0.0)
        return weight

    def _update_variables(self, grads, variables, learning_rate):
        # Once per step, before any variable: the running maximum of
        # gamma_t and the sum of the weights w_i, i <= t.
        t = ops.cast(self.iterations + 1, "float32")
        gamma = self._learning_rate_in_effect(
            ops.cast(learning_rate, "float32"), t
        )
        lr_max = ops.maximum(self._lr_max, gamma)
        self._lr_max.assign(lr_max)
        self._weight_sum.assign(
            self._weight_sum + self._average_weight_term(lr_max, t)
        )
        super()._update_variables(grads, variables, learning_rate)

    def _coefficients(self, learning_rate, t):
        dtype = t.dtype
        gamma = self._learning_rate_in_effect(learning_rate, t)
        t32 = ops.cast(t, "float32")
        lr_max = ops.convert_to_tensor(self._lr_max)
        total = ops.convert_to_tensor(self._weight_sum)
        weight = self._average_weight_term(lr_max, t32)
        # c = w_t / sum w_i, and 0 while every weight is 0 (a rate of 0 so
        # far: RAdam's silent phase, a warm-up schedule starting at 0).
        c = ops.where(total > 0, weight / ops.where(total > 0, total, 1.0), 0)
        c = ops.cast(c, dtype)
        return ScheduleFreeCoefficients(
            learning_rate=gamma,
            average_weight=c,
            interpolated_step=gamma * (self.beta_1 * (1.0 - c) - 1.0),
        )

    # The evaluation weights x.

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        r"""A context inside which the trained variables hold $x$, the
        average the method returns, instead of the training point $y$.

        $x = y + (1 - 1/\beta)(z - y)$ (from $y = (1 - \beta) z + \beta
        x$), computed from the variables and the $z$ slots in the
        variables' dtype. It rounds three times (the difference, the
        product, the sum), so it is within about half a rounding of $|x|$
        plus $(1 - \beta)/\beta$ roundings of $|z - y|$ of the $x$ that
        $y$ and $z$ define (in float32 a rounding is $2^{-24}$ relative);
        the authors' ``eval()`` computes the same expression. On exit
        (also through an exception) the variables get $y$ back bit for bit
        (a copy is kept), so training continues as if nothing happened.
        The optimizer's own variables are not touched, and neither are
        non-trainable variables such as BatchNormalization's
        moving statistics (see
        ``keras_opts.callbacks.recompute_batchnorm_statistics``). Before
        the first step $x = y$ and nothing changes.
        """
        if not self.built or int(ops.convert_to_numpy(self.iterations)) == 0:
            yield
            return
        variables = keras_api.built_variables(self)
        pairs = [
            (variable, z)
            for variable, z in zip(variables, self._slots["z"])
            if z is not None
        ]
        ratio = 1.0 - 1.0 / self.beta_1
        with _no_grad():
            training = [ops.copy(_read(v)) for v, _ in pairs]
            for (variable, z), y in zip(pairs, training):
                # A new array: JAX's fit and evaluate donate the model's.
                variable.assign(y + ratio * (_read(z) - y))
        try:
            yield
        finally:
            with _no_grad():
                for (variable, _), y in zip(pairs, training):
                    variable.assign(y)


def step_(k, p, z, u, c) -> None:
    """The schedule-free step along direction ``u`` (module docstring):
    ``y <- lerp(y, z, c) + interpolated_step * u``, then
    ``z <- z - learning_rate * u``; ``p`` holds $y$."""
    p = k.lerp_(p, z, c.average_weight)
    k.add_(p, u, c.interpolated_step)
    k.sub_(z, u, c.learning_rate)


def with_decay(k, p, u, c, decays: bool):
    r"""$u + \lambda y$: the decay taken at $y$, as the authors' code does
    (a new temporary where there is a decay; ``u`` itself otherwise)."""
    if not decays:
        return u
    return k.add(u, k.scale(p, c.weight_decay))


def warmup_factor(warmup_steps: int, t):
    r"""$\min(1, t / T_{\text{warmup}})$, 1 without warm-up."""
    if not warmup_steps:
        return 1.0
    return ops.minimum(t / float(warmup_steps), 1.0)


def _read(variable):
    if isinstance(variable, keras.Variable):
        return variable.value
    return ops.convert_to_tensor(variable)


def _outside_trace():
    """A context in which ops run now, also inside a ``tf.function`` trace
    (``tf.init_scope``); nothing on the other backends."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.init_scope()
    return contextlib.nullcontext()


def _no_grad():
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _refuse_several_replicas(optimizer) -> None:
    """A ``tf.distribute`` strategy with several replicas is refused: the
    weights it trains differ from a single-device run's (its per-replica
    update of y, z and the shared averaging scalars is not checked yet),
    and a wrong result must not pass silently."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        raise NotImplementedError(
            f"{type(optimizer).__name__} does not run under a "
            "tf.distribute strategy with several replicas yet; use one "
            "device, or keras.distribution on JAX. Received: a strategy "
            f"with num_replicas_in_sync={replicas}"
        )
