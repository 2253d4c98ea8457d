"""PSGD-Kron in NumPy float64: Li (2018), "Preconditioned Stochastic Gradient
Descent", and Li (2024), "Stochastic Hessian Fittings with Lie Groups", the
Kronecker-factored gradient-whitening preconditioner.

The random inputs of the algorithm, the update coin and the probes
``v ~ N(0, I)``, are arguments: ``draws`` gives them (``coin()``, a number
in [0, 1), and ``probe(shape)``), so that a run is deterministic. The
oracle asks for them in the order the algorithm uses them: per step the
coin (with the random schedule), then one probe per parameter, in order,
whether the preconditioner is fitted or not. :func:`seeded` draws them as
a Keras optimizer seeded with ``seed`` does.

Per parameter of shape ``(d_1, ..., d_k)`` (a scalar as ``(1,)``; with
``merge_dims`` rank > 2 as ``(d_1 ... d_{k-1}, d_k)``):
``Q = Q_1 (x) ... (x) Q_k``, each ``Q_i`` a ``d_i x d_i`` upper-triangular
matrix or a diagonal, ``P = Q^T Q``. ``X_(i)`` is the unfolding with axis
``i`` as rows. With probability ``p_t``, for ``h`` (the gradient, or the
corrected momentum) and a probe ``v``::

    A = Q h,  B = Q^{-T} v,  T_i = A_(i) A_(i)^T,  S_i = B_(i) B_(i)^T
    Q_i <- Q_i - mu / ||T_i + S_i|| triu(T_i - S_i) Q_i        (triangular)
    q_i <- q_i - mu / max|t_i + s_i| (t_i - s_i) q_i             (diagonal)

with ``||.||`` the lower bound of the spectral norm Li's code computes
(:func:`_spectral_norm_lower_bound`). Then ``theta <- theta - lr clip(P
m_hat)``, clip scaling the update to an RMS of at most ``c``. The factors'
rebalancing, which leaves ``P`` unchanged, is left out.
"""

import math

import numpy as np

TINY = float(np.finfo(np.float32).tiny)


def _unfold(x, axis):
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _fold(rows, axis, shape):
    moved = (shape[axis],) + tuple(d for i, d in enumerate(shape) if i != axis)
    return np.moveaxis(rows.reshape(moved), 0, axis)


def _apply(q, x, axis, transpose=False):
    """The factor (triangular: a matrix; diagonal: a vector) along axis."""
    if q.ndim == 1:
        return _fold(q[:, None] * _unfold(x, axis), axis, x.shape)
    m = q.T if transpose else q
    return _fold(m @ _unfold(x, axis), axis, x.shape)


def _solve_transposed(q, x, axis):
    """Q^{-T} along axis: a general solve, the triangle not exploited."""
    if q.ndim == 1:
        return _fold(_unfold(x, axis) / q[:, None], axis, x.shape)
    return _fold(np.linalg.solve(q.T, _unfold(x, axis)), axis, x.shape)


def _spectral_norm_lower_bound(a):
    """Li's estimate: scale by the largest entry; the heaviest column (or
    row, whichever is heavier), multiplied into ``a``, normalized and
    multiplied again, has a norm at most ``||a||_2``."""
    largest = np.max(np.abs(a))
    if largest > 0:
        a = a / largest
    col = np.sum(a * a, axis=0)
    row = np.sum(a * a, axis=1)
    if np.max(col) > np.max(row):
        x = a[:, np.argmax(col)] @ a
        bound = np.linalg.norm((x / max(np.linalg.norm(x), TINY)) @ a.T)
    else:
        x = a @ a[np.argmax(row), :]
        bound = np.linalg.norm(a.T @ (x / max(np.linalg.norm(x), TINY)))
    return largest * bound


