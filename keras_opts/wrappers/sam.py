"""SAM: sharpness-aware minimization, a training step around a model.

SAM needs the gradient at a second point, so it cannot be an optimizer: it
is a ``keras.Model`` that wraps the model to train and overrides
``train_step`` on each backend, with any optimizer doing the update.

Private Keras API (the ``loss`` metric every trainer updates and, on JAX,
the update of the metrics from values) goes through
``keras_opts._core.keras_api``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras
from keras import ops

from keras_opts._core import checks, gradients, keras_api
from keras_opts._core.config import checked_config
from keras_opts.wrappers import base as wrapper_base


@keras.saving.register_keras_serializable(package="keras_opts")
class SAM(keras.Model):
    r"""Sharpness-aware minimization (Foret, Kleiner, Mobahi & Neyshabur,
    2021) around a model, with any optimizer.

    SAM looks for weights whose whole neighbourhood has a low loss: at each
    step it moves the weights a distance ``rho`` uphill, along the
    normalised gradient (the worst case to first order), takes the gradient
    there, returns to the original weights, and hands that second gradient
    to the compiled optimizer. Flat minima found this way tend to
    generalise better. It costs two forward and backward passes per step.

    Symbols: $\rho$ = ``rho``, $\epsilon$ = ``epsilon``, $w$ all the
    trainable variables, $L_B$ the compiled loss on the batch $B$,
    $\lVert\cdot\rVert_2$ the global norm over every trainable variable,
    $e$ the perturbation (the paper's $\hat\epsilon(w)$ with $p = 2$).

    $$
    \begin{aligned}
    g &= \nabla_w L_B(w) \\
    e &= \rho\,\frac{g}{\lVert g \rVert_2 + \epsilon} \\
    g_{\text{SAM}} &= \nabla_w L_B(w)\big|_{w + e} \\
    w &\leftarrow \text{the optimizer's update of } w
        \text{ with gradient } g_{\text{SAM}}
    \end{aligned}
    $$

    Both passes see the same batch and the same model state: the second
    one starts from the non-trainable variables the first one started from
    (so it draws the same dropout masks), and its updates of them are
    discarded, so ``BatchNormalization`` moving statistics move once per
    step, with the statistics of the unperturbed weights. The logged loss,
    per-output losses and metrics are those of the first pass, at $w$. The
    optimizer's loss scaling applies to both passes; the direction of $e$
    does not depend on it. The scales and amax histories of a
    float8-quantized layer are state, not weights: they are left out of
    $w$ (neither perturbed nor in the norm), and the optimizer overwrites
    them with the first pass' values. ``tf.distribute`` strategies are not
    supported (the perturbation and the restoring of the weights would run
    per replica).

    Args:
        model: the ``keras.Model`` to train. Its variables are shared: after
            ``fit`` the wrapped model holds the trained weights and can be
            used, saved or exported on its own.
        rho: $\rho$, the radius of the neighbourhood, > 0. Default 0.05
            (the paper's usual value).
        epsilon: $\epsilon$ >= 0, added to the gradient norm so a zero
            gradient gives no perturbation instead of a NaN. Default 1e-12.
        **kwargs: ``keras.Model`` arguments (``name``, ``trainable``).

    Compile and fit the wrapper; calling it calls the wrapped model. It is
    saved and reloaded with ``model.save`` and ``keras.models.load_model``
    (the wrapped model, the optimizer and its state included).

    Example:

    >>> import keras, keras_opts
    >>> model = keras.Sequential([
    ...     keras.Input((1,)),
    ...     keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
    ... ])
    >>> sam = keras_opts.SAM(model, rho=0.5)
    >>> sam.compile(optimizer=keras_opts.SGD(learning_rate=0.1), loss="mse")
    >>> x, y = keras.ops.ones((1, 1)), keras.ops.zeros((1, 1))
    >>> # L = w^2: gradient 2 at w = 1, e = 0.5, gradient 3 at w + e,
    >>> # so w = 1 - 0.1 * 3.
    >>> history = sam.fit(x, y, epochs=1, verbose=0)
    >>> round(float(model.layers[0].kernel.numpy().squeeze()), 4)
    0.7
    >>> loss = history.history["loss"]  # at w = 1
    >>> loss
    [1.0]

    References:
        Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization
        for Efficiently Improving Generalization", ICLR 2021,
        https://arxiv.org/abs/2010.01412; authors' code:
        https://github.com/google-research/sam
    """

    def __init__(
        self,
        model: keras.Model,
        rho: float = 0.05,
        epsilon: float = 1e-12,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(
                "`model` must be a keras.Model instance. "
                f"Received: model={model!r} of type {type(model).__name__}."
            )
        rho = checks.positive("rho", rho)
        epsilon = checks.non_negative("epsilon", epsilon)
        super().__init__(**kwargs)
        self.inner_model = model
        self.rho = rho
        self.epsilon = epsilon
        if model.built:
            self.built = True

    def build(self, input_shape=None):
        if not self.inner_model.built:
            self.inner_model.build(input_shape)

    def call(self, inputs, training=None):
        return self.inner_model(inputs, training=training)

    def perturbation(self, grads: list) -> list:
        """The perturbation ``rho * g / (global_norm(g) + epsilon)`` of each
        gradient (``None`` stays ``None``), the norm taken in float32 over
        all of them. A sparse gradient (an ``Embedding``'s on TensorFlow)
        is made dense first, its duplicate rows summed: its perturbation
        is a dense tensor like the others."""
        grads = [None if g is None else gradients.dense(g) for g in grads]
        present = [
            ops.cast(ops.convert_to_tensor(g), "float32")
            for g in grads
            if g is not None
        ]
        norm = ops.sqrt(ops.sum(ops.stack([ops.sum(g * g) for g in present])))
        scale = self.rho / (norm + self.epsilon)
        return [
            None
            if g is None
            else ops.convert_to_tensor(g) * ops.cast(scale, g.dtype)
            for g in grads
        ]

    def train_step(self, *args):
        backend = keras.backend.backend()
        if backend == "jax":
            return self._jax_train_step(*args)
        if backend == "tensorflow":
            return self._stateful_train_step(*args, self._tf_gradients)
        if backend == "torch":
            return self._stateful_train_step(*args, self._torch_gradients)
        raise NotImplementedError(
            f"SAM trains on TensorFlow, JAX and torch. Received: {backend}"
        )

    # TensorFlow and torch: variables change in place.

    def _loss(self, x, y, sample_weight):
        y_pred = self(x, training=True)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        return loss, y_pred, self.optimizer.scale_loss(loss)

    def _tf_gradients(self, x, y, sample_weight, variables):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, y_pred, scaled = self._loss(x, y, sample_weight)
        return loss, y_pred, tape.gradient(scaled, variables)

    def _torch_gradients(self, x, y, sample_weight, variables):
        import torch

        loss, y_pred, scaled = self._loss(x, y, sample_weight)
        grads = torch.autograd.grad(
            scaled, [v.value for v in variables], allow_unused=True
        )
        y_pred = keras.tree.map_structure(ops.stop_gradient, y_pred)
        return ops.stop_gradient(loss), y_pred, list(grads)

    def _stateful_train_step(self, data, gradients):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not self.built:
            # TensorFlow builds a deferred model while tracing train_step:
            # create the variables before listing them.
            self(x, training=False)
        variables = list(self.trainable_variables)
        # The second pass' updates of this state are discarded: moving
        # statistics, random seeds and the compiled losses' own trackers.
        state = list(self.non_trainable_variables) + list(
            self.metrics_variables
        )
        with wrapper_base.no_grad():
            state_before = _copies(state)
        with _replayed_global_random_state():
            loss, y_pred, grads = gradients(x, y, sample_weight, variables)
        overwritten = _overwritten(variables)
        with wrapper_base.no_grad():
            state_after = _copies(state)
            weights = _copies(variables)
            _assign(state, state_before)
            perturbation = self.perturbation(_drop(grads, overwritten))
            for variable, e in zip(variables, perturbation):
                if e is not None:
                    variable.assign(variable.value + e)
        _, _, sam_grads = gradients(x, y, sample_weight, variables)
        with wrapper_base.no_grad():
            _assign(variables, weights)
            _assign(state, state_after)
            self.optimizer.apply(
                _merge(sam_grads, grads, overwritten), variables
            )
        keras_api.loss_tracker(self).update_state(
            loss, sample_weight=_batch_size(x)
        )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    # JAX: values in, values out.

    def _jax_train_step(self, state, data):
        import jax

        (
            trainable_variables,
            non_trainable_variables,
            optimizer_variables,
            metrics_variables,
        ) = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(
            self.compute_loss_and_updates, has_aux=True
        )

        def gradients(weights):
            return grad_fn(
                weights,
                non_trainable_variables,
                metrics_variables,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_variables,
            )

        (_, aux), grads = gradients(trainable_variables)
        loss, y_pred, new_non_trainable, new_metrics = aux
        overwritten = _overwritten(self.trainable_variables)
        perturbation = self.perturbation(_drop(grads, overwritten))
        perturbed = [
            w if e is None else w + e
            for w, e in zip(trainable_variables, perturbation)
        ]
        _, sam_grads = gradients(perturbed)
        trainable_variables, optimizer_variables = (
            self.optimizer.stateless_apply(
                optimizer_variables,
                _merge(sam_grads, grads, overwritten),
                trainable_variables,
            )
        )
        logs, new_metrics = keras_api.update_metrics_variables(
            self, new_metrics, loss, x, y, y_pred, sample_weight
        )
        return logs, (
            trainable_variables,
            new_non_trainable,
            optimizer_variables,
            new_metrics,
        )

    # Configuration.

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.inner_model),
            "rho": self.rho,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Keras' convention, ``cls(**config)``: a missing argument takes
        its default, but the wrapped ``model`` has none; it is
        deserialized."""
        config = checked_config(
            cls,
            config,
            required=("model",),
            objects=("model",),
            custom_objects=custom_objects,
        )
        return cls(**config)


def _replayed_global_random_state():
    """torch: the random state on exit is the one on entry, so the second
    pass draws what the first drew. An unseeded ``Dropout`` on torch draws
    from torch's global generator, not from a Keras ``SeedGenerator``."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.random.fork_rng()
    return contextlib.nullcontext()


def _overwritten(variables) -> list:
    """Which variables are ``overwrite_with_gradient`` ones: the scales and
    amax histories of a float8-quantized layer, whose "gradient" is their
    next value, computed by the forward and backward pass."""
    return [getattr(v, "overwrite_with_gradient", False) for v in variables]


def _drop(grads, overwritten) -> list:
    """The gradients, ``None`` for the overwritten variables: no
    perturbation and no share of the norm."""
    return [None if o else g for g, o in zip(grads, overwritten)]


def _merge(sam_grads, grads, overwritten) -> list:
    """SAM's gradients, and the first pass' values (at w, as a plain step
    takes them) for the overwritten variables."""
    return [g if o else s for s, g, o in zip(sam_grads, grads, overwritten)]


def _copies(variables) -> list:
    return [ops.copy(v.value) for v in variables]


def _assign(variables, values) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)


def _batch_size(x):
    first = next(t for t in keras.tree.flatten(x) if t is not None)
    return ops.shape(first)[0]
