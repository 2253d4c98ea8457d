"""Adam-mini: Adam with one second moment per block of parameters."""

from __future__ import annotations

import numbers
import re
import warnings
from collections.abc import Mapping
from typing import Annotated, Any

import keras
from keras import ops

from keras_opts._core import checks, config, formulas, layouts
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class AdamMini(Optimizer):
    r"""Adam-mini (Zhang et al., 2024), Algorithms 1 and 3.

    Adam keeps one adaptive learning rate $1/\sqrt{v}$ per weight. The
    Hessian of a neural network is close to block-diagonal, with one dense
    block per output neuron (per attention head for queries and keys), and
    within such a block a single, well-chosen learning rate does as well as
    Adam's many. Adam-mini keeps Adam's first moment but replaces $v$ by
    one number per block, the moving average of the *mean* squared
    gradient over the block, which removes nearly all of Adam's second
    moment (about half of its state).

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``; $b$ a block of $|b|$
    entries of a variable, $g_{t,b}$ its gradient; $m_0 = v_0 = 0$;
    $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_{t,b} &= \beta_2 v_{t-1,b}
        + (1 - \beta_2)\, \tfrac{1}{|b|} \textstyle\sum_{i \in b} g_{t,i}^2
        \\
    \theta_{t,b} &= \theta_{t-1,b} - \eta\,
        \frac{m_{t,b} / (1 - \beta_1^t)}
             {\sqrt{v_{t,b} / (1 - \beta_2^t)} + \epsilon}
    \end{aligned}
    $$

    **Blocks.** The optimizer sees variables, not layers, so it reads the
    layer structure from each variable's ``path`` and shape (the paper's
    Algorithm 3, Keras' layouts). A block is given by the axes it spans:
    one $v$ per index of the other axes.

    The first rule that fits a variable (by the end of its ``path``)
    gives its blocks:

    - ``query/kernel``, ``key/kernel`` of rank 3: one block per attention
      head, every axis but the head axis;
    - ``value/kernel`` of rank 3: one per output neuron (head, head_dim),
      the input axis;
    - ``embeddings`` of rank 2 (``Embedding``'s ``(tokens, d)``): one per
      token, axis ``(1,)``; ``reverse_embeddings`` (KerasHub's untied
      output embedding, ``(d, tokens)``): one per token, axis ``(0,)``;
    - ``kernel`` of rank 2 or more (``Dense``, convolutions, the
      attention's output projection): one per output neuron or channel
      (the last axis), every axis but the last;
    - LoRA's factors (``enable_lora``): ``lora_kernel_a``, the kernel's
      shape with the rank as its last axis, the kernel's blocks (a
      query's per head); ``lora_kernel_b``, ``(rank, out)``, one per
      output neuron; ``lora_embeddings_a`` ``(tokens, rank)`` one per
      token, ``lora_embeddings_b`` one per output feature;
    - ``bias``, and ``beta`` (a normalisation's offset, which the authors'
      code names ``bias``): one per entry, Adam, axes ``()``;
    - anything else (normalisation scales, unnamed variables): the whole
      variable, every axis.

    **The head axis.** ``MultiHeadAttention`` (and KerasHub's GPT-2, BERT
    and Llama) holds a query, key or value kernel as
    ``(d, heads, head_dim)``; KerasHub's Gemma
    (``EinsumDense("btd,ndh->btnh")``) as ``(heads, d, head_dim)``. The
    optimizer tells them apart from the shapes of the attention layer's
    other variables (those under the same path): the width ``d`` is the
    last axis of the output projection (its kernel ``(heads, head_dim,
    d)`` or LoRA factor B), the number of heads its first axis or a
    projection's bias ``(heads, head_dim)``; without either, the axis
    whose length all the projections share is the input axis, where
    grouped-query attention's fewer key/value heads make the other
    differ. Where none of these tells (``d`` equal to the number of
    heads; LoRA on the query and value alone with as many key/value heads
    as query heads), it assumes ``MultiHeadAttention``'s layout and warns,
    naming the variable and the ``block_axes`` that sets its blocks.

    So a ``Dense`` output layer over a vocabulary gets one $v$ per token,
    as the embedding does, as in the authors' package 1.1.1 (the paper's
    first version kept Adam's per-weight $v$ for both). ``block_axes``
    overrides the rule: a mapping from regular expressions, searched in
    each variable's ``path`` in order, to the axes of its blocks; the
    first that matches wins, the rule above applies to a variable that
    none matches. ``optimizer.blocks(variable)`` tells the axes chosen.

    Keras' ``weight_decay`` is the decoupled decay of the authors' code
    (AdamW's, applied before the step); their code exempts variables whose
    name contains ``norm``, ``ln`` or ``bias``, which
    ``exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])``
    does for Keras' layers.

    State: the first moment (one number per weight) and one number per
    block, against Adam's two numbers per weight. A ``Dense`` kernel of
    $n$ inputs keeps $1 + 1/n$ numbers per weight; the tiny transformer
    block of ``tests/test_adam_mini.py`` (width 8, 723 weights) keeps
    849, 1.17 per weight, where Adam keeps 1,446.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: first-moment decay in [0, 1). Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.999.
        epsilon: positive stabiliser, outside the corrected root. Default
            1e-8.
        block_axes: mapping of regular expression (searched in a
            variable's ``path``) to the axes its blocks span (a list of
            ints, ``[]`` for one block per entry). Default None: the rule
            above.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - The authors' ``adam_mini.Adam_mini(model.named_parameters(), lr,
      betas=(b1, b2), eps=e, weight_decay=w, dim=d, n_heads=h)`` =
      ``AdamMini(lr, beta_1=b1, beta_2=b2, epsilon=e, weight_decay=w)``
      with ``exclude_from_weight_decay(var_names=["bias", "gamma",
      "beta"])``, where their names find the same blocks (``q_proj``,
      ``k_proj`` per head; ``v_proj``, ``o_proj``, MLP, ``embed`` and
      ``lm_head`` per output row; ``bias`` per entry; other names one
      block per tensor). A torch weight ``(out, in)`` is a Keras kernel
      ``(in, out)``: their rows are our columns.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([[1.0, -2.0]])
    >>> opt = keras_opts.AdamMini(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([[3.0, -4.0]])], [w])
    >>> # One block: v = mean(g^2) = 12.5, so the step is 0.1 g / 3.54.
    >>> [round(float(x), 4) for x in w.numpy()[0]]
    [0.9151, -1.8869]

    References:
        Zhang, Chen, Li, Ding, Wu, Kingma, Ye, Luo & Sun, "Adam-mini: Use
        Fewer Learning Rates To Gain More", ICLR 2025,
        https://arxiv.org/abs/2406.16793; authors' code:
        https://github.com/zyushun/Adam-mini
    """

    capabilities = Capabilities(elementwise=False)

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-8,
        block_axes: BlockAxes = None,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def blocks(self, variable, variables=None) -> tuple[int, ...]:
        """The axes one block of ``variable`` spans (``block_axes``, else
        the rule of the class docstring), each in ``[0, rank)``.
        ``variables``: those it is built with, whose shapes tell the layout
        of an attention layer (default: those the optimizer was built
        with, else ``variable`` alone)."""
        return self._blocks(variable, self._facts_of(variables))[0]

    def _facts_of(self, variables):
        if variables is None:
            return getattr(self, "_attention", {})
        return layouts.attention_facts(
            (layouts.variable_path(v), tuple(v.shape)) for v in variables
        )

    def _blocks(self, variable, facts):
        """The axes and whether the rule guessed them."""
        path = layouts.variable_path(variable)
        rank = len(variable.shape)
        for pattern, axes in (self.block_axes or {}).items():
            if re.search(pattern, path):
                if any(not -rank <= a < rank for a in axes):
                    raise ValueError(
                        f"`block_axes` maps {pattern!r} to axes {axes} that "
                        f"variable {path!r} of shape {tuple(variable.shape)} "
                        f"does not have. Received: block_axes="
                        f"{self.block_axes!r}"
                    )
                return tuple(sorted({a % rank for a in axes})), False
        return _rule(path, tuple(variable.shape), facts)

    def build(self, variables):
        if self.built:
            return
        facts = self._facts_of(variables)
        shapes = []
        guessed = []
        for variable in variables:  # every check before any variable
            axes, guess = self._blocks(variable, facts)
            if guess:
                guessed.append((variable, axes))
            shapes.append(
                tuple(
                    1 if i in axes else n for i, n in enumerate(variable.shape)
                )
            )
        for variable, axes in guessed:
            path = layouts.variable_path(variable)
            value = layouts.ATTENTION.match(path)["role"] == "value"
            heads_first = [1] if value else [1, 2]
            warnings.warn(
                f"AdamMini cannot tell the head axis of {path!r} of shape "
                f"{tuple(variable.shape)} from the shapes of its attention "
                f"layer's variables; it assumes MultiHeadAttention's "
                f"(d, heads, head_dim) and makes one block of axes "
                f"{list(axes)} (one per "
                f"{'output neuron' if value else 'head'}). If the heads "
                f"come first, (heads, d, head_dim) as in KerasHub's Gemma, "
                f"pass AdamMini(block_axes={{{re.escape(path) + '$'!r}: "
                f"{heads_first}}}); giving it axes {list(axes)} there "
                f"keeps these blocks without this warning.",
                stacklevel=2,
            )
        super().build(variables)
        self._attention = facts
        self._slots["velocity"] = [
            self.add_variable(
                shape=shape,
                initializer="zeros",
                dtype=variable.dtype,
                name=_slot_name(variable),
            )
            for variable, shape in zip(variables, shapes)
        ]

    def _slot_names(self):
        return ("momentum",)  # the block second moments: build

    def _coefficients(self, learning_rate, t):
        return formulas.adam_coefficients(
            learning_rate,
            t,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            "corrected",
        )

    def _kernel(self, k, p, g, s, c):
        m = formulas.ema_(k, s.momentum, g, self.beta_1)
        square = _each(_block_mean_square, g, s.velocity)
        v = k.add_(k.mul_(s.velocity, self.beta_2), square, 1.0 - self.beta_2)
        d = formulas.denominator(k, v, c.denominator_epsilon, "corrected")
        if isinstance(p, list):
            # torch's multi-tensor ops take operands of one shape: each
            # block's denominator as a view of its variable's shape.
            d = [x.expand_as(y) for x, y in zip(d, p)]
        k.addcdiv_(p, m, d, -c.step_size)


