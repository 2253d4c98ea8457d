r"""Two options of every optimizer's step: ``cautious`` and ``state_dtype``.

**Cautious updates** (Liang et al., 2024, "Cautious Optimizers: Improving
Training with One Line of Code", https://arxiv.org/abs/2411.16085). A
momentum method keeps moving along its momentum where the current gradient
already points the other way, which raises the loss for a while. The
cautious step moves only the entries where the step descends along the
current gradient. With $u$ the step the optimizer takes (after Keras'
decoupled ``weight_decay``, which the paper applies separately, unmasked),
$g$ the gradient it sees (with the ``coupled_weight_decay`` term) and $n$
the number of entries of the variable:

$$
\phi = \mathbb{1}(u \odot g > 0), \qquad
\theta \leftarrow \theta - \frac{n}{\max(\sum_i \phi_i,\ n / 1000)}\,
    \phi \odot u
$$

per variable: the kept entries are scaled up by the inverse of their
fraction, so that the step keeps its size. This is the authors' code as it
stands (C-Optim's C-AdamW and C-Muon divide the mask by
``mask.mean().clamp(min=1e-3)``, :data:`CAUTIOUS_MIN_FRACTION`); the
paper's Algorithm 2, pytorch-optimizer 4.1's ``apply_cautious`` and the
first version of that code divide by $\mathrm{nnz}(\phi) + 1$ instead,
which shrinks a step that keeps $k$ entries by $k / (k + 1)$ (half of it
where one entry is kept); heavyball divides by $\max(\mathrm{nnz}(\phi),
1)$, the same wherever at least one entry in a thousand is kept. Where no
entry is kept, $\phi = 0$ and the variable does not move.
``u`` is taken as the difference of the variable before and after the
optimizer's own update, so every optimizer, on every path (the
``keras.ops`` loop, torch's multi-tensor and fused kernels), gets it
without code of its own. Where the decay is part of the algorithm's
direction (LARS, NovoGrad) the masked step includes it; Prodigy, which
applies a decoupled decay itself, marks where its step starts
(``k.update_begins``). Refused by the optimizers without momentum
(Adagrad, Adadelta; SGD and RMSprop with ``momentum=0``), whose step
always has the gradient's sign, and with ``lazy_rows``, whose rows without
gradient would count in $n$.

**State in less memory** (``state_dtype="bfloat16"`` or ``"float16"``).
The slots of float32 variables are stored in that dtype: Adam's two moments
take 4 bytes per parameter instead of 8. Each step reads them into
float32, runs the update in float32, and writes them back with stochastic
rounding (``keras_opts._core.rounding``): rounding to nearest would drop
every EMA increment below half a unit in the last place (a bfloat16 EMA
with ``beta = 0.999`` would stop moving), stochastic rounding keeps them
on average. Its random bits come from a ``keras.random.SeedGenerator``
created at ``build`` and saved with the optimizer's variables, so a
resumed run rounds exactly as the uninterrupted one (seed it with
``keras.utils.set_random_seed``). Variables of other dtypes keep slots of
their own dtype, as does a copy of the initial weights (MADGRAD's,
Prodigy's: ``_full_precision_slots``).

``"float16"`` is refused by the optimizers that keep a second moment, a
square of the gradient (``_square_slots``): $g^2$ overflows float16's
65504 from $|g| = 256$, and $(1 - \beta_2) g^2$ falls below its smallest
subnormal, $2^{-24} \approx 6 \times 10^{-8}$, from
$|g| \approx 7.7 \times 10^{-3}$ at $\beta_2 = 0.999$, where dividing by
$\sqrt{v} + \epsilon$ makes the step explode. bfloat16 has float32's
range. float16 suits first moments (SGD's velocity), with 3 more bits of
precision than bfloat16 where values stay within $[6 \times 10^{-5},
65504]$.
"""

from __future__ import annotations

import keras

from keras_opts._core import checks, keras_api

#: ``cautious``: the kept fraction the rescale divides by is at least this
#: (the authors' ``mask.mean().clamp(min=1e-3)``), so that a step keeping
#: a few entries of a large variable is scaled up at most 1000 times.
CAUTIOUS_MIN_FRACTION = 1e-3


class Flags:
    """What an optimizer declares for the two options."""

    #: False where the update has no momentum, so that its step always
    #: has the gradient's sign: ``cautious`` is refused.
    _has_momentum = True
    #: Why ``cautious`` cannot apply, where it cannot for another reason.
    _cautious_refusal = ""
    #: Slots holding squares of gradients (second moments), which float16
    #: cannot hold: ``state_dtype="float16"`` is refused where there is one.
    _square_slots: tuple[str, ...] = ()
    #: Slots ``state_dtype`` leaves in the variable's dtype (a copy of the
    #: initial weights).
    _full_precision_slots: tuple[str, ...] = ()


