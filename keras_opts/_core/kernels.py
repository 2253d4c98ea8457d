"""The two ways an optimizer's update is run: one variable through
``keras.ops``, or every variable at once through ``torch._foreach_*``.

Each optimizer writes its update once, as ``_kernel(k, p, g, s, c)``, in the
small vocabulary below, modelled on torch's in-place multi-tensor ops:
``p`` is the parameter, ``g`` the gradient, ``s`` the slots by name, ``c``
the per-step scalars. Under :class:`Single` these are one variable and
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
  computed once per step by ``_coefficients``.
"""

from __future__ import annotations

from keras import ops


class Single:
    """One variable at a time, through ``keras.ops`` and ``assign``."""

    def __init__(self, optimizer):
        self._optimizer = optimizer

    def _out(self, x, value):
        # A Keras variable, or the tf.Variable TensorFlow's optimizer passes
        # to update_step in its place; tensors have no `assign`.
        if hasattr(x, "assign"):
            self._optimizer.assign(x, value)
            return x
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

    def copy_(self, x, y):
        return self._out(x, y)

    def add(self, x, y, alpha=1.0):
        return x + y if _is_one(alpha) else x + alpha * y

    def mul(self, x, y):
        return x * y

    def addcmul(self, x, y, z, value=1.0):
        return x + value * y * z

    def div(self, x, y):
        return x / y

    def sqrt(self, x):
        return ops.sqrt(x)

    def square(self, x):
        return x * x

    def sign(self, x):
        return ops.sign(x)

    def abs(self, x):
        return ops.abs(x)

    def pow(self, x, exponent):
        return ops.power(x, exponent)

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


class Foreach:
    """Every variable of one dtype at once, through ``torch._foreach_*``.

    Scalars that are 0-d tensors go to the ``Tensor`` overloads where torch
    has them (``mul``, ``div``, ``add``); the ops whose scalar must be a
    number (``lerp``, ``addcmul``, ``addcdiv``, ``add`` with ``alpha``)
    read a 0-d tensor that lives on the CPU as a number, which costs no
    device round trip, and on an accelerator take a two-kernel form that
    keeps it on the device.
    """

    def __init__(self):
        import torch

        self._torch = torch

    def _number(self, value):
        torch = self._torch
        if isinstance(value, torch.Tensor):
            if value.device.type == "cpu":
                return value.item()
            return value
        return float(value)

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
            torch._foreach_add_(x, y)
            return x
        alpha = self._number(alpha)
        if self._is_tensor(alpha):
            torch._foreach_add_(x, torch._foreach_mul(y, alpha))
        else:
            torch._foreach_add_(x, y, alpha=alpha)
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
            y = float(y)  # on an accelerator this reads the scalar back
        self._torch._foreach_maximum_(x, y)
        return x

    def clamp_(self, x, low, high):
        torch = self._torch
        torch._foreach_clamp_min_(x, float(low))
        torch._foreach_clamp_max_(x, float(high))
        return x

    def sqrt_(self, x):
        self._torch._foreach_sqrt_(x)
        return x

    def copy_(self, x, y):
        self._torch._foreach_copy_(x, y)
        return x

    def add(self, x, y, alpha=1.0):
        torch = self._torch
        if not isinstance(y, (list, tuple)):
            return torch._foreach_add(x, y)
        alpha = self._number(alpha)
        if self._is_tensor(alpha):
            return torch._foreach_add(x, torch._foreach_mul(y, alpha))
        return torch._foreach_add(x, y, alpha=alpha)

    def mul(self, x, y):
        return self._torch._foreach_mul(x, y)

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

    def sign(self, x):
        return self._torch._foreach_sign(x)

    def abs(self, x):
        return self._torch._foreach_abs(x)

    def pow(self, x, exponent):
        return self._torch._foreach_pow(x, exponent)

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
        if factors.device.type == "cpu":  # as numbers: no device round trip
            return self._torch._foreach_mul(x, factors.tolist())
        return self._torch._foreach_mul(x, list(factors.unbind(0)))


def _is_one(alpha) -> bool:
    return isinstance(alpha, (int, float)) and alpha == 1.0


