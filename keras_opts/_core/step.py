r"""The step every keras_opts optimizer shares, in the order it runs.

An optimizer module holds its math (``_coefficients`` and ``_kernel``) and
its settings (its signature and its :class:`Capabilities`); everything
around the math is here, read top to bottom:

1. **Arguments** (:func:`checked`), before Keras creates any variable: the
   options an optimizer's capabilities refuse, and why.
2. **State** (:func:`add_slots`, :func:`rounding_seed`): the slots, stored
   in ``state_dtype`` where it applies.
3. **Gradients** (:func:`apply`): centralized where
   ``gradient_centralization`` asks, and a step whose gradients hold a NaN
   or an infinity skipped where ``skip_nonfinite`` asks.
4. **One update** (:func:`run`), over one variable (``keras.ops``) or over
   all variables of one dtype at once (``torch._foreach_*``), in stages:
   :func:`read` the tensors, :func:`decoupled_decay`, :func:`coupled_l2`,
   :func:`cautious_before`, :func:`widen`, :func:`update` (torch's fused
   kernel or the optimizer's ``_kernel``), :func:`finish`,
   :func:`cautious_decay`.

**Weight decay.** Keras' decoupled ``weight_decay`` (which may be a
schedule or a callable, as in tensorflow-addons, and which a subclass may
scale: AdamW's ``_weight_decay_factor``) is applied by Keras before the
update where it can be, else here with each variable's update
(:func:`decays_in_step`), or by the algorithm itself
(``Capabilities.decay_in_kernel``); never twice. ``coupled_weight_decay``
is L2 folded into the gradient (torch.optim's ``weight_decay`` of Adam, SGD,
RAdam). Both honour ``exclude_from_weight_decay``.

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
``mask.mean().clamp(min=1e-3)``, ``kernels.CAUTIOUS_MIN_FRACTION``); the
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
Prodigy's: ``Capabilities.full_precision_slots``).

``"float16"`` is refused by the optimizers that keep a second moment, a
square of the gradient (``Capabilities.square_slots``): $g^2$ overflows
float16's 65504 from $|g| = 256$, and $(1 - \beta_2) g^2$ falls below its
smallest subnormal, $2^{-24} \approx 6 \times 10^{-8}$, from
$|g| \approx 7.7 \times 10^{-3}$ at $\beta_2 = 0.999$, where dividing by
$\sqrt{v} + \epsilon$ makes the step explode. bfloat16 has float32's
range. float16 suits first moments (SGD's velocity), with 3 more bits of
precision than bfloat16 where values stay within $[6 \times 10^{-5},
65504]$.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import keras
from keras import ops

from keras_opts._core import (
    foreach,
    gradients,
    keras_api,
    kernels,
    quantization,
)

NO_MOMENTUM = (
    "has no momentum: its step always has the gradient's sign, so "
    "`cautious` would mask nothing."
)


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What an optimizer's step allows of the options every optimizer has;
    one per class (``capabilities = Capabilities(...)``), read only here
    and by the tests."""

    #: Each entry's step depends on that entry alone: ``lazy_rows`` is
    #: allowed. False where it depends on the whole variable (a per-layer
    #: norm, a block, a preconditioner) or on a global estimate.
    elementwise: bool = True
    #: On torch, every variable of a dtype at once through
    #: ``torch._foreach_*`` (a user may still set ``use_foreach = False``);
    #: False for a step written per variable (the matrix preconditioners).
    foreach: bool = True
    #: ``weight_decay`` is part of the algorithm (NovoGrad, LARS, Prodigy,
    #: MARS, schedule-free): Keras' decoupled decay is not applied, and the
    #: kernel gets each variable's coefficient as ``c.weight_decay`` (0 for
    #: a variable ``exclude_from_weight_decay`` exempts).
    decay_in_kernel: bool = False
    #: The algorithm's own decay (``decay_in_kernel``) is decoupled and
    #: takes ``cautious_weight_decay`` itself (Muon, Prodigy, MARS).
    kernel_cautious_decay: bool = False
    #: Why ``cautious`` never applies ("" where it can).
    cautious_refusal: str = ""
    #: The argument whose value 0 leaves the step without momentum (SGD's
    #: and RMSprop's ``momentum``): ``cautious`` is refused then.
    momentum_argument: str = ""
    #: Slots holding squares of gradients (second moments), which float16
    #: cannot hold: ``state_dtype="float16"`` is refused where there is one.
    square_slots: tuple[str, ...] = ()
    #: Slots ``state_dtype`` leaves in the variable's dtype (a copy of the
    #: initial weights).
    full_precision_slots: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> Capabilities:
        """These capabilities with ``changes`` (a subclass' own)."""
        return dataclasses.replace(self, **changes)


