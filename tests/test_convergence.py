"""Every optimizer, with its registry settings, minimises two test functions.

The gradients are computed in NumPy from the current parameters and applied
through the compiled path (``helpers.compiled_apply``).
"""

import numpy as np
import pytest

from tests import helpers
from tests import specs as registry

CURVATURES = np.array([1.0, 4.0], np.float32)


def parabola(x):
    """``0.5 * sum(c_i x_i^2)``, minimum 0 at the origin."""
    return 0.5 * float(np.sum(CURVATURES * x * x)), CURVATURES * x


def rosenbrock(x):
    """``(1 - x)^2 + 100 (y - x^2)^2``, minimum 0 at (1, 1)."""
    a, b = float(x[0]), float(x[1])
    value = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    grad = [-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)]
    return value, np.array(grad, np.float32)


PROBLEMS = {
    # name: (function, start, minimiser, tolerance on the distance to it).
    # Sign-like methods (RMSprop, Adam) take steps of about the learning
    # rate near the minimum and hover within that distance of it.
    "parabola": (parabola, [1.5, -2.0], [0.0, 0.0], 1e-2),
    "rosenbrock": (rosenbrock, [-1.2, 1.0], [1.0, 1.0], 5e-2),
}

CASES = [
    pytest.param(spec, problem, id=f"{spec.name}-{problem}")
    for spec in registry.SPECS
    for problem in spec.convergence
]


def minimise(spec, problem):
    function, start, _, _ = PROBLEMS[problem]
    kwargs, steps = spec.convergence[problem][:2]
    (variable,) = helpers.make_variables([np.array(start, np.float32)])
    apply = helpers.compiled_apply(spec.cls(**kwargs), [variable])
    losses = []
    for _ in range(steps):
        loss, grad = function(np.asarray(variable.numpy()))
        losses.append(loss)
        apply([grad])
    return np.asarray(variable.numpy()), losses


@pytest.mark.parametrize("spec, problem", helpers.shared(CASES, "converges"))
def test_converges(spec, problem):
    _, start, minimiser, tolerance = PROBLEMS[problem]
    tolerance = (*spec.convergence[problem], tolerance)[2]
    x, losses = minimise(spec, problem)
    assert np.all(np.isfinite(x))
    distance = float(np.linalg.norm(x - np.array(minimiser)))
    assert distance < tolerance, (
        f"{spec.name} ended at {x} on {problem}, {distance:.3g} from the "
        f"minimum (loss {losses[0]:.3g} -> {losses[-1]:.3g})"
    )
