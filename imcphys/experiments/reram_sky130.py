"""SkyWater SKY130 ReRAM in its circuit: the PDK's 1T1R operating points, the SET current and temperature the
access transistor limits, multi-level SET by the word line, program-and-verify through the gate, and the card
exported for a Verilog-A simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray
from matplotlib.ticker import NullFormatter

from .. import cards_dir, plot, read_card
from ..export import export_card
from ..models.one_t_one_r import LineDrive, line_drive
from ..population import sample
from ..program import WordLineSchedule, program
from ..simulate import simulate
from ..stimulus import hold
from ._section import Figure, Headline, Section

#: Target conductances of the program-and-verify demonstration [S] (a 2-bit cell).
LEVELS = (4e-6, 1e-5, 2.5e-5, 6e-5)


def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    card = read_card(cards_dir() / "reram_sky130_1t1r.toml")
    dev = card.device()
    cell = dev.cell
    numbers: dict = {}
    figures: list[Figure] = []
    fresh, full = dev.initial_state("reset"), dev.initial_state("set")
    g_mid = float(np.sqrt(dev.read(fresh) * dev.read(full)))
    pulse = eqx.filter_jit(
        jax.vmap(lambda d, s, a, wl: d.pulse(s, a, 1e-6, word_line=wl, fixed_steps=32), in_axes=(None, 0, 0, 0))
    )
    batch = lambda s, n: jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), s)  # noqa: E731

    # 1. The PDK's operating points (1 µs pulses): SET WL 1.7 V / BL 2.4 V; RESET WL 2.5 V / SL 2.6 V (1T1R #5)
    # and the documented high-yield RESET WL 3 V / SL 3 V.
    set_state = jax.tree_util.tree_map(
        lambda x: x[0], pulse(dev, batch(fresh, 1), jnp.array([2.4]), jnp.array([1.7])).state
    )
    resets = pulse(dev, batch(set_state, 2), jnp.array([-2.6, -3.0]), jnp.array([2.5, 3.0])).state
    g_resets = np.asarray(dev.read(resets))
    numbers["operating_points"] = {
        "g_fresh_S": float(dev.read(fresh)),
        "g_midpoint_S": g_mid,
        "g_after_set_S": float(dev.read(set_state)),
        "g_after_reset_pdk_point_S": float(g_resets[0]),
        "g_after_reset_high_yield_S": float(g_resets[1]),
        "pinch_off_at_wl_2v5_V": float(dev.transistor.pinch_off_voltage(2.5)),
        "set_switches": bool(dev.read(set_state) > g_mid),
        "reset_pdk_point_switches": bool(g_resets[0] < g_mid),
        "reset_high_yield_switches": bool(g_resets[1] < g_mid),
    }

    # 2. The SET pulse in time: behind the transistor vs the bare cell at the bit-line voltage (adaptive solves).
    ts = jnp.concatenate([jnp.zeros(1), jnp.geomspace(1e-11, 1e-6, 121 if quick else 601)])
    trace = simulate(dev, fresh, LineDrive(hold(2.4, 1e-6), 1.7), ts)
    bare = simulate(cell, fresh, hold(2.4, 1e-6), ts)
    i_sat = float(dev.saturation_current(1.7))
    numbers["set_trace"] = {
        "saturation_current_A": i_sat,
        "peak_current_1t1r_A": float(jnp.max(trace.observed)),
        "peak_temperature_1t1r_K": float(jnp.max(trace.states.temperature)),
        "peak_current_bare_A": float(jnp.max(bare.observed)),
        "peak_temperature_bare_K": float(jnp.max(bare.states.temperature)),
        "energy_1t1r_J": float(trace.energy[-1]),
        "energy_bare_J": float(bare.energy[-1]),
    }
    fig, ax = plot.subplots(1, 2)
    t_ns = np.asarray(ts)[1:] * 1e9
    ax[0, 0].loglog(t_ns, np.abs(np.asarray(trace.observed))[1:], label="1T1R, WL 1.7 V")
    ax[0, 0].loglog(t_ns, np.abs(np.asarray(bare.observed))[1:], "--", label="bare cell, 2.4 V")
    ax[0, 0].axhline(i_sat, color="k", lw=0.8, ls=":", label="I_sat(WL 1.7 V)")
    plot.label(ax[0, 0], "time [ns]", "cell current [A]", "SET, BL 2.4 V for 1 µs")
    ax[0, 0].legend(fontsize=8)
    ax[0, 1].semilogx(t_ns, np.asarray(trace.states.temperature)[1:], label="1T1R, WL 1.7 V")
    ax[0, 1].semilogx(t_ns, np.asarray(bare.states.temperature)[1:], "--", label="bare cell, 2.4 V")
    plot.label(ax[0, 1], "time [ns]", "filament temperature [K]", "self-heating")
    ax[0, 1].legend(fontsize=8)
    figures.append(
        Figure(
            plot.save(fig, out / "reram_sky130_set_trace.png"),
            f"SET of a fresh SKY130 cell: behind the access transistor the current stops at "
            f"{numbers['set_trace']['peak_current_1t1r_A'] * 1e3:.3f} mA (I_sat = {i_sat * 1e3:.3f} mA) and the "
            f"filament at {numbers['set_trace']['peak_temperature_1t1r_K']:.0f} K; the bare cell at 2.4 V heats to "
            f"{numbers['set_trace']['peak_temperature_bare_K']:.0f} K.",
        )
    )

    # 3. The word line as the multi-level knob: SET conductance after one 1 µs pulse, and the compliance.
    wls = jnp.linspace(0.85, 1.8, 12 if quick else 39)
    sets = pulse(dev, batch(fresh, wls.shape[0]), jnp.full(wls.shape, 2.4), wls)
    g_wl = np.asarray(dev.read(sets.state))
    i_end = np.asarray(eqx.filter_jit(jax.vmap(lambda s, w: dev.observe(s, line_drive(w, 2.4))))(sets.state, wls))
    numbers["word_line_knob"] = {
        "word_line_V": np.asarray(wls),
        "g_set_S": g_wl,
        "span_0v95_to_1v5": float(np.interp(1.5, wls, g_wl) / np.interp(0.95, wls, g_wl)),
        "current_at_or_below_saturation": bool(np.all(i_end <= np.asarray(dev.saturation_current(wls)) * (1 + 1e-12))),
    }
    fig, ax = plot.subplots(1, 2)
    ax[0, 0].semilogy(np.asarray(wls), g_wl, "o-")
    ax[0, 0].axhline(g_mid, color="k", lw=0.8, ls=":", label="midpoint of the window")
    plot.label(ax[0, 0], "word-line voltage [V]", "conductance after SET at 0.1 V [S]", "BL 2.4 V, 1 µs")
    ax[0, 0].legend(fontsize=8)
    ax[0, 1].semilogy(np.asarray(wls), i_end, "o", label="cell current at the end of the pulse")
    ax[0, 1].semilogy(np.asarray(wls), np.asarray(dev.saturation_current(wls)), "-", label="transistor I_sat")
    plot.label(ax[0, 1], "word-line voltage [V]", "current [A]", "compliance")
    ax[0, 1].legend(fontsize=8)
    figures.append(
        Figure(
            plot.save(fig, out / "reram_sky130_word_line.png"),
            "Multi-level SET by the word line: the transistor's saturation current stalls the SET runaway, so the "
            f"conductance rises {numbers['word_line_knob']['span_0v95_to_1v5']:.0f}× from WL 0.95 V to 1.5 V.",
        )
    )

    # 4. Program-and-verify through the gate: word-line steps with a verify read, over the card's cell spread.
    n = 64 if quick else 1024
    cells = sample(cell, card.parts["cell"].variability_specs(), n, key=key)
    scheme = WordLineSchedule.incremental(
        start=0.9, step=0.02, iterations=40, amplitude=2.4, width=1e-6, tolerance=0.15
    )
    rep = program(dev.populate(cells), scheme, targets=jnp.asarray(LEVELS), key=None, verify="exact", fixed_steps=32)
    numbers["program_and_verify"] = {**rep.summary(), "levels_S": list(LEVELS)}
    fig, ax = plot.subplots()
    edges, counts = rep.histogram(bins=50)
    for level, row in zip(LEVELS, counts, strict=True):
        ax[0, 0].stairs(row, edges, label=f"target {level * 1e6:.0f} µS")
    ax[0, 0].set_xscale("log")
    ax[0, 0].xaxis.set_minor_formatter(NullFormatter())
    plot.label(ax[0, 0], "conductance at 0.1 V [S]", "cells [1]", f"{n} cells, word-line steps of 20 mV")
    ax[0, 0].legend(fontsize=8)
    figures.append(
        Figure(
            plot.save(fig, out / "reram_sky130_program.png"),
            f"Program-and-verify through the gate ({n} cells with the card's spread): {rep.unconverged} outside "
            f"their band, level error rate {rep.level_error_rate():.3f}, {np.mean(rep.pulses):.1f} pulses and "
            f"{np.mean(rep.energy) * 1e9:.2f} nJ per cell on average.",
        )
    )

    # 5. The cell's card for the circuit team: the PDK model's parameter set.
    vams = export_card(cards_dir() / "reram_sky130.toml", out / "reram_sky130.vams")
    numbers["export"] = {"file": vams.name, "parameters": vams.read_text().count("\n  .")}

    op = numbers["operating_points"]
    text = (
        "The SkyWater SKY130 ReRAM (the PDK's compact model: filament growth and dissolution rates with a field "
        "enhancement cubic in the gap, sinh conduction, a thermal ODE) behind a SKY130 5 V NMOS (long-channel EKV, "
        "assumed body effect and width). The PDK's SET point (WL 1.7 V, BL 2.4 V, 1 µs) sets a fresh cell "
        f"({op['g_fresh_S']:.2e} → {op['g_after_set_S']:.2e} S) and the documented high-yield RESET (WL 3 V, SL 3 V) "
        f"resets it ({op['g_after_reset_high_yield_S']:.2e} S). The PDK's RESET point WL 2.5 V / SL 2.6 V does not "
        f"reset the compact cell: the node is the transistor's source, so |V_cell| < V_P(2.5 V) = "
        f"{op['pinch_off_at_wl_2v5_V']:.2f} V, below what the model needs in 1 µs. The word line sets the "
        "compliance, which stalls the SET runaway: the multi-level knob."
    )
    return Section(
        "reram_sky130",
        "SkyWater SKY130 ReRAM in its 1T1R circuit",
        text,
        numbers,
        figures,
        headlines=headlines(numbers),
    )


def headlines(numbers: dict[str, Any]) -> list[Headline]:
    """The PDK's SET operating point (WL 1.7 V, BL 2.4 V, 1 µs) sets a fresh cell, with the access transistor as
    the current compliance and the filament well below a thermal runaway."""
    op, tr = numbers["operating_points"], numbers["set_trace"]
    point = "the PDK's SET point (WL 1.7 V, BL 2.4 V, 1 µs)"
    return [
        Headline(
            f"SKY130 ReRAM 1T1R: {point} sets a fresh cell above the midpoint of its conductance window",
            op["g_after_set_S"] * 1e6,
            ">",
            op["g_midpoint_S"] * 1e6,
            "µS",
            f"fresh {op['g_fresh_S'] * 1e6:.3g} µS; midpoint = geometric mean of the fresh and fully set cell",
        ),
        Headline(
            f"SKY130 ReRAM 1T1R: during {point} the transistor limits the cell current to its saturation current",
            tr["peak_current_1t1r_A"] / tr["saturation_current_A"],
            "<=",
            1.0,
            "1",
            f"peak current {tr['peak_current_1t1r_A'] * 1e3:.4g} mA over I_sat(WL 1.7 V) = "
            f"{tr['saturation_current_A'] * 1e3:.4g} mA; the bare cell at 2.4 V peaks at "
            f"{tr['peak_current_bare_A'] * 1e3:.3g} mA",
        ),
        Headline(
            f"SKY130 ReRAM 1T1R: {point} keeps the filament below 800 K",
            tr["peak_temperature_1t1r_K"],
            "<",
            800.0,
            "K",
            f"peak filament temperature; the bare cell at 2.4 V runs away to {tr['peak_temperature_bare_K']:.0f} K",
        ),
    ]