# 1. Arguments.


def checked(optimizer, arguments: dict[str, Any], custom_step: bool) -> None:
    """The shared options among the checked ``arguments`` refused where the
    optimizer's capabilities, or another option, rule them out (see the
    module docstring), before any variable exists. ``custom_step``: the
    optimizer writes its own ``update_step`` instead of the shared one."""
    cls = type(optimizer).__name__
    able = optimizer.capabilities
    cautious = arguments["cautious"]
    state_dtype = arguments["state_dtype"]
    if arguments["lazy_rows"] and not able.elementwise:
        raise ValueError(
            f"{cls} cannot update rows lazily: its step depends on the "
            "whole variable, not on each entry alone. Received: "
            f"lazy_rows={arguments['lazy_rows']!r}"
        )
    decay = arguments["cautious_weight_decay"]
    if decay and able.decay_in_kernel and not able.kernel_cautious_decay:
        raise ValueError(
            f"{cls} applies its weight decay as part of its own update: "
            "`cautious_weight_decay` masks Keras' decoupled decay only. "
            f"Received: cautious_weight_decay={decay!r}"
        )
    if decay and arguments["lazy_rows"]:
        raise ValueError(
            "`cautious_weight_decay` compares each entry's step with its "
            "weight, which `lazy_rows` leaves out of the step. Received: "
            "cautious_weight_decay=True, lazy_rows=True"
        )
    for name, value in (
        ("cautious", cautious),
        ("cautious_weight_decay", decay),
        ("state_dtype", state_dtype),
    ):
        if value and custom_step:
            raise ValueError(
                f"{cls} writes its own `update_step`: `{name}` applies to "
                f"the shared step only. Received: {name}={value!r}"
            )
    if not cautious:
        pass
    elif able.cautious_refusal:
        raise ValueError(
            f"{cls} {able.cautious_refusal} Received: cautious={cautious!r}"
        )
    elif able.momentum_argument and not arguments[able.momentum_argument]:
        name = able.momentum_argument
        raise ValueError(
            f"`cautious` needs {name}: without it {cls}'s step always has "
            "the gradient's sign, so the mask would keep everything. "
            f"Received: cautious={cautious!r}, {name}={arguments[name]!r}"
        )
    elif arguments["lazy_rows"]:
        raise ValueError(
            "`cautious` scales each variable's step by its size over the "
            "entries kept, which `lazy_rows` would count over rows it does "
            "not update. Received: cautious=True, lazy_rows=True"
        )
    if state_dtype == "int8" and arguments["lazy_rows"]:
        raise ValueError(
            "`lazy_rows` keeps the rows without gradient as they were, "
            "which 8-bit state cannot: each block of 256 entries is "
            "requantized as a whole. Received: state_dtype='int8', "
            "lazy_rows=True"
        )
    if state_dtype == "float16" and able.square_slots:
        raise ValueError(
            f"{cls} keeps a second moment (a squared gradient), which "
            "float16 cannot hold: it overflows from |g| = 256 and "
            "underflows below |g| ~ 8e-3, where the step divides by its "
            "root. Use state_dtype='bfloat16'. "
            f"Received: state_dtype={state_dtype!r}"
        )


# 2. State.


def add_slots(optimizer, variables, name) -> list:
    """The slot ``name`` of each variable: of the variable's dtype, or of
    ``state_dtype`` for a float32 variable where it applies; under
    ``"int8"``, 8-bit codes for the variables ``quantization.quantized``
    picks."""
    initializer = optimizer._slot_initializer(name)
    state_dtype = optimizer.state_dtype
    if not state_dtype or name in optimizer.capabilities.full_precision_slots:
        return optimizer.add_optimizer_variables(
            variables, name, initializer=initializer
        )
    slots = []
    for variable in variables:
        if getattr(variable, "overwrite_with_gradient", False):
            slots.append(None)  # as add_optimizer_variables
            continue
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if state_dtype == "int8" and quantization.quantized(variable):
            # The unsigned map for a second moment.
            signed = name not in optimizer.capabilities.square_slots
            slots.append(
                quantization.add_slot(
                    optimizer,
                    variable,
                    f"{slot_prefix(variable)}_{name}",
                    initializer,
                    signed,
                )
            )
            continue
        # A float32 variable's slot narrowed (8-bit state: a small
        # variable's kept).
        narrow = dtype == "float32" and state_dtype != "int8"
        slots.append(
            optimizer.add_variable(
                shape=variable.shape,
                initializer=initializer,
                dtype=state_dtype if narrow else dtype,
                name=f"{slot_prefix(variable)}_{name}",
                layout=keras_api.layout(variable),
            )
        )
    return slots


