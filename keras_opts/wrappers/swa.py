"""SWA: stochastic weight averaging around any optimizer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import keras
from keras import ops

from keras_opts._core import checks, config, keras_api
from keras_opts.wrappers import base as wrapper_base
from keras_opts.wrappers.base import read


@keras.saving.register_keras_serializable(package="keras_opts")
class SWA(wrapper_base.Wrapper):
    r"""Stochastic weight averaging (Izmailov et al., 2018) around any
    optimizer.

    The inner optimizer trains the model as usual: SWA never changes the
    training trajectory. Alongside, it keeps the running average of the
    weights visited every ``average_period`` updates once
    ``start_averaging`` updates have been made. With a high constant or
    cyclical learning rate the iterates bounce around a wide, flat region
    of the loss; their average lies nearer its centre and tends to
    generalise better than any single iterate.

    Symbols: $s$ = ``start_averaging``, $c$ = ``average_period``,
    $A$ = the inner ``optimizer``'s update, $w$ the model's weights,
    $w_{\text{SWA}}$ the average of $n$ weights ($n_0 = 0$),
    $t = 1, 2, \dots$ counts the inner optimizer's updates.

    $$
    \begin{aligned}
    w_t &= w_{t-1} + A(g_t, w_{t-1}) \\
    \text{if } t \ge s \text{ and } (t - s) \bmod c = 0:\quad
    w_{\text{SWA}} &\leftarrow \frac{n\,w_{\text{SWA}} + w_t}{n + 1}
        = w_{\text{SWA}} + \frac{w_t - w_{\text{SWA}}}{n + 1}, \qquad
    n \leftarrow n + 1
    \end{aligned}
    $$

    (the second form is the one computed). The weights after updates
    $s, s + c, s + 2c, \dots$ are averaged (with $s = 0$: after
    $c, 2c, \dots$). In the paper $s$ is the pretraining budget and the
    weights it reached, $\hat w$, are the first averaged. A step that the
    inner optimizer skips or only accumulates does not count towards $t$.

    Using the average: ``averaged()`` is a context manager inside which the
    model's trainable variables hold the average; on exit they get their
    training values back, bit for bit. The optimizer's state is left
    alone, so evaluating, predicting or exporting inside the block is safe
    and training continues afterwards as if nothing happened. The scales
    and amax histories of a float8-quantized layer, which the inner
    optimizer overwrites with their "gradient", are not averaged and keep
    their training values. A
    ``model.save`` inside the block writes the averaged weights with the
    optimizer's state as it is (save outside the block to resume training
    later):

    ```python
    swa = keras_opts.SWA(keras_opts.SGD(0.05, momentum=0.9),
                         start_averaging=1000, average_period=100)
    model.compile(optimizer=swa, loss="mse")
    model.fit(x, y, epochs=20)
    with swa.averaged():
        model.evaluate(x_test, y_test)
        model.save("swa.keras")
    ```

    Batch normalisation: the moving mean and variance of
    ``BatchNormalization`` layers are not trainable and not averaged;
    inside ``averaged()`` they still describe the activations of the last
    training weights. As in the paper, recompute them for the averaged
    weights before evaluating, with one pass over the training data in
    training mode: for batch $i = 0, 1, \dots$ set every such layer's
    ``momentum`` to $i / (i + 1)$ and call ``model(x_i, training=True)``,
    which leaves the average of the batch statistics. SWA does not do it
    for you, and ``averaged()`` restores only the trainable variables:
    keep a copy of ``model.non_trainable_variables`` to train on after.

    Args:
        optimizer: the inner optimizer, any ``keras.optimizers.Optimizer``
            (a Keras built-in or a keras_opts one). Set clipping, weight
            decay, EMA, loss scaling and gradient accumulation on it.
        start_averaging: $s$, an integer >= 0. Default 0.
        average_period: $c$, an integer >= 1. Default 10.
        name: the optimizer's name.

    ``learning_rate`` and ``iterations`` are the inner optimizer's; the
    averages, $n$, the update count and every variable of the inner
    optimizer are saved with the model and restored by
    ``keras.models.load_model``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> swa = keras_opts.SWA(
    ...     keras_opts.SGD(learning_rate=0.1), average_period=1
    ... )
    >>> g = keras.ops.convert_to_tensor([1.0, 1.0])
    >>> for _ in range(3):  # w: [0.9, -2.1], [0.8, -2.2], [0.7, -2.3]
    ...     swa.apply([g], [w])
    >>> def weights():
    ...     return [round(float(x), 4) for x in w.numpy()]
    >>> with swa.averaged():
    ...     weights()
    [0.8, -2.2]
    >>> weights()
    [0.7, -2.3]

    References:
        Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, "Averaging Weights
        Leads to Wider Optima and Better Generalization", UAI 2018,
        https://arxiv.org/abs/1803.05407; authors' code:
        https://github.com/timgaripov/swa
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        start_averaging: Annotated[int, checks.at_least(0)] = 0,
        average_period: Annotated[int, checks.at_least(1)] = 10,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _build_state(self, variables):
        self._n_averaged = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int",
            aggregation="only_first_replica",
            name="n_averaged",
        )
        self._averages = self.add_optimizer_variables(variables, "average")

    @property
    def n_averaged(self) -> int:
        """How many weights the average holds so far."""
        if not self.built:
            return 0
        return int(ops.convert_to_numpy(self._n_averaged))

    def _after_inner_step(self, variables, advanced, count):
        s, c = self.start_averaging, self.average_period
        add = ops.logical_and(
            advanced,
            ops.logical_and(
                ops.greater_equal(count, s), ops.equal((count - s) % c, 0)
            ),
        )
        n = ops.convert_to_tensor(self._n_averaged)
        for w, average in self._with_slots(self._averages, variables):
            a = average.value
            new = a + (read(w) - a) / (ops.cast(n, a.dtype) + 1)
            self.assign(average, ops.where(add, new, a))
        self._n_averaged.assign(n + ops.cast(add, n.dtype))

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """A context inside which the trained variables hold the average.

        On exit (also through an exception) they get their training values
        back exactly. The optimizer's own variables are not touched. Raises
        ``ValueError`` before any weights have been averaged.
        """
        if self.n_averaged == 0:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has averaged no "
                f"weights yet (start_averaging={self.start_averaging}, "
                f"average_period={self.average_period}, "
                "updates so far: "
                f"{int(ops.convert_to_numpy(self._update_count))})."
            )
        pairs = self._with_slots(
            self._averages, keras_api.built_variables(self)
        )
        variables = [variable for variable, _ in pairs]
        with wrapper_base.no_grad():
            training = [ops.copy(read(v)) for v in variables]
            for variable, average in pairs:
                # A copy: JAX's fit and evaluate donate the model's arrays.
                variable.assign(ops.copy(average.value))
        try:
            yield
        finally:
            with wrapper_base.no_grad():
                for variable, value in zip(variables, training):
                    variable.assign(value)
