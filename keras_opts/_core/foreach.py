"""torch's multi-tensor path: the kernel vocabulary of
``keras_opts._core.kernels`` over lists of tensors, one
``torch._foreach_*`` call each, and the step that runs every optimizer's
kernel through it."""

from __future__ import annotations

from keras_opts._core import keras_api, kernels, rounding


class Foreach:
    """Every variable of one dtype at once, through ``torch._foreach_*``.

    Scalars that are 0-d tensors go to the ``Tensor`` overloads where torch
    has them (``mul``, ``div``, ``add``); the ops whose scalar must be a
    number (``lerp``, ``addcmul``, ``addcdiv``, ``add`` with ``alpha``)
    read a 0-d tensor that lives on the CPU as a number, which costs no
    device round trip, and on an accelerator take a two-kernel form that
    keeps it on the device. A condition on the CPU is read the same way,
    so only the chosen side is written.
    """

    #: torch's fused kernels take these lists.
    fuses = True

    def __init__(self):
        import torch

        self._torch = torch
        self._widened: dict = {}
        self._before = None
        # Outside a stateless scope, the stored tensor itself: the
        # in-place kernels must write to it.
        if keras_api.in_stateless_scope():
            self.tensor = _scope_value
        else:
            self.tensor = keras_api.stored_value

    # Preparation.

    def gradient(self, gradient, like):
        if gradient.dtype == like.dtype:
            return gradient
        return gradient.to(like.dtype)

    def form(self, items):
        return list(items)

    def decay_(self, tensors, weight_decay, learning_rate):
        """Keras' decoupled decay ``w <- w (1 - weight_decay * lr)``, as
        Keras writes it on torch."""
        self._torch._foreach_mul_(tensors, 1 - weight_decay * learning_rate)

    def add_scaled(self, xs, ys, alpha):
        return self._torch._foreach_add(xs, ys, alpha=alpha)

    def per_variable(self, values, like):
        """A 1-D tensor of ``like``'s dtype and device, one entry a
        variable (floats, or 0-d tensors where a schedule gave them)."""
        torch = self._torch
        if all(isinstance(v, float) for v in values):
            return torch.tensor(values, dtype=like.dtype, device=like.device)
        return torch.stack(
            [
                torch.as_tensor(v, dtype=like.dtype, device=like.device)
                for v in values
            ]
        )

    def slots(self, values):
        return kernels.Slots(values)

    # state_dtype: the kernel updates float copies in place.

    def widen(self, name, items, dtype):
        copies = [x.to(keras_dtype_to_torch(dtype)) for x in items]
        self._widened[name] = copies
        return copies

    def widened(self, name):
        return self._widened[name]

    def store_rounded_(self, slots, values, seed, count=1):
        """As ``kernels.Single.store_rounded_``, variable by variable:
        ``slots`` and ``values`` hold each slot name's ``count``
        variables in turn; each variable's slots are rounded from one
        draw, in the variables' order, so that the bits drawn are those
        of the per-variable loop on the other backends (a file saved on
        one resumes on another rounding alike)."""
        from keras import backend

        torch = self._torch
        names = len(slots) // count
        for i in range(count):
            own = [slots[n * count + i] for n in range(names)]
            stacked = torch.stack([values[n * count + i] for n in range(names)])
            rounded = rounding.stochastic_round(
                stacked, backend.standardize_dtype(own[0].dtype), seed
            )
            for j, slot in enumerate(own):
                slot.copy_(rounded[j])

    # cautious.

    def snapshot(self, tensors):
        self._before = [x.clone() for x in tensors]
        return self._before

    def update_begins(self, p):
        if self._before is not None:
            self.snapshot(p)
        return p

    def cautious_decay_(self, tensors, decayed, weight_decay, lr):
        """As ``kernels.Single.cautious_decay_``."""
        for x, before, take in zip(tensors, self._before, decayed):
            if take:
                mask = ((before - x) * before >= 0).to(x.dtype)
                x.sub_(before * mask * (weight_decay * lr))

    def cautious_(self, tensors, grads):
        """As ``kernels.Single.cautious_``, over every tensor at once."""
        torch = self._torch
        before = self._before
        u = torch._foreach_sub(before, tensors)
        masks = [
            torch.gt(product, 0).to(product.dtype)
            for product in torch._foreach_mul(u, grads)
        ]
        counts = torch.stack([m.sum() for m in masks])
        sizes = torch.tensor(
            [float(max(1, m.numel())) for m in masks],
            dtype=counts.dtype,
            device=counts.device,
        )
        floor = kernels.CAUTIOUS_MIN_FRACTION
        masks = self.scale(masks, sizes / torch.maximum(counts, floor * sizes))
        # before - u * masks, leaving ``before`` for cautious_decay_.
        torch._foreach_copy_(
            tensors, torch._foreach_sub(before, torch._foreach_mul(u, masks))
        )

    # The kernel's vocabulary.

    def _number(self, value):
        torch = self._torch
        if isinstance(value, torch.Tensor):
            # A CPU scalar read as a Python number is faster in eager
            # mode; under torch.compile it would break the graph and
            # specialize on a value that changes every step.
            if value.device.type == "cpu" and not compiling():
                return value.item()
            return value
        return float(value)

    def _scalar(self, value, like):
        """A scalar for the ``Scalar`` or ``ScalarList`` overloads of the
        ops whose ``Tensor`` overload reads the value back (``add``,
        ``maximum``, ``clamp``): a number, or under ``torch.compile`` a
        0-d tensor repeated, which broadcasts without a host sync."""
        value = self._number(value)
        if self._is_tensor(value):
            return [value] * len(like)
        return value

    def _is_tensor(self, value):
        return isinstance(value, self._torch.Tensor)

    def lerp_(self, x, y, weight):
        torch = self._torch
        weight = self._number(weight)
        if self._is_tensor(weight):
            torch._foreach_add_(
                x, torch._foreach_mul(torch._foreach_sub(y, x), weight)
            )
        else:
            torch._foreach_lerp_(x, y, weight)
        return x

    def mul_(self, x, y):
        self._torch._foreach_mul_(x, y)
        return x

    def div_(self, x, y):
        self._torch._foreach_div_(x, y)
        return x

    def add_(self, x, y, alpha=1.0):
        torch = self._torch
        if not isinstance(y, (list, tuple)):  # a scalar: alpha must be 1
            torch._foreach_add_(x, self._scalar(y, x))
            return x
        alpha = self._number(alpha)
        if self._is_tensor(alpha):
            torch._foreach_add_(x, torch._foreach_mul(y, alpha))
        else:
            torch._foreach_add_(x, y, alpha=alpha)
        return x

    def sub_(self, x, y, alpha=1.0):
        torch = self._torch
        alpha = self._number(alpha)
        if self._is_tensor(alpha):
            torch._foreach_sub_(x, torch._foreach_mul(y, alpha))
        else:
            torch._foreach_sub_(x, y, alpha=alpha)
        return x

    def addcmul_(self, x, y, z, value=1.0):
        torch = self._torch
        value = self._number(value)
        if self._is_tensor(value):
            torch._foreach_add_(
                x, torch._foreach_mul_(torch._foreach_mul(y, z), value)
            )
        else:
            torch._foreach_addcmul_(x, y, z, value)
        return x

    def addcdiv_(self, x, y, z, value=1.0):
        torch = self._torch
        value = self._number(value)
        if self._is_tensor(value):
            torch._foreach_add_(
                x, torch._foreach_mul_(torch._foreach_div(y, z), value)
            )
        else:
            torch._foreach_addcdiv_(x, y, z, value)
        return x

    def maximum_(self, x, y):
        if not isinstance(y, (list, tuple)):
            y = self._scalar(y, x)
        self._torch._foreach_maximum_(x, y)
        return x

    def clamp_(self, x, low, high):
        torch = self._torch
        torch._foreach_clamp_min_(x, self._scalar(low, x))
        torch._foreach_clamp_max_(x, self._scalar(high, x))
        return x

    def sqrt_(self, x):
        self._torch._foreach_sqrt_(x)
        return x

    def copy_(self, x, y, when=None):
        torch = self._torch
        if when is not None:
            when = self._number(when)
            if not self._is_tensor(when):
                if when:
                    torch._foreach_copy_(x, y)
                return x
            y = [torch.where(when, b, a) for a, b in zip(x, y)]
        torch._foreach_copy_(x, y)
        return x

    def add(self, x, y, alpha=1.0):
        torch = self._torch
        if not isinstance(y, (list, tuple)):
            return torch._foreach_add(x, y)
        alpha = self._number(alpha)
        if self._is_tensor(alpha):
            return torch._foreach_add(x, torch._foreach_mul(y, alpha))
        return torch._foreach_add(x, y, alpha=alpha)

    def sub(self, x, y):
        return self._torch._foreach_sub(x, y)

    def addcmul(self, x, y, z, value=1.0):
        torch = self._torch
        value = self._number(value)
        if self._is_tensor(value):
            return torch._foreach_add(
                x, torch._foreach_mul_(torch._foreach_mul(y, z), value)
            )
        return torch._foreach_addcmul(x, y, z, value)

    def div(self, x, y):
        return self._torch._foreach_div(x, y)

    def sqrt(self, x):
        return self._torch._foreach_sqrt(x)

    def square(self, x):
        return self._torch._foreach_mul(x, x)

    def agreeing(self, x, y):
        """As ``kernels.Single.agreeing``."""
        return [(a * b >= 0).to(a.dtype) for a, b in zip(x, y)]

    def sign(self, x):
        return self._torch._foreach_sign(x)

    def pow(self, x, exponent):
        return self._torch._foreach_pow(x, exponent)

    def where(self, condition, x, y):
        torch = self._torch
        condition = self._number(condition)
        if not self._is_tensor(condition):
            if condition or isinstance(y, (list, tuple)):
                return x if condition else y
            return [torch.full_like(a, y) for a in x]  # a number
        if not isinstance(y, (list, tuple)):
            return [torch.where(condition, a, y) for a in x]
        return [torch.where(condition, a, b) for a, b in zip(x, y)]

    def norm(self, x):
        torch = self._torch
        return torch.stack(torch._foreach_norm(x))

    def abs_sum(self, x):
        torch = self._torch
        return torch.stack(torch._foreach_norm(x, 1))

    def dot(self, x, y):
        torch = self._torch
        return torch.stack([a.flatten().dot(b.flatten()) for a, b in zip(x, y)])

    def read(self, x):
        return self._torch.stack(x)

    def write_(self, x, values):
        self._torch._foreach_copy_(x, list(values.unbind(0)))
        return x

    def scale(self, x, factors):
        if factors.device.type == "cpu" and not compiling():
            # As numbers: no device round trip (under torch.compile, a
            # graph break).
            return self._torch._foreach_mul(x, factors.tolist())
        return self._torch._foreach_mul(x, list(factors.unbind(0)))