def add_scalar_slots(optimizer, variables, name) -> list:
    """The slot ``name`` of one number per variable (NovoGrad's layer-wise
    second moment), of the variable's dtype."""
    return [
        optimizer.add_variable(
            shape=(),
            initializer=optimizer._slot_initializer(name),
            dtype=variable.dtype,
            name=f"{slot_prefix(variable)}_{name}",
        )
        for variable in variables
    ]


def rounding_seed(optimizer, variables):
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


def slot_prefix(variable) -> str:
    """The name a slot of ``variable`` starts with, as Keras'
    ``add_variable_from_reference`` writes it: from ``path``, or from
    ``name`` for a plain ``tf.Variable``, which has no path."""
    if hasattr(variable, "path"):
        return variable.path.replace("/", "_")
    return str(variable.name).replace("/", "_").replace(":", "_")


# 3. Gradients.


def apply(optimizer, base_apply, grads, trainable_variables):
    """Keras' ``apply`` (``base_apply``) with the gradients centralized
    where ``gradient_centralization`` asks, and the whole step skipped
    where ``skip_nonfinite`` asks and a gradient is not finite, as under
    ``LossScaleOptimizer``."""
    if trainable_variables is not None:
        trainable_variables = list(trainable_variables)
    if optimizer.gradient_centralization and (
        trainable_variables is not None or optimizer.built
    ):
        # Linear, so before Keras' accumulation and unscaling is the same;
        # and before the skip's branch, inside which TensorFlow's
        # all-reduce of new tensors fails ("All custom_gradient outputs
        # should be from the same graph").
        variables = trainable_variables
        if variables is None:
            variables = keras_api.built_variables(optimizer)
        grads = gradients.centralize_all(grads, variables)
    if (
        not optimizer.skip_nonfinite
        # Inside stateless_apply, which skips with values.
        or keras_api.in_stateless_scope()
        or gradients.none_given(grads)  # Keras' own error
        or (trainable_variables is None and not optimizer.built)
    ):
        return base_apply(grads, trainable_variables)
    if not optimizer.built:  # never create variables inside a cond branch
        optimizer.build(list(trainable_variables))
    finite = gradients.all_finite(grads)
    if keras.backend.backend() == "jax":
        # Stateful JAX runs eagerly (jit goes through stateless_apply), and
        # lax.cond cannot assign to variables: branch in Python.
        if bool(finite):
            base_apply(grads, trainable_variables)
        return None
    if keras.backend.backend() == "torch" and foreach.compiling():
        # torch.compile cannot branch on a tensor without breaking the
        # graph: step, then keep the old values where not finite.
        variables = list(trainable_variables or ())
        variables = variables or keras_api.built_variables(optimizer)
        variables = [*variables, *optimizer.variables]
        before = [ops.copy(v.value) for v in variables]
        base_apply(grads, trainable_variables)
        for variable, old in zip(variables, before):
            variable.assign(ops.where(finite, variable.value, old))
        return None
    ops.cond(
        finite, lambda: base_apply(grads, trainable_variables), lambda: None
    )
    return None


def stateless_apply(
    optimizer, base_stateless_apply, optimizer_variables, grads, variables
):
    """JAX's ``fit()`` path: the same skip, written with values."""
    if not optimizer.skip_nonfinite or gradients.none_given(grads):
        return base_stateless_apply(optimizer_variables, grads, variables)
    # Values, not keras.Variable objects (which Keras' own stateless_apply
    # accepts too): both branches return arrays.
    variables = [_as_value(v) for v in variables]
    optimizer_variables = [_as_value(v) for v in optimizer_variables]
    return ops.cond(
        gradients.all_finite(grads),
        lambda: base_stateless_apply(optimizer_variables, grads, variables),
        lambda: (list(variables), list(optimizer_variables)),
    )


def _as_value(variable):
    """A ``keras.Variable``'s value; a tensor unchanged."""
    if isinstance(variable, keras.Variable):
        return variable.value
    return variable


# 4. One update.


def run(optimizer, k, grads, variables, learning_rate) -> None:
    """One step of ``optimizer._kernel`` over ``variables``, all of one
    dtype: one variable under ``kernels.Single``, all at once under
    ``foreach.Foreach``; the stages are the same on both paths."""
    step = read(optimizer, k, grads, variables, learning_rate)
    decoupled_decay(optimizer, k, step)
    coupled_l2(k, step)
    cautious_before(optimizer, k, step)
    step.narrowed = widen(k, step.slots, step.dtype)
    update(optimizer, k, step)
    finish(optimizer, k, step)
    cautious_decay(optimizer, k, step)