def checked(optimizer, cautious, state_dtype, lazy_rows, custom_step):
    """``cautious`` and ``state_dtype`` checked, the combinations the
    module docstring names refused, before any variable exists.
    ``custom_step``: the optimizer writes its own ``update_step`` instead
    of the base class' kernel."""
    cautious = checks.boolean("cautious", cautious)
    state_dtype = checks.state_dtype(state_dtype)
    cls = type(optimizer).__name__
    for name, value in (("cautious", cautious), ("state_dtype", state_dtype)):
        if value and custom_step:
            raise ValueError(
                f"{cls} writes its own `update_step`: `{name}` applies to "
                f"the base class' kernel only. Received: {name}={value!r}"
            )
    if cautious and not optimizer._has_momentum:
        raise ValueError(
            f"{cls} has no momentum: its step always has the gradient's "
            "sign, so `cautious` would mask nothing. "
            f"Received: cautious={cautious!r}"
        )
    if cautious and optimizer._cautious_refusal:
        raise ValueError(
            f"{cls}: {optimizer._cautious_refusal} "
            f"Received: cautious={cautious!r}"
        )
    if cautious and lazy_rows:
        raise ValueError(
            "`cautious` scales each variable's step by its size over the "
            "entries kept, which `lazy_rows` would count over rows it does "
            "not update. Received: cautious=True, lazy_rows=True"
        )
    if state_dtype == "float16" and optimizer._square_slots:
        raise ValueError(
            f"{cls} keeps a second moment (a squared gradient), which "
            "float16 cannot hold: it overflows from |g| = 256 and "
            "underflows below |g| ~ 8e-3, where the step divides by its "
            "root. Use state_dtype='bfloat16'. "
            f"Received: state_dtype={state_dtype!r}"
        )
    return cautious, state_dtype


def add_slots(optimizer, variables, name) -> list:
    """The slot ``name`` of each variable: of the variable's dtype, or of
    ``state_dtype`` for a float32 variable where it applies."""
    initializer = optimizer._slot_initializer(name)
    state_dtype = optimizer.state_dtype
    if not state_dtype or name in optimizer._full_precision_slots:
        return optimizer.add_optimizer_variables(
            variables, name, initializer=initializer
        )
    slots = []
    for variable in variables:
        if getattr(variable, "overwrite_with_gradient", False):
            slots.append(None)  # as add_optimizer_variables
            continue
        dtype = keras.backend.standardize_dtype(variable.dtype)
        slots.append(
            optimizer.add_variable(
                shape=variable.shape,
                initializer=initializer,
                dtype=state_dtype if dtype == "float32" else dtype,
                name=f"{slot_prefix(variable)}_{name}",
                layout=keras_api.layout(variable),
            )
        )
    return slots


def seed(optimizer, variables):
    """Where a slot is narrowed, the ``keras.random.SeedGenerator`` of its
    stochastic rounding, tracked as an optimizer variable (saved, loaded
    and threaded through ``stateless_apply``); else None."""
    if not any(
        narrowed(slot, variable.dtype)
        for per_variable in optimizer._slots.values()
        for slot, variable in zip(per_variable, variables)
        if slot is not None
    ):
        return None
    with keras.name_scope(optimizer.name, caller=optimizer):
        seed = keras.random.SeedGenerator(name="state_rounding_seed")
    keras_api.track_variable(optimizer, seed.state)
    return seed


def narrowed(slot, dtype) -> bool:
    """Whether ``slot`` is stored narrower than ``dtype``, the float32 its
    variable's update is computed in."""
    standardize = keras.backend.standardize_dtype
    return standardize(dtype) == "float32" and standardize(slot.dtype) in (
        "bfloat16",
        "float16",
    )


def widen(k, s, dtype) -> list[str]:
    """Replaces each narrowed slot list of ``s`` by its values in
    ``dtype`` for the kernel; returns their names."""
    names = [
        name
        for name, x in s.items()
        if x[0] is not None and narrowed(x[0], dtype)
    ]
    for name in names:
        s[name] = k.widen(name, s[name], dtype)
    return names


def prepare(optimizer, k, p, g, l2):
    """Before the update, under ``cautious``: the variables' values kept
    (after any decoupled decay, which the mask leaves out), and the L2 term
    ``l2`` added to the gradients ``g`` first, so that the mask compares
    with the gradient the algorithm sees; ``(g, l2 left to add)``."""
    if not optimizer.cautious:
        return g, l2
    if l2:
        g = k.add_scaled(g, p, l2)
    k.snapshot(p)
    return g, 0.0


def finish(optimizer, k, p, g, names, indices) -> None:
    """After the update: the widened slots ``names`` written back,
    stochastically rounded; under ``cautious`` the step masked."""
    if names:  # under Single one variable, all its slots at once
        k.store_rounded_(
            [k.tensor(optimizer._slots[n][i]) for n in names for i in indices],
            [x for n in names for x in k.widened(n)],
            optimizer._rounding_seed,
            count=len(indices),
        )
    if optimizer.cautious:
        k.cautious_(p, g)


def slot_prefix(variable) -> str:
    """The name a slot of ``variable`` starts with, as Keras'
    ``add_variable_from_reference`` writes it: from ``path``, or from
    ``name`` for a plain ``tf.Variable``, which has no path."""
    if hasattr(variable, "path"):
        return variable.path.replace("/", "_")
    return str(variable.name).replace("/", "_").replace(":", "_")
