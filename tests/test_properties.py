"""Property tests over every optimizer: random shapes (scalars, empty and
odd sizes), hyperparameters anywhere in the registry's valid ranges, and
float16/bfloat16 variables (float32 ones against the oracle).

Example counts come from the hypothesis profile: "ci" (the default, 6 per
test) keeps the suite fast; ``--hypothesis-profile=thorough`` runs 300.
"""

import math

import keras
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests import helpers
from tests import specs as registry

SPECS = [pytest.param(s, id=s.name) for s in registry.SPECS]
STEPS = 8

shapes = st.lists(
    st.lists(st.integers(0, 5), max_size=3).map(tuple), min_size=1, max_size=3
)


def hyperparameters(spec):
    parts = {"learning_rate": st.floats(-4, -1).map(lambda e: 10.0**e)}
    for name, (kind, *args) in spec.search_space.items():
        if kind == "float":
            parts[name] = st.floats(args[0], args[1])
        elif kind == "logfloat":
            low, high = math.log(args[0]), math.log(args[1])
            parts[name] = st.floats(low, high).map(math.exp)
        elif kind == "bool":
            parts[name] = st.booleans()
        else:
            parts[name] = st.sampled_from(args[0])
    return st.fixed_dictionaries(parts)


def problem(seed, shape_list, steps, dtype="float32"):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in shape_list]
    grads = [
        [
            (rng.choice([-1.0, 1.0], s) * rng.uniform(0.1, 4.0, s)).astype(
                dtype
            )
            for s in shape_list
        ]
        for _ in range(steps)
    ]
    return params, grads


def test_every_spec_has_a_search_space():
    for spec in registry.SPECS:
        assert spec.search_space, spec.name


#: Shampoo and SOAP take eigendecompositions of their statistics, whose
#: float32 eigenvalues are off by about 1e-7 of the largest: near epsilon
#: that changes the inverse roots by far more than a float32 rounding per
#: step, for any float32 implementation. Here they compute in float64
#: (``preconditioner_dtype``), so the rest of the step is held to the
#: float32 bound; the parity tests check the float32 roots on the shared
#: problems, against the same bound.
MATRIX_ARGUMENTS = {"preconditioner_dtype": "float64"}


def _unique_eigenbasis(spec, kwargs, shape) -> bool:
    """Whether every factor SOAP rotates with has full rank from the first
    gradient on: a dimension d of n entries in all has rank min(d, n / d).
    Otherwise its null space has no unique basis, eigh picks one, and Adam
    in that basis depends on the pick (SOAP's own arbitrariness, not an
    error of either implementation)."""
    if spec.name != "soap" or 0 in shape:
        return True
    oracle = spec.oracle(**kwargs)
    merged = oracle._shape(shape)
    total = math.prod(shape)
    return merged is None or all(
        d > oracle.max_dim or d * d <= total for d in merged
    )


@pytest.mark.parametrize(
    "spec",
    helpers.shared(
        [s for s in SPECS if "matrix_state" not in s.values[0].capabilities],
        "float32_agrees_with_the_oracle",
    )
    # Shampoo and SOAP compute in float64 here, which JAX does not.
    + helpers.shared(
        [s for s in SPECS if "matrix_state" in s.values[0].capabilities],
        "float32_agrees_with_the_oracle",
        backends=("tensorflow", "torch"),
    ),
)
@given(data=st.data(), shape_list=shapes, seed=st.integers(0, 2**31))
def test_float32_agrees_with_the_oracle(spec, data, shape_list, seed):
    kwargs = data.draw(hyperparameters(spec))
    lr = kwargs.pop("learning_rate")
    assume(all(_unique_eigenbasis(spec, kwargs, s) for s in shape_list))
    if "matrix_state" in spec.capabilities:
        if helpers.BACKEND == "jax":
            pytest.skip("JAX computes in float64 only with jax_enable_x64")
        kwargs.update(MATRIX_ARGUMENTS)
    params, grads = problem(seed, shape_list, STEPS)
    optimizer = spec.cls(learning_rate=lr, **kwargs)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    expected = helpers.run_oracle(spec, kwargs, params, grads, [lr] * STEPS)
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, str(kwargs))


# float32 variables are checked against the oracle by
# test_float32_agrees_with_the_oracle, and their slots' dtype by
# test_mixed_precision.
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "dtype_is_kept_and_updates_stay_finite")
)
@given(data=st.data(), shape_list=shapes, seed=st.integers(0, 2**31))
def test_dtype_is_kept_and_updates_stay_finite(
    spec, dtype, data, shape_list, seed
):
    kwargs = data.draw(hyperparameters(spec))
    lr = kwargs.pop("learning_rate")
    if "epsilon" in kwargs:
        # In float16 an epsilon under ~1e-4 is subnormal or zero: where a
        # gradient underflows (|g| < 2.4e-4 squares to 0), 1/(v + eps)
        # overflows 65504. Low-precision weights need epsilon >= 1e-3.
        kwargs["epsilon"] = max(kwargs["epsilon"], 1e-3)
    params, grads = problem(seed, shape_list, 4)
    variables = [keras.Variable(p, dtype=dtype) for p in params]
    optimizer = spec.cls(learning_rate=lr, **kwargs)
    if "float32_variables" in spec.capabilities:
        with pytest.raises(ValueError, match=f"of dtype {dtype}"):
            optimizer.build(variables)
        # Nothing but the two scalars every Keras optimizer has from init.
        assert not optimizer.built and len(optimizer.variables) == 2
        return
    for step in grads:
        optimizer.apply(
            [keras.ops.convert_to_tensor(g, dtype=dtype) for g in step],
            variables,
        )
    for v in variables:
        assert v.dtype == dtype
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(v).astype("f4")))
    slots = optimizer.variables[2:]  # after iterations, learning_rate
    if spec.capabilities & {
        "factored_state",
        "float32_scalars",
        "matrix_state",
    }:
        # Factors and shared scalars keep their own dtype; the slots
        # shaped like a variable keep the variable's.
        shapes = [tuple(v.shape) for v in variables]
        slots = [
            s
            for group in optimizer._slots.values()
            for s in group
            if s is not None and tuple(s.shape) in shapes
        ]
    for slot in slots:
        assert slot.dtype == dtype, slot.name