def keras_dtype_to_torch(dtype):
    import torch

    return getattr(torch, str(dtype).removeprefix("torch."))


def _scope_value(variable):
    return variable.value


FUSED_DTYPES = ("float16", "bfloat16", "float32", "float64")


def compiling() -> bool:
    """Whether ``torch.compile`` is tracing the running code."""
    import torch

    return torch.compiler.is_compiling()


def fusable(tensors) -> bool:
    """Whether torch's fused optimizer kernels take these tensors' dtype,
    outside ``torch.compile`` (inductor has no CPU kernel of
    ``_fused_sgd_`` with a tensor learning rate; it compiles the foreach
    form instead)."""
    if compiling():
        return False
    return str(tensors[0].dtype).removeprefix("torch.") in FUSED_DTYPES


def update(optimizer, grads, variables, learning_rate):
    """One step over all ``variables`` (torch): one
    ``optimizer._run_kernel`` per dtype and device, over lists."""
    import torch

    k = Foreach()
    groups: dict = {}
    for grad, variable in zip(grads, variables):
        key = (variable.dtype, k.tensor(variable).device)
        group = groups.setdefault(key, ([], []))
        group[0].append(grad)
        group[1].append(variable)
    with torch.no_grad():
        for group_grads, group_variables in groups.values():
            optimizer._run_kernel(
                k, group_grads, group_variables, learning_rate
            )