FUSED_DTYPES = ("float16", "bfloat16", "float32", "float64")


def fusable(tensors) -> bool:
    """Whether torch's fused optimizer kernels take these tensors' dtype."""
    return str(tensors[0].dtype).removeprefix("torch.") in FUSED_DTYPES


def foreach_update(optimizer, grads, variables, learning_rate):
    """One step over all ``variables`` (torch): per dtype, torch's fused
    kernel where the optimizer's ``_fused`` takes it, else one pass of
    ``optimizer._kernel`` over lists.

    Reads each Keras variable's tensor as ``variable._value`` (private
    Keras API) outside a stateless scope: the in-place kernels must write
    to the stored tensor, and the ``value`` property costs a few
    microseconds per variable in scope checks.
    """
    import torch
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    if in_stateless_scope():
        raw = _value
    else:
        raw = _stored_value
    groups: dict = {}
    for grad, variable in zip(grads, variables):
        key = (variable.dtype, raw(variable).device)
        groups.setdefault(key, []).append((grad, variable))
    k = Foreach()
    with torch.no_grad():
        for pairs in groups.values():
            keras_vars = [v for _, v in pairs]
            params = [raw(v) for v in keras_vars]
            dtype = params[0].dtype
            grads_ = [g if g.dtype == dtype else g.to(dtype) for g, _ in pairs]
            indices = [optimizer._get_variable_index(v) for v in keras_vars]
            slots = _Slots(
                {
                    name: [raw(slot[i]) for i in indices]
                    for name, slot in optimizer._slots.items()
                }
            )
            lr = ops.cast(learning_rate, keras_vars[0].dtype)
            step = optimizer._step(keras_vars[0])
            if optimizer._decays_in_step():  # Keras' decoupled decay, here
                decayed = [
                    p
                    for p, v in zip(params, keras_vars)
                    if optimizer._use_weight_decay(v)
                ]
                if decayed:  # as Keras' torch _apply_weight_decay writes it
                    wd = optimizer._decoupled_coefficient(keras_vars[0].dtype)
                    torch._foreach_mul_(decayed, 1 - wd * lr)
            decay = optimizer.coupled_weight_decay
            chosen = []
            if decay:
                chosen = [
                    i
                    for i, v in enumerate(keras_vars)
                    if optimizer._use_weight_decay(v)
                ]
            every = len(chosen) == len(params)
            if (every or not decay) and optimizer._fused(
                params, grads_, slots, lr, step, decay if every else 0.0
            ):
                continue  # the fused kernel applied any L2 term itself
            if chosen:  # coupled L2 into new tensors: g stays the caller's
                added = torch._foreach_add(
                    [grads_[i] for i in chosen],
                    [params[i] for i in chosen],
                    alpha=decay,
                )
                for i, value in zip(chosen, added):
                    grads_[i] = value
                if optimizer._fused(params, grads_, slots, lr, step, 0.0):
                    continue
            coefficients = optimizer._coefficients(lr, step)
            if optimizer._decay_in_kernel:
                decays = [optimizer._kernel_decay(v) for v in keras_vars]
                device = params[0].device
                if all(isinstance(d, float) for d in decays):
                    coefficients["decay"] = torch.tensor(
                        decays, dtype=dtype, device=device
                    )
                else:  # a schedule's value, 0 where a variable is excluded
                    coefficients["decay"] = torch.stack(
                        [
                            torch.as_tensor(d, dtype=dtype, device=device)
                            for d in decays
                        ]
                    )
            per_variable = [
                optimizer._variable_coefficients(v) for v in keras_vars
            ]
            for name in per_variable[0]:
                coefficients[name] = torch.tensor(
                    [c[name] for c in per_variable],
                    dtype=dtype,
                    device=params[0].device,
                )
            optimizer._kernel(k, params, grads_, slots, coefficients)


def _value(variable):
    return variable.value


def _stored_value(variable):
    return variable._value


class _Slots(dict):
    """Slots by name, also readable as attributes (``s.momentum``)."""

    __getattr__ = dict.__getitem__
