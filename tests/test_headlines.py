"""The demo's headline claims: each is a value tested against a threshold from the claim, with a unit, and its
``met`` flips when the value crosses the threshold; every experiment's headlines are built from its numbers; the
report shows them with units; the PCM drift claim is computed with temperature physics (PCMCell) and differs
between 25 and 85 °C."""

from __future__ import annotations

import copy
import math

import jax
import numpy as np
import pytest

from imcphys import demo
from imcphys.experiments import EXPERIMENTS, Headline, Section
from imcphys.experiments.pcm_drift import LEVEL_DRIFT_WINDOW, T_25C, T_85C, program_and_verify
from imcphys.models import PCMCell
from imcphys.report import write_report


@pytest.mark.parametrize(
    ("comparison", "below", "at", "above"),
    [("<", True, False, False), ("<=", True, True, False), (">", False, False, True), (">=", False, True, True)],
)
def test_met_flips_at_the_threshold(comparison, below, at, above):
    h = Headline("claim", 0.0, comparison, 2.5, "V")
    t = h.threshold
    for value, expected in ((math.nextafter(t, -math.inf), below), (t, at), (math.nextafter(t, math.inf), above)):
        assert Headline("claim", value, comparison, t, "V").met is expected, (comparison, value)
    assert not Headline("claim", math.nan, comparison, t, "V").met  # a failed computation never meets a claim
    row = Headline("claim", 3.0, comparison, t, "V", "why").row()
    assert row == {
        "claim": "claim",
        "value": 3.0,
        "comparison": comparison,
        "threshold": 2.5,
        "unit": "V",
        "detail": "why",
        "met": above,
    }


def test_bad_headlines_raise():
    with pytest.raises(ValueError, match="comparison must be one of"):
        Headline("claim", 1.0, "=>", 2.0, "V")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold must be finite"):
        Headline("claim", 1.0, "<", math.inf, "V")


# Numbers of each experiment (the keys its ``headlines`` reads) that meet every claim (broken=None) or that move
# only the value of headline ``broken`` across its threshold. The values are illustrative, not results.
def _igzo(broken):
    return {"levels": 8, "min_retention_s_25C": 80.0 if broken == 0 else 150.0, "min_retention_s_85C": 2.0}


def _flash(broken):
    end = {"6": 6.0, "10": 10.0, "14": 13.9, "18": 17.8, "20": 19.4 if broken == 0 else 19.6}
    return {
        "pulse_from_rest": {"width_s": 10e-6, "targets_V": {k: {"v_wordline_end_V": v} for k, v in end.items()}},
        "pump": {"stages": 12, "open_circuit_voltage_V": 26.0},
    }


def _pcm(broken):
    return {
        "level_drift_per_decade": {"targets_S": [1e-6], "25C": [0.02], "85C": [0.095 if broken == 0 else 0.105]},
        "drift_per_decade_85C": 0.206,
        "mvm_rel_error": {"no_compensation": [0.1, 0.3], "global_compensation": [0.05, 0.31 if broken == 1 else 0.05]},
    }


def _optimize(broken):
    report = {"cells": 1000, "unconverged_cells": 10, "mean_pulses": 9.0, "rms_error": 0.3}
    return {
        "reram": {
            "pulse_budget": 20,
            "reports_fresh": {
                "ramp_gradient": {**report, "ber": 0.011 if broken == 0 else 0.005},
                "hand_tuned": {**report, "ber": 0.010},
            },
        }
    }


def _fefet(broken):
    return {
        "levels_8": {
            "method": "gradient",
            "devices": 1000,
            "unconverged_fraction": 0.02 if broken == 0 else 0.005,
            "rms_error_V": 0.030 if broken == 1 else 0.020,
            "mean_pulses": 7.0,
        }
    }


def _sky130(broken):
    return {
        "operating_points": {"g_fresh_S": 3e-7, "g_midpoint_S": 5.5e-6, "g_after_set_S": 5e-6 if broken == 0 else 1e-4},
        "set_trace": {
            "saturation_current_A": 4.35e-4,
            "peak_current_1t1r_A": 4.4e-4 if broken == 1 else 4.35e-4,
            "peak_temperature_1t1r_K": 1500.0 if broken == 2 else 850.0,
            "peak_current_bare_A": 5.7e-3,
            "peak_temperature_bare_K": 1e4,
        },
        "access_transistor": {
            "dataset": "sky130_nfet_g5v0d10v5",
            "points": 452,
            "rms_decades": 0.2 if broken == 3 else 0.11,
        },
    }