class PSGDKronOracle:
    def __init__(
        self,
        draws,
        beta_1=0.9,
        precond_lr=0.1,
        precond_init_scale=1.0,
        precond_update_prob=1.0,
        precond_update_prob_min=0.03,
        precond_update_prob_decay=0.001,
        precond_update_flat_steps=500,
        precond_update_schedule="random",
        max_size_triangular=8192,
        min_ndim_triangular=2,
        memory_save_mode=None,
        merge_dims=False,
        momentum_into_precond_update=False,
        clip_update_rms=1.1,
        preconditioner_dtype="float32",
        coupled_weight_decay=0.0,
        weight_decay=0.0,
        weight_decay_mask=None,
    ):
        # weight_decay (Keras' decoupled decay, applied before the step as
        # the harness applies it) and weight_decay_mask (which parameters
        # take either decay) only for the tests that exclude variables.
        self.draws = draws
        self.wd = weight_decay
        self.mask = weight_decay_mask
        self.b1 = beta_1
        self.mu = precond_lr
        self.scale = precond_init_scale
        self.p_max = precond_update_prob
        self.p_min = precond_update_prob_min
        self.decay = precond_update_prob_decay
        self.flat = precond_update_flat_steps
        self.schedule = precond_update_schedule
        self.max_tri = max_size_triangular
        self.min_ndim = min_ndim_triangular
        self.mode = memory_save_mode
        self.merge = merge_dims
        self.fit_momentum = momentum_into_precond_update
        self.clip = clip_update_rms
        self.l2 = coupled_weight_decay
        self.counter = 0

    def _shape(self, shape):
        shape = tuple(shape) or (1,)
        if self.merge and len(shape) > 2:
            shape = (int(np.prod(shape[:-1])), shape[-1])
        return shape

    def _diagonal(self, shape):
        k = len(shape)
        largest = k - 1 - int(np.argmax(shape[::-1]))  # the last of ties
        forced = [False] * k
        if self.mode == "all_diag":
            forced = [True] * k
        elif self.mode == "one_diag" or (
            self.mode == "smart_one_diag"
            and k >= 2
            and sorted(shape)[-1] > sorted(shape)[-2]
        ):
            forced[largest] = True
        return [
            forced[i] or d == 1 or d > self.max_tri or k < self.min_ndim
            for i, d in enumerate(shape)
        ]

    def init(self, param):
        shape = self._shape(param.shape)
        s = self.scale ** (1.0 / len(shape))
        qs = [
            s * np.ones(d) if diag else s * np.eye(d)
            for d, diag in zip(shape, self._diagonal(shape))
        ]
        return {"m": np.zeros_like(param), "q": qs}

    def _fit_now(self, t):
        # The schedule as the references compute it, in float32.
        p = np.float32(self.p_max) * np.exp(
            np.float32(-self.decay) * np.float32(t - 1 - self.flat),
            dtype=np.float32,
        )
        p = float(min(max(p, np.float32(self.p_min)), np.float32(self.p_max)))
        if self.schedule == "random":
            return self.draws.coin() < p
        self.counter += 1
        if p > 0 and self.counter >= np.float32(1.0) / np.float32(p):
            self.counter = 0
            return True
        return False

    def step_all(self, params, grads, states, lr, t):
        fit = self._fit_now(t)
        mask = self.mask or [True] * len(params)
        return [
            self._step(p, g, s, lr, t, fit, decayed)
            for p, g, s, decayed in zip(params, grads, states, mask)
        ]

    def _step(self, param, grad, state, lr, t, fit, decayed):
        if param.size == 0:  # nothing to update, no probe drawn
            return param
        l2 = self.l2 if decayed else 0.0
        if decayed and self.wd:
            param = param - param * self.wd * lr
        g = grad + l2 * param
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * g
        m_hat = state["m"] / (1 - self.b1**t)
        v = np.asarray(self.draws.probe(param.shape), np.float64)
        shape = self._shape(param.shape)
        h = (m_hat if self.fit_momentum else g).reshape(shape)
        qs = state["q"]
        if fit:
            a, b = h, v.reshape(shape)
            for i, q in enumerate(qs):
                a = _apply(q, a, i)
                b = _solve_transposed(q, b, i)
            new = []
            for i, q in enumerate(qs):
                ua, ub = _unfold(a, i), _unfold(b, i)
                if q.ndim == 1:
                    t1, t2 = np.sum(ua * ua, 1), np.sum(ub * ub, 1)
                    step = self.mu / (np.max(np.abs(t1 + t2)) + TINY)
                    new.append(q - step * (t1 - t2) * q)
                else:
                    t1, t2 = ua @ ua.T, ub @ ub.T
                    norm = _spectral_norm_lower_bound(t1 + t2)
                    step = self.mu / (norm + TINY)
                    new.append(q - step * np.triu(t1 - t2) @ q)
            state["q"] = qs = new
        u = m_hat.reshape(shape)
        for i, q in enumerate(qs):
            u = _apply(q, u, i)
        for i, q in enumerate(qs):
            u = _apply(q, u, i, transpose=True)
        if self.clip is not None:
            rms = math.sqrt(float(np.mean(u * u)))
            u = u * min(1.0, self.clip / (rms + 1e-6))
        return param - lr * u.reshape(param.shape)


