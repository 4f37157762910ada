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
from .._experiment import Experiment
from ..data import Dataset
from ..datasets import load_dataset
from ..export import export_card
from ..fit import FitResult, fit
from ..models.mosfet import _IV_UNITS, EKVTransistor, iv_curves
from ..models.one_t_one_r import LineDrive, line_drive
from ..population import sample
from ..program import WordLineSchedule, program
from ..simulate import simulate
from ..stimulus import hold
from ._section import Figure, Headline, Section

#: Target conductances of the program-and-verify demonstration [S] (a 2-bit cell).
LEVELS = (4e-6, 1e-5, 2.5e-5, 6e-5)

#: Measured I–V curves of the access device, a SKY130 5 V NMOS of W/L = 7/0.50 µm (see its PROVENANCE.md).
ACCESS_DATASET = "sky130_nfet_g5v0d10v5"
ACCESS_FILES = ("w7_l0p5_idvg.csv", "w7_l0p5_idvd.csv")
#: The bias region a 1T1R access device sees (SKY130 ReRAM lines at most 3.3 V): source-bulk 0–2.5 V, drain-source
#: 0.05–3.3 V, gate-source at most 3.5 V [V]; currents above ACCESS_FLOOR [A] (the noise of the measurement is
#: ~2 nA: PROVENANCE.md). Outside it the long-channel EKV model is not meant to hold (velocity saturation,
#: mobility reduction at 5 V gate drive).
ACCESS_REGION = {"V_SB": (0.0, 2.5), "V_DS": (0.05, 3.3), "V_GS": (-5.0, 3.5)}
ACCESS_FLOOR = 1e-6


def access_iv() -> Dataset:
    """The measured I–V curves of the SKY130 5 V NMOS (both files of :data:`ACCESS_DATASET`), the rows inside
    :data:`ACCESS_REGION`."""
    parts = [load_dataset(ACCESS_DATASET, file=f) for f in ACCESS_FILES]
    cols = {n: np.concatenate([p[n] for p in parts]) for n in _IV_UNITS}
    bias = {"V_SB": cols["V_S"] - cols["V_B"], "V_DS": cols["V_D"] - cols["V_S"], "V_GS": cols["V_G"] - cols["V_S"]}
    keep = np.all([(bias[k] >= lo) & (bias[k] <= hi) for k, (lo, hi) in ACCESS_REGION.items()], axis=0)
    return Dataset.from_arrays({n: (v[keep], _IV_UNITS[n]) for n, v in cols.items()})


def access_experiment() -> Experiment:
    """The measured curves inside :data:`ACCESS_REGION` as a fit experiment (log10|I_D| above :data:`ACCESS_FLOOR`)."""
    return iv_curves(access_iv(), floor=ACCESS_FLOOR, name="SKY130 5 V NMOS, W/L = 7/0.50 µm")


def access_rms_decades(transistor: EKVTransistor) -> tuple[float, int]:
    """rms of log10|I_D| [decades] of ``transistor`` against :func:`access_experiment`, and its number of points."""
    experiment = access_experiment()
    residual = experiment.residual(experiment.predict(transistor), experiment.observed)
    return float(np.sqrt(np.mean(np.asarray(residual)[np.asarray(experiment.mask)] ** 2))), experiment.points


