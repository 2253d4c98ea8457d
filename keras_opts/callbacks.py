"""Callbacks and helpers for schedule-free training: evaluate, predict and
checkpoint the model at $x$, the average the method returns, while it trains
at $y$.

A schedule-free optimizer (:class:`keras_opts.ScheduleFreeSGD`,
:class:`~keras_opts.ScheduleFreeAdamW`, :class:`~keras_opts.ScheduleFreeRAdam`)
leaves the training point $y$ in the model's variables; its ``averaged()``
context swaps $x$ in and $y$ back out exactly. :class:`ScheduleFreeEvaluation`
does that around ``fit``'s validation, ``evaluate`` and ``predict``, and
around the callbacks it wraps (``ModelCheckpoint``), so validation losses
and saved models are those of $x$.

BatchNormalization keeps moving averages of its batch statistics, gathered
during training at $y$; at $x$ the activations differ, and so should the
statistics. :func:`recompute_batchnorm_statistics` recomputes them at the
weights in the variables, as Izmailov et al. (2018) do for SWA's average and
the authors of schedule-free training recommend for $x$.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_opts._core import checks
from keras_opts._core.schedule_free import ScheduleFree

__all__ = ["ScheduleFreeEvaluation", "recompute_batchnorm_statistics"]


def batchnorm_layers(model) -> list:
    """The ``BatchNormalization`` layers of ``model`` reachable through
    ``.layers`` (the model's, and those of the models nested in it)."""
    found, stack, seen = [], [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        stack.extend(reversed(list(getattr(layer, "layers", ()))))
    return found


def _batches(data, batch_size: int) -> Iterator[Any]:
    """The inputs of each batch of ``data``: an array (split into batches
    of ``batch_size``), or an iterable of batches, each the inputs or a
    tuple ``(inputs, targets[, sample weights])``."""
    if isinstance(data, np.ndarray) or ops.is_tensor(data):
        count = int(data.shape[0])
        for start in range(0, count, batch_size):
            yield data[start : start + batch_size]
        return
    for batch in data:
        if isinstance(batch, tuple):
            batch = batch[0]
        yield batch


def _no_grad():
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def recompute_batchnorm_statistics(
    model: keras.Model,
    data: Any,
    steps: int | None = None,
    batch_size: int = 32,
    layers: Sequence[keras.layers.Layer] | None = None,
) -> int:
    r"""Recomputes the moving mean and variance of the model's
    BatchNormalization layers at the weights its variables hold now.

    BatchNormalization normalises with the statistics of each batch while
    training and with their moving averages at inference. Under a
    schedule-free optimizer those averages were gathered at the training
    point $y$; evaluated at $x$ the network's activations differ, and stale
    statistics can cost much of the average's benefit. Call this inside
    ``optimizer.averaged()`` (or let :class:`ScheduleFreeEvaluation` do it)
    before evaluating or saving $x$.

    The model runs forward in training mode over the batches of ``data``;
    no gradient is taken and no trainable weight changes. Before batch
    $i = 0, 1, \dots$ each layer's ``momentum`` is set to $i / (i + 1)$,
    so the moving statistics end as the plain average of the batches'
    statistics (torch's ``update_bn`` does the same); each ``momentum`` is
    restored afterwards. Layers in training mode behave as in training
    (dropout drops units), as in ``update_bn``.

    Args:
        model: the model (called as ``model(x, training=True)``).
        data: the inputs: an array (split into batches of ``batch_size``)
            or an iterable of batches (a ``tf.data.Dataset``, a
            ``PyDataset``, a generator), each the inputs or a tuple
            ``(inputs, targets[, sample_weights])``.
        steps: the number of batches to use, an integer >= 1, or None for
            all of ``data``. A few hundred examples are usually enough.
        batch_size: the batch size when ``data`` is an array. Default 32.
        layers: the BatchNormalization layers to recompute. Default: those
            reachable through ``model.layers`` (nested models included; a
            BatchNormalization inside a custom non-model layer must be
            listed here).

    Returns:
        The number of batches used (0 when the model has no such layer,
        and then it does not run the model).
    """
    if steps is not None:
        steps = checks.integer("steps", steps, 1)
    batch_size = checks.integer("batch_size", batch_size, 1)
    layers = batchnorm_layers(model) if layers is None else list(layers)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        with _no_grad():
            for inputs in _batches(data, batch_size):
                if steps is not None and used >= steps:
                    break
                for layer in layers:
                    layer.momentum = used / (used + 1)
                model(inputs, training=True)
                used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not used:
        raise ValueError(
            "`data` gave no batch: BatchNormalization statistics need at "
            f"least one. Received: data={data!r}"
        )
    return used


def schedule_free_optimizer(model) -> ScheduleFree:
    """The schedule-free optimizer ``model`` trains with (inside a
    ``LossScaleOptimizer`` too)."""
    optimizer = getattr(model, "optimizer", None)
    while optimizer is not None and not isinstance(optimizer, ScheduleFree):
        optimizer = getattr(optimizer, "inner_optimizer", None)
    if optimizer is None:
        raise TypeError(
            "ScheduleFreeEvaluation needs a model compiled with a "
            "schedule-free optimizer (keras_opts.ScheduleFreeSGD, "
            "ScheduleFreeAdamW or ScheduleFreeRAdam). Received: "
            f"optimizer={getattr(model, 'optimizer', None)!r}"
        )
    return optimizer


@contextlib.contextmanager
def _values_kept(variables) -> Iterator[None]:
    """The variables' values restored exactly on exit."""
    kept = [ops.copy(v.value) for v in variables]
    try:
        yield
    finally:
        with _no_grad():
            for variable, value in zip(variables, kept):
                variable.assign(value)


class ScheduleFreeEvaluation(keras.callbacks.Callback):
    r"""Evaluates, predicts and checkpoints at $x$ while ``fit`` trains at
    $y$, for a model compiled with a schedule-free optimizer.

    - ``fit``'s validation and ``evaluate`` (``on_test_begin`` to
      ``on_test_end``) and ``predict`` run inside the optimizer's
      ``averaged()``: the logged ``val_loss`` is $x$'s.
    - The ``callbacks`` given here run their end-of-epoch and end-of-
      training hooks at $x$, and their batch-end hooks too where they save
      by batch count (an integer ``save_freq``): a ``ModelCheckpoint``
      wrapped here writes $x$. Their other hooks are passed on unchanged.
      Do not also give them to ``fit``.
    - With ``batchnorm_data``, the moving statistics of BatchNormalization
      layers are recomputed at $x$ each time
      (:func:`recompute_batchnorm_statistics`, ``batchnorm_steps``
      batches), and restored afterwards.

    Afterwards the trainable variables get $y$ back bit for bit, and the
    recomputed BatchNormalization statistics their training values, so
    training continues exactly as without the callback.

    A checkpoint written at $x$ holds $x$ beside the optimizer's state: it
    is the model to deploy or evaluate, not one to resume training from
    (the optimizer expects $y$ in the variables). Resume from
    ``BackupAndRestore`` or from a checkpoint written outside this callback.

    Args:
        callbacks: callbacks to run at $x$ (``ModelCheckpoint``). Default
            none.
        batchnorm_data: data for :func:`recompute_batchnorm_statistics`
            (training data: an array or an iterable of batches), or None
            to leave the statistics alone. Default None.
        batchnorm_steps: the number of batches of ``batchnorm_data`` to
            use, or None for all. Default None.
        batch_size: the batch size when ``batchnorm_data`` is an array.
            Default 32.

    Example:

    ```python
    opt = keras_opts.ScheduleFreeAdamW(0.0025, warmup_steps=100)
    model.compile(optimizer=opt, loss="mse")
    checkpoint = keras.callbacks.ModelCheckpoint("x.keras")
    evaluation = keras_opts.callbacks.ScheduleFreeEvaluation(
        [checkpoint], batchnorm_data=x, batchnorm_steps=20
    )
    model.fit(
        x, y, validation_data=(x_val, y_val), epochs=10,
        callbacks=[evaluation],
    )
    with opt.averaged():  # after fit, the variables hold y again
        # BatchNormalization's moving statistics at x, not y's
        keras_opts.callbacks.recompute_batchnorm_statistics(
            model, x, steps=20
        )
        model.evaluate(x_test, y_test)
    ```
    """

    def __init__(
        self,
        callbacks: Iterable[keras.callbacks.Callback] = (),
        batchnorm_data: Any = None,
        batchnorm_steps: int | None = None,
        batch_size: int = 32,
    ) -> None:
        super().__init__()
        callbacks = list(callbacks)
        for callback in callbacks:
            if not isinstance(callback, keras.callbacks.Callback):
                raise TypeError(
                    "`callbacks` must hold keras.callbacks.Callback "
                    f"instances. Received: {callback!r} of type "
                    f"{type(callback).__name__}"
                )
        if batchnorm_steps is not None:
            batchnorm_steps = checks.integer(
                "batchnorm_steps", batchnorm_steps, 1
            )
        self.callbacks = callbacks
        self.batchnorm_data = batchnorm_data
        self.batchnorm_steps = batchnorm_steps
        self.batch_size = checks.integer("batch_size", batch_size, 1)
        self._stack: contextlib.ExitStack | None = None

    # Keras' plumbing, passed on to the wrapped callbacks.

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    # x in the variables.

    @contextlib.contextmanager
    def at_average(self) -> Iterator[None]:
        """A context inside which the model holds $x$ (and, with
        ``batchnorm_data``, BatchNormalization statistics computed at
        $x$); on exit everything has its training value back."""
        model = self.model
        optimizer = schedule_free_optimizer(model)
        with optimizer.averaged():
            if self.batchnorm_data is None:
                yield
                return
            layers = batchnorm_layers(model)
            statistics = [
                v
                for layer in layers
                for v in (layer.moving_mean, layer.moving_variance)
            ]
            with _values_kept(statistics):
                recompute_batchnorm_statistics(
                    model,
                    self.batchnorm_data,
                    self.batchnorm_steps,
                    self.batch_size,
                    layers,
                )
                yield

    def _enter(self) -> None:
        if self._stack is None:
            stack = contextlib.ExitStack()
            stack.enter_context(self.at_average())
            self._stack = stack

    def _exit(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _forward(self, hook: str, *args, at_average: bool = False) -> None:
        if not self.callbacks:
            return
        if at_average and self._stack is None:
            with self.at_average():
                for callback in self.callbacks:
                    getattr(callback, hook)(*args)
            return
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    # Evaluation and prediction at x.

    def on_test_begin(self, logs=None):
        self._enter()
        self._forward("on_test_begin", logs)

    def on_test_end(self, logs=None):
        try:
            self._forward("on_test_end", logs)
        finally:
            self._exit()

    def on_predict_begin(self, logs=None):
        self._enter()
        self._forward("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        try:
            self._forward("on_predict_end", logs)
        finally:
            self._exit()

    # The wrapped callbacks: saving hooks at x, the others passed on.

    def on_epoch_end(self, epoch, logs=None):
        self._forward("on_epoch_end", epoch, logs, at_average=True)

    def on_train_end(self, logs=None):
        self._forward("on_train_end", logs, at_average=True)

    def on_train_batch_end(self, batch, logs=None):
        by_batch = any(
            getattr(callback, "save_freq", "epoch") != "epoch"
            for callback in self.callbacks
        )
        self._forward("on_train_batch_end", batch, logs, at_average=by_batch)

    def on_train_begin(self, logs=None):
        self._forward("on_train_begin", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._forward("on_epoch_begin", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._forward("on_train_batch_begin", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._forward("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._forward("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._forward("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._forward("on_predict_batch_end", batch, logs)
