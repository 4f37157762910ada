"""STT-MRAM study: resistance, write-error rate from the thermal SDE against the closed forms, the thermal-activation
exponent recovered from the SDE, read margin against the TMR spread, the least-energy write pulse by gradient
(against a grid at equal evaluations, checked on the SDE) and write-verify through program-and-verify."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .. import cards_dir, plot
from ..cards import read_card
from ..device import replace
from ..models.mram import (
    grid_write_pulse,
    mram_switching_time,
    mram_write_error_rate,
    optimize_write_pulse,
    read_margin,
)
from ..population import LogNormal, Normal, TruncatedNormal, sample
from ..program import FixedAmplitude, program
from ._section import Figure, Headline, Section

#: Write currents of the WER table, in units of the nominal I_c0.
RATIOS = (1.5, 2.0, 3.0, 4.0)
#: WER target of the pulse optimisation that the SDE checks (1e5 junctions resolve it to about ±30 %).
CHECKED_TARGET = 1e-4


def thermal_fit(ratios: np.ndarray, times: np.ndarray, *, prefactor: bool) -> float:
    """Slope b of ln t = a + b(1 − i)² (``prefactor``: of ln(t·(1 + i)(1 − i)²), the high-barrier Kramers
    prefactor of the Fokker–Planck escape time t_D√(π/Δ)e^{Δ(1−i)²}/((1 + i)(1 − i)²) taken out)."""
    x = (1.0 - ratios) ** 2
    y = np.log(times) + (np.log((1.0 + ratios) * x) if prefactor else 0.0)
    return float(np.polyfit(x, y, 1)[0])


def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    dev = read_card(cards_dir() / "mram_pmtj.toml").device()
    card = read_card(cards_dir() / "mram_pmtj.toml")
    k_wer, k_sun, k_th, k_read, k_opt, k_sde_e, k_pop, k_start, k_prog = jr.split(key, 9)
    ic0, t_d = float(dev.critical_current()), float(dev.dynamic_time())
    numbers: dict = {
        "device": {
            "card": "mram_pmtj",
            "anisotropy_field_A_per_m": float(dev.anisotropy_field()),
            "thermal_stability": float(dev.thermal_stability()),
            "critical_current_A": ic0,
            "dynamic_time_s": t_d,
            "precession_period_s": float(dev.precession_period()),
            "R_P_ohm": float(dev.parallel_resistance()),
            "R_AP_0V_ohm": float(dev.resistance(-1.0, 0.0)),
            "tmr_0V": float(dev.tmr),
        }
    }
    figures: list[Figure] = []

    # 1. R(θ, V)
    fig, ax = plot.subplots(1, 2)
    cos = np.linspace(-1, 1, 201)
    for v in (0.0, 0.25, 0.5):
        ax[0, 0].plot(cos, np.asarray(dev.resistance(cos, v)) / 1e3, label=f"{v:.2f} V")
    volts = np.linspace(-1.0, 1.0, 201)
    ax[0, 1].plot(volts, np.asarray(dev.resistance(-1.0, volts)) / 1e3, label="AP")
    ax[0, 1].plot(volts, np.asarray(dev.resistance(1.0, volts)) / 1e3, label="P")
    plot.label(ax[0, 0], "cos θ = m·p [1]", "resistance R(θ, V) [kΩ]", "R(θ) at three biases")
    plot.label(ax[0, 1], "junction voltage V [V]", "resistance [kΩ]", "TMR falls with bias (V_h = 0.5 V)")
    for a in ax.ravel():
        a.legend(fontsize=8)
    numbers["resistance_ohm"] = {
        f"{v:g}V": {"P": float(dev.resistance(1.0, v)), "AP": float(dev.resistance(-1.0, v))} for v in (0, 0.25, 0.5)
    }
    figures.append(Figure(plot.save(fig, out / "mram_resistance.png"), "Resistance of the junction vs angle and bias."))

    # 2. WER table: SDE over n junctions per point against the closed form
    n_wer = 10_000 if quick else 100_000
    widths = np.linspace(0.5e-9, 30e-9, 60)
    table, seconds = {}, []
    for j, r in enumerate(RATIOS):
        t0 = time.perf_counter()
        sde = np.asarray(mram_write_error_rate(dev, r * ic0, widths, key=jr.fold_in(k_wer, j), n=n_wer))
        seconds.append(time.perf_counter() - t0)
        table[f"{r:g}"] = {"sde": sde, "closed_form": np.asarray(dev.write_error_rate(r * ic0, widths))}
    warm = float(np.sum(seconds[1:]))  # the first call compiles the kernel (one shape for every current)
    steps = int(np.ceil(widths.max() / (t_d / 100)))
    numbers["wer_table"] = {
        "current_over_Ic0": list(RATIOS),
        "current_A": [r * ic0 for r in RATIOS],
        "width_s": widths,
        "junctions_per_point": n_wer,
        "wer_sde": {k: v["sde"] for k, v in table.items()},
        "wer_closed_form": {k: v["closed_form"] for k, v in table.items()},
        "sde_seconds_per_current": seconds,
        "junction_pulses_per_s": n_wer * (len(RATIOS) - 1) / warm,
        "junction_steps_per_s": n_wer * (len(RATIOS) - 1) * steps / warm,
        "steps_per_pulse": steps,
        "note": "SDE: fixed-step stochastic Heun, rotating frame, steps of t_D/100, one jitted kernel, one device "
        "(throughput from the calls after the first, which compiles); every width from one run of the longest; "
        "WER = fraction not past the equator at the end of the pulse",
    }
    # closed form vs SDE where both are resolved (WER between 1e-3 and 0.5, at least 100 errors counted)
    ratios_cf = {}
    for k, v in table.items():
        ok = (v["sde"] > max(1e-3, 100 / n_wer)) & (v["sde"] < 0.5)
        ratios_cf[k] = [
            float(np.min(v["closed_form"][ok] / v["sde"][ok])),
            float(np.max(v["closed_form"][ok] / v["sde"][ok])),
        ]
    numbers["wer_table"]["closed_over_sde_range"] = ratios_cf
    fig, ax = plot.subplots()
    for k, v in table.items():
        (line,) = ax[0, 0].semilogy(widths * 1e9, v["closed_form"], label=f"{k}·I_c0 closed form")
        shown = v["sde"] > 0
        ax[0, 0].semilogy(
            widths[shown] * 1e9, v["sde"][shown], "o", ms=3, color=line.get_color(), label=f"{k}·I_c0 SDE"
        )
    ax[0, 0].set_ylim(0.3 / n_wer, 1.5)
    plot.label(ax[0, 0], "pulse width [ns]", "write-error rate [1]", f"AP → P, {n_wer:.0e} junctions per point")
    ax[0, 0].legend(fontsize=6, ncol=2)
    figures.append(
        Figure(
            plot.save(fig, out / "mram_wer.png"),
            "WER vs pulse width: thermal SDE (markers) and the linearised precessional closed form (lines).",
        )
    )

    # 3. switching times: Sun's form approached at high current; thermal exponent at moderate Δ
    n_t = 2000 if quick else 10_000
    sun_rows = {}
    for j, r in enumerate((2.0, 3.0, 5.0)):
        t = np.asarray(mram_switching_time(dev, r * ic0, key=jr.fold_in(k_sun, j), n=n_t))
        sun_rows[f"{r:g}"] = {
            "sde_mean_s": float(np.mean(t)),
            "sde_standard_error_s": float(np.std(t) / np.sqrt(n_t)),
            "fokker_planck_mean_s": float(dev.mean_switching_time(r * ic0)),
            "sun_s": float(dev.precessional_switching_time(r * ic0)),
        }
        sun_rows[f"{r:g}"]["sde_over_sun_minus_1"] = sun_rows[f"{r:g}"]["sde_mean_s"] / sun_rows[f"{r:g}"]["sun_s"] - 1
    numbers["precessional_time"] = {"junctions": n_t, "by_current_over_Ic0": sun_rows}

    small = replace(dev, diameter=25e-9, damping=0.1)  # Δ ≈ 21; α only sets the time scale t_D
    delta_s, ic_s = float(small.thermal_stability()), float(small.critical_current())
    th_ratios = np.array([0.6, 0.7, 0.8]) if quick else np.array([0.5, 0.6, 0.7, 0.8])
    n_th = 500 if quick else 2000
    th_sde = np.array(
        [
            np.mean(np.asarray(mram_switching_time(small, r * ic_s, key=jr.fold_in(k_th, j), n=n_th, t_max=2e-6)))
            for j, r in enumerate(th_ratios)
        ]
    )
    th_fp = np.array([float(small.mean_switching_time(r * ic_s)) for r in th_ratios])
    numbers["thermal_exponent"] = {
        "thermal_stability": delta_s,
        "damping": 0.1,
        "diameter_m": 25e-9,
        "current_over_Ic0": th_ratios,
        "junctions": n_th,
        "sde_mean_s": th_sde,
        "fokker_planck_mean_s": th_fp,
        "fit": "slope b of ln(mean time) against (1 - i)^2; the closed form says b = Delta",
        "b_sde": thermal_fit(th_ratios, th_sde, prefactor=False),
        "b_sde_with_kramers_prefactor": thermal_fit(th_ratios, th_sde, prefactor=True),
        "b_fokker_planck_with_kramers_prefactor": thermal_fit(th_ratios, th_fp, prefactor=True),
        # higher barriers (4.5–8.5 kT), too slow for the SDE: the exact mean time's slope tends to Δ
        "b_fokker_planck_deep_i_0.2_to_0.4": thermal_fit(
            np.array([0.2, 0.3, 0.4]),
            np.array([float(small.mean_switching_time(r * ic_s)) for r in (0.2, 0.3, 0.4)]),
            prefactor=True,
        ),
    }
    te = numbers["thermal_exponent"]
    te["relative_error_b_sde_with_prefactor"] = te["b_sde_with_kramers_prefactor"] / delta_s - 1
    te["relative_error_b_sde"] = te["b_sde"] / delta_s - 1
    fig, ax = plot.subplots(1, 2)
    grid = np.linspace(0.3, 6.0, 120)
    ax[0, 0].semilogy(
        grid, np.asarray(jax.vmap(dev.mean_switching_time)(grid * ic0)), label="Fokker–Planck (exact mean)"
    )
    pre = grid > 1.05
    ax[0, 0].semilogy(grid[pre], np.asarray(dev.precessional_switching_time(grid[pre] * ic0)), "--", label="Sun")
    low = grid < 0.95
    ax[0, 0].semilogy(grid[low], np.asarray(dev.thermal_switching_time(grid[low] * ic0)), ":", label="τ0·exp(Δ(1−i)²)")
    rs = np.array([2.0, 3.0, 5.0])
    ax[0, 0].semilogy(rs, [sun_rows[f"{r:g}"]["sde_mean_s"] for r in rs], "o", label=f"SDE mean, {n_t} junctions")
    ax[0, 0].set_ylim(1e-10, 1e-3)
    plot.label(
        ax[0, 0], "current / I_c0 [1]", "mean switching time [s]", f"Δ = {numbers['device']['thermal_stability']:.1f}"
    )
    ax[0, 0].legend(fontsize=7)
    x = (1 - th_ratios) ** 2
    ax[0, 1].plot(x, np.log(th_sde), "o", label="SDE mean")
    ax[0, 1].plot(x, np.log(th_fp), "x", label="Fokker–Planck")
    xs = np.linspace(0, x.max() * 1.05, 20)
    ax[0, 1].plot(xs, np.log(th_fp[-1]) + delta_s * (xs - x[-1]), "--", label=f"slope Δ = {delta_s:.1f}")
    plot.label(ax[0, 1], "(1 − I/I_c0)² [1]", "ln(mean switching time / 1 s) [1]", "thermal activation, d = 25 nm")
    ax[0, 1].legend(fontsize=7)
    figures.append(
        Figure(
            plot.save(fig, out / "mram_switching_time.png"),
            f"Mean switching time: the SDE follows the exact Fokker–Planck mean; Sun's time is within "
            f"{abs(sun_rows['5']['sde_over_sun_minus_1']):.1%} at 5·I_c0; at Δ = {delta_s:.1f} the slope of "
            f"ln t vs (1 − i)² is {te['b_sde_with_kramers_prefactor']:.1f} once the Kramers prefactor is taken out.",
        )
    )

    # 4. read margin against the TMR spread (reference-cell read, card's RA and diameter spreads)
    n_read = 20_000 if quick else 200_000
    sigmas = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35])
    offsets = (0.0, 1e-6)
    rer = {f"{o:g}": [] for o in offsets}
    for j, sig in enumerate(sigmas):
        specs = {
            "tmr": TruncatedNormal(std=float(sig), lower=0.0, relative=True),
            "resistance_area": LogNormal(sigma=0.05),
            "diameter": Normal(std=0.02, relative=True),
        }
        pop = sample(dev, specs, n_read, key=jr.fold_in(k_read, j))
        for o in offsets:
            rer[f"{o:g}"].append(float(read_margin(pop, dev, offset_std=o).read_error_rate()))
    pop = sample(dev, card.variability_specs(), n_read, key=jr.fold_in(k_read, 99))
    rm = read_margin(pop, dev)
    disturb_times = np.geomspace(1e-9, 1e-3, 7)
    disturb_pop = np.asarray(eqx.filter_vmap(lambda d: d.read_disturb_probability(jnp.asarray(disturb_times)))(pop))
    numbers["read_margin"] = {
        "cells": n_read,
        "read_voltage_V": float(dev.read_voltage),
        "reference_current_A": float(rm.reference_current),
        "tmr_relative_std": sigmas,
        "other_spreads": "RA lognormal 5 %, diameter 2 % (the card's)",
        "read_error_rate_by_offset_A": rer,
        "card_spread": {
            "min_margin_P_A": float(np.min(rm.margin_p)),
            "min_margin_AP_A": float(np.min(rm.margin_ap)),
            "p01_margin_P_A": float(np.quantile(rm.margin_p, 0.001)),
            "p01_margin_AP_A": float(np.quantile(rm.margin_ap, 0.001)),
            "relative_margin_nominal": float(
                (dev.read(jnp.array([0.0, 0.0, 1.0])) - dev.read(jnp.array([0.0, 0.0, -1.0])))
                / (dev.read(jnp.array([0.0, 0.0, 1.0])) + dev.read(jnp.array([0.0, 0.0, -1.0])))
            ),
        },
        "read_disturb": {
            "read_time_s": disturb_times,
            "nominal": np.asarray(dev.read_disturb_probability(jnp.asarray(disturb_times))),
            "population_max": np.max(disturb_pop, axis=0),
        },
    }
    fig, ax = plot.subplots(1, 2)
    for o in offsets:
        vals = np.array(rer[f"{o:g}"])
        vals = np.where(vals > 0, vals, np.nan)  # no error among the cells: nothing to draw on a log axis
        ax[0, 0].semilogy(sigmas * 100, vals, "o-", label=f"sense offset σ = {o * 1e6:g} µA")
    plot.label(ax[0, 0], "TMR spread σ/TMR [%]", "read-error rate [1]", f"reference-cell read, {n_read:.0e} cells")
    ax[0, 0].legend(fontsize=7)
    bins = np.linspace(0, 25, 200)
    ax[0, 1].hist(np.asarray(rm.current_p) * 1e6, bins, alpha=0.6, label="P")
    ax[0, 1].hist(np.asarray(rm.current_ap) * 1e6, bins, alpha=0.6, label="AP")
    ax[0, 1].axvline(float(rm.reference_current) * 1e6, color="k", lw=1, label="reference")
    plot.label(ax[0, 1], "read current at 0.1 V [µA]", "cells", "card's spread")
    ax[0, 1].legend(fontsize=7)
    figures.append(
        Figure(
            plot.save(fig, out / "mram_read_margin.png"),
            "Read-error rate vs TMR spread (points missing: no misread among the cells without offset); read "
            "currents of the card's population against the reference.",
        )
    )

    # 5. least-energy write pulse at a WER target: gradient vs grid at equal evaluations, checked on the SDE
    evals = 40
    opt_rows = {}
    for target in (CHECKED_TARGET, 1e-6, 1e-9):
        row = {}
        for segs in (1, 2):
            g = optimize_write_pulse(dev, target, steps=evals, segments=segs)
            gr = grid_write_pulse(dev, target, evaluations=evals, segments=segs)
            row[f"{segs}_step"] = {
                "gradient": {"currents_A": g.currents, "widths_s": g.widths, "energy_J": float(g.energy)},
                "grid": {
                    "currents_A": gr.currents,
                    "widths_s": gr.widths,
                    "energy_J": float(gr.energy),
                    "evaluations": gr.evaluations,
                },
                "evaluations": evals,
            }
        opt_rows[f"{target:g}"] = row
    best = optimize_write_pulse(dev, CHECKED_TARGET, steps=evals)
    i_best, w_best = float(best.currents[0]), float(best.widths[0])
    n_check = 20_000 if quick else 100_000
    sde_wer = float(mram_write_error_rate(dev, i_best, [w_best], key=k_opt, n=n_check)[0])
    n_e = 200 if quick else 1000
    starts = jax.vmap(lambda k: dev.thermal_state("ap", key=k))(jr.split(k_start, n_e))
    steps_e = max(1, int(np.ceil(w_best / (t_d / 100))))
    energies = eqx.filter_vmap(
        lambda s, k: dev.pulse(s, i_best, w_best, fixed_steps=steps_e, key=k).energy, in_axes=(0, 0)
    )(starts, jr.split(k_sde_e, n_e))
    numbers["optimised_pulse"] = {
        "objective": "energy |I|·V_AP(I)·width at the closed-form WER target (precessional, linearised)",
        "by_wer_target": opt_rows,
        "sde_check": {
            "wer_target": CHECKED_TARGET,
            "current_A": i_best,
            "current_over_Ic0": i_best / ic0,
            "width_s": w_best,
            "closed_form_energy_J": float(best.energy),
            "sde_junctions": n_check,
            "sde_wer": sde_wer,
            "sde_mean_energy_J": float(np.mean(np.asarray(energies))),
            "sde_energy_junctions": n_e,
        },
    }
    fig, ax = plot.subplots(1, 2)
    zs = np.linspace(np.log(0.1), np.log(9.0), 200)
    currents = (1 + np.exp(zs)) * ic0
    for target in (CHECKED_TARGET, 1e-6, 1e-9):
        e = np.asarray(dev.write_energy(currents, dev.write_width(currents, target)))
        (line,) = ax[0, 0].plot(currents / ic0, e * 1e12, label=f"WER {target:g}")
        g1 = opt_rows[f"{target:g}"]["1_step"]["gradient"]
        ax[0, 0].plot(float(g1["currents_A"][0]) / ic0, g1["energy_J"] * 1e12, "*", color=line.get_color(), ms=10)
    plot.label(ax[0, 0], "write current / I_c0 [1]", "write energy [pJ]", "rectangular pulse at the WER target")
    ax[0, 0].legend(fontsize=7)
    for segs, style in ((1, "-"), (2, "--")):
        g = optimize_write_pulse(dev, 1e-6, steps=evals, segments=segs)
        gr = grid_write_pulse(dev, 1e-6, evaluations=evals, segments=segs)
        ax[0, 1].plot(np.arange(1, evals + 1), np.asarray(g.history) * 1e12, style, label=f"gradient, {segs} step")
        ax[0, 1].plot(
            np.arange(1, len(gr.history) + 1), np.asarray(gr.history) * 1e12, style, label=f"grid, {segs} step"
        )
    ax[0, 1].set_ylim(1.2, 1.8)
    plot.label(ax[0, 1], "evaluations", "best energy so far [pJ]", "WER 1e-6: gradient vs grid")
    ax[0, 1].legend(fontsize=7)
    figures.append(
        Figure(
            plot.save(fig, out / "mram_pulse.png"),
            f"Least-energy write pulse: at WER {CHECKED_TARGET:g}, {i_best / ic0:.2f}·I_c0 for {w_best * 1e9:.2f} ns "
            f"({float(best.energy) * 1e12:.3f} pJ); the SDE over {n_check:.0e} junctions measures WER {sde_wer:.2g}.",
        )
    )

    # 6. write-verify through the generic program-and-verify (card's spread; 10 ns settling between attempts)
    n_wv = 2000 if quick else 20_000
    settled = dataclasses.replace(dev, settle_time=10e-9)
    pop = sample(settled, card.variability_specs(), n_wv, key=k_pop)
    starts = eqx.filter_vmap(lambda d, k: d.thermal_state("ap", key=k))(pop, jr.split(k_start, n_wv))
    width_1pc = float(dev.write_width(3.0 * ic0, 1e-2))
    scheme = FixedAmplitude(iterations=4, amplitude=3.0 * ic0, width=width_1pc, tolerance=0.6, polarity="set")
    steps_wv = max(1, int(np.ceil(width_1pc / (t_d / 100))))
    target = float(dev.read(jnp.array([0.0, 0.0, 1.0])))
    rep = program(pop, scheme, targets=[target], key=k_prog, verify="exact", initial=starts, fixed_steps=steps_wv)
    pulses = np.asarray(rep.pulses)
    numbers["write_verify"] = {
        "cells": n_wv,
        "scheme": "FixedAmplitude: 3·I_c0 for the width of closed-form WER 1e-2, verify at 0.1 V, tolerance 0.6 "
        "in ln(I_read), up to 4 pulses, 10 ns settling after each",
        "width_s": width_1pc,
        "pulse_histogram": {str(k): int(np.sum(pulses == k)) for k in range(1, 5)},
        **rep.summary(),
    }
    text = (
        f"A 50 nm perpendicular MTJ with Arm's Verilog-A defaults (Δ = {numbers['device']['thermal_stability']:.1f}, "
        f"I_c0 = {ic0 * 1e6:.1f} µA, t_D = {t_d * 1e9:.2f} ns) as a macrospin: the thermal stochastic LLGS, "
        f"{numbers['wer_table']['junction_pulses_per_s']:.3g} junction-pulses/s for the WER table "
        f"({n_wer:.0e} junctions per point). The closed form is within "
        f"×{min(v[0] for v in ratios_cf.values()):.2f}–{max(v[1] for v in ratios_cf.values()):.2f} of the SDE's "
        f"WER; Sun's time is within {abs(sun_rows['5']['sde_over_sun_minus_1']):.1%} of the SDE mean at 5·I_c0. "
        f"The least-energy rectangular pulse at WER {CHECKED_TARGET:g} ({i_best / ic0:.2f}·I_c0, "
        f"{w_best * 1e9:.2f} ns, {float(best.energy) * 1e12:.3f} pJ) measures WER {sde_wer:.2g} on "
        f"{n_check:.0e} SDE junctions. Write-verify (4 pulses at WER 1e-2 each) leaves {rep.unconverged} of "
        f"{n_wv} cells unwritten."
    )
    return Section(
        "mram_wer",
        "STT-MRAM — write-error rate, read margin and the write pulse",
        text,
        numbers,
        figures,
        headlines=headlines(numbers),
    )


def headlines(numbers: dict[str, Any]) -> list[Headline]:
    """The least-energy write pulse found by gradient for a closed-form WER target holds that target on the
    thermal SDE (within a factor 2: the SDE's WER is a count of a few errors in 1e5 junctions), at a write
    energy of at most 1 pJ."""
    c = numbers["optimised_pulse"]["sde_check"]
    pulse = f"{c['current_over_Ic0']:.2f}·I_c0 for {c['width_s'] * 1e9:.2f} ns"
    return [
        Headline(
            f"STT-MRAM: the gradient-optimised write pulse for WER {c['wer_target']:g} holds WER ≤ "
            f"{2 * c['wer_target']:g} on {c['sde_junctions']:.0e} SDE junctions",
            c["sde_wer"],
            "<=",
            2 * c["wer_target"],
            "1",
            f"pulse {pulse}",
        ),
        Headline(
            "STT-MRAM: that write pulse costs at most 1 pJ",
            c["sde_mean_energy_J"] * 1e12,
            "<=",
            1.0,
            "pJ",
            f"mean over {c['sde_energy_junctions']} SDE junctions; closed form "
            f"{c['closed_form_energy_J'] * 1e12:.3f} pJ",
        ),
    ]
