"""IGZO 2T0C retention throughput: 1e6 cells × 8 levels with device-to-device spread, at 25, 85 and 125 °C.

imcphys (``Cell2T0C.level_retention``: the hold ODE's exit time as a Gauss–Legendre integral of C dV/I_leak,
vectorised, float64, cells sharded over one JAX CPU device per core, chunks of ``--chunk`` cells) against a
per-cell scipy loop (``solve_ivp`` with a terminal event at the level margin, the same leak physics written in
NumPy, LSODA). The loop is timed on a random subset of cell-levels and extrapolated to the full workload (said
in the JSON), and its retention times are compared with imcphys's on that subset.

    python benchmarks/igzo_retention.py --out benchmarks [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import _common  # noqa: F401  (before jax: one JAX CPU device per core, float64)
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import imcphys
from imcphys.constants import K_B, K_B_EV, Q

TEMPERATURES = (298.15, 358.15, 398.15)
#: Gauss–Legendre nodes per cell-level (the library default is 16; 8 agree with scipy to the figure in the JSON).
NODES = 8


# ------------------------------------------------------------------------------------------------ imcphys
@eqx.filter_jit
def _chunk_retention(cells: imcphys.Cell2T0C, temperature) -> jax.Array:
    """(cells, levels) retention [s] of a chunk of cells at ``temperature`` [K]."""
    return eqx.filter_vmap(lambda c: c.at_temperature(temperature).level_retention(nodes=NODES))(cells)


def imcphys_run(pop: imcphys.Cell2T0C, n: int, chunk: int) -> dict:
    sharding = _common.cell_sharding()
    out = {}
    for temp in TEMPERATURES:
        mins, below = [], 0
        for start in range(0, n, chunk):
            part = imcphys.population.take(pop, np.arange(start, min(start + chunk, n)))
            part = jax.device_put(part, sharding)
            t = _chunk_retention(part, jnp.asarray(temp))
            mins.append(np.asarray(jnp.min(t, axis=1)))
            below += int(jnp.sum(t < 100.0))
        mins = np.concatenate(mins)
        out[f"{temp:g}"] = {
            "min_retention_percentiles_s": dict(
                zip(["p0.1", "p1", "p50", "p99"], np.percentile(mins, [0.1, 1, 50, 99]).tolist(), strict=True)
            ),
            "cell_levels_below_100s": below,
        }
    return out


# ----------------------------------------------------------------------------------------------- scipy
def leak_numpy(p: dict, v_sn: float, temp: float) -> float:
    """Current [A] out of the storage node: the same equations as ``IGZOTransistor.drain_current`` (V_DS =
    V_SN − V_WBL >= 0 here, the node is the write transistor's drain), in NumPy scalars."""
    phi = K_B * temp / Q
    vt = p["threshold_voltage"] + p["threshold_temperature_coefficient"] * (temp - p["reference_temperature"])
    n, pw = p["ideality"], p["band_tail_exponent"] + 1.0
    m = pw * n * phi
    v_ds = v_sn - p["hold_bitline_voltage"]
    x = p["hold_wordline_voltage"] - p["hold_bitline_voltage"] - vt

    def log_f(u):
        u = u / m
        return pw * (math.log(m) + (u if u < -36 else math.log(np.logaddexp(0.0, u))))

    ls, ld = log_f(x), log_f(x - n * v_ds)
    channel = p["sheet_current"] * p["write_width"] / p["write_length"] * math.exp(ls) * -math.expm1(ld - ls)
    i_off = p["off_current"] * math.exp(
        -p["off_activation_energy"] / K_B_EV * (1.0 / temp - 1.0 / p["reference_temperature"])
    )
    return channel + i_off * p["write_width"] * math.tanh(v_ds / (2 * phi))


def scipy_retention(p: dict, v0: float, margin: float, temp: float) -> float:
    c = p["storage_capacitance"]

    def rhs(t, y):
        return [-leak_numpy(p, y[0], temp) / c]

    def leave(t, y):
        return min(y[0] - (v0 - margin), (v0 + margin) - y[0])

    leave.terminal = True
    sol = solve_ivp(rhs, (0.0, 1e12), [v0], method="LSODA", events=leave, rtol=1e-8, atol=1e-12)
    return float(sol.t_events[0][0]) if sol.t_events[0].size else math.inf


def scipy_subset(
    pop, levels: np.ndarray, margin: float, cells: np.ndarray, level_idx: np.ndarray, temp: float
) -> tuple[float, np.ndarray]:
    names = imcphys.parameter_units(pop)
    t0 = time.perf_counter()
    out = []
    for i, k in zip(cells, level_idx, strict=True):
        p = {name: float(np.asarray(getattr(pop, name))[i]) for name in names}
        out.append(scipy_retention(p, float(levels[k]), margin, temp))
    return time.perf_counter() - t0, np.asarray(out)


# ------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--quick", action="store_true", help="1e5 cells, 60 loop samples")
    parser.add_argument("--chunk", type=int, default=200_000)
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    samples = 60 if args.quick else 300
    card = imcphys.read_card(imcphys.cards_dir() / "igzo_2t0c_li2025.toml")
    cell = card.device()
    pop = imcphys.population.sample(cell, card.variability_specs(), n, key=jax.random.key(0))
    levels = np.asarray(cell.level_voltages())
    margin = float(cell.level_margin())
    chunk = min(args.chunk, n)

    load_start = list(os.getloadavg())
    imcphys_run(pop, chunk, chunk)  # compile (one chunk shape) and warm up
    t0 = time.perf_counter()
    stats = imcphys_run(pop, n, chunk)
    t_imc = time.perf_counter() - t0
    work = n * len(levels) * len(TEMPERATURES)

    rng = np.random.default_rng(1)
    cells = rng.integers(0, n, samples)
    lev = rng.integers(0, len(levels), samples)
    loop_s, loop_ret = 0.0, []
    for temp in TEMPERATURES:
        s, r = scipy_subset(pop, levels, margin, cells, lev, temp)
        loop_s += s
        loop_ret.append(r)
        sub = imcphys.population.take(pop, cells)
        ours = np.asarray(_chunk_retention(sub, jnp.asarray(temp)))[np.arange(samples), lev]
        stats[f"{temp:g}"]["max_rel_diff_vs_scipy"] = float(np.max(np.abs(ours / r - 1.0)))
    loop_per_item = loop_s / (samples * len(TEMPERATURES))
    loop_full = loop_per_item * work
    result = {
        "description": "Cell2T0C (Li-2025 card with its [variability]) retention of 8 levels at 3 temperatures; "
        "imcphys quadrature path vs a per-cell scipy solve_ivp (LSODA) loop with an event",
        "cells": n,
        "levels": len(levels),
        "quadrature_nodes": NODES,
        "temperatures_K": list(TEMPERATURES),
        "chunk_cells": chunk,
        "imcphys_s": t_imc,
        "imcphys_cell_levels_per_s": work / t_imc,
        "imcphys_cells_per_s": n * 3 / t_imc,
        "scipy_loop_timed_items": samples * len(TEMPERATURES),
        "scipy_loop_s_per_item": loop_per_item,
        "scipy_loop_extrapolated_s": loop_full,
        "scipy_note": f"the scipy loop was timed on {samples} random cell-levels per temperature and "
        "extrapolated linearly to the full workload",
        "speedup_vs_scipy_loop": loop_full / t_imc,
        "per_temperature": stats,
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "bars": {">= 300x the scipy loop": loop_full / t_imc >= 300, "< 60 s": t_imc < 60},
    }
    result["rows"] = [
        {
            "workload": f"IGZO 2T0C retention, {n:.0e} cells x 8 levels x 3 temperatures, with spread",
            "imcphys": f"{work / t_imc:.3g} cell-levels/s ({t_imc:.3g} s)",
            "baseline": f"scipy solve_ivp loop, extrapolated {loop_full:.3g} s",
            "ratio": loop_full / t_imc,
            "ceiling_fraction": None,
            "note": f"loop timed on {samples * len(TEMPERATURES)} items; max rel. diff of retention "
            f"{max(v['max_rel_diff_vs_scipy'] for v in stats.values()):.1e}",
        }
    ]
    print(
        f"imcphys {t_imc:.2f} s ({work / t_imc:.3g} cell-levels/s); scipy loop {loop_per_item * 1e3:.2f} ms/item "
        f"-> {loop_full:.3g} s extrapolated; speedup {loop_full / t_imc:.0f}x"
    )
    _common.write(args.out, "igzo_retention", result)


if __name__ == "__main__":
    main()
