"""ReRAM pulse throughput: one 100 ns pulse on N cells (varied amplitudes), fixed-cost and adaptive paths,
against a per-cell scipy ``solve_ivp`` loop (the way per-device-loop tools such as MemTorch integrate).

The fixed-cost path (``fixed_steps=32``) of a rectangular pulse is the plateau quadrature over the gap
(``StanfordReRAM.plateau``); the fused ceiling is the arithmetic of the time-stepping path it replaced (32 graded
Heun steps, the path non-rectangular and noisy pulses still take) as one plain jitted function, timed and compared
with the adaptive solve alongside.

    python benchmarks/reram_pulses.py --out benchmarks [--quick]
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import _common  # noqa: F401  (sets up host devices before jax)
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import imcphys

WIDTH = 100e-9
STEPS = 32


def amplitudes(n: int, seed: int = 0) -> np.ndarray:
    """Half SET pulses in [1.4, 2.0] V from g_max, half RESET pulses in [−1.6, −1.0] V from g_min."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(1.4, 2.0, n)
    a[1::2] = -rng.uniform(1.0, 1.6, n // 2)
    return a


def scipy_cell(dev: imcphys.StanfordReRAM, g0: float, v: float) -> float:
    p = {k: float(x) for k, x in imcphys.parameters(dev).items()}
    q, kb = imcphys.constants.Q, imcphys.constants.K_B

    def rate(t, y):
        g = min(max(y[0], p["gap_min"]), p["gap_max"])
        i = p["i0"] * math.exp(-g / p["gap_decay_length"]) * math.sinh(v / p["v0"])
        temp = p["ambient_temperature"] + abs(v * i) * p["thermal_resistance"]
        gamma = (p["gamma0"] if v >= 0 else p["gamma0_reset"]) - p["beta"] * (g / 1e-9) ** 3
        if gamma * abs(v) / p["oxide_thickness"] < p["min_field"]:
            return [0.0]
        return [
            -p["gap_velocity"]
            * math.exp(-q * p["activation_energy"] / (kb * temp))
            * math.sinh(gamma * p["atom_spacing"] / p["oxide_thickness"] * q * v / (kb * temp))
        ]

    sol = solve_ivp(rate, (0.0, WIDTH), [g0], method="RK45", rtol=1e-6, atol=1e-15)
    return min(max(sol.y[0, -1], p["gap_min"]), p["gap_max"])


def fused_ceiling(dev: imcphys.StanfordReRAM):
    """Heun, 32 graded steps, energy, as one plain jitted function of arrays: no modules, no vmap, no projections
    through pytrees — the practical ceiling of a 32-step time mesh for this workload."""
    p = {k: float(x) for k, x in imcphys.parameters(dev).items()}
    q, kb = imcphys.constants.Q, imcphys.constants.K_B

    def rate_power(g, v):
        gc = jnp.clip(g, p["gap_min"], p["gap_max"])
        i = p["i0"] * jnp.exp(-gc / p["gap_decay_length"]) * jnp.sinh(v / p["v0"])
        temp = p["ambient_temperature"] + jnp.abs(v * i) * p["thermal_resistance"]
        gamma = jnp.where(v < 0, p["gamma0_reset"], p["gamma0"]) - p["beta"] * (gc / 1e-9) ** 3
        x = jnp.clip((gamma * jnp.abs(v) / p["oxide_thickness"] - p["min_field"]) / p["field_threshold_width"], 0, 1)
        r = (
            -p["gap_velocity"]
            * jnp.exp(-q * p["activation_energy"] / (kb * temp))
            * jnp.sinh(gamma * p["atom_spacing"] / p["oxide_thickness"] * q * v / (kb * temp))
            * x
            * x
            * (3 - 2 * x)
        )
        return r, v * i

    @jax.jit
    def run(v):
        g = jnp.where(v > 0, p["gap_max"], p["gap_min"])
        ts = WIDTH * (jnp.arange(STEPS + 1) / STEPS) ** 1.5

        def step(carry, k):
            g, e = carry
            h = ts[k + 1] - ts[k]
            r1, p1 = rate_power(g, v)
            g1 = jnp.clip(g + h * r1, p["gap_min"], p["gap_max"])
            r2, p2 = rate_power(g1, v)
            return (jnp.clip(g + 0.5 * h * (r1 + r2), p["gap_min"], p["gap_max"]), e + 0.5 * h * (p1 + p2)), None

        (g, e), _ = jax.lax.scan(step, (g, jnp.zeros_like(v)), jnp.arange(STEPS))
        return p["i0"] * jnp.exp(-g / p["gap_decay_length"]) * jnp.sinh(p["read_voltage"] / p["v0"]), e

    return run


def main(out: Path, quick: bool) -> None:
    dev = imcphys.StanfordReRAM()
    start = lambda a: jnp.where(a > 0, dev.gap_max, dev.gap_min)  # noqa: E731
    fixed = jax.jit(jax.vmap(lambda a: dev.read(imcphys.apply_pulse(dev, start(a), a, WIDTH, fixed_steps=STEPS))))
    adaptive = jax.jit(jax.vmap(lambda a: dev.read(imcphys.apply_pulse(dev, start(a), a, WIDTH))))
    ceiling = fused_ceiling(dev)
    sizes = [10**4, 10**5] if quick else [10**4, 10**5, 10**6]
    rows = []
    for n in sizes:
        amps = _common.shard(jnp.asarray(amplitudes(n)))
        t_compile0 = time.perf_counter()
        jax.block_until_ready(fixed(amps))
        t_fixed, i_fixed = _common.timed(fixed, amps)
        row = {
            "cells": n,
            "fixed_steps": STEPS,
            "fixed_s": t_fixed,
            "fixed_cells_per_s": n / t_fixed,
            "fixed_first_call_s": None,
        }
        row["fixed_first_call_s"] = time.perf_counter() - t_compile0 - 3 * t_fixed  # ≈ compile + 1 run
        t_ceiling, (i_ceiling, _) = _common.timed(ceiling, amps)
        row.update(
            {
                "ceiling_s": t_ceiling,
                "fraction_of_ceiling": t_ceiling / t_fixed,
            }
        )
        t_adapt, i_adapt = _common.timed(adaptive, amps, repeat=1)
        rel = np.abs(np.asarray(i_fixed) / np.asarray(i_adapt) - 1)
        rel_heun = np.abs(np.asarray(i_ceiling) / np.asarray(i_adapt) - 1)
        row.update(
            {
                "adaptive_s": t_adapt,
                "adaptive_cells_per_s": n / t_adapt,
                "fixed_vs_adaptive_max_rel_err": float(rel.max()),
                "fixed_vs_adaptive_p99_rel_err": float(np.quantile(rel, 0.99)),
                "fixed_within_1pct_fraction": float(np.mean(rel < 0.01)),
                # a time mesh misses SET runaways that end inside the pulse (the plateau quadrature does not)
                "heun_ceiling_within_1pct_fraction": float(np.mean(rel_heun < 0.01)),
                "heun_ceiling_max_rel_err": float(rel_heun.max()),
            }
        )
        rows.append(row)
        print(row)
    n_scipy = 100 if quick else 1000
    amps = amplitudes(n_scipy)
    t0 = time.perf_counter()
    g_scipy = [scipy_cell(dev, float(start(a)), float(a)) for a in amps]
    t_scipy = time.perf_counter() - t0
    i_scipy = np.asarray(dev.read(jnp.asarray(g_scipy)))
    i_ref = np.asarray(adaptive(jnp.asarray(amps)))
    scipy_rate = n_scipy / t_scipy
    big = rows[-1]
    readme_rows = [
        {
            "workload": f"ReRAM: one 100 ns pulse, {big['cells']:.0e} cells, fixed-cost (plateau, fixed_steps={STEPS})",
            "imcphys": f"{big['fixed_cells_per_s']:.3g} cell-pulses/s",
            "baseline": f"scipy solve_ivp loop {scipy_rate:.3g} cells/s",
            "ratio": big["fixed_cells_per_s"] / scipy_rate,
            "ceiling_fraction": big["fraction_of_ceiling"],
            "note": (
                f"{big['fixed_within_1pct_fraction']:.2%} of cells within 1 % of adaptive (worst "
                f"{big['fixed_vs_adaptive_max_rel_err']:.2%}); ceiling = fused 32-step Heun, "
                f"{big['heun_ceiling_within_1pct_fraction']:.1%} within 1 %"
            ),
        },
        {
            "workload": f"ReRAM: one 100 ns pulse, {big['cells']:.0e} cells, adaptive (Tsit5, vmapped)",
            "imcphys": f"{big['adaptive_cells_per_s']:.3g} cell-pulses/s",
            "baseline": "scipy solve_ivp loop",
            "ratio": big["adaptive_cells_per_s"] / scipy_rate,
            "ceiling_fraction": None,
            "note": "vmapped adaptive solves march in lockstep",
        },
    ]
    result = {
        "description": "one 100 ns ReRAM pulse per cell (Stanford model, official defaults), float64",
        "load_average_1_5_15_min": list(os.getloadavg()),
        "sizes": rows,
        "rows": readme_rows,
        "scipy_loop": {
            "cells": n_scipy,
            "seconds": t_scipy,
            "cells_per_s": scipy_rate,
            "method": "RK45",
            "max_rel_err_vs_adaptive": float(np.max(np.abs(i_scipy / i_ref - 1))),
        },
        "speedup_fixed_vs_scipy": rows[-1]["fixed_cells_per_s"] / scipy_rate,
        "speedup_adaptive_vs_scipy": rows[-1]["adaptive_cells_per_s"] / scipy_rate,
        "bars": {
            "fixed_cell_pulses_per_s >= 1e6": rows[-1]["fixed_cells_per_s"] >= 1e6,
            "fixed >= 300x scipy": rows[-1]["fixed_cells_per_s"] / scipy_rate >= 300,
            "fixed >= 30% of fused ceiling": rows[-1]["fraction_of_ceiling"] >= 0.3,
        },
    }
    _common.write(out, "reram_pulses", result)


if __name__ == "__main__":
    _common.cli(main, __doc__)