def fit_access_transistor(
    transistor: EKVTransistor, free: tuple[str, ...], *, key: PRNGKeyArray, starts: int = 4
) -> FitResult:
    """Fit ``free`` parameters of ``transistor`` to :func:`access_experiment`: how ``devices/nmos_sky130_5v.toml``
    got its fitted values."""
    return fit(transistor, access_experiment(), free=list(free), key=key, starts=starts, candidates=32, progress=False)


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
    # one batch: the PDK point, then RESETs with the source line at the word-line voltage from 2.5 V to the
    # high-yield 3 V (where the compact cell does reset)
    reset_wls = jnp.linspace(2.5, 3.0, 11)
    word_lines = jnp.concatenate([jnp.array([2.5]), reset_wls])
    amplitudes = jnp.concatenate([jnp.array([-2.6]), -reset_wls])
    resets = pulse(dev, batch(set_state, word_lines.shape[0]), amplitudes, word_lines).state
    g_all = np.asarray(dev.read(resets))
    g_swept = g_all[1:]
    g_resets = (g_all[0], g_swept[-1])  # the PDK point; WL 3 V / SL 3 V
    resets_at = np.asarray(reset_wls)[g_swept < g_mid / 3]
    numbers["operating_points"] = {
        "g_fresh_S": float(dev.read(fresh)),
        "g_midpoint_S": g_mid,
        "g_after_set_S": float(dev.read(set_state)),
        "g_after_reset_pdk_point_S": float(g_resets[0]),
        "g_after_reset_high_yield_S": float(g_resets[1]),
        "pinch_off_at_wl_2v5_V": float(dev.transistor.pinch_off_voltage(2.5)),
        "cell_voltage_at_pdk_reset_V": float(dev.cell_voltage(set_state, line_drive(2.5, -2.6))),
        "set_switches": bool(dev.read(set_state) > g_mid),
        "reset_pdk_point_switches": bool(g_resets[0] < g_mid),
        "reset_high_yield_switches": bool(g_resets[1] < g_mid),
        "reset_sweep_word_line_V": np.asarray(reset_wls),
        "reset_sweep_g_S": g_swept,
        "lowest_resetting_word_line_V": float(resets_at.min()) if resets_at.size else None,
    }

    # 0. The access transistor on silicon: the card against the measured SKY130 device it was fitted to.
    rms, points = access_rms_decades(dev.transistor)
    numbers["access_transistor"] = {"dataset": ACCESS_DATASET, "points": points, "rms_decades": rms}
    figures.append(_figure_access(out, dev.transistor, numbers["access_transistor"]))
    fig, ax = plot.subplots()
    ax[0, 0].semilogy(np.asarray(reset_wls), g_swept, "o-", label="RESET, SL = WL, 1 µs, from full SET")
    ax[0, 0].semilogy([2.5], [g_resets[0]], "s", label="PDK point WL 2.5 V / SL 2.6 V")
    ax[0, 0].axhline(g_mid / 3, color="k", lw=0.8, ls=":", label="reset criterion (midpoint / 3)")
    plot.label(ax[0, 0], "word-line voltage [V]", "conductance after RESET at 0.1 V [S]", "RESET through the gate")
    ax[0, 0].legend(fontsize=8)
    figures.append(
        Figure(
            plot.save(fig, out / "reram_sky130_reset.png"),
            "RESET of a fully SET cell through its access transistor (a source follower): the PDK's RESET point "
            f"WL 2.5 V / SL 2.6 V leaves it at {g_resets[0]:.2e} S; the compact cell resets from WL "
            f"{numbers['operating_points']['lowest_resetting_word_line_V']} V.",
        )
    )

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
    wls = jnp.linspace(0.7, 1.6, 12 if quick else 37)
    sets = pulse(dev, batch(fresh, wls.shape[0]), jnp.full(wls.shape, 2.4), wls)
    g_wl = np.asarray(dev.read(sets.state))
    i_end = np.asarray(eqx.filter_jit(jax.vmap(lambda s, w: dev.observe(s, line_drive(w, 2.4))))(sets.state, wls))
    numbers["word_line_knob"] = {
        "word_line_V": np.asarray(wls),
        "g_set_S": g_wl,
        "span_0v8_to_1v3": float(np.interp(1.3, wls, g_wl) / np.interp(0.8, wls, g_wl)),
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
            f"conductance rises {numbers['word_line_knob']['span_0v8_to_1v3']:.0f}× from WL 0.8 V to 1.3 V.",
        )
    )

    # 4. Program-and-verify through the gate: word-line steps with a verify read, over the card's cell spread.
    n = 64 if quick else 1024
    cells = sample(cell, card.parts["cell"].variability_specs(), n, key=key)
    scheme = WordLineSchedule.incremental(
        start=0.7, step=0.02, iterations=40, amplitude=2.4, width=1e-6, tolerance=0.15
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
        "enhancement cubic in the gap, sinh conduction, a thermal ODE) behind a SKY130 5 V NMOS (long-channel EKV "
        f"fitted to measured silicon: {numbers['access_transistor']['rms_decades']:.3f} decades rms over "
        f"{numbers['access_transistor']['points']} points of the 1T1R bias region). The PDK's SET point (WL 1.7 V, "
        f"BL 2.4 V, 1 µs) sets a fresh cell ({op['g_fresh_S']:.2e} → {op['g_after_set_S']:.2e} S) and the documented "
        f"high-yield RESET (WL 3 V, SL 3 V) resets it ({op['g_after_reset_high_yield_S']:.2e} S). The PDK's RESET "
        f"point WL 2.5 V / SL 2.6 V does not reset the compact cell ({op['g_after_reset_pdk_point_S']:.2e} S): the "
        "node is the transistor's source, and a SET cell draws so much current that the follower holds it at "
        f"{abs(op['cell_voltage_at_pdk_reset_V']):.2f} V, too little for the model in 1 µs; from WL "
        f"{op['lowest_resetting_word_line_V']} V it resets (silicon: 91 % of cells at 2.5 V). The PDK's own BSIM4 "
        "transistor gives the same verdicts (tests/test_one_t_one_r.py). The word line sets the compliance, which "
        "stalls the SET runaway: the multi-level knob."
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
            f"SKY130 ReRAM 1T1R: {point} keeps the filament's heating below a tenth of the bare cell's",
            (tr["peak_temperature_1t1r_K"] - 300.0) / (tr["peak_temperature_bare_K"] - 300.0),
            "<",
            0.1,
            "1",
            f"temperature rise over T_0 = 300 K: peak {tr['peak_temperature_1t1r_K']:.0f} K behind the transistor; "
            f"the bare cell at 2.4 V runs away to {tr['peak_temperature_bare_K']:.0f} K",
        ),
        Headline(
            "SKY130 ReRAM 1T1R: the access transistor card fits the measured SKY130 5 V NMOS within 0.15 decade rms",
            numbers["access_transistor"]["rms_decades"],
            "<=",
            0.15,
            "decade",
            f"{numbers['access_transistor']['points']} measured points of the 1T1R bias region (dataset "
            f"{numbers['access_transistor']['dataset']})",
        ),
    ]


