"""Muon: momentum orthogonalized by Newton-Schulz."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, ClassVar, NamedTuple

import keras
from keras import ops

from keras_opts._core import (
    checks,
    config,
    formulas,
    keras_api,
    layouts,
    step,
)
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities
from keras_opts.optimizers import muon_layout
from keras_opts.optimizers.muon_layout import (
    FALLBACK,
    from_matrices,
    to_matrices,
)

#: Keller Jordan's quintic, one polynomial for every iteration.
QUINTIC = ((3.4445, -4.7750, 2.0315),)
#: The Polar Express of degree 5 (Amsel et al. 2025, Algorithm 1): one
#: polynomial per iteration, the last repeated; all but the last divided
#: by the safety factor 1.01 (``a / 1.01``, ``b / 1.01**3``, ``c /
#: 1.01**5``), and the matrix normalized by 1.01 times its norm.
POLAR_EXPRESS_SAFETY = 1.01
_POLAR_EXPRESS = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
)
POLAR_EXPRESS = tuple(
    (
        a / POLAR_EXPRESS_SAFETY,
        b / POLAR_EXPRESS_SAFETY**3,
        c / POLAR_EXPRESS_SAFETY**5,
    )
    for a, b, c in _POLAR_EXPRESS
) + ((1.875, -1.25, 0.375),)
COEFFICIENTS = {"quintic": QUINTIC, "polar_express": POLAR_EXPRESS}
ADJUSTMENTS = ("original", "match_rms_adamw")


@keras.saving.register_keras_serializable(package="keras_opts")
class Muon(Optimizer):
    r"""Muon (Jordan et al., 2024): momentum orthogonalized by
    Newton-Schulz, for the hidden weight matrices; AdamW for the rest.

    SGD with momentum moves a weight matrix along its momentum, whose few
    largest singular directions dominate. Muon replaces the momentum
    $M = U \Sigma V^\top$ by the nearest semi-orthogonal matrix $U V^\top$
    (every singular value set to about 1), the steepest-descent direction
    under the spectral norm (Bernstein & Newhouse, 2024), so that rare
    directions move as much as common ones. The orthogonalization is a few
    iterations of an odd matrix polynomial on the normalized momentum
    (Newton-Schulz), only matrix products, cheap next to the forward pass.

    Symbols: $\eta$ = ``learning_rate``, $\mu$ = ``momentum``, $\lambda$ =
    ``weight_decay``, $\epsilon$ = ``epsilon``, $(a_k, b_k, c_k)$ the
    coefficients of iteration $k$ (``ns_coefficients``), $K$ =
    ``ns_steps``, $s$ the scale of ``adjust_learning_rate``; $G_t$ the
    gradient of a kernel as an $m \times n$ matrix (fan-in $m$, fan-out
    $n$), $M_0 = 0$:

    $$
    \begin{aligned}
    M_t &= \mu M_{t-1} + (1 - \mu) G_t \\
    B_t &= (1 - \mu) G_t + \mu M_t
        \text{ if Nesterov, else } M_t \\
    X_0 &= B_t / (\rho \lVert B_t \rVert_F + \epsilon) \\
    X_{k+1} &= a_k X_k + (b_k A_k + c_k A_k^2) X_k,
        \quad A_k = X_k X_k^\top \quad (k < K) \\
    \theta_t &= \theta_{t-1} - \eta \lambda \theta_{t-1}
        - \eta\, s\, X_K
    \end{aligned}
    $$

    with $X$ transposed first where $m > n$ (fewer products), $\rho = 1$
    (1.01 for the Polar Express), and $s = \sqrt{\max(1, n / m)}$
    (``"original"``, Jordan's), $s = r \sqrt{\max(m, n)}$ with $r$ =
    ``rms_rate`` (``"match_rms_adamw"``, Liu et al. 2025: the update's RMS
    matched to AdamW's, so that one learning rate and weight decay serve
    both) or $s = 1$ (``None``). With ``bias_correction``, $M_t$ and $G_t$
    are divided by $1 - \mu^{t+1}$ and $1 - \mu^t$ in $B_t$ (optax).

    **Which variables get Muon.** A kernel of rank 2 is one matrix; a
    convolution kernel ``(..., in, out)`` is flattened to ``(kh kw in,
    out)``, as the Muon authors do; an attention kernel of rank 3 (a
    ``query``, ``key``, ``value`` or ``attention_output`` of
    ``MultiHeadAttention`` or a KerasHub layer, in either layout, read as
    Adam-mini reads it) is flattened into ``(d, heads head_dim)``, or with
    ``split_heads=True`` orthogonalized head by head. AdamW updates the
    rest: variables of rank 0 or 1, biases (an attention's is of rank 2),
    embeddings (a path containing
    ``"embedding"``, with ``exclude_embeddings``), the output head (with
    ``exclude_output``: a rank-2 ``kernel`` whose outputs no other kernel
    takes, the last of the model), and the paths ``exclude_layers``
    matches (or the callable ``exclude_layers`` picks). ``fallback``
    replaces AdamW by another optimizer. :meth:`assignment` lists the
    choice for each variable.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable.
            Default 0.001 (with ``"match_rms_adamw"``, AdamW's scale).
        momentum: $\mu$, in [0, 1). Default 0.95.
        nesterov: Nesterov momentum. Default True.
        ns_coefficients: ``"quintic"`` (Jordan's (3.4445, -4.775, 2.0315)
            at every iteration), ``"polar_express"`` (Amsel et al. 2025),
            or a list of ``(a, b, c)``, one per iteration, the last
            repeated. Default ``"quintic"``.
        ns_steps: $K$, the iterations. Default 5.
        ns_dtype: ``"float32"`` or ``"bfloat16"`` (the references' GPU
            default, about twice as fast there). Default ``"float32"``.
        epsilon: $\epsilon$ of the normalization. Default 1e-7.
        adjust_learning_rate: ``"original"``, ``"match_rms_adamw"`` or
            None (see above). Default ``"match_rms_adamw"``.
        rms_rate: $r$. Default 0.2.
        bias_correction: divide the momentum by its bias correction, as
            optax does. Default False.
        split_heads: orthogonalize an attention kernel per head. Default
            False.
        exclude_embeddings: give embeddings to AdamW. Default True.
        exclude_output: give the output head to AdamW. Default True.
        exclude_layers: regular expressions, a variable whose path one
            matches goes to the fallback; or a callable that takes a
            variable and returns True for those (registered with
            ``keras.saving.register_keras_serializable`` to be saved).
            Default None.
        fallback: the optimizer of the variables Muon leaves: None (AdamW
            with the ``adam_*`` settings below) or a keras_opts optimizer
            whose step is entry by entry, with slots like the variable
            (``Adam``, ``AdamW``, ``SGD``, ``RMSprop``, ``Adagrad``,
            ``Adadelta``, ``AdaBelief``, ``Adan``, ``AdEMAMix``,
            ``ADOPT``, ``RAdam``, ``Yogi``), its registered name or its
            config. It runs at Muon's learning rate
            times ``adam_lr_ratio`` (so one schedule drives both; its own
            ``learning_rate`` must be left at its default), with its own
            hyperparameters and ``weight_decay``; its state is saved with
            Muon's. Default None.
        weight_decay: $\lambda$ of the Muon variables (decoupled, times
            the learning rate). Default 0.
        adam_beta_1: AdamW's $\beta_1$, for the other variables. Default
            0.9.
        adam_beta_2: AdamW's $\beta_2$. Default 0.999.
        adam_epsilon: AdamW's $\epsilon$. Default 1e-8.
        adam_epsilon_mode: where AdamW adds $\epsilon$ (as
            ``keras_opts.AdamW``'s ``epsilon_mode``). Default
            ``"corrected"``.
        adam_weight_decay: AdamW's decoupled weight decay. Default 0.
        adam_lr_ratio: AdamW's learning rate over Muon's. Default 1.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries (Keras kernels are ``(in, out)``, torch's
    ``(out, in)``: the same matrices transposed, which Muon maps to the
    same update transposed):

    - ``torch.optim.Muon(lr, weight_decay=w, momentum=m, nesterov=n,
      eps=e, ns_steps=k, adjust_lr_fn=f)`` (2-D weights only) =
      ``Muon(lr, m, n, ns_steps=k, ns_dtype="bfloat16", epsilon=e,
      adjust_learning_rate=f or "original", weight_decay=w)``; torch
      divides by ``max(norm, eps)``, not ``norm + eps``, and runs the
      iterations in bfloat16 on every device;
    - ``keras.optimizers.Muon(lr, adam_beta_1=b1, adam_beta_2=b2,
      adam_weight_decay=aw, epsilon=e, weight_decay=w, momentum=m,
      nesterov=n, rms_rate=r, adam_lr_ratio=q)`` = ``Muon(lr, m, n,
      rms_rate=r, weight_decay=w, adam_beta_1=b1, adam_beta_2=b2,
      adam_epsilon=e, adam_epsilon_mode="uncorrected",
      adam_weight_decay=aw, adam_lr_ratio=q, exclude_output=False)`` (its
      AdamW decays by the unscaled learning rate; the same at ``q = 1``);
    - ``optax.contrib.muon(lr, beta=m, eps=e, weight_decay=w,
      nesterov=n, consistent_rms=r)`` on 2-D weights = ``Muon(lr, m, n,
      epsilon=e, weight_decay=w, bias_correction=True,
      adjust_learning_rate="match_rms_adamw" if r else "original",
      rms_rate=r)`` (its AdamW branch is optax's, with Nesterov).

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([[1.0, 0.0], [0.0, 1.0]])
    >>> opt = keras_opts.Muon(learning_rate=0.1, momentum=0.0,
    ...     adjust_learning_rate=None, ns_coefficients="polar_express",
    ...     ns_steps=8)
    >>> opt.apply([keras.ops.convert_to_tensor([[2.0, 0.0], [0.0, 0.5]])],
    ...     [w])
    >>> [[round(float(x), 2) for x in row] for row in w.numpy()]
    [[0.9, 0.0], [0.0, 0.9]]

    References:
        Jordan, Jin, Boza, You, Cesista, Newhouse & Bernstein, "Muon: An
        optimizer for hidden layers in neural networks", 2024,
        https://kellerjordan.github.io/posts/muon/; Bernstein & Newhouse,
        "Old Optimizer, New Norm: An Anthology", 2024,
        https://arxiv.org/abs/2409.20325; Liu et al., "Muon is Scalable for
        LLM Training", 2025, https://arxiv.org/abs/2502.16982; Amsel,
        Persson, Musco & Gower, "The Polar Express: Optimal Matrix Sign
        Methods and Their Application to the Muon Algorithm", 2025,
        https://arxiv.org/abs/2505.16932
    """

    capabilities = Capabilities(
        # A matrix's step depends on the whole matrix.
        elementwise=False,
        foreach=False,
        # Muon's and AdamW's variables decay by their own coefficient.
        decay_in_kernel=True,
        kernel_cautious_decay=True,
        square_slots=("velocity",),
    )

    def __init__(
        self,
        learning_rate: Any = 0.001,
        momentum: checks.DecayRate = 0.95,
        nesterov: checks.Flag = True,
        ns_coefficients: Coefficients = "quintic",
        ns_steps: Annotated[int, checks.at_least(1)] = 5,
        ns_dtype: Annotated[str, checks.one_of("float32", "bfloat16")] = (
            "float32"
        ),
        epsilon: checks.Positive = 1e-7,
        adjust_learning_rate: Annotated[
            str | None, checks.optional(checks.one_of(*ADJUSTMENTS))
        ] = "match_rms_adamw",
        rms_rate: checks.Positive = 0.2,
        bias_correction: checks.Flag = False,
        split_heads: checks.Flag = False,
        exclude_embeddings: checks.Flag = True,
        exclude_output: checks.Flag = True,
        exclude_layers: muon_layout.Patterns = None,
        fallback: muon_layout.Fallback = None,
        weight_decay: checks.WeightDecay = 0.0,
        adam_beta_1: checks.DecayRate = 0.9,
        adam_beta_2: checks.DecayRate = 0.999,
        adam_epsilon: checks.Positive = 1e-8,
        adam_epsilon_mode: formulas.EpsilonMode = "corrected",
        adam_weight_decay: checks.NonNegative = 0.0,
        adam_lr_ratio: checks.Positive = 1.0,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    # Which variables get Muon, and as which matrices.

    def assignment(self, variables=None) -> dict[str, str]:
        """``{path: what updates it}``: ``"muon (m, n)"`` with the matrix
        shape (``"muon 4 x (m, n)"`` for 4 heads), or ``"adamw (why)"``
        (the fallback's registered name in place of ``adamw`` where one
        is given); for ``variables`` (default: those the optimizer was
        built with)."""
        if variables is None:
            variables = keras_api.built_variables(self)
        views = muon_layout.views(self, variables)
        other = "adamw"
        if self.fallback is not None:
            other = type(self.fallback).__name__.lower()
        out = {}
        for variable, view in zip(variables, views):
            path = layouts.variable_path(variable)
            if isinstance(view, str):
                out[path] = f"{other} ({view})"
                continue
            *batch, m, n = view.matrix
            heads = f"{batch[0]} x " if batch else ""
            out[path] = f"muon {heads}({m}, {n})"
        return out

    #: NorMuon's and AdaMuon's second moment of the orthogonalized
    #: matrices: one per output neuron (``"neuron"``, in the matrices'
    #: shape with one row) or per entry (``"entry"``, a slot like the
    #: variable); Muon keeps none.
    second_moment: ClassVar[str | None] = None

    def build(self, variables):
        if self.built:
            return
        self._views = muon_layout.views(self, variables)
        # Read once here, not on every step.
        self._ns_table = _coefficients_of(self.ns_coefficients)
        super().build(variables)  # without a fallback, every momentum
        matrix = [isinstance(view, muon_layout.View) for view in self._views]
        other = [not x for x in matrix]
        if self.fallback is None:
            velocity = self._placed(variables, other, "velocity")  # AdamW's
        else:
            self._slots["momentum"] = self._placed(
                variables, matrix, "momentum"
            )
            velocity = [None] * len(variables)
        # NorMuon's or AdaMuon's second moment of the matrices.
        self._slots["velocity"] = [
            self._matrix_moment(variable, view) if is_matrix else slot
            for variable, view, is_matrix, slot in zip(
                variables, self._views, matrix, velocity
            )
        ]
        if self.fallback is not None:
            # The fallback's second moments take the unsigned 8-bit map.
            squares = self.fallback.capabilities.square_slots
            self.capabilities = dataclasses.replace(
                self.capabilities,
                square_slots=("velocity", *(FALLBACK + n for n in squares)),
            )
            for name in self.fallback._slot_names():
                self._slots[FALLBACK + name] = self._placed(
                    variables, other, FALLBACK + name
                )
            if self._rounding_seed is None:
                self._rounding_seed = step.rounding_seed(self, variables)

    def _placed(self, variables, chosen, name) -> list:
        """The slot ``name`` of each ``chosen`` variable, None for the
        others."""
        picked = [v for v, c in zip(variables, chosen) if c]
        created = iter(step.add_slots(self, picked, name) if picked else ())
        return [next(created) if c else None for c in chosen]

    def _matrix_moment(self, variable, view):
        if self.second_moment is None:
            return None
        if self.second_moment == "entry":  # laid out (and sharded) as p
            return step.add_slots(self, [variable], "velocity")[0]
        shape = list(view.matrix)
        shape[-2] = 1  # one per column of the matrices: per output neuron
        return self.add_variable(
            shape=tuple(shape),
            initializer="zeros",
            dtype=variable.dtype,
            name=f"{step.slot_prefix(variable)}_velocity",
        )

    def _slot_names(self):
        return ("momentum",) if self.fallback is None else ()

    def _slot_initializer(self, name):
        if name.startswith(FALLBACK):
            return self.fallback._slot_initializer(name[len(FALLBACK) :])
        return super()._slot_initializer(name)

    def _view(self, variable):
        return self._views[keras_api.variable_index(self, variable)]

    def _variable_coefficients(self, variable):
        if isinstance(self._view(variable), str):
            if not keras_api.uses_weight_decay(self, variable):
                return {"weight_decay": 0.0}
            if self.fallback is not None:
                return {
                    "weight_decay": muon_layout.fallback_decay(self.fallback)
                }
            return {"weight_decay": self.adam_weight_decay}
        return {"weight_decay": step.kernel_weight_decay(self, variable)}

    # The step.

    def _coefficients(self, learning_rate, t):
        adam = formulas.adam_coefficients(
            learning_rate * self.adam_lr_ratio,
            t,
            self.adam_beta_1,
            self.adam_beta_2,
            self.adam_epsilon,
            self.adam_epsilon_mode,
        )
        correction = correction_next = 1.0
        if self.bias_correction:
            correction = formulas.bias_correction(self.momentum, t)
            correction_next = formulas.bias_correction(self.momentum, t + 1.0)
        fallback = None
        if self.fallback is not None:
            fallback = self.fallback._coefficients(
                learning_rate * self.adam_lr_ratio, t
            )
        return MuonCoefficients(
            fallback=fallback,
            learning_rate=learning_rate,
            adam_learning_rate=learning_rate * self.adam_lr_ratio,
            adam_step_size=adam.step_size,
            denominator_epsilon=adam.denominator_epsilon,
            correction=correction,
            correction_next=correction_next,
        )

    def _kernel(self, k, p, g, s, c):
        view = self._view(p)
        if isinstance(view, str) and self.fallback is not None:
            self._fallback_step(k, p, g, s, c)
            return
        if isinstance(view, str):  # AdamW
            m = formulas.ema_(k, s.momentum, g, self.adam_beta_1)
            v = formulas.ema_square_(k, s.velocity, g, self.adam_beta_2)
            d = formulas.denominator(
                k, v, c.denominator_epsilon, self.adam_epsilon_mode
            )
            if self.adam_weight_decay:
                decay = c.adam_learning_rate * c.weight_decay
                p = self._decayed(k, p, decay, m)
            k.addcdiv_(p, m, d, -c.adam_step_size)
            return
        mu = self.momentum
        m = formulas.ema_(k, s.momentum, g, mu)
        if self.nesterov:
            direction = (1.0 - mu) * g / c.correction + mu * (
                m / c.correction_next
            )
        else:
            direction = m / c.correction
        # ns_dtype for float32 and narrower variables; a float64 one keeps
        # its precision.
        wide = keras.backend.standardize_dtype(p.dtype) == "float64"
        x = newton_schulz(
            to_matrices(view, direction),
            self._ns_table,
            self.ns_steps,
            self.epsilon,
            "float64" if wide else self.ns_dtype,
            self._normalization(),
        )
        x = self._rescaled(k, x, s, c, view)
        update = ops.cast(from_matrices(view, x, tuple(p.shape)), p.dtype)
        if self.weight_decay:
            p = self._decayed(k, p, c.learning_rate * c.weight_decay, update)
        scale = _scale(self.adjust_learning_rate, self.rms_rate, view)
        k.sub_(p, update, c.learning_rate * scale)

    def _decayed(self, k, p, decay, direction):
        """``p <- p - decay * p`` before the step along ``direction``;
        under ``cautious_weight_decay`` only where ``direction`` and ``p``
        agree in sign."""
        if self.cautious_weight_decay:
            mask = ops.cast(direction * p >= 0, p.dtype)
            return k.update_begins(k.sub_(p, p * mask, decay))
        return k.update_begins(k.sub_(p, k.scale(p, decay)))

    def _fallback_step(self, k, p, g, s, c):
        """The fallback's step: its decoupled decay (before, or under
        ``cautious_weight_decay`` after, where its step ``u = before - p``
        and the weight agree in sign), and its kernel on its own slots."""
        decaying = bool(muon_layout.fallback_decay(self.fallback))
        cautious = decaying and self.cautious_weight_decay
        if decaying and not cautious:  # as Keras writes it per backend
            k.decay_([p], c.weight_decay, c.adam_learning_rate)
            k.update_begins(p)
        elif cautious:  # the weight before the step, for the mask
            k.snapshot([p])
        self.fallback._kernel(
            k, p, g, muon_layout.Prefixed(s, FALLBACK), c.fallback
        )
        if cautious:
            k.cautious_decay_([p], [True], c.weight_decay, c.adam_learning_rate)

    def _rescaled(self, k, x, s, c, view):
        """The orthogonalized matrices ``x`` (``view.matrix``), as the
        step takes them: Muon's own; NorMuon and AdaMuon normalize them by a
        second moment."""
        return x

    def _normalization(self) -> float:
        if self.ns_coefficients == "polar_express":
            return POLAR_EXPRESS_SAFETY
        return 1.0

    # Arguments and configuration.

    def _check_arguments(self, arguments):
        if arguments["fallback"] is None:
            return
        for key, h in config.declared(Muon).items():
            if key.startswith("adam_") and key != "adam_lr_ratio":
                if arguments[key] != h.default:
                    raise ValueError(
                        f"`{key}` sets the built-in AdamW, which "
                        "`fallback` replaces: set it on the fallback "
                        f"optimizer. Received: {key}={arguments[key]!r}, "
                        f"fallback={arguments['fallback']!r}"
                    )

    def get_config(self):
        config = super().get_config()
        for key in ("fallback", "exclude_layers"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, list):
                config[key] = keras.saving.serialize_keras_object(value)
        return config


class MuonCoefficients(NamedTuple):
    """The scalars of Muon's step ``t``."""

    learning_rate: Any
    #: AdamW's: ``learning_rate * adam_lr_ratio``, and its Adam step size.
    adam_learning_rate: Any
    adam_step_size: Any
    #: AdamW's ``epsilon`` of the denominator (``formulas.denominator``).
    denominator_epsilon: Any
    #: ``1 - momentum^t`` and ``1 - momentum^(t+1)`` with
    #: ``bias_correction``, else 1.
    correction: Any
    correction_next: Any
    #: AdaMuon's ``1 - beta_2^t``; 1 for the others.
    velocity_correction: Any = 1.0
    #: This variable's decay (0 where it is excluded).
    weight_decay: Any = 0.0
    #: The fallback optimizer's own scalars, at Muon's learning rate times
    #: ``adam_lr_ratio``; None without one.
    fallback: Any = None


def _coefficients_of(value) -> tuple[tuple[float, float, float], ...]:
    if isinstance(value, str):
        return COEFFICIENTS[value]
    if len(value) == 3 and all(isinstance(x, (int, float)) for x in value):
        return (tuple(float(x) for x in value),)
    return tuple(tuple(float(x) for x in abc) for abc in value)


def newton_schulz(x, coefficients, steps, epsilon, dtype, rho=1.0):
    """``steps`` iterations on the matrices ``x`` (``(..., m, n)``)
    divided by ``rho`` times their Frobenius norm plus ``epsilon``,
    computed in ``dtype``; in float32 (float64 where ``dtype`` is)."""
    x = ops.cast(x, dtype)
    m, n = x.shape[-2:]
    if m > n:
        x = _transposed(x)
    out = "float64" if dtype == "float64" else "float32"
    norm = ops.sqrt(ops.sum(ops.square(ops.cast(x, out)), (-2, -1)))
    x = x / ops.cast(
        ops.expand_dims(ops.expand_dims(norm, -1), -1) * rho + epsilon, dtype
    )
    for i in range(steps):
        a, b, c = coefficients[min(i, len(coefficients) - 1)]
        gram = ops.matmul(x, _transposed(x))
        x = a * x + ops.matmul(b * gram + c * ops.matmul(gram, gram), x)
    if m > n:
        x = _transposed(x)
    return ops.cast(x, out)


def _transposed(x):
    axes = list(range(len(x.shape)))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return ops.transpose(x, axes)


def _scale(adjustment, rms_rate, view) -> float:
    """The step's scale for one matrix of the view: ``"original"``
    ``sqrt(max(1, n / m))``, ``"match_rms_adamw"`` ``rms_rate *
    sqrt(max(m, n))``, else 1."""
    m, n = view.matrix[-2:]
    if adjustment == "original":
        return math.sqrt(max(1.0, n / m))
    if adjustment == "match_rms_adamw":
        return rms_rate * math.sqrt(max(m, n))
    return 1.0


def _checked_coefficients(name, value):
    """A name of ``COEFFICIENTS``, or ``(a, b, c)``, or a list of them."""
    if isinstance(value, str):
        return checks.choice(name, value, tuple(COEFFICIENTS))
    try:
        rows = _coefficients_of(value)
    except (TypeError, ValueError):
        rows = ()
    if not rows or any(
        len(row) != 3 or not all(math.isfinite(x) for x in row) for row in rows
    ):
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, COEFFICIENTS))}, "
            "three finite numbers (a, b, c) or a list of them. "
            f"Received: {name}={value!r}"
        )
    return [list(row) for row in rows]


Coefficients = Annotated[
    Any,
    checks.Rule(
        _checked_coefficients,
        '`"quintic"`, `"polar_express"`, or (a, b, c) per iteration',
    ),
]
