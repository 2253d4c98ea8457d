"""Cautious updates, Liang et al. (2024), "Cautious Optimizers: Improving
Training with One Line of Code", https://arxiv.org/abs/2411.16085, on top
of any oracle.

The authors' C-AdamW as their code has it now, for the update ``u_t`` the
base optimizer proposes and the gradient ``g_t``:
``phi_t = 1(u_t * g_t > 0)``, ``lr_t' = lr_t / max(mean(phi_t), 1e-3)``
(``mask.div_(mask.mean().clamp_(min=1e-3))``), ``w_t = w_{t-1} - lr_t'
phi_t * u_t``, then the decoupled weight decay, which is not masked. The
mean is over each parameter tensor. The paper's Algorithm 2 divides by
``(nnz(phi_t) + 1) / d`` instead, as the authors' first code did.

Here ``u`` is the step the wrapped oracle takes (``param - new``, learning
rate included, which the positive scale does not change) after the
harness applied Keras' decoupled decay, and ``g`` the gradient with the
oracle's coupled L2 term (its ``l2`` attribute, 0 where it has none).
"""

import numpy as np


def cautious(oracle):
    """``oracle`` with its step masked as the paper says."""
    if hasattr(oracle, "step_all"):
        return _CautiousAll(oracle)
    return _Cautious(oracle)


class _Cautious:
    def __init__(self, oracle):
        self.oracle = oracle
        self.l2 = getattr(oracle, "l2", 0.0)

    def init(self, param):
        return self.oracle.init(param)

    def _masked(self, param, new, grad):
        u = param - new
        g = grad + self.l2 * param
        phi = (u * g > 0).astype(np.float64)
        kept = max(np.mean(phi), 1e-3) if phi.size else 1.0
        return param - phi * u / kept

    def step(self, param, grad, state, lr, t):
        new = self.oracle.step(param.copy(), grad, state, lr, t)
        return self._masked(param, new, grad)


class _CautiousAll(_Cautious):
    def step_all(self, params, grads, states, lr, t):
        copies = [p.copy() for p in params]
        new = self.oracle.step_all(copies, grads, states, lr, t)
        return [self._masked(p, n, g) for p, n, g in zip(params, new, grads)]