def _mram(broken):
    check = {
        "wer_target": 1e-4,
        "sde_wer": 3e-4 if broken == 0 else 1.2e-4,
        "sde_junctions": 100_000,
        "current_over_Ic0": 2.5,
        "width_s": 3e-9,
        "sde_mean_energy_J": 1.1e-12 if broken == 1 else 0.8e-12,
        "sde_energy_junctions": 1000,
        "closed_form_energy_J": 0.8e-12,
    }
    return {"optimised_pulse": {"sde_check": check}}


def _tft(broken):
    return {
        "goal_rms_decades": 0.1,
        "max_rms_decades": 0.125 if broken == 0 else 0.09,
        "dies_within_goal": 8,
        "dies": 8,
    }


CASES = {
    "mram_wer": _mram,
    "igzo_tft_measured": _tft,
    "igzo_2t0c_retention": _igzo,
    "flash_ispp": _flash,
    "pcm_drift": _pcm,
    "optimize_write_verify": _optimize,
    "fefet_levels": _fefet,
    "reram_sky130": _sky130,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_experiment_headline_can_fail(name):
    """Each headline an experiment returns is met on numbers that satisfy its claim, and only it turns to not met
    when its value alone crosses the threshold; each has a unit."""
    headlines, numbers = EXPERIMENTS[name].headlines, CASES[name]
    good = headlines(numbers(None))
    assert good and all(h.met for h in good), [h.claim for h in good if not h.met]
    assert all(h.unit for h in good)
    for i in range(len(good)):
        bad = headlines(numbers(i))
        assert [h.met for h in bad] == [j != i for j in range(len(good))], (name, i)


def test_demo_sections_all_have_headlines():
    """Every section of the demo tour contributes a headline (or is a tour without a claim)."""
    tours = {"fit_tour", "montecarlo_tour", "reram_stanford"}
    for name in demo.DEMO:
        assert name in tours or hasattr(EXPERIMENTS[name], "headlines"), name
    assert set(CASES) >= {n for n in demo.DEMO if n not in tours}


def test_demo_table_and_report(tmp_path):
    """demo.headlines gathers the sections' rows in order; the report shows value, test and unit, met or not."""
    sections = [
        Section("a", "A", "text", {}, headlines=[Headline("first claim", 150.0, ">", 100.0, "s")]),
        Section("b", "B", "text", {}),
        Section("c", "C", "text", {}, headlines=[Headline("third claim", 0.6, "<=", 0.5, "V", "context")]),
    ]
    rows = demo.headlines(sections)
    assert [r["claim"] for r in rows] == ["first claim", "third claim"]
    assert [r["met"] for r in rows] == [True, False]
    html = write_report(sections, tmp_path, headlines=rows).read_text()
    assert "✔ met" in html and "✘ not met" in html
    assert "<td>&gt; 100</td><td>s</td>" in html and "<td>&lt;= 0.5</td><td>V</td>" in html


def test_pcm_level_drift_is_computed_with_temperature():
    """The PCM 85 °C claim's value (PCMCell, Arrhenius relaxation): the most amorphous program-and-verified level
    drifts by 1 − 10^(−a·ν_a) per decade once its glass has reached the power law (the closed form of the
    model at constant temperature, t ≫ τ); at 85 °C it has within seconds, at 25 °C only after hours, so the
    same decade after programming drifts less than half as much at 25 °C."""
    jax.config.update("jax_enable_x64", True)
    cell = PCMCell()
    state, _ = program_and_verify(cell, 1e-6)
    t1, t2 = LEVEL_DRIFT_WINDOW
    drift = {
        temp: 1.0
        - float(
            cell.conductance(cell.relax(state, t2, temp), temp) / cell.conductance(cell.relax(state, t1, temp), temp)
        )
        for temp in (T_25C, T_85C)
    }
    power_law = 1.0 - 10.0 ** (-float(state.amorphous) * float(cell.drift_exponent))
    assert drift[T_85C] == pytest.approx(power_law, rel=0.02)
    assert drift[T_25C] < 0.5 * drift[T_85C]
    numbers = copy.deepcopy(_pcm(None))
    numbers["level_drift_per_decade"].update({"25C": [drift[T_25C]], "85C": [drift[T_85C]]})
    h = EXPERIMENTS["pcm_drift"].headlines(numbers)[0]
    assert h.unit == "%/decade" and h.value == pytest.approx(100 * drift[T_85C]) and h.threshold == 10.0
    assert np.isfinite(h.value)