def _mix(x):
    """MurmurHash3's finalizer on uint32 words."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


def _fixed(x):
    return int(round(x * 2**30))


def _times(a, b):
    """Fixed-point product (30 fraction bits) from 15-bit halves,
    truncated as ``keras_opts._core.counter_random`` truncates it."""
    a1, a0 = a >> 15, a & 0x7FFF
    b1, b0 = b >> 15, b & 0x7FFF
    return a1 * b1 + ((a1 * b0) >> 15) + ((a0 * b1) >> 15) + ((a0 * b0) >> 30)


def _one_minus_series(x, coefficients):
    value = np.int64(_fixed(1 / math.factorial(coefficients[-1])))
    for n in reversed(coefficients[:-1]):
        value = _fixed(1 / math.factorial(n)) - _times(x, value)
    return 2**30 - _times(x, value)


class CounterDraws:
    """A NumPy transcription of ``keras_opts._core.counter_random``, the
    generator of ``PSGDKron``'s coin and probes: uint32 words hashed from
    ``(seed, counter, index)``, the counter advanced by one per draw as
    the optimizer's ``SeedGenerator`` state is; uniform numbers from the
    top 24 bits, normal ones by Box-Muller with ``-2 ln u`` and the
    cosine in fixed point (int64 here, without wrapping)."""

    def __init__(self, seed, counter=0):
        self.seed = int(seed)
        self.counter = int(counter)

    def words(self, count):
        """The next call's words of indices ``0 .. count - 1``."""
        seed = np.array([self.seed & 0xFFFFFFFF], np.uint32)
        counter = np.array([self.counter & 0xFFFFFFFF], np.uint32)
        self.counter += 1
        k1 = _mix(_mix(seed ^ np.uint32(0x3C6EF372)) + counter)
        k2 = _mix(k1 ^ np.uint32(0xDAA66D2B))
        index = np.arange(count, dtype=np.uint32)
        return _mix(_mix(index * np.uint32(0x9E3779B9) + k1) ^ k2)

    def uniform(self, shape):
        words = self.words(int(np.prod(shape, dtype=np.int64)))
        top = (words >> np.uint32(8)).astype(np.float32)
        return (top * np.float32(2.0**-24)).reshape(shape)

    def normal(self, shape):
        count = int(np.prod(shape, dtype=np.int64))
        words = self.words(2 * count).reshape(count, 2).astype(np.int64)
        # u = m / 2^30 in (0, 1], m scaled into [2^30, 2^31) by 2^shift.
        m = (words[:, 0] >> 2) + 1
        shift = np.zeros_like(m)
        for step in (16, 8, 4, 2, 1):
            small = m < 2 ** (31 - step)
            m = np.where(small, m << step, m)
            shift += np.where(small, step, 0)
        j, rest = (m - 2**30) >> 24, (m - 2**30) & (2**24 - 1)
        inverse = np.array([_fixed(1 / (1 + i / 64)) for i in range(64)])
        logs = np.array([_fixed(math.log1p(i / 64)) for i in range(64)])
        d = _times(rest, inverse[j])
        series = _fixed(1 / 3) - (d >> 2)
        series = 2**29 - _times(d, series)
        log_m = logs[j] + _times(d, 2**30 - _times(d, series))
        ln2 = int(round(math.log(2) * 2**26))
        radius = np.maximum(shift * ln2 - (log_m >> 4), 0)
        radius = np.float32(radius >> 12) * np.float32(4096) + np.float32(
            radius & 4095
        )
        radius = np.sqrt(radius * np.float32(2.0**-25))
        # cos(2 pi w): an octant, then +-cos or +-sin of t in [0, pi/4].
        octant, within = words[:, 1] >> 29, (words[:, 1] & (2**29 - 1)) * 2
        g = np.where(octant & 1 == 1, 2**30 - within, within)
        angle = _times(g, _fixed(math.pi / 4))
        square = _times(angle, angle)
        cos = _one_minus_series(square, (2, 4, 6, 8))
        sin = _times(angle, _one_minus_series(square, (3, 5, 7, 9)))
        value = np.where(((octant + 1) >> 1) & 1 == 1, sin, cos) >> 6
        z = radius * (value.astype(np.float32) * np.float32(2.0**-24))
        z = np.where(((octant + 2) >> 2) & 1 == 1, -z, z)
        return z.astype(np.float32).reshape(shape)

    def coin(self):
        return float(self.uniform(())[()])

    def probe(self, shape):
        return self.normal(tuple(shape)).astype(np.float64)


def seeded(seed=0, compiled=False, **kwargs):
    """The oracle of ``PSGDKron(seed=seed, **kwargs)``, drawing what it
    draws (the same compiled or not, on every backend)."""
    return PSGDKronOracle(CounterDraws(seed), **kwargs)
