"""LARS: layer-wise adaptive rate scaling for large-batch SGD."""

from __future__ import annotations

import re
from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class LARS(Optimizer):
    r"""LARS (You, Gitman & Ginsburg, 2017), Algorithm 1.

    With very large batches one global learning rate is too large for some
    layers and too small for others. LARS gives each layer (each variable)
    a local rate proportional to the ratio of its weight norm to its
    gradient norm, so every layer moves by about the same *relative*
    amount per step, and keeps heavy-ball momentum on top.

    Symbols: $\gamma$ = ``learning_rate`` (the global rate), $\eta$ =
    ``trust_coefficient``, $\beta$ = ``weight_decay``, $\mu$ =
    ``momentum``, $\epsilon$ = ``epsilon``, $\ell$ a variable, $v_0 = 0$.

    $$
    \begin{aligned}
    \lambda^\ell &= \eta\, \frac{\|\theta^\ell\|}
        {\|g^\ell\| + \beta \|\theta^\ell\| + \epsilon} \\
    v^\ell_t &= \mu\, v^\ell_{t-1}
        + \gamma\, \lambda^\ell (g^\ell + \beta\, \theta^\ell) \\
    \theta^\ell_t &= \theta^\ell_{t-1} - v^\ell_t
    \end{aligned}
    $$

    $\lambda^\ell = 1$ where $\|\theta^\ell\|$ or $\|g^\ell\|$ is 0 (a
    zero-initialised bias would never move otherwise), as optax and the
    usual implementations do. With ``nesterov=True`` the step is
    $\gamma \lambda^\ell (g^\ell + \beta \theta^\ell) + \mu v^\ell_t$.
    ``weight_decay`` belongs to the algorithm (it enters the trust ratio),
    so Keras' decoupled decay is not applied on top; variables named in
    ``exclude_from_weight_decay`` get $\beta = 0$ (their trust ratio is
    still applied).

    Variables matched by ``exclude_from_layer_adaptation`` (the name of
    tensorflow-addons' LAMB argument) get $\lambda^\ell = 1$: a plain
    momentum step at the global rate. Its patterns are regular
    expressions searched in each variable's ``name``, the rule of Keras'
    ``exclude_from_weight_decay(var_names=...)``, so ``["bias", "gamma",
    "beta"]`` exempts biases and normalisation parameters.
    ``adapt_vectors=False`` exempts every variable of rank 0 or 1
    instead, as SimCLR, BYOL and pytorch-optimizer's LARS do. The two
    combine; neither changes the weight decay.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.01 (SGD's: the step of a variable of norm 0, which gets
            trust ratio 1, such as a zero-initialised bias at its first
            step). The paper runs global rates of 2 to 29 with a warm-up;
            without one, 1.0 with the paper's $\eta$ blows the biases of a
            small regression MLP up at their first step (the training
            loss reaches 181 times its start in ``tests/test_defaults.py``)
            and 0.01 leaves the other weights nearly still (the loss at
            0.82 of its start after 96 steps, 0.96 for a tiny
            Transformer).
        momentum: $\mu$ in [0, 1). Default 0.9.
        weight_decay: $\beta$, at least 0, or a schedule of the step.
            Default 0.
        trust_coefficient: $\eta$, positive. Default 0.1; the paper's is
            0.001. $\gamma \eta$ is the step of a variable relative to its
            norm: 0.01 * 0.1 = 0.001 per step, the size of Adam's default
            steps for weights of order 1, takes the MLP's loss to 0.42
            of its start and the Transformer's to 0.001.
        epsilon: added to the trust ratio's denominator, at least 0.
            Default 0 (the paper's).
        nesterov: Nesterov momentum. Default False.
        exclude_from_layer_adaptation: list of regular expressions; a
            variable whose ``name`` matches one gets trust ratio 1.
            Default None.
        adapt_vectors: apply the trust ratio to variables of rank 0 and 1
            too. Default True.
        coupled_weight_decay: L2 coefficient added to the gradient before
            the norms. Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``optax.lars(lr, trust_coefficient=eta, momentum=mu)`` =
      ``LARS(lr, momentum=mu, trust_coefficient=eta)``. optax's trust
      ratio divides by $\|g + \beta \theta\|$ instead of the paper's
      $\|g\| + \beta \|\theta\|$, so the two agree at ``weight_decay=0``.
      Its default ``trust_coefficient`` is the paper's 0.001, ours 0.1:
      pass both arguments.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([3.0, -4.0])
    >>> opt = keras_opts.LARS(learning_rate=10.0, trust_coefficient=0.01)
    >>> opt.apply([keras.ops.convert_to_tensor([0.6, 0.8])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [2.7, -4.4]

    References:
        You, Gitman & Ginsburg, "Large Batch Training of Convolutional
        Networks", https://arxiv.org/abs/1708.03888
    """

    capabilities = Capabilities(decay_in_kernel=True, elementwise=False)

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: checks.DecayRate = 0.9,
        weight_decay: checks.WeightDecay = 0.0,
        trust_coefficient: checks.Positive = 0.1,
        epsilon: checks.NonNegative = 0.0,
        nesterov: checks.Flag = False,
        exclude_from_layer_adaptation: Patterns = None,
        adapt_vectors: checks.Flag = True,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("momentum",) if self.momentum else ()

    def _coefficients(self, learning_rate, t):
        return LARSCoefficients(learning_rate)

    def _adapts(self, variable) -> bool:
        """Whether ``variable`` gets the trust ratio."""
        if not self.adapt_vectors and len(variable.shape) <= 1:
            return False
        patterns = self.exclude_from_layer_adaptation
        if patterns:  # as Keras matches exclude_from_weight_decay
            return re.search("|".join(set(patterns)), variable.name) is None
        return True

    def _variable_coefficients(self, variable):
        values = super()._variable_coefficients(variable)  # weight_decay
        if not self.adapt_vectors or self.exclude_from_layer_adaptation:
            values["adapt"] = 1.0 if self._adapts(variable) else 0.0
        return values

    def _kernel(self, k, p, g, s, c):
        w_norm, g_norm = k.norm(p), k.norm(g)
        denominator = g_norm + self.epsilon
        u = g
        if self.weight_decay:
            denominator = denominator + c.weight_decay * w_norm
            u = k.add_(k.scale(p, c.weight_decay), g)
        ratio = self.trust_coefficient * w_norm / denominator
        ratio = ops.where((w_norm > 0) & (g_norm > 0), ratio, 1.0)
        if c.adapt is not None:  # exclude_from_layer_adaptation, adapt_vectors
            ratio = ops.where(c.adapt > 0, ratio, 1.0)
        u = k.scale(u, c.learning_rate * ratio)
        if not self.momentum:
            k.sub_(p, u)
            return
        v = k.add_(k.mul_(s.momentum, self.momentum), u)
        if self.nesterov:
            k.sub_(p, k.add_(u, v, self.momentum))
        else:
            k.sub_(p, v)


class LARSCoefficients(NamedTuple):
    """The scalars of LARS' step."""

    learning_rate: Any
    #: This variable's ``weight_decay`` (0 where it is excluded).
    weight_decay: Any = 0.0
    #: 1 where this variable gets the trust ratio, 0 where not; None where
    #: every variable does.
    adapt: Any = None


def _patterns(name: str, value: Any) -> list[str] | None:
    """None, or a list of regular expressions (a tuple becomes a list)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(
            f"`{name}` must be a list of regular expressions or None. "
            f"Received: {name}={value!r}"
        )
    for pattern in value:
        if not isinstance(pattern, str):
            raise TypeError(
                f"`{name}` must hold strings (regular expressions). "
                f"Received: {name}={value!r}"
            )
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"`{name}` holds an invalid regular expression {pattern!r} "
                f"({error}). Received: {name}={value!r}"
            ) from None
    return list(value)


Patterns = Annotated[
    "list[str] | None",
    checks.Rule(_patterns, "`None`, or a list of regular expressions"),
]
