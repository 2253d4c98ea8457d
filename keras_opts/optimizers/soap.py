"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, formulas, keras_api
from keras_opts._core import matrix as mx

PRECONDITIONER_DTYPES = ("float32", "float64")


@keras.saving.register_keras_serializable(package="keras_opts")
class SOAP(mx.Preconditioned):
    r"""SOAP (Vyas et al., 2025): ShampoO with Adam in the Preconditioner's
    eigenbasis.

    Shampoo's factors $L$ and $R$ of a matrix define a basis, their
    eigenvectors $Q_L$ and $Q_R$, in which the preconditioner is nearly
    diagonal. SOAP rotates the gradient into that basis, runs Adam there
    (its per-coordinate second moment is a diagonal preconditioner that
    adapts every step) and rotates the step back. The basis changes
    slowly, so it is refreshed only every ``precondition_frequency``
    steps, by one step of power iteration and a QR decomposition instead
    of a full eigendecomposition; Adam's second moment keeps adapting in
    between, which makes SOAP tolerate rare refreshes better than Shampoo.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\beta_s$ = ``shampoo_beta`` (default $\beta_2$),
    $\epsilon$ = ``epsilon``, $f$ = ``precondition_frequency``, $G_t$ the
    gradient as a matrix, $\delta = 10^{-3}$; $L_0 = R_0 = 0$, $M_0 = V_0
    = 0$, $Q_L = Q_R = I$. For a tensor of order $k$ there is one factor
    per dimension and $Q^\top G$ is the product with each $Q_i^\top$
    along its dimension.

    $$
    \begin{aligned}
    &\text{at } t = 1:\ L_1, R_1 \text{ as below, then the refresh};
        \text{ the rest from } t = 2
        \text{ with } t - 1 \text{ for } t \\
    G'_t &= Q_L^\top G_t Q_R \\
    M_t &= \beta_1 M_{t-1} + (1 - \beta_1) G_t \\
    V_t &= \beta_2 V_{t-1} + (1 - \beta_2)\, G'_t \odot G'_t \\
    N_t &= Q_L \Big(\frac{Q_L^\top M_t Q_R}{\sqrt{V_t} + \epsilon}\Big)
        Q_R^\top \\
    \theta_t &= \theta_{t-1} - \eta\,
        \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}\, N_t \\
    L_t &= \beta_s L_{t-1} + (1 - \beta_s) G_t G_t^\top, \quad
    R_t = \beta_s R_{t-1} + (1 - \beta_s) G_t^\top G_t
        \quad (t > 1) \\
    &\text{refresh if } t \bmod f = 0:\ \text{for } Q \in \{Q_L, Q_R\}
        \text{ with its } P \in \{L_t, R_t\}: \\
    &\quad \pi = \mathrm{argsort}_\downarrow \mathrm{diag}(Q^\top P Q),\
        Q_{:, \pi} \leftarrow \mathrm{QR}\big((P + \delta \|P\|_F I)\,
        Q_{:, \pi}\big) \text{ with } R \text{'s diagonal positive}
    \end{aligned}
    $$

    This canonical basis (``canonical_basis=True``) is a continuous
    function of the gradients. The authors' code takes the first basis
    from ``eigh`` of $L_1, R_1$ and refreshes with $\mathrm{QR}(P\,
    Q_{:, \pi})$: where a factor is rank-deficient (an embedding's rows
    that no batch used, a $d \times 1$ kernel's $d \times d$ factor, every
    factor in the first steps) the eigenvectors of its null space, and
    the columns of $P Q$ there, are whatever rounding makes them, and Adam
    in that part of the basis follows them. With the shift $\delta
    \|P\|_F I$ every column of $(P + \delta \|P\|_F I) Q$ is at least
    $\delta \|P\|_F$ long, so its QR factor is unique and continuous, and
    the columns along a null space (or along eigenvalues far below the
    shift) keep their direction from the previous basis, starting from the
    identity. On a 12-step fit() of an Embedding model the authors'
    construction put JAX's eager and jitted weights 0.14 apart (relative
    to their displacement), and a 2^-22 change of one gradient entry moved
    the weights 0.26 after 8 steps; the canonical basis 4e-6 and 1.5e-5
    at most.
    A column keeps its place (the sort only orders the Gram-Schmidt), so
    $V$ is not reordered; the QR runs on the symmetrically permuted
    matrix, which leaves a coordinate vector outside a factor's support
    (an unused embedding row) exactly as it is. One refresh from the
    identity is one power iteration, not the converged eigenbasis, so the
    first ``precondition_frequency`` steps run in a rougher basis than the
    authors' (it sharpens with each refresh). ``canonical_basis=False``
    is the authors' construction, $V$ reordered by $\pi$ with the
    columns.

    The first moment stays in the original space and is rotated each step;
    the second moment lives in the rotated space, each entry with its
    column of the basis (the paper's Algorithm 3). A dimension above
    ``max_precond_dim`` gets no factor (its $Q$ is the identity).
    ``merge_dims=True`` first merges runs of consecutive dimensions while
    their product stays at most ``max_precond_dim`` (a convolution kernel
    ``(3, 3, 64, 128)`` with 1024 becomes ``(576, 128)``). A scalar or a
    vector, or a variable whose dimensions merge into one, takes Adam's
    step. Without ``bias_correction`` the factor $\sqrt{1 - \beta_2^t} /
    (1 - \beta_1^t)$ is dropped.

    Eigenvectors and QR run through ``keras.ops.eigh`` and
    ``keras.ops.qr`` in ``preconditioner_dtype`` (factors and bases are
    stored in it) under ``keras.ops.cond``, so a compiled step is traced
    once and the decompositions run on refresh steps only. ``"float64"``
    needs a backend that computes in float64 (JAX only with
    ``jax_enable_x64``). State per $m \times n$ matrix: $M$, $V$ ($2mn$)
    and $L$, $R$, $Q_L$, $Q_R$ ($2m^2 + 2n^2$); under a
    ``keras.distribution`` layout the rows of each factor and basis are
    sharded like the weight's dimension they stand for (where that is one
    dimension and the mesh axis divides it). Keras' ``weight_decay``
    is the decoupled decay (applied before the step, scaled by the
    learning rate).

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable.
            Default 0.003 (the authors').
        beta_1: first-moment decay in [0, 1). Default 0.95.
        beta_2: second-moment decay in [0, 1). Default 0.95.
        shampoo_beta: $\beta_s$, the factors' decay in [0, 1), or None
            for ``beta_2``. Default None.
        epsilon: positive stabiliser. Default 1e-8.
        precondition_frequency: $f$, steps between refreshes of the basis,
            an integer >= 1. Default 10.
        max_precond_dim: the largest dimension given a factor, an integer
            of at least 1. Default 10000.
        merge_dims: merge small consecutive dimensions first. Default
            False.
        bias_correction: Adam's bias correction. Default True.
        skip_first_step: update nothing but the factors and basis at the
            first step, and count steps from the second, as the authors'
            code does. Default True: at step 1 the basis comes from the
            step's own gradient, which it turns into the diagonal of its
            singular value decomposition; the other entries are float32
            rounding noise far above ``epsilon``, and Adam's first step,
            about $\pm\eta$ per coordinate, would move along them.
        preconditioner_dtype: ``"float32"`` or ``"float64"``. Default
            ``"float32"``.
        canonical_basis: the basis from the identity by shifted power
            iteration, a continuous function of the gradients; False: the
            authors' (``eigh`` at the first step, unshifted power
            iteration), whose basis of a rank-deficient factor's null
            space is picked by rounding. Default True.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - pytorch-optimizer's ``SOAP(params, lr, betas=(b1, b2),
      shampoo_beta=s, weight_decay=0, precondition_frequency=f,
      max_precondition_dim=d)`` = ``SOAP(lr, b1, b2, shampoo_beta=s,
      precondition_frequency=f, max_precond_dim=d,
      canonical_basis=False)``, as the authors' code, where every factor
      has full rank from the first gradient on (no repeated eigenvalue);
      on a rank-deficient factor the two follow their own roundings. The
      default canonical basis matches neither. (Their decoupled decay is
      applied after the step, to the updated weights; they compute QR in
      float32 even for float64 weights; their ``merge_dims`` reshapes a
      tensor whose dimensions all merge into one to shape ``[1]``, which
      fails.)

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([[1.0, -2.0], [0.5, 3.0]])
    >>> opt = keras_opts.SOAP(learning_rate=0.1)
    >>> for g in ([[0.5, -3.0], [1.0, 2.0]], [[0.2, -1.0], [1.5, 0.5]]):
    ...     opt.apply([keras.ops.convert_to_tensor(g)], [w])
    >>> [[round(float(x), 4) for x in row] for row in w.numpy()]
    [[1.0402, -1.8644], [0.3644, 3.0402]]

    References:
        Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson &
        Kakade, "SOAP: Improving and Stabilizing Shampoo using Adam",
        ICLR 2025, https://arxiv.org/abs/2409.11321; authors' code:
        https://github.com/nikhilvyas/SOAP
    """

    #: A matrix preconditioner has no torch multi-tensor form.

    def __init__(
        self,
        learning_rate: Any = 0.003,
        beta_1: checks.DecayRate = 0.95,
        beta_2: checks.DecayRate = 0.95,
        shampoo_beta: checks.OptionalDecayRate = None,
        epsilon: checks.Positive = 1e-8,
        precondition_frequency: Annotated[int, checks.at_least(1)] = 10,
        max_precond_dim: Annotated[int, checks.at_least(1)] = 10000,
        merge_dims: checks.Flag = False,
        bias_correction: checks.Flag = True,
        skip_first_step: checks.Flag = True,
        preconditioner_dtype: Annotated[
            str, checks.one_of(*PRECONDITIONER_DTYPES)
        ] = "float32",
        canonical_basis: checks.Flag = True,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    @property
    def _shampoo_beta(self) -> float:
        return self.beta_2 if self.shampoo_beta is None else self.shampoo_beta

    # State.

    def _slot_names(self):
        return ("momentum", "velocity")

    def _factored_shape(self, shape) -> tuple[int, ...] | None:
        """The shape the variable is preconditioned in, or None (Adam)."""
        shape = tuple(int(d) for d in shape)
        if self.merge_dims:
            shape = mx.merged_shape(shape, self.max_precond_dim)
        if len(shape) < 2:
            return None
        return shape

    def _factored_groups(self, shape) -> tuple[tuple[int, ...], ...]:
        """The variable's dimensions behind each of the factored shape's."""
        if self.merge_dims:
            return mx.merged_groups(shape, self.max_precond_dim)
        return tuple((i,) for i in range(len(shape)))

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._factors = []
        for variable in variables:
            shape = self._factored_shape(variable.shape)
            groups = self._factored_groups(variable.shape)
            factors = None
            if shape is not None:
                factors = [
                    None
                    if d > self.max_precond_dim
                    else tuple(
                        self._add_factor(
                            variable, f"{kind}_{axis}", (d, d), groups[axis]
                        )
                        for kind in ("factor", "basis")
                    )
                    for axis, d in enumerate(shape)
                ]
            self._factors.append(factors)

    # The step.

    def _coefficients(self, learning_rate, t):
        if self.skip_first_step:
            t = ops.maximum(t - 1.0, 1.0)
        step_size = learning_rate
        if self.bias_correction:
            step_size = (
                step_size
                * ops.sqrt(formulas.bias_correction(self.beta_2, t))
                / formulas.bias_correction(self.beta_1, t)
            )
        return SOAPCoefficients(
            learning_rate=learning_rate, step_size=step_size
        )

    def _kernel(self, k, p, g, s, c):
        factors = self._factors[keras_api.variable_index(self, p)]
        iterations = ops.convert_to_tensor(self.iterations)
        first = ops.equal(iterations, 0)
        if factors is None or all(f is None for f in factors):
            self._adam(k, p, g, s, c, first, None)
            return
        dtype = self.preconditioner_dtype
        shape = self._factored_shape(p.shape)
        x = ops.reshape(ops.cast(g, dtype), shape)
        weight = 1.0 - self._shampoo_beta
        # The factors' EMA of this step's Gram matrices; at step 1 their
        # eigenvectors are the first basis.
        started = [
            None
            if f is None
            else ops.convert_to_tensor(f[0])
            + weight * (_gram(x, axis) - ops.convert_to_tensor(f[0]))
            for axis, f in enumerate(factors)
        ]

        def eigenbases():
            if not self.canonical_basis:
                return [
                    mx.eigenbasis(st, dtype) for st in started if st is not None
                ]
            return [
                mx.shifted_power_iteration(
                    st, ops.eye(st.shape[-1], dtype=dtype), dtype
                )
                for st in started
                if st is not None
            ]

        basis_variables = [f[1] for f in factors if f is not None]
        bases = _expand(
            self._refresh(first, eigenbases, basis_variables), factors
        )
        velocity = self._adam(k, p, g, s, c, first, bases)
        # The factors with this step's gradient (at step 1 the same ones the
        # first basis came from), then the refresh.
        stats = started
        step = iterations + (0 if self.skip_first_step else 1)
        refresh = ops.logical_and(
            ops.logical_not(first),
            ops.equal(step % self.precondition_frequency, 0),
        )

        def refreshed():
            if self.canonical_basis:
                # Each column refined in place: the second moment keeps
                # its order.
                return [
                    mx.shifted_power_iteration(st, q, dtype)
                    for st, q in zip(stats, bases)
                    if st is not None
                ]
            v = ops.reshape(ops.cast(velocity, dtype), shape)
            new = []
            for axis, (st, q) in enumerate(zip(stats, bases)):
                if st is None:
                    continue
                q, order = mx.power_iteration_qr(st, q, dtype)
                new.append(q)
                v = ops.take(v, order, axis=axis)
            return [*new, ops.reshape(v, p.shape)]

        k.copy_(s.velocity, velocity)
        targets = list(basis_variables)
        if not self.canonical_basis:
            targets.append(s.velocity)
        self._refresh(refresh, refreshed, targets)
        for f, st in zip(factors, stats):
            if f is not None:
                self.assign(f[0], st)

    def _adam(self, k, p, g, s, c, first, bases):
        """Adam's step in the basis ``bases`` (None: the identity);
        returns the new second moment (not yet stored when ``bases`` is
        given: a refresh may permute it)."""
        active = None
        if self.skip_first_step:
            active = ops.logical_not(first)
        m_old = ops.convert_to_tensor(s.momentum)
        v_old = ops.convert_to_tensor(s.velocity)
        m = m_old + (1.0 - self.beta_1) * (g - m_old)
        if bases is None:
            rotated, moment = g, m
        else:
            rotated = ops.cast(_project(g, bases, self), g.dtype)
            moment = ops.cast(_project(m, bases, self), g.dtype)
        v = self.beta_2 * v_old + (1.0 - self.beta_2) * rotated * rotated
        direction = moment / (ops.sqrt(v) + self.epsilon)
        if bases is not None:
            direction = ops.cast(
                _project(direction, bases, self, back=True), g.dtype
            )
        p_old = ops.convert_to_tensor(p)
        new_p = p_old - c.step_size * direction
        if active is not None:
            m = ops.where(active, m, m_old)
            v = ops.where(active, v, v_old)
            new_p = ops.where(active, new_p, p_old)
        k.copy_(s.momentum, m)
        self.assign(p, new_p)
        if bases is None:
            k.copy_(s.velocity, v)
        return v


def _gram(x, axis):
    """``X_(axis) X_(axis)^T``: the product of ``x`` with itself over every
    axis but ``axis``."""
    unfolded = ops.reshape(ops.moveaxis(x, axis, 0), (x.shape[axis], -1))
    return mx.matmul(unfolded, mx.transpose(unfolded))


def _expand(bases, factors):
    """The list of bases, one per axis, None where an axis has no factor."""
    bases = list(bases)
    return [None if f is None else bases.pop(0) for f in factors]


def _project(x, bases, optimizer, back=False):
    """``x`` (a variable's shape) in the eigenbasis (``Q^T x`` along each
    axis with a basis) or, with ``back``, out of it (``Q x``)."""
    shape = x.shape
    dtype = optimizer.preconditioner_dtype
    y = ops.reshape(ops.cast(x, dtype), optimizer._factored_shape(shape))
    rank = len(y.shape)
    for q in bases:
        if q is None:  # the identity: move the axis to the end
            y = ops.transpose(y, (*range(1, rank), 0))
        else:
            # tensordot over y's first axis, in the operands' dtype
            # (mx.matmul).
            y = ops.einsum("i...,ji->...j" if back else "i...,ij->...j", y, q)
    return ops.reshape(y, shape)


class SOAPCoefficients(NamedTuple):
    """The scalars of SOAP's step."""

    learning_rate: Any
    #: ``learning_rate`` times Adam's bias correction, if asked.
    step_size: Any