def _each(function, x, y):
    """``function(x, y)``, for each pair on torch's multi-tensor path (where
    the kernel's operands are lists)."""
    if isinstance(x, list):
        return [function(a, b) for a, b in zip(x, y)]
    return function(x, y)


def _block_mean_square(gradient, velocity):
    """The mean of ``gradient**2`` over each block: over the axes where the
    block second moment ``velocity`` has length 1."""
    square = gradient * gradient
    axes = tuple(
        i
        for i, (n, b) in enumerate(zip(gradient.shape, velocity.shape))
        if b == 1 and n != 1
    )
    if not axes:
        return square
    return ops.mean(square, axis=axes, keepdims=True)


def default_blocks(path: str, shape, variables: Any = ()) -> tuple[int, ...]:
    """The axes one block spans for a variable at ``path`` of shape
    ``shape``, from Keras' layer layouts (the table of :class:`AdamMini`).
    ``variables``: the ``(path, shape)`` pairs the variable is built with,
    whose shapes tell an attention layer's layout."""
    return _rule(path, tuple(shape), layouts.attention_facts(variables))[0]


#: A variable of an attention layer: its prefix (the layer's path), its
#: projection and its name.
def _rule(path, shape, facts) -> tuple[tuple[int, ...], bool]:
    """The axes of the rule and whether they are a guess: a rank-3 query,
    key or value whose head axis the variables do not tell gets Keras'
    ``MultiHeadAttention`` layout."""
    rank = len(shape)
    every = tuple(range(rank))
    name = path.rsplit("/", 1)[-1]
    if name in ("bias", "beta"):  # a normalisation's offset is a bias
        return (), False
    match = layouts.ATTENTION.match(path)
    if (
        match is not None
        and rank == 3
        and match["role"] in ("query", "key", "value")
        and match["name"] in ("kernel", "lora_kernel_a")
    ):
        head = layouts.head_axis(
            match["role"], shape, facts.get(match["layer"])
        )
        guess = head is None
        if guess:
            head = 1
        if match["role"] == "value":  # one block per output neuron
            return (1 - head,), guess
        return tuple(i for i in every if i != head), guess  # per head
    if name in ("embeddings", "lora_embeddings_a") and rank == 2:
        return (1,), False  # (tokens, d) or (tokens, rank): per token
    if name == "reverse_embeddings" and rank == 2:
        return (0,), False  # (d, tokens): per token
    if name in ("kernel", "lora_kernel_a", "lora_kernel_b") or (
        name == "lora_embeddings_b"
    ):
        if rank >= 2:
            # One block per output neuron or channel; LoRA's factor B
            # (rank, out) as a Dense kernel.
            return every[:-1], False
    return every, False


