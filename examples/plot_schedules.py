"""Draw every keras_opts schedule into one PNG for the docs and README.

python examples/plot_schedules.py --out docs/images/schedules.png
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_opts import schedules as S  # noqa: E402

STEPS = 400

#: (title, schedule, formula) per panel, steps 0..STEPS.
PANELS = [
    (
        "InverseTimeDecay",
        S.InverseTimeDecay(0.1, 0.5, steps_per_epoch=40),
        r"$\eta_0/(1+k e)$",
    ),
    (
        "ExponentialDecay",
        S.ExponentialDecay(0.1, 0.3, steps_per_epoch=40),
        r"$\eta_0 e^{-k e}$",
    ),
    (
        "GeometricDecay (staircase)",
        S.GeometricDecay(0.1, 0.8, steps_per_epoch=40, staircase=True),
        r"$\eta_0 \gamma^{\lfloor e \rfloor}$",
    ),
    (
        "StaircaseDecay",
        S.StaircaseDecay(
            [3, 6, 8], [0.1, 0.05, 0.02, 0.005], steps_per_epoch=40
        ),
        "values between boundaries",
    ),
    (
        "InverseSqrtDecay",
        S.InverseSqrtDecay(0.1, steps_per_epoch=40),
        r"$\eta_0 k/\sqrt{\max(e,1)}$",
    ),
    (
        "Warmup(GeometricDecay)",
        S.Warmup(S.GeometricDecay(0.1, 0.99), warmup_steps=60),
        "linear ramp, then S(step - W)",
    ),
    (
        "WarmupStableDecay",
        S.WarmupStableDecay(0.1, 400, 40, 120, decay_shape="sqrt"),
        "warm-up, plateau, 1-sqrt decay",
    ),
    (
        "WarmupLinearDecay",
        S.WarmupLinearDecay(0.1, 400, 0.1, 0.005),
        "tensorflow-addons RAdam warm-up",
    ),
    ("Cyclical triangular", S.Cyclical(0.01, 0.1, 50), "Smith 2017"),
    (
        "Cyclical triangular2",
        S.Cyclical(0.01, 0.1, 50, "triangular2"),
        "amplitude halves each cycle",
    ),
    (
        "Cyclical exp_range",
        S.Cyclical(0.01, 0.1, 50, "exp_range", 0.995),
        r"amplitude $\gamma^{step}$",
    ),
    ("OneCycle", S.OneCycle(0.1, 400), "torch OneCycleLR"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/schedules.png")
    args = parser.parse_args()
    steps = np.arange(STEPS + 1)
    fig, axes = plt.subplots(3, 4, figsize=(16, 9), sharex=True)
    for ax, (title, schedule, formula) in zip(axes.flat, PANELS):
        rates = [float(schedule(int(s))) for s in steps]
        ax.plot(steps, rates, color="tab:blue")
        ax.set_title(title, fontsize=11)
        ax.text(
            0.97,
            0.93,
            formula,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=9,
            color="0.3",
        )
        ax.set_ylim(0, 0.125)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    for ax in axes[:, 0]:
        ax.set_ylabel("learning rate")
    fig.suptitle(
        "keras_opts.schedules (epochs of 40 steps where counted in epochs)"
    )
    fig.tight_layout()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
