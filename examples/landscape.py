"""Optimizer paths over loss landscapes, drawn with matplotlib.

    python examples/landscape.py --out out/landscape

Three 2-D problems: a least-squares fit (500 Gaussian points with mean
(-3, 0) and standard deviations (3, 1), label = second coordinate > 0),
Rosenbrock's valley and Beale's function. Each optimizer is
the real keras_opts class stepping a ``keras.Variable`` with the problem's
exact gradient. For each problem a PNG shows the paths over the loss
contours and the loss against the iteration on a log scale.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import keras_opts  # noqa: E402


def least_squares_problem():
    rng = np.random.default_rng(0)
    x = rng.normal([-3.0, 0.0], [3.0, 1.0], size=(500, 2))
    y = (x[:, 1] > 0).astype(float)

    def loss(w):
        return float(np.sum((x @ w - y) ** 2))

    def grad(w):
        return 2 * x.T @ (x @ w) - 2 * x.T @ y

    return loss, grad


def rosenbrock():
    def loss(w):
        a, b = w
        return float((1 - a) ** 2 + 100 * (b - a * a) ** 2)

    def grad(w):
        a, b = w
        return np.array(
            [-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)]
        )

    return loss, grad


def beale():
    c = np.array([1.5, 2.25, 2.625])

    def terms(w):
        a, b = w
        powers = np.array([b, b * b, b**3])
        return c - a + a * powers, powers

    def loss(w):
        r, _ = terms(w)
        return float(np.sum(r * r))

    def grad(w):
        a, b = w
        r, powers = terms(w)
        d_a = np.sum(2 * r * (powers - 1))
        d_b = np.sum(2 * r * a * np.array([1.0, 2 * b, 3 * b * b]))
        return np.array([d_a, d_b])

    return loss, grad


#: name: (problem, start, minimiser, window, steps, {label: (class, args)})
PROBLEMS = {
    "least_squares": (
        least_squares_problem,
        [0.4, -0.45],
        None,
        ((-0.5, 0.5), (-0.5, 0.5)),
        100,
        {
            "gd": ("sgd", {"learning_rate": 1e-4}),
            "momentum 0.6": ("sgd", {"learning_rate": 1e-4, "momentum": 0.6}),
            "rmsprop": ("rmsprop", {"learning_rate": 0.01}),
            "adam": ("adam", {"learning_rate": 0.02}),
        },
    ),
    "rosenbrock": (
        rosenbrock,
        [-1.2, 1.0],
        [1.0, 1.0],
        ((-2.0, 2.0), (-1.0, 3.0)),
        3000,
        {
            "gd": ("sgd", {"learning_rate": 5e-4}),
            "momentum 0.9": ("sgd", {"learning_rate": 5e-4, "momentum": 0.9}),
            "rmsprop": ("rmsprop", {"learning_rate": 0.002}),
            "adam": ("adam", {"learning_rate": 0.05}),
            "radam": ("radam", {"learning_rate": 0.002, "beta_2": 0.9}),
        },
    ),
    "beale": (
        beale,
        [1.0, 1.4],
        [3.0, 0.5],
        ((-0.5, 4.0), (-1.0, 2.0)),
        2000,
        {
            "gd": ("sgd", {"learning_rate": 0.01}),
            "momentum 0.9": ("sgd", {"learning_rate": 0.005, "momentum": 0.9}),
            "adagrad": ("adagrad", {"learning_rate": 0.5}),
            "adam": ("adam", {"learning_rate": 0.05}),
            "nadam": ("nadam", {"learning_rate": 0.05}),
        },
    ),
}


def follow(optimizer, start, grad, steps):
    """The path of ``optimizer`` from ``start``: an array (steps + 1, 2)."""
    variable = keras.Variable(np.array(start, "float32"))
    path = [np.array(start, float)]
    for _ in range(steps):
        g = grad(np.asarray(variable.numpy(), float)).astype("float32")
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
        path.append(np.asarray(variable.numpy(), float))
    return np.array(path)


def draw(name, out, steps=None):
    make, start, minimiser, window, default_steps, runs = PROBLEMS[name]
    steps = steps or default_steps
    loss, grad = make()
    (x0, x1), (y0, y1) = window
    xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    zs = np.array([loss(np.array(p)) for p in zip(xs.ravel(), ys.ravel())])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.contourf(
        xs, ys, np.log10(zs.reshape(xs.shape) + 1e-12), levels=40, cmap="PuBu_r"
    )
    left.plot(*start, "ko")
    if minimiser is not None:
        left.plot(*minimiser, "r*", markersize=14)
    for label, (cls, config) in runs.items():
        optimizer = keras_opts.get({"class_name": cls, "config": config})
        path = follow(optimizer, start, grad, steps)
        left.plot(path[:, 0], path[:, 1], label=label, lw=1.5)
        right.plot([loss(p) for p in path], label=label)
    left.set(
        xlim=(x0, x1),
        ylim=(y0, y1),
        xlabel="w0",
        ylabel="w1",
        title=f"{name}: paths over log10 loss",
    )
    right.set(
        yscale="log",
        xlabel="iteration",
        ylabel="loss",
        title="loss against iteration",
    )
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/landscape")
    parser.add_argument(
        "--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS)
    )
    parser.add_argument("--steps", type=int, help="override the step counts")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = keras.utils.Progbar(len(args.problems), unit_name="problem")
    for i, name in enumerate(args.problems):
        print(f"\nwrote {draw(name, out, args.steps)}")
        progress.update(i + 1)


if __name__ == "__main__":
    main()
