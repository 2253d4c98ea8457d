"""The two ways an optimizer's update is run: one variable through
``keras.ops`` (:class:`Single`, here), or every variable at once through
``torch._foreach_*`` (``keras_opts._core.foreach.Foreach``).

Each optimizer writes its update once, as ``_kernel(k, p, g, s, c)``, in the
small vocabulary below, modelled on torch's in-place multi-tensor ops:
``p`` is the parameter, ``g`` the gradient, ``s`` the slots by name
(``s.momentum``), ``c`` the step's scalars, a ``NamedTuple`` the optimizer
declares (``c.step_size``). Under :class:`Single` these are one variable and
tensors; under :class:`Foreach` they are lists of torch tensors of one dtype,
and each call is one multi-tensor kernel over all of them.

Rules that make one text correct for both:

- an op ending in ``_`` may overwrite its first argument and returns the
  result: always rebind (``m = k.lerp_(m, g, w)``). On a variable (a
  parameter or a slot) it is an assignment; call it only on a variable the
  step updates, or on a temporary the kernel made;
- ops without ``_`` return a new temporary;
- ``g`` is never overwritten (the caller may still need the gradient);
- scalars are Python floats (hyperparameters) or 0-d tensors of the
  variables' dtype (anything depending on the step or the learning rate),
  computed once per step by ``_coefficients``; a per-variable scalar (a
  variable's weight decay) is a 0-d tensor or float under ``Single`` and a
  1-D tensor with one entry per variable under ``Foreach``;
- a condition (``where``, ``copy_(..., when=...)``) is a boolean scalar of
  the step, the same for every variable.

Besides the kernel's vocabulary, each class has the few list operations
``keras_opts._core.step`` prepares a step with (``tensor``,
``gradient``, ``form``, ``decay_``, ``add_scaled``, ``per_variable``) and
finishes it with (``widen``, ``widened``, ``store_rounded_`` for the slots
``state_dtype`` narrows; ``snapshot`` and ``cautious_`` for ``cautious``),
so that the preparation is written once for both paths.

``update_begins(p)`` is the one op of the vocabulary that computes nothing:
a kernel that applies a decoupled weight decay itself calls it after the
decay, so that ``cautious`` masks only the step that follows (Prodigy).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_opts._core import gradients, quantization, rounding

#: ``cautious``: the kept fraction the rescale divides by is at least this
#: (the authors' ``mask.mean().clamp(min=1e-3)``), so that a step keeping
#: a few entries of a large variable is scaled up at most 1000 times.
CAUTIOUS_MIN_FRACTION = 1e-3


class Slots(dict):
    """Slots by name, also readable as attributes (``s.momentum``).

    ``__getattr__`` is a function, not ``dict.__getitem__`` itself: a
    missing name raises ``AttributeError``, and ``torch.compile`` traces
    the lookup instead of breaking the graph on it.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _LiveSlots(Slots):
    """:class:`Slots` where a widened slot reads as its latest value: under
    :class:`Single` a widened slot is a tensor, which an in-place op cannot
    overwrite, so ``s.momentum`` after ``k.lerp_(s.momentum, ...)`` must
    name the op's result, as it would for a variable."""

    def __init__(self, values, latest):
        super().__init__(values)
        self._latest = latest

    def __getitem__(self, name):
        if name in self._latest:
            return self._latest[name]
        return dict.__getitem__(self, name)


