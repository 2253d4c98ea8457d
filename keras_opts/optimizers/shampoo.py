"""Shampoo: a Kronecker-factored matrix preconditioner, with grafting."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, formulas
from keras_opts._core import matrix as mx

GRAFTINGS = ("adagrad", "adam", "sgd", None)
PRECONDITIONER_DTYPES = ("float32", "float64")


@keras.saving.register_keras_serializable(package="keras_opts")
class Shampoo(mx.Preconditioned):
    r"""Shampoo (Gupta, Koren & Singer, 2018), with the grafting, blocking,
    delayed start and infrequent roots of Anil et al. (2020).

    Full-matrix AdaGrad would precondition the gradient of an $m \times n$
    weight with the inverse root of an $mn \times mn$ matrix. Shampoo keeps
    one $m \times m$ statistic $L$ for the rows and one $n \times n$ $R$
    for the columns, and preconditions with $L^{-1/4} G R^{-1/4}$: the
    Kronecker product of the two roots approximates full-matrix AdaGrad's.
    The roots cost an eigendecomposition, so they are recomputed only
    every ``precondition_frequency`` steps. Anil et al.'s grafting takes
    the direction of that step from Shampoo and its size from a diagonal
    method (AdaGrad, Adam or SGD), block by block, so that the learning
    rate of the diagonal method carries over; large dimensions are cut
    into blocks of at most ``block_size``, each with its own statistics.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1$ = ``beta_1``,
    $\beta_2$ = ``beta_2`` ($w = 1 - \beta_2$, or $w = 1$ at
    $\beta_2 = 1$: Gupta et al.'s sums), $\epsilon$ = ``epsilon``,
    $f$ = ``precondition_frequency``, $t_0$ =
    ``start_preconditioning_step``, $G_t$ one block of the gradient (a
    matrix), $L_0 = R_0 = 0$, $m_0 = 0$, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    L_t &= \beta_2 L_{t-1} + w\, G_t G_t^\top, \qquad
    R_t = \beta_2 R_{t-1} + w\, G_t^\top G_t \\
    \hat L, \hat R &= (L_t + \epsilon I)^{-1/4},\
        (R_t + \epsilon I)^{-1/4}
        \quad \text{if } (t - 1) \bmod f = 0 \text{ or } t = t_0
        \text{ (else kept)} \\
    S_t &= \hat L\, G_t\, \hat R, \qquad
    A_t = \mathrm{graft}(g_t) \\
    u_t &= \begin{cases}
        S_t\, \|A_t\|_F / \|S_t\|_F & t \ge t_0 \\
        A_t & t < t_0
        \end{cases} \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, u_t \\
    \theta_t &= \theta_{t-1} - \eta\, m_t
    \end{aligned}
    $$

    The grafts ($g^2$ elementwise, $\epsilon_g$ = ``graft_epsilon``):

    - ``"adagrad"``: $a_t = a_{t-1} + g_t^2$,
      $A_t = g_t / (\sqrt{a_t} + \epsilon_g)$;
    - ``"adam"``: $a_t = \beta_2 a_{t-1} + (1 - \beta_2) g_t^2$,
      $A_t = g_t / (\sqrt{a_t / (1 - \beta_2^t)} + \epsilon_g)$ (needs
      $\beta_2 < 1$);
    - ``"sgd"``: $A_t = g_t$;
    - ``None``: no grafting, $u_t = S_t$ from $t_0$ on (Gupta et al.'s
      step). Before $t_0$, and for vectors, $A_t$ is then Shampoo's own
      diagonal for one dimension: $a_t = \beta_2 a_{t-1} + w g_t^2$,
      $A_t = g_t / \sqrt{a_t + \epsilon}$.

    Shapes: a variable of rank 2 is the matrix; one of higher rank is
    preconditioned as a matrix with every dimension but the last merged
    into the rows (a convolution kernel ``(h, w, in, out)`` as
    ``(h * w * in, out)``), so the root is always $-1/4$ (Gupta et al.'s
    $-1/(2k)$ at order $k = 2$); a scalar or a vector gets the graft's
    update $A_t$ alone, with momentum. A matrix with a dimension above
    ``block_size`` is cut into blocks of ``block_size`` (the last one
    shorter), each with its own $L$, $R$ and graft norm.

    The roots are computed through ``keras.ops.eigh`` in
    ``preconditioner_dtype`` (statistics and roots are stored in it too),
    under ``keras.ops.cond``, so a compiled step is traced once and the
    eigendecompositions run only on refresh steps. ``"float64"`` needs a
    backend that computes in float64 (JAX only with ``jax_enable_x64``).
    State per $m \times n$ matrix: $L$, $R$ and their roots
    ($2m^2 + 2n^2$ numbers, per block), plus the graft's and the
    momentum's $mn$ each. Under a ``keras.distribution`` layout the rows
    of $L$ and its root are sharded like the weight's rows, those of $R$
    like its columns (where the mesh axis divides the block). Keras'
    ``weight_decay`` is decoupled (applied before the step, scaled by the
    learning rate).

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable; with a
            graft, the graft's learning rate. Default 0.001.
        beta_1: momentum in [0, 1); 0 keeps no momentum. Default 0.9.
        beta_2: decay of the statistics (and of the ``"adam"`` graft) in
            [0, 1]; 1 sums them, as Gupta et al. Default 0.999.
        epsilon: $\epsilon$, at least 0, added to the statistics times the
            identity before the root. Default 1e-6.
        grafting: ``"adagrad"``, ``"adam"``, ``"sgd"`` or None. Default
            ``"adam"``.
        graft_epsilon: $\epsilon_g$, positive, the graft's denominator
            term. Default 1e-8.
        block_size: the largest block, an integer >= 1. Default 512.
        precondition_frequency: $f$, steps between root computations, an
            integer >= 1. Default 20.
        start_preconditioning_step: $t_0$, the first step that uses
            Shampoo's direction, an integer >= 1. Default 10.
        preconditioner_dtype: ``"float32"`` or ``"float64"``. Default
            ``"float32"``.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries, for matrices (variables of rank 2):

    - pytorch-optimizer's ``Shampoo(params, lr, momentum=0, matrix_eps=e,
      preconditioning_compute_steps=1)`` = ``Shampoo(lr, beta_1=0,
      beta_2=1, epsilon=e, grafting=None, start_preconditioning_step=1,
      precondition_frequency=1)``. (It starts $L_0 = \epsilon I$, the
      same as adding $\epsilon I$ to a sum. It preconditions tensors of
      rank $k$ with one factor per dimension and the root $-1/(2k)$, and a
      vector with a full matrix, where this class merges dimensions and
      takes the diagonal; with ``preconditioning_compute_steps`` above 1
      its first roots are zero until the first multiple.)
    - pytorch-optimizer's ``ScalableShampoo(params, lr, betas=(b1, b2),
      moving_average_for_momentum=True, start_preconditioning_step=1,
      preconditioning_compute_steps=1, block_size=b,
      shape_interpretation=False, graft_type=LayerWiseGrafting.SGD,
      nesterov=False, matrix_eps=e, use_svd=True)`` = ``Shampoo(lr, b1,
      b2, epsilon=e, grafting="sgd", block_size=b,
      precondition_frequency=1, start_preconditioning_step=1)`` for a
      matrix of one block (no dimension above ``b``), where ``e`` is far
      below the statistics' eigenvalues: it grafts over the whole
      variable where this class grafts per block, and starts its
      statistics at $\epsilon I$ and decays that with them, where the
      paper adds $\epsilon I$ before each root.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([[1.0, -2.0], [0.5, 3.0]])
    >>> opt = keras_opts.Shampoo(learning_rate=0.1, grafting="sgd",
    ...                          start_preconditioning_step=1)
    >>> opt.apply([keras.ops.convert_to_tensor([[0.5, -3.0], [1.0, 2.0]])],
    ...           [w])
    >>> [[round(float(x), 4) for x in row] for row in w.numpy()]
    [[0.9859, -1.9774], [0.4774, 2.9858]]

    References:
        Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor
        Optimization", ICML 2018, https://arxiv.org/abs/1802.09568;
        Anil, Gupta, Koren, Regan & Singer, "Scalable Second Order
        Optimization for Deep Learning", https://arxiv.org/abs/2002.09018;
        authors' code: https://github.com/google-research/google-research/
        tree/master/scalable_shampoo
    """

    #: A matrix preconditioner has no torch multi-tensor form.

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.9,
        beta_2: Annotated[float, checks.in_range(low=0.0, high=1.0)] = 0.999,
        epsilon: checks.NonNegative = 1e-6,
        grafting: Annotated[str, checks.one_of(*GRAFTINGS)] = "adam",
        graft_epsilon: checks.Positive = 1e-8,
        block_size: Annotated[int, checks.at_least(1)] = 512,
        precondition_frequency: Annotated[int, checks.at_least(1)] = 20,
        start_preconditioning_step: Annotated[int, checks.at_least(1)] = 10,
        preconditioner_dtype: Annotated[
            str, checks.one_of(*PRECONDITIONER_DTYPES)
        ] = "float32",
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _check_arguments(self, arguments):
        beta_2 = arguments["beta_2"]
        if arguments["grafting"] == "adam" and beta_2 == 1.0:
            raise ValueError(
                "`grafting='adam'` needs `beta_2` < 1 (Adam's bias "
                f"correction 1 - beta_2**t is 0 at 1). Received: "
                f"beta_2={beta_2!r}"
            )

    # State.

    def _slot_names(self):
        names = ("momentum",) if self.beta_1 else ()
        if self.grafting != "sgd":
            names += ("graft",)
        return names

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        names = ("left", "right", "left_root", "right_root")
        for name in names:
            self._slots[name] = []
        for variable in variables:
            shapes = self._factor_shapes(variable.shape)
            rank = len(variable.shape)
            rows = (tuple(range(rank - 1)), (rank - 1,)) * 2
            for name, shape, dims in zip(names, shapes or (None,) * 4, rows):
                self._slots[name].append(
                    None
                    if shape is None
                    else self._add_factor(variable, name, shape, dims)
                )

    def _factor_shapes(self, shape):
        """The shapes of ``L``, ``R`` and their roots for a variable of
        ``shape`` (stacked blocks), or None for a scalar or vector."""
        merged = mx.matrix_shape(shape)
        if merged is None or 0 in merged:  # nothing to precondition
            return None
        (i, bm), (j, bn) = (mx.blocks(d, self.block_size) for d in merged)
        left, right = (i, j, bm, bm), (i, j, bn, bn)
        return left, right, left, right

    # The step.

    def _coefficients(self, learning_rate, t):
        correction = 1.0
        if self.grafting == "adam":
            correction = formulas.bias_correction(self.beta_2, t)
        return ShampooCoefficients(
            learning_rate=learning_rate,
            t=t,
            graft_correction=correction,
        )

    def _kernel(self, k, p, g, s, c):
        dtype = p.dtype
        x = ops.cast(g, "float32")
        graft = self._graft(k, x, s, c)
        if s.left is not None:
            merged = mx.matrix_shape(p.shape)
            update = self._precondition(x, merged, graft, s, c)
            update = ops.where(
                c.t >= float(self.start_preconditioning_step), update, graft
            )
        else:
            update = graft
        update = ops.cast(update, dtype)
        if self.beta_1:
            update = k.lerp_(s.momentum, update, 1.0 - self.beta_1)
        k.sub_(p, update, c.learning_rate)

    def _graft(self, k, x, s, c):
        """``A_t``, the graft's update from the float32 gradient ``x``."""
        if self.grafting == "sgd":
            return x
        dtype = s.graft.dtype
        g = ops.cast(x, dtype)
        if self.grafting == "adagrad":
            a = k.addcmul_(s.graft, g, g)
            return x / (ops.sqrt(ops.cast(a, "float32")) + self.graft_epsilon)
        if self.grafting == "adam":
            a = formulas.ema_square_(k, s.graft, g, self.beta_2)
            a = ops.cast(a, "float32") / ops.cast(c.graft_correction, "float32")
            return x / (ops.sqrt(a) + self.graft_epsilon)
        a = k.addcmul_(k.mul_(s.graft, self.beta_2), g, g, self._weight)
        return x / ops.sqrt(ops.cast(a, "float32") + self.epsilon)

    @property
    def _weight(self) -> float:
        """The weight $w$ of a new term in the statistics."""
        return 1.0 if self.beta_2 == 1.0 else 1.0 - self.beta_2

    def _precondition(self, x, merged, graft, s, c):
        """The grafted Shampoo update ``u_t`` of a matrix variable."""
        dtype = self.preconditioner_dtype
        rows, cols = (mx.blocks(d, self.block_size) for d in merged)
        blocks = mx.to_blocks(ops.reshape(x, merged), rows, cols)
        blocks = ops.cast(blocks, dtype)
        left = self.beta_2 * s.left + self._weight * mx.gram_left(blocks)
        right = self.beta_2 * s.right + self._weight * mx.gram_right(blocks)
        self.assign(s.left, left)
        self.assign(s.right, right)
        iterations = ops.convert_to_tensor(self.iterations)
        refresh = ops.logical_or(
            ops.equal(iterations % self.precondition_frequency, 0),
            ops.equal(iterations + 1, self.start_preconditioning_step),
        )

        def roots():
            return (
                mx.inverse_root(left, 4.0, self.epsilon, dtype),
                mx.inverse_root(right, 4.0, self.epsilon, dtype),
            )

        left_root, right_root = self._refresh(
            refresh, roots, [s.left_root, s.right_root]
        )
        shampoo = mx.matmul(mx.matmul(left_root, blocks), right_root)
        shampoo = ops.cast(shampoo, "float32")
        if self.grafting is not None:
            target = mx.to_blocks(ops.reshape(graft, merged), rows, cols)
            target_norm = _block_norm(target)
            norm = _block_norm(shampoo)
            safe = ops.where(norm > 0.0, norm, 1.0)
            scale = ops.where(norm > 0.0, target_norm / safe, 0.0)
            shampoo = shampoo * scale
        return ops.reshape(mx.from_blocks(shampoo, merged), x.shape)


def _block_norm(x):
    """The Frobenius norm of each block of ``(I, J, b_m, b_n)``, shaped to
    broadcast against it."""
    return ops.sqrt(ops.sum(x * x, axis=(-2, -1), keepdims=True))


class ShampooCoefficients(NamedTuple):
    """The scalars of Shampoo's step ``t``."""

    learning_rate: Any
    #: The 1-based step.
    t: Any
    #: ``1 - beta_2^t``, the ``"adam"`` graft's bias correction (else 1).
    graft_correction: Any