def _checked_block_axes(name, value):
    """``block_axes`` as ``{pattern: [axis, ...]}`` (lists: what a saved
    config holds), or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise checks.ArgumentTypeError(
            "`block_axes` must be a mapping of regular expression to a "
            f"list of axes, or None. Received: block_axes={value!r}"
        )
    checked = {}
    for pattern, axes in value.items():
        if not isinstance(pattern, str):
            raise checks.ArgumentTypeError(
                f"`block_axes` keys must be strings (regular expressions). "
                f"Received: block_axes={value!r}"
            )
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"`block_axes` key {pattern!r} is not a regular expression "
                f"({error}). Received: block_axes={value!r}"
            ) from None
        if isinstance(axes, (str, bytes)) or not isinstance(
            axes, (list, tuple)
        ):
            raise checks.ArgumentTypeError(
                f"`block_axes` values must be lists of axes (ints). "
                f"Received: block_axes={value!r}"
            )
        if any(
            isinstance(a, bool) or not isinstance(a, numbers.Integral)
            for a in axes
        ):
            raise checks.ArgumentTypeError(
                f"`block_axes` values must be lists of axes (ints). "
                f"Received: block_axes={value!r}"
            )
        checked[pattern] = [int(a) for a in axes]
    return checked


BlockAxes = Annotated[
    "Mapping[str, Any] | None",
    checks.Rule(
        _checked_block_axes, "`None`, or regular expression to list of axes"
    ),
]


def _slot_name(variable) -> str:
    return layouts.variable_path(variable).replace("/", "_") + "_velocity"
