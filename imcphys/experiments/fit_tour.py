"""Fitting a device to data, as the demo shows it: the Stanford ReRAM DC I–V sweep, simulated from the embedded
card with measurement noise, refitted from a card whose parameters are 30–50 % off; and the Dickson pump fitted
to silicon, the measured SKY130 pump of the embedded dataset ``dickson_tt07``
(:mod:`imcphys.experiments.flash_pump_fit`).

The synthetic "measurement" is the official DC test (triangle 0 → 2 V → 0 → −2 V → 0, 4 ms ramps, from RESET)
with multiplicative log-normal noise of 0.02 decades (about 4.7 % rms): the demo needs data that ships with the
library, and a known truth lets the report show how close the fit gets.
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .. import cards_dir, load_card
from ..data import Dataset
from ..device import replace
from ..fit import fit
from ..simulate import simulate
from ..stimulus import triangle_sweep
from . import flash_pump_fit
from ._section import Figure, Section

#: Free parameters of the DC fit (names on the Stanford card) and the noise of the synthetic data [decades].
FREE = ("i0", "gap_decay_length", "v0", "gamma0_reset")
NOISE_DECADES = 0.02


def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    truth = load_card(cards_dir() / "reram_stanford_v1.toml")
    k_noise, k_perturb, k_fit = jr.split(key, 3)

    ts = np.linspace(0.0, 16e-3, 201)
    sol = eqx.filter_jit(lambda d, t: simulate(d, d.gap_max, triangle_sweep(2.0, 4e-3), t, rtol=1e-8, atol=1e-10))(
        truth, jnp.asarray(ts)
    )
    v, i_clean = np.asarray(sol.drive), np.asarray(sol.observed)
    rng = np.random.default_rng(np.asarray(jr.key_data(k_noise)).ravel().tolist())
    i_meas = i_clean * 10 ** (NOISE_DECADES * rng.standard_normal(i_clean.shape))
    data = Dataset.from_arrays({"t": (ts * 1e3, "ms"), "V": (v, "V"), "I": (i_meas * 1e6, "uA")})

    signs = rng.choice([-1.0, 1.0], len(FREE))
    factors = 1 + signs * rng.uniform(0.3, 0.5, len(FREE))
    start = replace(truth, **{n: float(getattr(truth, n)) * f for n, f in zip(FREE, factors)})
    result = fit(
        start,
        data,
        free=list(FREE),
        key=k_fit,
        starts=2 if quick else 8,
        candidates=16 if quick else 64,
        progress=False,
    )
    fig_path = out / "fit_reram_dc.png"
    result.plot(fig_path)

    true = np.array([float(getattr(truth, n)) for n in FREE])
    numbers = {
        "reram_dc": {
            "free": list(FREE),
            "true": true.tolist(),
            "start": (true * factors).tolist(),
            "fitted": np.asarray(result.values).tolist(),
            "std_errors": np.asarray(result.std_errors).tolist(),
            "relative_error": (np.asarray(result.values) / true - 1).tolist(),
            "within_3_std_errors": (
                np.abs(np.asarray(result.values) - true) <= 3 * np.asarray(result.std_errors)
            ).tolist(),
            "rms_residual_decades": float(result.rms[0]),
            "noise_decades": NOISE_DECADES,
            "seconds": float(result.seconds),
        }
    }
    figures = [
        Figure(
            fig_path,
            "ReRAM DC I–V sweep: synthetic measurement (official card + 0.02-decade noise) "
            "and the fit from a start 30–50 % off; residuals in decades of current.",
        )
    ]
    text = (
        f"Levenberg–Marquardt (optimistix, forward mode through diffrax) with multi-start fits "
        f"{len(FREE)} Stanford ReRAM parameters to a noisy DC sweep, with standard errors from the Jacobian."
    )

    pump = flash_pump_fit.run(out, quick=quick, key=key, check_switched=not quick)
    numbers["dickson_pump_sky130"] = pump.numbers
    figures += pump.figures
    text += " The averaged Dickson pump model is also fitted to the measured SKY130 pump (Tiny Tapeout 7)."
    return Section("fit_tour", "Fitting device models to data", text, numbers, figures)
