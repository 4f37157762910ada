"""Fitting speed: a 200-point DC I–V sweep of the Stanford ReRAM, 4 free parameters, Levenberg–Marquardt.

imcphys (``imcphys.fit``: optimistix LM, forward-mode Jacobian through the diffrax solve, one start) against
``scipy.optimize.least_squares`` (MINPACK LM, finite-difference Jacobian) on a numpy/scipy implementation of
the same model and sweep (``solve_ivp`` LSODA per monotone leg of the triangle), both in the same log-scale
parameters from the same start (30–50 % off), on the same noisy data. Reports the time to fit after
compilation, the compilation time, the fitted values of both and how far apart they are in standard errors.

    python benchmarks/fit.py --out benchmarks [--quick]
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import _common  # noqa: F401  (float64; sets up host devices before jax)
import jax
import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

import imcphys

FREE = ["i0", "gap_decay_length", "v0", "gamma0_reset"]
START_FACTORS = np.array([1.4, 0.65, 1.35, 0.7])
NOISE = 0.02  # decades
POINTS = 200
RAMP = 4e-3  # s, the official DC test: 0 → 2 V → 0 → −2 V → 0


def sweep_data(dev, seed: int = 0) -> imcphys.Dataset:
    ts = np.linspace(0.0, 4 * RAMP, POINTS)
    sol = jax.jit(
        lambda d: imcphys.simulate(d, d.gap_max, imcphys.triangle_sweep(2.0, RAMP), ts, rtol=1e-8, atol=1e-10)
    )(dev)
    i = np.asarray(sol.observed) * 10 ** (NOISE * np.random.default_rng(seed).standard_normal(POINTS))
    return imcphys.Dataset.from_arrays({"t": (ts, "s"), "V": (np.asarray(sol.drive), "V"), "I": (i, "A")})


def numpy_sweep(p: dict[str, float], ts: np.ndarray, rtol: float) -> np.ndarray:
    """I(t) of the Stanford model (as imcphys.StanfordReRAM: smooth field-threshold ramp, clipped gap, algebraic
    self-heating) under the triangle sweep, solved like imcphys's adaptive path: LSODA from cut to cut (sample
    times and corners of the triangle), the rate evaluated at the clipped gap, the gap clipped at every cut."""
    q, kb = imcphys.constants.Q, imcphys.constants.K_B
    gmin, gmax = p["gap_min"] / 1e-9, p["gap_max"] / 1e-9

    def drive(t):
        return float(np.interp(t, RAMP * np.arange(5), [0.0, 2.0, 0.0, -2.0, 0.0]))

    def current(g_nm, v):
        return p["i0"] * math.exp(-g_nm * 1e-9 / p["gap_decay_length"]) * math.sinh(v / p["v0"])

    def rate(t, y):  # dg/dt [nm/s]
        v = drive(t)
        g = min(max(y[0], gmin), gmax)
        temp = p["ambient_temperature"] + abs(v * current(g, v)) * p["thermal_resistance"]
        gamma = (p["gamma0"] if v >= 0 else p["gamma0_reset"]) - p["beta"] * g**3
        x = min(max((gamma * abs(v) / p["oxide_thickness"] - p["min_field"]) / p["field_threshold_width"], 0), 1)
        return [
            -p["gap_velocity"]
            / 1e-9
            * math.exp(-q * p["activation_energy"] / (kb * temp))
            * x
            * x
            * (3 - 2 * x)
            * math.sinh(gamma * p["atom_spacing"] / p["oxide_thickness"] * q * v / (kb * temp))
        ]

    cuts = np.union1d(ts, RAMP * np.arange(5))
    gaps = {cuts[0]: gmax}
    g = gmax
    for a, b in zip(cuts[:-1], cuts[1:]):
        sol = solve_ivp(rate, (a, b), [g], method="LSODA", rtol=rtol, atol=rtol * 1e-3)
        g = gaps[b] = float(np.clip(sol.y[0, -1], gmin, gmax))
    return np.array([current(gaps[t], drive(t)) for t in ts])


def scipy_fit(truth, data: imcphys.Dataset, max_nfev: int | None) -> dict:
    base = {k: float(x) for k, x in imcphys.parameters(truth).items()}
    true = np.array([base[n] for n in FREE])
    ts, obs = data["t"], data["I"]
    ok = obs != 0
    rtol = 1e-8  # tight: the finite-difference Jacobian (step 1e-5) must see the parameters, not solver noise

    def residuals(theta):
        p = dict(base, **dict(zip(FREE, true * START_FACTORS * np.exp(theta))))
        model = numpy_sweep(p, ts, rtol)
        return np.log10(np.abs(model[ok]) + 1e-300) - np.log10(np.abs(obs[ok]))

    t0 = time.perf_counter()
    sol = least_squares(residuals, np.zeros(len(FREE)), method="lm", diff_step=1e-5, max_nfev=max_nfev)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "nfev": int(sol.nfev),
        "status": int(sol.status),
        "message": sol.message,
        "values": (true * START_FACTORS * np.exp(sol.x)).tolist(),
        "cost": float(sol.cost),
    }


def main(out: Path, quick: bool) -> None:
    truth = imcphys.StanfordReRAM()
    data = sweep_data(truth)
    start = imcphys.replace(truth, **{n: float(getattr(truth, n)) * f for n, f in zip(FREE, START_FACTORS)})
    experiment = imcphys.dc_sweep(data)

    def run():
        return imcphys.fit(
            start, experiment, free=FREE, key=jax.random.key(0), starts=1, batch=1, candidates=0, progress=False
        )

    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    first_seconds, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    times, cpu = [], []
    for _ in range(1 if quick else 5):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # this process's CPU time: less distorted by a loaded machine
    fit_seconds = float(np.median(times))
    compile_seconds = first_seconds - fit_seconds
    load_fit = os.getloadavg()

    scipy = scipy_fit(truth, data, max_nfev=12 if quick else None)
    z = (np.array(scipy["values"]) - result.values) / result.std_errors
    true = np.array([float(getattr(truth, n)) for n in FREE])
    row = {
        "workload": f"Fit: ReRAM DC sweep, {POINTS} points, {len(FREE)} free parameters (LM, one start)",
        "imcphys": f"{fit_seconds:.2f} s after {compile_seconds:.0f} s compile",
        "baseline": f"scipy least_squares on numpy model {scipy['seconds']:.1f} s ({scipy['nfev']} evaluations)",
        "ratio": scipy["seconds"] / fit_seconds,
        "ceiling_fraction": None,
        "note": f"{int(result.starts.steps[0])} LM steps; fits agree within {np.max(np.abs(z)):.2g} std errors",
    }
    result_json = {
        "description": "Stanford ReRAM DC sweep fit, 200 points, 4 free parameters, float64",
        "quick": quick,
        "free": FREE,
        "imcphys": {
            "fit_seconds_median": fit_seconds,
            "fit_seconds_all": times,
            "compile_seconds": compile_seconds,
            "fit_cpu_seconds_median": float(np.median(cpu)),
            "compile_cpu_seconds": first_cpu - float(np.median(cpu)),
            "load_average_after_fits": load_fit,
            "lm_steps": int(result.starts.steps[0]),
            "values": result.values.tolist(),
            "std_errors": result.std_errors.tolist(),
            "rms_residual_decades": result.rms[0],
            "recovered_within_3_se": bool(np.all(np.abs(result.values - true) < 3 * result.std_errors)),
        },
        "scipy": {**scipy, "max_difference_in_std_errors": float(np.max(np.abs(z)))},
        "true_values": true.tolist(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": [row],
        "bars": {"fit < 2 s after compilation": fit_seconds < 2.0, "compilation < 30 s": compile_seconds < 30.0},
    }
    _common.write(out, "fit", result_json)


if __name__ == "__main__":
    _common.cli(main, __doc__)