@dataclasses.dataclass
class Step:
    """What the stages of :func:`run` pass on: the parameters ``p``, the
    gradients ``g`` and the slots ``slots`` in ``k``'s form (lists), the
    learning rate and ``t`` in the variables' dtype, the variables' slot
    ``indices``, which variables take weight decay (``decayed``), the L2
    coefficient still to add, the names of the widened slots."""

    variables: list
    p: list
    g: list
    slots: kernels.Slots
    dtype: Any
    learning_rate: Any
    t: Any
    indices: list
    decayed: list
    l2: float
    narrowed: list


def read(optimizer, k, grads, variables, learning_rate) -> Step:
    """The parameters, the gradients (dense, in the variables' dtype), the
    slots and the scalars every stage reads."""
    p = [k.tensor(v) for v in variables]
    dtype = variables[0].dtype
    indices = [keras_api.variable_index(optimizer, v) for v in variables]
    l2 = optimizer.coupled_weight_decay
    decayed = []  # exclude_from_weight_decay, read only where needed
    if l2 or decays_in_step(optimizer):
        decayed = [keras_api.uses_weight_decay(optimizer, v) for v in variables]
    return Step(
        variables=list(variables),
        p=p,
        g=[k.gradient(grad, x) for grad, x in zip(grads, p)],
        slots=kernels.Slots(
            {
                name: [k.tensor(slots[i]) for i in indices]
                for name, slots in optimizer._slots.items()
            }
        ),
        dtype=dtype,
        learning_rate=ops.cast(learning_rate, dtype),
        # iterations already counts only real updates under gradient
        # accumulation, and skipped loss-scale overflow steps do not count.
        t=ops.cast(optimizer.iterations + 1, dtype),
        indices=indices,
        decayed=decayed,
        l2=l2 if any(decayed) else 0.0,
        narrowed=[],
    )


def decoupled_decay(optimizer, k, step: Step) -> None:
    """Keras' decoupled decay, where this step applies it
    (:func:`decays_in_step`), to the variables not excluded; under
    ``cautious_weight_decay`` after the update (:func:`cautious_decay`)."""
    if optimizer.cautious_weight_decay:
        return
    if decays_in_step(optimizer) and any(step.decayed):
        k.decay_(
            [x for x, d in zip(step.p, step.decayed) if d],
            decoupled_coefficient(optimizer, step.dtype),
            step.learning_rate,
        )


def coupled_l2(k, step: Step) -> None:
    """``coupled_weight_decay``: ``g + l2 * p``. Where only some variables
    take it, added here into new tensors (``g`` stays the caller's); where
    all do, left in ``step.l2`` for torch's fused kernel or
    :func:`update`."""
    if not step.l2 or all(step.decayed):
        return
    chosen = [i for i, d in enumerate(step.decayed) if d]
    added = k.add_scaled(
        [step.g[i] for i in chosen], [step.p[i] for i in chosen], step.l2
    )
    for i, value in zip(chosen, added):
        step.g[i] = value
    step.l2 = 0.0


def cautious_before(optimizer, k, step: Step) -> None:
    """Under ``cautious``: the L2 term added to the gradients first, so
    that the mask compares with the gradient the algorithm sees, and the
    variables' values kept (after any decoupled decay, which the mask
    leaves out)."""
    if optimizer.cautious and step.l2:
        step.g = k.add_scaled(step.g, step.p, step.l2)
        step.l2 = 0.0
    if optimizer.cautious or _decays_cautiously(optimizer, step):
        k.snapshot(step.p)


def widen(k, s, dtype) -> list[str]:
    """Replaces each narrowed slot list of ``s`` by its values in
    ``dtype`` for the kernel; returns their names."""
    names = [
        name
        for name, x in s.items()
        if x[0] is not None
        and (narrowed(x[0], dtype) or quantization.is_codes(x[0]))
    ]
    for name in names:
        s[name] = k.widen(name, s[name], dtype)
    return names