class Single:
    """One variable at a time, through ``keras.ops`` and ``assign``."""

    #: torch's fused kernels take lists: never here.
    fuses = False

    def __init__(self, optimizer):
        self._optimizer = optimizer
        # Widened slots: id of each value one stood for -> its name; the
        # latest value by name; and the values, kept alive so that their
        # ids are not reused during the step.
        self._widened_ids: dict[int, str] = {}
        self._latest: dict = {}
        self._kept: list = []
        self._before = None

    # Preparation: lists of one.

    def tensor(self, variable):
        return variable

    def gradient(self, gradient, like):
        """``gradient`` dense, in the dtype of ``like``."""
        return ops.cast(gradients.dense(gradient), like.dtype)

    def form(self, items):
        """The kernel's form of a list of one: its item."""
        (item,) = items
        return item

    def decay_(self, variables, weight_decay, learning_rate):
        """Keras' decoupled decay as Keras writes it on this backend:
        ``w <- w - w * weight_decay * lr`` on TensorFlow and JAX,
        ``w <- w * (1 - weight_decay * lr)`` on torch."""
        for variable in variables:
            if keras.backend.backend() == "torch":
                self._optimizer.assign(
                    variable, variable * (1 - weight_decay * learning_rate)
                )
            else:
                self._optimizer.assign_sub(
                    variable, variable * weight_decay * learning_rate
                )

    def add_scaled(self, xs, ys, alpha):
        """``x + alpha * y`` for each pair, as new tensors."""
        return [x + alpha * y for x, y in zip(xs, ys)]

    def per_variable(self, values, like):
        (value,) = values
        return value

    def slots(self, values):
        """The kernel's ``s``: ``values`` by name, a widened slot read as
        its latest value."""
        return _LiveSlots(values, self._latest)

    # state_dtype: slots stored narrower than the variable.

    def _track(self, name, value):
        self._widened_ids[id(value)] = name
        self._latest[name] = value
        self._kept.append(value)

    def widen(self, name, items, dtype):
        """The slot ``name`` (a list of one variable stored in a narrower
        dtype) as a tensor of ``dtype`` for the kernel; the kernel's
        in-place ops on it are followed (:meth:`widened`)."""
        (item,) = items
        value = quantization.read(item, dtype)
        self._track(name, value)
        return [value]

    def widened(self, name):
        """The latest value of the widened slot ``name``, as a list."""
        return [self._latest[name]]

    def store_rounded_(self, slots, values, seed, count=1):
        """Each slot variable (all of one dtype, the variable's narrowed
        slots; ``count`` is 1, the one variable) gets its value
        stochastically rounded to the slot's dtype
        (``keras_opts._core.rounding``), from one draw for all."""
        dtype = keras.backend.standardize_dtype(slots[0].dtype)
        rounded = rounding.stochastic_round(ops.stack(values), dtype, seed)
        for i, slot in enumerate(slots):
            self._optimizer.assign(slot, rounded[i])

    # cautious: the step masked where it disagrees with the gradient.

    def snapshot(self, variables):
        """Copies of the variables' values now, for :meth:`cautious_`."""
        self._before = [ops.copy(ops.convert_to_tensor(v)) for v in variables]
        return self._before

    def update_begins(self, p):
        """Marks where the kernel's update ``u`` starts (see the module
        docstring); returns ``p``."""
        if self._before is not None:
            self.snapshot([p])
        return p

    def cautious_decay_(self, variables, decayed, weight_decay, lr):
        """``p <- p - lr * weight_decay * before`` where the step since
        :meth:`snapshot`, ``u = before - p``, and ``before`` agree in sign
        (``u * before >= 0``), for the ``decayed`` variables."""
        for variable, before, take in zip(variables, self._before, decayed):
            if take:
                u = before - ops.convert_to_tensor(variable)
                mask = ops.cast(u * before >= 0, before.dtype)
                self._optimizer.assign_sub(
                    variable, before * mask * (weight_decay * lr)
                )

    def cautious_(self, variables, grads):
        """Liang et al. (2024): with ``u = before - p`` the step each
        variable took since :meth:`snapshot`, the mask
        ``phi = (u * g > 0)`` keeps the entries where ``-u`` descends
        along the gradient ``g``, and ``p = before - u * phi * n /
        max(sum(phi), n / 1000)``, ``n`` the variable's size: the kept
        entries scaled up by the inverse of the kept fraction
        (:data:`CAUTIOUS_MIN_FRACTION`)."""
        floor = CAUTIOUS_MIN_FRACTION
        for variable, before, grad in zip(variables, self._before, grads):
            u = before - ops.convert_to_tensor(variable)
            mask = ops.cast(u * grad > 0, u.dtype)
            size = float(max(1, _size(u.shape)))
            scale = size / ops.maximum(ops.sum(mask), floor * size)
            self._optimizer.assign(variable, before - u * (mask * scale))

    # The kernel's vocabulary.

    def _out(self, x, value):
        # A Keras variable, or the tf.Variable TensorFlow's optimizer passes
        # to update_step in its place; tensors have no `assign`.
        if hasattr(x, "assign"):
            self._optimizer.assign(x, value)
            return x
        name = self._widened_ids.get(id(x))
        if name is not None:  # a widened slot: its new value
            self._track(name, value)
        return value

    def lerp_(self, x, y, weight):
        """``x + weight (y - x)``: an EMA of ``y`` with decay ``1 - weight``.

        Like torch's lerp, computed from ``y`` when ``weight >= 0.5``, so
        it is exactly ``y`` at ``weight = 1`` (a decay of 0).
        """
        if isinstance(weight, float) and weight >= 0.5:
            return self._out(x, y - (1.0 - weight) * (y - x))
        return self._out(x, x + weight * (y - x))

    def mul_(self, x, y):
        return self._out(x, x * y)

    def div_(self, x, y):
        return self._out(x, x / y)

    def add_(self, x, y, alpha=1.0):
        return self._out(x, x + y if _is_one(alpha) else x + alpha * y)

    def sub_(self, x, y, alpha=1.0):
        return self._out(x, x - y if _is_one(alpha) else x - alpha * y)

    def addcmul_(self, x, y, z, value=1.0):
        return self._out(x, x + value * y * z)

    def addcdiv_(self, x, y, z, value=1.0):
        return self._out(x, x + value * y / z)

    def maximum_(self, x, y):
        return self._out(x, ops.maximum(x, y))

    def clamp_(self, x, low, high):
        return self._out(x, ops.clip(x, low, high))

    def sqrt_(self, x):
        return self._out(x, ops.sqrt(x))

    def copy_(self, x, y, when=None):
        """``x <- y``; with ``when``, only where it holds."""
        return self._out(x, y if when is None else self.where(when, y, x))

    def add(self, x, y, alpha=1.0):
        return x + y if _is_one(alpha) else x + alpha * y

    def sub(self, x, y):
        return x - y

    def addcmul(self, x, y, z, value=1.0):
        return x + value * y * z

    def div(self, x, y):
        return x / y

    def sqrt(self, x):
        return ops.sqrt(x)

    def square(self, x):
        return x * x

    def agreeing(self, x, y):
        """1 where ``x`` and ``y`` agree in sign (``x * y >= 0``), else 0,
        in ``x``'s dtype: the mask of cautious weight decay."""
        return ops.cast(x * y >= 0, x.dtype)

    def sign(self, x):
        return ops.sign(x)

    def pow(self, x, exponent):
        return ops.power(x, exponent)

    def where(self, condition, x, y):
        """``x`` where the step's ``condition`` holds, else ``y`` (tensors,
        or a number)."""
        x = ops.convert_to_tensor(x)
        if isinstance(y, (int, float)):  # a number takes x's dtype
            return ops.where(condition, x, ops.convert_to_tensor(y, x.dtype))
        return ops.where(condition, x, ops.convert_to_tensor(y))

    # Per-tensor reductions and scalars: under Single one 0-d tensor, under
    # Foreach a 1-D tensor with one entry per variable. Keras ops
    # (``ops.where``, ``ops.maximum``, arithmetic) work on both.

    def norm(self, x):
        """The L2 norm of each tensor."""
        return ops.sqrt(ops.sum(x * x))

    def abs_sum(self, x):
        """The L1 norm of each tensor."""
        return ops.sum(ops.abs(x))

    def dot(self, x, y):
        """The inner product of each pair of tensors."""
        return ops.sum(x * y)

    def read(self, x):
        """The values of per-tensor scalar slots."""
        return ops.convert_to_tensor(x)

    def write_(self, x, values):
        """Stores per-tensor ``values`` into the scalar slots ``x``."""
        return self._out(x, values)

    def scale(self, x, factors):
        """Each tensor times its own per-tensor factor."""
        return x * factors


def _size(shape) -> int:
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def _is_one(alpha) -> bool:
    return isinstance(alpha, (int, float)) and alpha == 1.0
