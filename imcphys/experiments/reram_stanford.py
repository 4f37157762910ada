"""ReRAM tour of the Stanford RRAM model: DC hysteresis, SET/RESET pulses, switching time vs voltage, and a
population with device-to-device and cycle-to-cycle variation."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .. import plot
from ..models import StanfordReRAM
from ..population import LogNormal, Normal, sample
from ..simulate import apply_pulse, simulate
from ..stimulus import Pulse, triangle_sweep
from ._section import Figure, Section

#: Device-to-device spread used in the demo population (assumed, illustrative magnitudes).
DEMO_SPREAD = {
    "activation_energy": Normal(std=0.02),  # eV
    "gap_decay_length": LogNormal(sigma=0.04),
    "oxide_thickness": Normal(std=0.03, relative=True),
    "gamma0": Normal(std=0.02, relative=True),
}


def switching_time(device: StanfordReRAM, voltage: jax.Array, ts: jax.Array) -> jax.Array:
    """Time [s] for a constant ``voltage`` [V] pulse to move the gap past the middle of [g_min, g_max]
    (from g_max for V > 0, from g_min for V < 0); inf if it does not within ``ts[-1]``."""
    mid = 0.5 * (device.gap_min + device.gap_max)
    start = jnp.where(voltage > 0, device.gap_max, device.gap_min)
    stim = Pulse(voltage, ts[-1])
    gaps = simulate(device, start, stim, ts).states
    past = jnp.where(voltage > 0, gaps < mid, gaps > mid)
    i = jnp.argmax(past)
    # log-linear interpolation between the bracketing output times
    g0, g1 = gaps[jnp.maximum(i - 1, 0)], gaps[i]
    t0, t1 = ts[jnp.maximum(i - 1, 0)], ts[i]
    frac = jnp.clip((mid - g0) / jnp.where(g1 != g0, g1 - g0, 1.0), 0.0, 1.0)
    t = jnp.exp(jnp.log(t0) + frac * (jnp.log(t1) - jnp.log(t0)))
    return jnp.where(jnp.any(past), t, jnp.inf)


def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    dev = StanfordReRAM()
    numbers: dict = {}
    figures: list[Figure] = []

    # 1. DC hysteresis loop: official triangle 0 → +2 V → 0 → −2 V → 0, 4 ms per leg.
    ts = jnp.linspace(0.0, 16e-3, 401 if quick else 1601)
    dc = simulate(dev, dev.gap_max, triangle_sweep(2.0, 4e-3), ts)
    v, i, g = (np.asarray(x) for x in (dc.drive, dc.observed, dc.states))
    mid = 0.5 * float(dev.gap_min + dev.gap_max)
    v_set = float(v[np.argmax(g < mid)])
    v_reset = float(v[np.argmax((np.arange(len(g)) > np.argmax(g < mid)) & (g > mid))])
    r_on, r_off = float(dev.resistance(dev.gap_min)), float(dev.resistance(dev.gap_max))
    numbers["dc_sweep"] = {
        "v_set_V": v_set,
        "v_reset_V": v_reset,
        "r_on_ohm_at_0.1V": r_on,
        "r_off_ohm_at_0.1V": r_off,
        "on_off_ratio": r_off / r_on,
        "threshold_set_V": float(
            dev.min_field * dev.oxide_thickness / (dev.gamma0 - dev.beta * (dev.gap_max / 1e-9) ** 3)
        ),
        "threshold_reset_V": float(
            -dev.min_field * dev.oxide_thickness / (dev.gamma0_reset - dev.beta * (dev.gap_min / 1e-9) ** 3)
        ),
    }
    fig, ax = plot.subplots(1, 2)
    ax[0, 0].semilogy(v, np.abs(i) + 1e-12)
    plot.label(ax[0, 0], "cell voltage V [V]", "|I| [A]", "DC sweep ±2 V, 4 ms ramps (pinched loop)")
    ax[0, 1].plot(np.asarray(ts) * 1e3, g * 1e9)
    plot.label(ax[0, 1], "time [ms]", "gap g [nm]", "filament gap during the sweep")
    figures.append(
        Figure(
            plot.save(fig, out / "reram_dc_loop.png"),
            f"DC I–V loop of the Stanford model: SET at {v_set:.2f} V, RESET from {v_reset:.2f} V.",
        )
    )

    # 2. Official SET (+1.8 V) and RESET (−1.3 V) pulses of 100 ns with 1 ns edges.
    fig, ax = plot.subplots(1, 2)
    for amp, start, name in [(1.8, dev.gap_max, "SET +1.8 V"), (-1.3, dev.gap_min, "RESET −1.3 V")]:
        stim = Pulse(amp, 100e-9, rise=1e-9, fall=1e-9, delay=5e-9)
        tp = jnp.linspace(0.0, 120e-9, 241)
        sol = simulate(dev, start, stim, tp)
        ax[0, 0].plot(np.asarray(tp) * 1e9, np.asarray(sol.states) * 1e9, label=name)
        ax[0, 1].semilogy(np.asarray(tp) * 1e9, np.abs(np.asarray(sol.observed)) + 1e-12, label=name)
        key_name = "set_pulse" if amp > 0 else "reset_pulse"
        numbers[key_name] = {
            "amplitude_V": amp,
            "width_s": 100e-9,
            "final_gap_nm": float(sol.states[-1]) * 1e9,
            "read_resistance_ohm": float(dev.resistance(sol.states[-1])),
            "energy_J": float(sol.energy[-1]),
        }
    plot.label(ax[0, 0], "time [ns]", "gap g [nm]", "100 ns pulses")
    plot.label(ax[0, 1], "time [ns]", "|I| [A]", "cell current")
    ax[0, 0].legend(fontsize=8)
    figures.append(
        Figure(
            plot.save(fig, out / "reram_pulses.png"),
            "Official SET (+1.8 V) and RESET (−1.3 V) 100 ns pulses: gap and current.",
        )
    )

    # 3. Switching time vs voltage (gap past mid-window), from an adaptive solve on a log time grid.
    vs_set = jnp.linspace(1.4, 2.0, 7 if quick else 13)
    vs_reset = -jnp.linspace(1.15, 1.75, 7 if quick else 13)
    tgrid = jnp.geomspace(1e-12, 1e-2, 121 if quick else 241)
    t_set = np.asarray(jax.vmap(lambda vv: switching_time(dev, vv, tgrid))(vs_set))
    t_reset = np.asarray(jax.vmap(lambda vv: switching_time(dev, vv, tgrid))(vs_reset))
    slope = float(np.polyfit(np.asarray(vs_set), np.log10(t_set), 1)[0])
    numbers["switching_time"] = {
        "set_V": vs_set,
        "set_time_s": t_set,
        "reset_V": vs_reset,
        "reset_time_s": t_reset,
        "set_decades_per_0.2V": -0.2 * slope,
    }
    fig, ax = plot.subplots()
    ax[0, 0].semilogy(np.asarray(vs_set), t_set, "o-", label="SET (from g_max)")
    ax[0, 0].semilogy(-np.asarray(vs_reset), t_reset, "s-", label="RESET (from g_min), |V|")
    plot.label(ax[0, 0], "|pulse voltage| [V]", "switching time [s]", f"SET time: {-0.2 * slope:.2f} decades per 0.2 V")
    ax[0, 0].legend(fontsize=8)
    figures.append(
        Figure(
            plot.save(fig, out / "reram_switching_time.png"),
            "Time for the gap to cross mid-window vs constant pulse voltage.",
        )
    )

    # 4. Population: device-to-device spread + cycle-to-cycle noise, SET then RESET, fast fixed-step path.
    n = 2000 if quick else 20000
    k_pop, k_set, k_reset = jax.random.split(key, 3)
    pop = sample(dev, DEMO_SPREAD, n, key=k_pop)
    pulse = eqx.filter_jit(
        eqx.filter_vmap(
            lambda d, g, a, k: apply_pulse(d, g, a, 100e-9, fixed_steps=32, key=k),
            in_axes=(eqx.if_array(0), 0, None, 0),
        )
    )
    g_set = pulse(pop, pop.gap_max, 1.6, jax.random.split(k_set, n))
    g_reset = pulse(pop, g_set, -1.3, jax.random.split(k_reset, n))
    i_set = np.asarray(jax.vmap(lambda d, gg: d.read(gg))(pop, g_set))
    i_reset = np.asarray(jax.vmap(lambda d, gg: d.read(gg))(pop, g_reset))
    g_on, g_off = i_set / 0.1, i_reset / 0.1
    numbers["population"] = {
        "cells": n,
        "spread": {k: repr(v) for k, v in DEMO_SPREAD.items()},
        "set": {
            "amplitude_V": 1.6,
            "median_conductance_S": float(np.median(g_on)),
            "cv": float(np.std(g_on) / np.mean(g_on)),
        },
        "reset": {
            "amplitude_V": -1.3,
            "median_conductance_S": float(np.median(g_off)),
            "cv": float(np.std(g_off) / np.mean(g_off)),
        },
        "cells_not_set": int(np.sum(np.asarray(g_set) > mid)),
    }
    fig, ax = plot.subplots()
    bins = np.geomspace(min(g_off.min(), g_on.min()) * 0.8, max(g_off.max(), g_on.max()) * 1.2, 80)
    ax[0, 0].hist(g_on, bins=bins, alpha=0.7, label="after SET +1.6 V, 100 ns")
    ax[0, 0].hist(g_off, bins=bins, alpha=0.7, label="after RESET −1.3 V, 100 ns")
    ax[0, 0].set_xscale("log")
    plot.label(ax[0, 0], "read conductance at 0.1 V [S]", "cells", f"{n} cells, device-to-device + cycle-to-cycle")
    ax[0, 0].legend(fontsize=8)
    figures.append(
        Figure(
            plot.save(fig, out / "reram_population.png"),
            f"Population of {n} cells: conductance after SET and after RESET "
            f"(σ/μ = {numbers['population']['set']['cv']:.2f} and "
            f"{numbers['population']['reset']['cv']:.2f}).",
        )
    )
    text = (
        "Stanford RRAM v1.0.0 with its official defaults: the DC sweep switches at the field threshold, the "
        "official pulses set and reset the cell, SET time falls about a decade per 0.2 V, and device-to-device "
        "plus cycle-to-cycle variation spreads the programmed conductance."
    )
    return Section("reram_stanford", "ReRAM — Stanford RRAM model", text, numbers, figures)