def update(optimizer, k, step: Step) -> None:
    """The optimizer's update: torch's fused kernel where it computes this
    configuration's (it adds any L2 term itself), else the L2 term, the
    step's scalars and ``_kernel``."""
    if k.fuses and optimizer._fused(
        step.p, step.g, step.slots, step.learning_rate, step.t, step.l2
    ):
        return
    if step.l2:
        step.g = k.add_scaled(step.g, step.p, step.l2)
    c = optimizer._coefficients(step.learning_rate, step.t)
    values = [optimizer._variable_coefficients(v) for v in step.variables]
    if values[0]:
        c = c._replace(
            **{
                name: k.per_variable([v[name] for v in values], step.p[0])
                for name in values[0]
            }
        )
    slots = k.slots({name: k.form(x) for name, x in step.slots.items()})
    optimizer._kernel(k, k.form(step.p), k.form(step.g), slots, c)


def finish(optimizer, k, step: Step) -> None:
    """After the update: the widened slots written back, stochastically
    rounded; under ``cautious`` the step masked."""
    quantized = [
        name
        for name in step.narrowed
        if quantization.is_codes(optimizer._slots[name][step.indices[0]])
    ]
    for name in quantized:  # one variable: never on torch's foreach path
        slot = optimizer._slots[name][step.indices[0]]
        quantization.store_(optimizer, slot, k.widened(name)[0])
    step.narrowed = [n for n in step.narrowed if n not in quantized]
    if step.narrowed:  # under Single one variable, all its slots at once
        k.store_rounded_(
            [
                k.tensor(optimizer._slots[n][i])
                for n in step.narrowed
                for i in step.indices
            ],
            [x for n in step.narrowed for x in k.widened(n)],
            optimizer._rounding_seed,
            count=len(step.indices),
        )
    if optimizer.cautious:
        k.cautious_(step.p, step.g)


def cautious_decay(optimizer, k, step: Step) -> None:
    """Chen et al. (2025), "Cautious Weight Decay"
    (https://arxiv.org/abs/2510.12402): under ``cautious_weight_decay``,
    Keras' decoupled decay of the entries where the step the update took,
    ``u = before - p``, and the weight before it agree in sign (``u *
    before >= 0``): ``p <- p - lr * weight_decay * before`` there, nothing
    elsewhere."""
    if _decays_cautiously(optimizer, step):
        k.cautious_decay_(
            step.p,
            step.decayed,
            decoupled_coefficient(optimizer, step.dtype),
            step.learning_rate,
        )


def _decays_cautiously(optimizer, step: Step) -> bool:
    return bool(
        optimizer.cautious_weight_decay
        and decays_in_step(optimizer)
        and any(step.decayed)
    )


# Weight decay.


def current_weight_decay(optimizer) -> Any:
    """``weight_decay`` at this step: a schedule is evaluated at
    ``iterations`` and a callable called, as Keras does for the learning
    rate."""
    value = optimizer.weight_decay
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return value(optimizer.iterations)
    if callable(value):
        return value()
    return value


def kernel_weight_decay(optimizer, variable) -> Any:
    """``weight_decay`` for ``variable`` now, where the algorithm applies
    it (a float, or a 0-d tensor of its dtype where it is a schedule), 0
    where ``exclude_from_weight_decay`` exempts the variable."""
    if not optimizer.weight_decay or not keras_api.uses_weight_decay(
        optimizer, variable
    ):
        return 0.0
    value = current_weight_decay(optimizer)
    if isinstance(value, numbers.Real):
        return float(value)
    return ops.cast(value, variable.dtype)


def decays_in_step(optimizer) -> bool:
    """Whether Keras' decoupled decay is applied with each variable's
    update (by :func:`decoupled_decay`) rather than by Keras before all of
    them: under ``lazy_rows`` (untouched rows escape it), for a scheduled
    ``weight_decay`` and for a scaled one (AdamW's
    ``_weight_decay_factor``). Each backend's own decay reads a constant
    ``weight_decay``; the update step runs per variable in TensorFlow's
    distributed update context, where reading the schedule is safe."""
    return bool(
        optimizer.weight_decay
        and not optimizer.capabilities.decay_in_kernel
        and (
            optimizer.lazy_rows
            or optimizer.cautious_weight_decay
            or not isinstance(optimizer.weight_decay, numbers.Real)
            or optimizer._weight_decay_factor() != 1.0
        )
    )


def keras_applies_decay(optimizer) -> bool:
    """Whether Keras applies the decoupled decay before the update."""
    return not optimizer.capabilities.decay_in_kernel and not decays_in_step(
        optimizer
    )


def decoupled_coefficient(optimizer, dtype) -> Any:
    """``weight_decay * _weight_decay_factor()`` now, in ``dtype``."""
    value = current_weight_decay(optimizer)
    factor = optimizer._weight_decay_factor()
    if factor != 1.0:
        value = value * factor
    return ops.cast(value, dtype)
