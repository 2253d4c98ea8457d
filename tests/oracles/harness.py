"""What ``keras.optimizers.Optimizer.apply`` does around ``update_step``.

Transcribed from the Keras 3 documentation of the base-class arguments:
divide by ``loss_scale_factor``; with ``gradient_accumulation_steps = k``
add up k calls' gradients and update with their mean on every k-th call;
centralize gradients of rank >= 2 if asked (Yong et al. 2020: subtract
the mean over every axis but the last); clip (``clipnorm`` per tensor,
``global_clipnorm`` or ``clipvalue``: Keras takes one of them);
decay ``w <- w - w * weight_decay * lr``; then the algorithm's step.

With ``cautious_weight_decay`` (Chen et al. 2025, "Cautious Weight Decay",
https://arxiv.org/abs/2510.12402, Algorithm 1: ``x_{t+1} = x_t - lr (u_t
+ weight_decay * 1(u_t * x_t >= 0) * x_t)``), the decay follows the
algorithm's step ``lr u_t = x_t - step(x_t)``, on the entries where it
and ``x_t`` agree in sign.
"""

import numpy as np


def _clip(grads, clipnorm, clipvalue, global_clipnorm):
    if clipnorm is not None:
        return [g * clipnorm / max(np.linalg.norm(g), clipnorm) for g in grads]
    if global_clipnorm is not None:
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        return [g * global_clipnorm / max(norm, global_clipnorm) for g in grads]
    if clipvalue is not None:
        return [np.clip(g, -clipvalue, clipvalue) for g in grads]
    return grads


def run(
    oracle,
    params,
    grad_steps,
    lrs,
    *,
    weight_decay=None,
    clipnorm=None,
    clipvalue=None,
    global_clipnorm=None,
    loss_scale_factor=None,
    gradient_accumulation_steps=None,
    gradient_centralization=False,
    cautious_weight_decay=False,
):
    """Applies ``grad_steps`` (a list, per call, of a gradient per param).

    ``lrs[i]`` is the learning rate of call ``i``. Returns the list of
    parameter lists after every call, in float64.
    """
    params = [np.asarray(p, np.float64).copy() for p in params]
    states = [oracle.init(p) for p in params]
    k = gradient_accumulation_steps or 1
    accumulated = [np.zeros_like(p) for p in params]
    t = 0
    history = []
    for call, (grads, lr) in enumerate(zip(grad_steps, lrs)):
        grads = [np.asarray(g, np.float64) for g in grads]
        if loss_scale_factor is not None:
            grads = [g / loss_scale_factor for g in grads]
        if (call + 1) % k:
            accumulated = [a + g for a, g in zip(accumulated, grads)]
            history.append([p.copy() for p in params])
            continue
        grads = [(g + a) / k for g, a in zip(grads, accumulated)]
        accumulated = [np.zeros_like(p) for p in params]
        if gradient_centralization:  # Yong et al. (2020), eq. 3
            grads = [
                g - g.mean(axis=tuple(range(g.ndim - 1)), keepdims=True)
                if g.ndim >= 2
                else g
                for g in grads
            ]
        grads = _clip(grads, clipnorm, clipvalue, global_clipnorm)
        t += 1
        cautious = cautious_weight_decay and weight_decay is not None
        if weight_decay is not None and not cautious:
            params = [p - p * weight_decay * lr for p in params]
        before = [p.copy() for p in params]
        if hasattr(oracle, "step_all"):  # state shared by all parameters
            params = oracle.step_all(params, grads, states, lr, t)
        else:
            params = [
                oracle.step(p, g, s, lr, t)
                for p, g, s in zip(params, grads, states)
            ]
        if cautious:
            params = [
                p - lr * weight_decay * ((x - p) * x >= 0) * x
                for p, x in zip(params, before)
            ]
        history.append([p.copy() for p in params])
    return history