def _figure_access(out: Path, transistor: EKVTransistor, fit_numbers: dict[str, Any]) -> Figure:
    """Measured SKY130 5 V NMOS (dots) against the card (lines): transfer curves at V_D = 0.1 V for body biases 0
    and −2.5 V, output curves at V_G = 1, 2, 3 V."""
    transfer, output = (load_dataset(ACCESS_DATASET, file=f) for f in ACCESS_FILES)
    fig, ax = plot.subplots(1, 2)
    for bias in (0.0, -2.5):
        m = (transfer["V_D"] == 0.1) & (transfer["V_B"] == bias)
        vg = transfer["V_G"][m]
        line = ax[0, 0].semilogy(vg, np.abs(transfer["I_D"][m]), "o", ms=3, label=f"measured, V_B = {bias:g} V")
        model = np.asarray(transistor.drain_current(vg - bias, 0.1 - bias, -bias))
        ax[0, 0].semilogy(vg, model, "-", color=line[0].get_color(), label=f"card, V_B = {bias:g} V")
    ax[0, 0].set_ylim(1e-9, 1e-2)
    plot.label(ax[0, 0], "gate voltage V_G [V]", "drain current [A]", "transfer, V_D = 0.1 V, V_S = 0")
    ax[0, 0].legend(fontsize=7)
    for gate in (1.0, 2.0, 3.0):
        m = (output["V_G"] == gate) & (output["V_B"] == 0.0) & (output["V_D"] <= 3.3)
        vd = output["V_D"][m]
        line = ax[0, 1].plot(vd, output["I_D"][m] * 1e3, "o", ms=3, label=f"measured, V_G = {gate:g} V")
        model = np.asarray(transistor.drain_current(gate, vd, 0.0))
        ax[0, 1].plot(vd, model * 1e3, "-", color=line[0].get_color(), label=f"card, V_G = {gate:g} V")
    plot.label(ax[0, 1], "drain voltage V_D [V]", "drain current [mA]", "output, V_S = V_B = 0")
    ax[0, 1].legend(fontsize=7)
    return Figure(
        plot.save(fig, out / "reram_sky130_access_transistor.png"),
        f"The access transistor card against the measured SKY130 5 V NMOS (W/L = 7/0.50 µm) it was fitted to: "
        f"{fit_numbers['rms_decades']:.3f} decades rms over {fit_numbers['points']} points of the 1T1R bias region "
        "(|I_D| > 1 µA). The long-channel model has no velocity saturation: at V_G = 3 V it overestimates the "
        "saturation current by about 30 %; the RESET source follower runs at 0.1–0.3 mA, where it is close.",
    )
