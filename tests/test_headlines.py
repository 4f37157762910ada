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


# Numbers of each experiment that meet its claims (the keys its ``headlines`` reads), and a function that moves
# the tested value across the threshold. The values are illustrative, not results.
def _igzo(ok):
    return {"levels": 8, "min_retention_s_25C": 150.0 if ok else 80.0, "min_retention_s_85C": 2.0}


def _flash(ok):
    end = {"6": 6.0, "10": 10.0, "14": 13.9, "18": 17.8, "20": 19.6 if ok else 19.4}
    return {
        "pulse_from_rest": {"width_s": 10e-6, "targets_V": {k: {"v_wordline_end_V": v} for k, v in end.items()}},
        "pump": {"stages": 12, "open_circuit_voltage_V": 26.0},
    }


def _pcm(ok):
    return {
        "level_drift_per_decade": {"targets_S": [1e-6], "25C": [0.02], "85C": [0.105 if ok else 0.095]},
        "drift_per_decade_85C": 0.206,
        "mvm_rel_error": {"no_compensation": [0.1, 0.3], "global_compensation": [0.05, 0.05 if ok else 0.31]},
    }


def _optimize(ok):
    report = {"cells": 1000, "unconverged_cells": 10, "mean_pulses": 9.0, "rms_error": 0.3}
    return {
        "reram": {
            "pulse_budget": 20,
            "reports_fresh": {
                "gradient": {**report, "ber": 0.009 if ok else 0.011},
                "hand_tuned": {**report, "ber": 0.010},
            },
        }
    }


CASES = {
    "igzo_2t0c_retention": _igzo,
    "flash_ispp": _flash,
    "pcm_drift": _pcm,
    "optimize_write_verify": _optimize,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_experiment_headline_can_fail(name):
    """Each headline an experiment returns is met on numbers that satisfy its claim and not met on numbers
    that do not (only the tested value moves); each has a unit."""
    good, bad = EXPERIMENTS[name].headlines(CASES[name](True)), EXPERIMENTS[name].headlines(CASES[name](False))
    assert good and len(good) == len(bad)
    assert all(h.met for h in good), [h.claim for h in good if not h.met]
    assert not all(h.met for h in bad)
    assert all(h.unit for h in good)


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
    numbers = copy.deepcopy(_pcm(True))
    numbers["level_drift_per_decade"].update({"25C": [drift[T_25C]], "85C": [drift[T_85C]]})
    h = EXPERIMENTS["pcm_drift"].headlines(numbers)[0]
    assert h.unit == "%/decade" and h.value == pytest.approx(100 * drift[T_85C]) and h.threshold == 10.0
    assert np.isfinite(h.value)
