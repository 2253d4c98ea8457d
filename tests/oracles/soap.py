"""SOAP, Vyas et al. (2025) Algorithm 3 (Adam in the eigenbasis of
Shampoo's factors, one factor per dimension of a tensor), in NumPy
float64. The canonical basis starts at the identity and every refresh,
the first at step 1 included, is one power iteration with the factor
shifted by 1e-3 of its Frobenius norm and QR (columns in order of
descending Rayleigh quotient, R's diagonal positive), each new column
stored where its old one was. ``canonical_basis=False`` is the authors':
the first basis from an eigendecomposition, later ones from QR of the
unshifted power iteration, the second moment reordered with the basis.
"""

import numpy as np


def _merge(shape, max_dim):
    merged, product = [], 1
    for d in shape:
        if product * d > max_dim and product > 1:
            merged.append(product)
            product = d
        else:
            product *= d
    return merged + [product]


def _rotate(x, bases, back=False):
    """Multiplies ``x`` along each axis ``i`` by ``Q_i^T`` (``Q_i`` with
    ``back``); an axis without a basis is left alone."""
    for axis, q in enumerate(bases):
        if q is not None:
            x = np.moveaxis(
                np.tensordot(q if back else q.T, x, axes=([1], [axis])),
                0,
                axis,
            )
    return x


#: keras_opts._core.matrix.BASIS_SHIFT, restated.
SHIFT = 1e-3


def _refine(P, Q):
    """One shifted power iteration of ``Q`` toward the eigenbasis of
    ``P``, each column kept in its place."""
    if P.shape == (1, 1):
        return np.ones((1, 1))
    order = np.argsort(-np.diag(Q.T @ P @ Q), kind="stable")
    norm = np.linalg.norm(P)
    A = (P + SHIFT * norm * np.eye(len(P))) @ Q if norm > 0 else Q
    q, r = np.linalg.qr(A[:, order])
    refined = np.empty_like(q)
    refined[:, order] = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    return refined


class SOAPOracle:
    def __init__(
        self,
        beta_1=0.95,
        beta_2=0.95,
        shampoo_beta=None,
        epsilon=1e-8,
        precondition_frequency=10,
        max_precond_dim=10000,
        merge_dims=False,
        bias_correction=True,
        skip_first_step=True,
        preconditioner_dtype="float32",
        canonical_basis=True,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.bs = beta_2 if shampoo_beta is None else shampoo_beta
        self.freq = precondition_frequency
        self.max_dim = max_precond_dim
        self.merge = merge_dims
        self.correct = bias_correction
        self.skip = skip_first_step
        self.l2 = coupled_weight_decay
        self.canonical = canonical_basis

    def _shape(self, shape):
        shape = list(shape)
        if self.merge:
            shape = _merge(shape, self.max_dim)
        return shape if len(shape) >= 2 else None

    def init(self, param):
        shape = self._shape(param.shape)
        state = {"M": np.zeros_like(param), "V": np.zeros_like(param)}
        if shape is not None:
            state["shape"] = shape
            state["P"] = [
                np.zeros((d, d)) if d <= self.max_dim else None for d in shape
            ]
            state["Q"] = [None] * len(shape)
        return state

    def step(self, param, grad, state, lr, t):
        if param.size == 0:
            return param
        g = grad + self.l2 * param
        shape = state.get("shape")
        G = g.reshape(shape) if shape is not None else g
        if shape is not None:
            # L_i <- beta_s L_i + (1 - beta_s) G_(i) G_(i)^T per dimension.
            for i, P in enumerate(state["P"]):
                if P is not None:
                    unfolded = np.moveaxis(G, i, 0).reshape(G.shape[i], -1)
                    state["P"][i] = self.bs * P + (1 - self.bs) * (
                        unfolded @ unfolded.T
                    )
            if t == 1:
                for i, P in enumerate(state["P"]):
                    if P is None:
                        continue
                    if self.canonical:
                        state["Q"][i] = _refine(P, np.eye(len(P)))
                    else:
                        _, vectors = np.linalg.eigh(P)
                        state["Q"][i] = vectors[:, ::-1]
        if self.skip and t == 1:
            return param
        n = t - 1 if self.skip else t
        M = state["M"].reshape(G.shape)
        V = state["V"].reshape(G.shape)
        Q = state["Q"] if shape is not None else []
        M = self.b1 * M + (1 - self.b1) * G
        G_rot = _rotate(G, Q)
        V = self.b2 * V + (1 - self.b2) * G_rot * G_rot
        N = _rotate(_rotate(M, Q) / (np.sqrt(V) + self.eps), Q, back=True)
        step = lr
        if self.correct:
            step = lr * np.sqrt(1 - self.b2**n) / (1 - self.b1**n)
        param = param - step * N.reshape(param.shape)
        if shape is not None and t > 1 and n % self.freq == 0:
            for i, (P, q) in enumerate(zip(state["P"], Q)):
                if P is None:
                    continue
                if self.canonical:
                    Q[i] = _refine(P, q)
                    continue
                # Columns by descending estimated eigenvalue, V with them.
                order = np.argsort(-np.diag(q.T @ P @ q), kind="stable")
                V = np.take(V, order, axis=i)
                Q[i], _ = np.linalg.qr(P @ q[:, order])
        state["M"] = M.reshape(param.shape)
        state["V"] = V.reshape(param.shape)
        return param
