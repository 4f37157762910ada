"""Flash programmed through its charge pump: the pump's rise and regulation, pulses at 6–20 V, ISPP with
verify over a population with tunnel-oxide and coupling-ratio spread, and the SKY130 SONOS program/erase
window against its published spec limits (the E-test limits in the ``sonos_sky130`` card's ``[spec]`` table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .. import plot
from ..cards import load_card, read_card
from ..models.flash import FloatingGateCell, ispp, program_wordline, program_wordline_switched
from ..population import Normal, sample
from ._section import Figure, Headline, Section

#: Device-to-device spread of the demo population (assumed magnitudes): tunnel oxide ±3 % (1σ), α_G ±0.02.
SPREAD = {"tunnel_oxide_thickness": Normal(std=0.03, relative=True), "coupling_ratio": Normal(std=0.02)}
V_START, WIDTH, VERIFY = 14.0, 10e-6, 2.0  # ISPP start [V], pulse width [s], verify level [V]
V_CEILING = 24.5  # [V] highest step asked for (the card's pump holds 25.0 V)
V_SLOPE_TOP = 22.0  # [V] last step of the runs without verify that measure ΔV_th per step


def steady_step(res_vth: np.ndarray, last: int = 4) -> float:
    """Mean ΔV_th per pulse over the last ``last`` pulses of an ISPP run without verify [V]."""
    return float(np.mean(np.diff(res_vth)[-last:]))


def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    cell = FloatingGateCell()
    pump = cell.pump
    numbers: dict = {
        "pump": {
            "stages": pump.stages,
            "open_circuit_voltage_V": float(pump.open_circuit_voltage()),
            "output_resistance_ohm": float(pump.output_resistance()),
            "reach_V": float(pump.steady_state().v_out),
            "max_amplitude_V": cell.amplitude_range()[0][1],
        }
    }
    figures: list[Figure] = []
    # numbers go in as arrays: eqx.filter_jit treats Python floats as static (one compile per value)
    fixed = eqx.filter_jit(lambda c, d, a: program_wordline(c, d, a, WIDTH, fixed_steps=48))

    # 1. pulses at 6-20 V from the pump at rest: rise, regulation, droop when the word line connects
    targets = [6.0, 10.0, 14.0, 18.0, 20.0]
    fig, ax = plot.subplots(1, 2)
    pulses = {}
    for v in targets:
        res = fixed(cell, cell.initial_state(), jnp.asarray(v))
        ax[0, 0].plot(np.asarray(res.ts) * 1e6, np.asarray(res.v_wordline_trace), label=f"{v:.0f} V")
        pulses[f"{v:g}"] = {
            "vth_after_V": float(cell.read(res.dvth)),
            "energy_per_cell_J": float(res.energy_per_cell),
            "v_wordline_end_V": float(res.v_wordline),
            "vth_after_ideal_source_V": float(cell.read(cell.constant_voltage_pulse(cell.initial_state(), v, WIDTH))),
        }
    numbers["pulse_from_rest"] = {
        "width_s": WIDTH,
        "start_vth_V": float(cell.read(cell.initial_state())),
        "targets_V": pulses,
    }
    plot.label(ax[0, 0], "time [µs]", "control-gate (word-line) voltage [V]", "10 µs pulses, pump from rest")
    ax[0, 0].legend(fontsize=7, title="target", title_fontsize=7)
    cycles = 40 if quick else 200
    sw = program_wordline_switched(cell, cell.initial_state(), 18.0, cycles / float(pump.clock_frequency))
    avg = eqx.filter_jit(lambda c, d, a, w: program_wordline(c, d, a, w, fixed_steps=64))(
        cell, cell.initial_state(), jnp.asarray(18.0), jnp.asarray(cycles / float(pump.clock_frequency))
    )
    ax[0, 1].plot(np.asarray(sw.ts) * 1e6, np.asarray(sw.v_pump_trace), ".", ms=2, label="switched pump (cycle ends)")
    ax[0, 1].plot(np.asarray(avg.ts) * 1e6, np.asarray(avg.v_pump_trace), "-", label="averaged pump")
    plot.label(ax[0, 1], "time [µs]", "pump output [V]", "rise and regulation at 18 V")
    ax[0, 1].legend(fontsize=7)
    numbers["switched_vs_averaged_18V"] = {
        "cycles": cycles,
        "dvth_switched_V": float(sw.dvth[0]),
        "dvth_averaged_V": float(avg.dvth),
        "energy_switched_J": float(sw.energy),
        "energy_averaged_J": float(avg.energy),
    }
    figures.append(
        Figure(
            plot.save(fig, out / "flash_pump_pulses.png"),
            "Left: word-line voltage of 10 µs pulses at 6–20 V from the pump at rest (averaged model). "
            "Right: the pump output at 18 V, switched model against averaged.",
        )
    )

    # 2. steady-state ΔV_th per ISPP step (no verify), pump-fed and from an ideal source
    pump_slope = 1 - 1 / (
        2 * float(pump.output_resistance() * pump.clock_frequency * (pump.output_capacitance + pump.node_capacitance()))
    )
    numbers["dvth_per_step"] = {}
    for dv in (0.2, 0.5):
        k = int((V_SLOPE_TOP - V_START) / dv) + 1  # steady state: the cell has settled, the pump keeps headroom
        res = ispp(
            cell,
            cell.initial_state(),
            v_start=V_START,
            v_step=dv,
            width=WIDTH,
            verify_level=jnp.inf,
            max_pulses=k,
        )
        ideal = ispp(
            cell,
            cell.initial_state(),
            v_start=V_START,
            v_step=dv,
            width=WIDTH,
            verify_level=jnp.inf,
            max_pulses=k,
            source="ideal",
        )
        numbers["dvth_per_step"][f"{dv:g}"] = {
            "pump_V": steady_step(np.asarray(res.vth)),
            "ideal_source_V": steady_step(np.asarray(ideal.vth)),
            "pump_predicted_V": dv * pump_slope,
            "pulses": k,
        }

    # 3. ISPP with verify over a population
    n = 2000 if quick else 20000
    pop = sample(cell, SPREAD, n, key=key)
    d0 = pop.initial_state()
    dvpps = (0.2, 0.5) if quick else (0.2, 0.3, 0.5, 0.7)
    numbers["population"] = {
        "cells": n,
        "spread": {k: repr(v) for k, v in SPREAD.items()},
        "v_start_V": V_START,
        "width_s": WIDTH,
        "verify_level_V": VERIFY,
    }
    width_vs, pulses_needed, energy = {}, {}, {}
    fig, ax = plot.subplots(1, 2)
    before = np.asarray(pop.read(d0))
    for dv in dvpps:
        k = min(int(10.0 / dv) + 4, int((V_CEILING - V_START) / dv) + 1)
        res = ispp(pop, d0, v_start=V_START, v_step=dv, width=WIDTH, verify_level=VERIFY, max_pulses=k)
        vth = np.asarray(res.final_vth)
        width_vs[f"{dv:g}"] = {
            "std_V": float(vth.std()),
            "p99_minus_p1_V": float(np.ptp(np.quantile(vth, [0.01, 0.99]))),
            "max_minus_min_V": float(np.ptp(vth)),
            "mean_V": float(vth.mean()),
        }
        pulses_needed[f"{dv:g}"] = {
            "mean": float(np.mean(res.pulses)),
            "max": float(np.max(res.pulses)),
            "budget": k,
            "unverified_cells": int(np.sum(np.asarray(res.verified) == 0)),
        }
        energy[f"{dv:g}"] = float(res.energy_per_cell)
        ax[0, 1].hist(vth, bins=60, alpha=0.6, label=f"ΔV_pp = {dv:g} V")
        if dv == dvpps[0]:
            hist = np.asarray(res.vth)[:, :6]
            steps = np.arange(hist.shape[0])
            ax[0, 0].step(steps, hist, where="post", lw=0.8)
            ax[0, 0].axhline(VERIFY, color="k", ls="--", lw=0.8)
    plot.label(ax[0, 0], "pulse number", "V_th [V]", f"ISPP staircase, 6 cells, ΔV_pp = {dvpps[0]:g} V")
    ax[0, 1].axvline(VERIFY, color="k", ls="--", lw=0.8)
    plot.label(ax[0, 1], "V_th after ISPP [V]", "cells", f"{n} cells from V_th = {before.mean():.2f} V")
    ax[0, 1].legend(fontsize=7)
    figures.append(
        Figure(
            plot.save(fig, out / "flash_ispp.png"),
            "ISPP with verify through the pump: staircase of a few cells and the final V_th "
            "distribution for several step sizes.",
        )
    )
    numbers["vth_width_vs_dvpp"] = width_vs
    numbers["pulses_needed"] = pulses_needed
    numbers["energy_per_programmed_cell_J"] = energy

    # 4. SKY130 SONOS: published program (+6.7 V gate, −3.8 V well, 2 ms) and erase (reverse, 6 ms) through
    # its pump
    sonos = load_card("sonos_sky130")
    pulse = eqx.filter_jit(lambda c, x, a, w: c.pulse(x, a, w, fixed_steps=24))
    d = sonos.initial_state("erased")
    for _ in range(2):
        d = pulse(sonos, d, jnp.asarray(10.5), jnp.asarray(2e-3)).state
        vt_p = float(sonos.read(d))
        d = pulse(sonos, d, jnp.asarray(-10.5), jnp.asarray(6e-3)).state
        vt_e = float(sonos.read(d))
    window = {
        "programmed_V": vt_p,
        "erased_V": vt_e,
        "window_V": vt_p - vt_e,
        "conditions": "program +10.5 V gate-to-well 2 ms, erase -10.5 V 6 ms, through the card's pump",
    }
    spec = read_card("sonos_sky130").spec  # the published E-test limits (the card's [spec] table)
    p, e = spec["programmed_vt"], spec["erased_vt"]
    window.update(
        {
            "spec_programmed_V": p,
            "spec_erased_V": e,
            "spec_window_nominal_V": p["nominal"] - e["nominal"],
            "inside_spec": bool(p["lower"] < vt_p < p["upper"] and e["lower"] < vt_e < e["upper"]),
        }
    )
    numbers["sonos_sky130_window"] = window

    w02, w05 = width_vs.get("0.2", {}), width_vs.get("0.5", {})
    text = (
        f"A floating-gate cell programmed through a {pump.stages}-stage Dickson pump "
        f"(V_oc = {numbers['pump']['open_circuit_voltage_V']:.1f} V, R_out = "
        f"{numbers['pump']['output_resistance_ohm'] / 1e3:.1f} kΩ): pulses at 6–20 V see the pump's "
        "rise from rest, so a 20 V pulse of 10 µs moves V_th less than an ideal 20 V source would. In ISPP "
        f"the steady-state step is {numbers['dvth_per_step']['0.5']['pump_V']:.4f} V per 0.5 V step through "
        "the regulated pump "
        f"({numbers['dvth_per_step']['0.5']['ideal_source_V']:.4f} V from an ideal source); after verify at "
        f"{VERIFY} V the V_th spread is {w02.get('std_V', float('nan')) * 1e3:.0f} mV (ΔV_pp = 0.2 V) and "
        f"{w05.get('std_V', float('nan')) * 1e3:.0f} mV (0.5 V) rms. The SKY130 SONOS card lands at "
        f"{vt_p:.2f} V / {vt_e:.2f} V (spec nominal 1.44 V / −2.30 V)."
    )
    return Section(
        "flash_ispp",
        "Flash — programmed through a charge pump (ISPP)",
        text,
        numbers,
        figures,
        headlines=headlines(numbers),
    )


def headlines(numbers: dict[str, Any]) -> list[Headline]:
    """The word line reaches each target (6–20 V) through the pump within 0.5 V by the end of the pulse."""
    reached = numbers["pulse_from_rest"]["targets_V"]
    shortfall = max(float(v) - r["v_wordline_end_V"] for v, r in reached.items())
    return [
        Headline(
            "Flash: programming pulses of 6–20 V produced by the on-chip charge pump (each target reached within "
            "0.5 V)",
            shortfall,
            "<=",
            0.5,
            "V",
            f"largest shortfall of the word line below its target ({', '.join(reached)} V) at the end of a "
            f"{numbers['pulse_from_rest']['width_s'] * 1e6:g} µs pulse from a {numbers['pump']['stages']}-stage "
            f"Dickson pump at rest (open circuit {numbers['pump']['open_circuit_voltage_V']:.1f} V)",
        )
    ]
