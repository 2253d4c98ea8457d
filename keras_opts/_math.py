"""Small pure ``keras.ops`` helpers that the optimizers' update steps share.

Every function takes and returns tensors (or Python floats for constants) and
has no side effects, so an ``update_step`` reads like its paper's algorithm box.
"""

from __future__ import annotations

from keras import ops

EPSILON_MODES = ("corrected", "uncorrected", "inside_sqrt")


def ema(average, value, decay):
    """Exponential moving average: ``decay * average + (1 - decay) * value``."""
    return decay * average + (1.0 - decay) * value


def bias_correction(decay, step):
    """``1 - decay ** step``: the mass an EMA started at zero has gathered."""
    return 1.0 - ops.power(decay, step)


def inverse_rms(v, correction_2, epsilon, mode):
    """The adaptive factor ``1 / sqrt(v_hat)`` of Adam-type methods.

    ``v`` is the uncorrected second-moment EMA and ``correction_2`` is
    ``1 - beta_2 ** t``. Where epsilon goes is a convention that differs
    between implementations:

    - ``"corrected"``: ``1 / (sqrt(v / c2) + eps)`` (Adam paper, Algorithm 1;
      torch.optim.Adam, optax, tensorflow-addons' RectifiedAdam);
    - ``"uncorrected"``: ``sqrt(c2) / (sqrt(v) + eps)``, the "epsilon hat" of
      the Adam paper's section 2 (Keras' built-in Adam, torch.optim.RAdam);
    - ``"inside_sqrt"``: ``sqrt(c2 / (v + eps))`` (the RAdam form of seed 000).
    """
    if mode == "corrected":
        return 1.0 / (ops.sqrt(v / correction_2) + epsilon)
    if mode == "uncorrected":
        return ops.sqrt(correction_2) / (ops.sqrt(v) + epsilon)
    return ops.sqrt(correction_2 / (v + epsilon))


def radam_sma_length(beta_2, step):
    """``rho_t``, the length of the approximated simple moving average."""
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    beta_2_power = ops.power(beta_2, step)
    return rho_inf - 2.0 * step * beta_2_power / (1.0 - beta_2_power)


def radam_rectification(beta_2, rho_t):
    """``r_t`` of Liu et al. (2019), eq. 7, clamped at 0 below ``rho_t = 4``.

    The clamp only keeps the unused branch of a ``where`` finite; callers use
    ``r_t`` only where ``rho_t`` passes their threshold (at least 4).
    """
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    ratio = (
        (rho_t - 4.0)
        * (rho_t - 2.0)
        * rho_inf
        / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
    )
    return ops.sqrt(ops.maximum(ratio, 0.0))
