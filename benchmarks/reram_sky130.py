"""SKY130 ReRAM behind its access transistor: throughput of 1 µs SET pulses through the gate (varied word lines) on N
cells — the fixed-step path (quadrature in the filament, 32 intervals, a node solve per interval) and the adaptive
path (Tsit5 with a node solve per stage, vmapped) — their agreement, program-and-verify by word-line steps, and a
per-cell scipy loop (Radau on the same equations, brentq for the node) as the baseline.

    python benchmarks/reram_sky130.py --out benchmarks [--quick]
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
from scipy.optimize import brentq

import imcphys
from imcphys.program import WordLineSchedule, program

WIDTH = 1e-6
STEPS = 32
CARD = imcphys.cards_dir() / "reram_sky130_1t1r.toml"


def word_lines(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.7, 1.6, n)


def scipy_cell(dev, wl: float, bl: float = 2.4) -> float:
    """The 1T1R SET in plain numpy/scipy: node by brentq at every right-hand side, Radau in time."""
    c, t = dev.cell, dev.transistor
    p = {k: float(x) for k, x in imcphys.parameters(c).items()}
    q, kb = imcphys.constants.Q, imcphys.constants.K_B
    ut = kb * float(t.temperature) / q
    gb, psi = float(t.body_factor), float(t.surface_potential)
    vgp = wl - float(t.threshold_voltage) + psi + gb * math.sqrt(psi)
    vp = vgp - psi - gb * (math.sqrt(vgp + gb * gb / 4) - gb / 2)
    ispec = 2 * (1 + gb / (2 * math.sqrt(psi + vp + 4 * ut))) * float(t.transconductance * t.width / t.length) * ut**2

    def i_d(vd):  # EKV drain current, source and bulk at 0 V (the equations of imcphys.models.mosfet)
        return ispec * (math.log1p(math.exp(vp / (2 * ut))) ** 2 - math.log1p(math.exp((vp - vd) / (2 * ut))) ** 2)

    def current(tf, v):
        gap = p["oxide_thickness"] - tf
        decay = p["oxide_thickness"] - p["filament_reference"]
        return p["current_prefactor"] * math.exp(-gap / decay) * math.sinh(v / p["voltage_reference"])

    def rhs(_, y):
        tf = min(max(y[0], p["filament_min"]), p["filament_max"])
        vn = brentq(lambda vn: current(tf, bl - vn) - i_d(vn), 0.0, bl, xtol=1e-14)
        v = bl - vn
        phi = kb * y[1] / q
        gamma = p["gamma0"] + p["gamma1"] * ((p["oxide_thickness"] - tf) / 1e-9) ** 3
        x = gamma * p["atom_spacing"] / p["oxide_thickness"] * v
        r = p["velocity"] * (
            math.exp((x - p["generation_energy"]) / phi) - math.exp((-x - p["recombination_energy"]) / phi)
        )
        if (y[0] >= p["filament_max"] and r > 0) or (y[0] <= p["filament_min"] and r < 0):
            r = 0.0
        heat = abs(v * current(tf, v)) / p["thermal_capacitance"]
        return [r, heat - (y[1] - p["ambient_temperature"]) / p["thermal_time_constant"]]

    sol = solve_ivp(rhs, (0.0, WIDTH), [p["filament_min"], p["ambient_temperature"]], method="Radau", rtol=1e-6)
    return current(min(max(sol.y[0, -1], p["filament_min"]), p["filament_max"]), 0.1) / 0.1


def main(out: Path, quick: bool) -> None:
    dev = imcphys.load_card(CARD)
    fresh = dev.initial_state("reset")

    def g_after(wl, steps):
        return dev.read(dev.pulse(fresh, 2.4, WIDTH, word_line=wl, fixed_steps=steps).state)

    fixed = jax.jit(jax.vmap(lambda wl: g_after(wl, STEPS)))
    adaptive = jax.jit(jax.vmap(lambda wl: g_after(wl, None)))
    rows = []
    for n in [10**3, 10**4] if quick else [10**3, 10**4, 10**5]:
        wls = _common.shard(jnp.asarray(word_lines(n)))
        t0 = time.perf_counter()
        jax.block_until_ready(fixed(wls))
        first = time.perf_counter() - t0
        t_fixed, _ = _common.timed(fixed, wls)
        rows.append({"cells": n, "fixed_s": t_fixed, "fixed_cells_per_s": n / t_fixed, "fixed_first_call_s": first})
        print(rows[-1])
    n_adapt = 64 if quick else 256
    wls = _common.shard(jnp.asarray(word_lines(n_adapt, seed=1)))
    t_adapt, g_adapt = _common.timed(adaptive, wls, repeat=1)
    g_fixed = np.asarray(fixed(wls))
    rel = np.abs(g_fixed / np.asarray(g_adapt) - 1)
    adaptive_row = {
        "cells": n_adapt,
        "adaptive_s": t_adapt,
        "adaptive_cells_per_s": n_adapt / t_adapt,
        "fixed_vs_adaptive_max_rel_err": float(rel.max()),
        "fixed_vs_adaptive_median_rel_err": float(np.median(rel)),
    }
    print(adaptive_row)

    # program-and-verify by word-line steps over the card's spread (exact verify)
    card = imcphys.read_card(CARD)
    n_prog = 1024 if quick else 16384
    cells = imcphys.population.sample(dev.cell, card.parts["cell"].variability_specs(), n_prog, key=jax.random.key(0))
    pop = dev.populate(cells)
    scheme = WordLineSchedule.incremental(
        start=0.7, step=0.02, iterations=40, amplitude=2.4, width=WIDTH, tolerance=0.15
    )
    levels = jnp.array([4e-6, 1e-5, 2.5e-5, 6e-5])
    t0 = time.perf_counter()
    program(pop, scheme, targets=levels, key=None, verify="exact", fixed_steps=STEPS)
    first_prog = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = program(pop, scheme, targets=levels, key=None, verify="exact", fixed_steps=STEPS)
    t_prog = time.perf_counter() - t0
    program_row = {
        "cells": n_prog,
        "seconds": t_prog,
        "first_call_s": first_prog,
        "cells_per_s": n_prog / t_prog,
        "cell_pulses_per_s": float(np.sum(rep.pulses)) / t_prog,
        **rep.summary(),
    }
    print(program_row)

    n_scipy = 20 if quick else 100
    wls_s = word_lines(n_scipy, seed=2)
    t0 = time.perf_counter()
    g_scipy = np.array([scipy_cell(dev, float(w)) for w in wls_s])
    t_scipy = time.perf_counter() - t0
    g_ref = np.asarray(adaptive(jnp.asarray(np.resize(wls_s, n_adapt))))[:n_scipy]
    scipy_rate = n_scipy / t_scipy
    big = rows[-1]
    result = {
        "description": "1 µs SET pulses through a SKY130 1T1R cell (SkyWater ReRAM + EKV 5 V NMOS), float64",
        "load_average_1min": os.getloadavg()[0],
        "sizes": rows,
        "adaptive": adaptive_row,
        "program_and_verify": program_row,
        "scipy_loop": {
            "cells": n_scipy,
            "seconds": t_scipy,
            "cells_per_s": scipy_rate,
            "method": "Radau + brentq node per rhs",
            "max_rel_err_vs_adaptive": float(np.max(np.abs(g_scipy / g_ref - 1))),
        },
        "rows": [
            {
                "workload": f"SKY130 1T1R: one 1 µs SET through the gate, {big['cells']:.0e} cells, fixed-step "
                f"({STEPS} intervals in the filament)",
                "imcphys": f"{big['fixed_cells_per_s']:.3g} cell-pulses/s",
                "baseline": f"scipy Radau + brentq loop {scipy_rate:.3g} cells/s",
                "ratio": big["fixed_cells_per_s"] / scipy_rate,
                "note": f"max {adaptive_row['fixed_vs_adaptive_max_rel_err']:.1e} from adaptive in conductance",
            }
        ],
    }
    _common.write(out, "reram_sky130", result)


if __name__ == "__main__":
    _common.cli(main, __doc__)
