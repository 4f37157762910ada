"""STT-MRAM throughput: junction-pulses/s of the thermal SDE (the production fixed-step kernel, rotating frame,
vmapped and sharded over every core; and the full lab-frame precession for comparison), against a per-junction
numpy loop of the same stochastic Heun scheme (how single-junction research codes integrate the stochastic LLGS);
and evaluations/s of the closed forms (switching probability, exact Fokker–Planck mean time).

    python benchmarks/mram.py --out benchmarks [--quick]
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

from imcphys.models.mram import GAMMA_E, MU_0, STTMRAM, first_switching_time, junction_keys

RATIO = 2.0  #: write current / I_c0
WIDTH = 20e-9  #: pulse [s]: WER 1e-5 at 2·I_c0


def kernel(dev: STTMRAM, steps: int, dt: float, frame: str):
    current = RATIO * float(dev.critical_current())
    return jax.jit(jax.vmap(lambda k: first_switching_time(dev, current, key=k, steps=steps, dt=dt, frame=frame)))


def numpy_junction(p: dict, current: float, steps: int, dt: float, rng: np.random.Generator) -> float:
    """One junction, lab frame, stochastic Heun with renormalisation: the same equations in plain numpy."""
    m = np.array([math.sin(0.08), 0.0, -math.cos(0.08)])
    a_j = p["torque_per_amp"] * current
    g, alpha, hk_i, msnx, msnz, sig = p["gp"], p["alpha"], p["h_perp"], p["ms_nx"], p["ms_nz"], p["sigma"]
    z = np.array([0.0, 0.0, 1.0])

    def vel(m, w):
        u = m / np.linalg.norm(m)
        b = w + np.array([-msnx * u[0], -msnx * u[1], (hk_i - msnz) * u[2]])
        p_ = np.cross(u, b)
        d = np.cross(u, p_)
        return -g * (p_ + alpha * d + a_j * (np.cross(u, np.cross(u, z)) - alpha * np.cross(u, z)))

    for k in range(steps):
        w = sig / math.sqrt(dt) * rng.standard_normal(3)
        v1 = vel(m, w)
        v2 = vel(m + dt * v1, w)
        m = m + 0.5 * dt * (v1 + v2)
        m /= np.linalg.norm(m)
        if m[2] >= 0:
            return k * dt
    return math.inf


def main(out: Path, quick: bool) -> None:
    load = os.getloadavg()
    dev = STTMRAM()
    ic0, t_d, period = float(dev.critical_current()), float(dev.dynamic_time()), float(dev.precession_period())
    rows = []
    sizes = [10**4, 10**5] if quick else [10**4, 10**5, 10**6]
    steps_rot = math.ceil(WIDTH / (t_d / 100))
    rot = kernel(dev, steps_rot, WIDTH / steps_rot, "rotating")
    for n in sizes:
        keys = _common.shard(junction_keys(jax.random.key(0), n))
        t0 = time.perf_counter()
        jax.block_until_ready(rot(keys))
        first = time.perf_counter() - t0
        seconds, times = _common.timed(rot, keys, repeat=1 if n >= 10**6 else 3)
        times = np.asarray(times)
        rows.append(
            {
                "junctions": n,
                "steps": steps_rot,
                "seconds": seconds,
                "first_call_s": first,
                "junction_pulses_per_s": n / seconds,
                "junction_steps_per_s": n * steps_rot / seconds,
                "wer_at_width": float(np.mean(times > WIDTH)),
                "wer_at_half_width": float(np.mean(times > WIDTH / 2)),
            }
        )
        print(rows[-1])
    # the full precession (lab frame) needs steps of the precession period / 100 for the same accuracy
    n_lab = 10**4
    steps_lab = math.ceil(WIDTH / (period / 100))
    lab = kernel(dev, steps_lab, WIDTH / steps_lab, "lab")
    keys = _common.shard(junction_keys(jax.random.key(0), n_lab))
    jax.block_until_ready(lab(keys))
    t_lab, times_lab = _common.timed(lab, keys, repeat=1)
    lab_row = {
        "junctions": n_lab,
        "steps": steps_lab,
        "seconds": t_lab,
        "junction_pulses_per_s": n_lab / t_lab,
        "junction_steps_per_s": n_lab * steps_lab / t_lab,
        "wer_at_half_width": float(np.mean(np.asarray(times_lab) > WIDTH / 2)),
    }
    print(lab_row)
    # per-junction numpy loop (lab frame, same scheme and steps)
    c = dev._llgs()
    p = {
        "torque_per_amp": float(c.torque_per_amp),
        "gp": float(c.gamma_prime),
        "alpha": float(c.alpha),
        "h_perp": float(c.h_perp),
        "ms_nx": float(c.ms_nx),
        "ms_nz": float(c.ms_nz),
        "sigma": float(c.sigma),
    }
    assert abs(p["gp"] - GAMMA_E * MU_0 / (1 + 0.01**2)) < 1e-9 * p["gp"]
    n_np = 3 if quick else 20
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    np_times = [numpy_junction(p, RATIO * ic0, steps_lab, WIDTH / steps_lab, rng) for _ in range(n_np)]
    t_np = time.perf_counter() - t0
    # a junction that switches stops early in the loop: count the steps actually taken
    np_steps = sum(
        min(steps_lab, math.ceil(t / (WIDTH / steps_lab)) + 1) if np.isfinite(t) else steps_lab for t in np_times
    )
    numpy_row = {
        "junctions": n_np,
        "seconds": t_np,
        "steps_taken": np_steps,
        "junction_steps_per_s": np_steps / t_np,
        "junction_pulses_per_s": np_steps / t_np / steps_lab,  # a full pulse is steps_lab steps
    }
    print(numpy_row)
    # closed forms
    n_cf = 10**6
    currents = jnp.asarray(np.random.default_rng(1).uniform(0.2, 5.0, n_cf)) * ic0
    widths = jnp.asarray(np.random.default_rng(2).uniform(1e-9, 1e-6, n_cf))
    prob = jax.jit(jax.vmap(dev.switching_probability))
    t_cf, _ = _common.timed(prob, _common.shard(currents), _common.shard(widths))
    n_fp = 1000
    fp = jax.jit(jax.vmap(dev.mean_switching_time))
    t_fp, _ = _common.timed(fp, jnp.linspace(0.3, 6.0, n_fp) * ic0)
    big = rows[-1]
    result = {
        "description": f"one {WIDTH * 1e9:g} ns write pulse at {RATIO:g}·I_c0 per junction (STT-MRAM card defaults, "
        "300 K), thermal SDE from the Boltzmann state, float64",
        "load_average_1_5_15_min": load,
        "sde_rotating": rows,
        "sde_lab": lab_row,
        "numpy_loop": numpy_row,
        "closed_form": {
            "switching_probability_per_s": n_cf / t_cf,
            "fokker_planck_mean_time_per_s": n_fp / t_fp,
            "fokker_planck_points": 16001,
        },
        "rows": [
            {
                "workload": f"STT-MRAM: one {WIDTH * 1e9:g} ns write per junction, {big['junctions']:.0e} junctions, "
                f"thermal SDE ({steps_rot} Heun steps, rotating frame)",
                "imcphys": f"{big['junction_pulses_per_s']:.3g} junction-pulses/s",
                "baseline": f"per-junction numpy loop {numpy_row['junction_steps_per_s'] / steps_lab:.3g} "
                "junction-pulses/s (lab frame)",
                "ratio": big["junction_pulses_per_s"] / (numpy_row["junction_steps_per_s"] / steps_lab),
                "ceiling_fraction": None,
                "note": f"lab frame in imcphys: {lab_row['junction_pulses_per_s']:.3g} junction-pulses/s",
            },
            {
                "workload": "STT-MRAM: expected switching probability (closed forms), 1e6 pulses",
                "imcphys": f"{n_cf / t_cf:.3g} evaluations/s",
                "baseline": None,
                "ratio": None,
                "ceiling_fraction": None,
                "note": f"exact Fokker–Planck mean time: {n_fp / t_fp:.3g} evaluations/s",
            },
        ],
        "load_average_after": os.getloadavg(),
    }
    _common.write(out, "mram", result)


if __name__ == "__main__":
    _common.cli(main, __doc__)
