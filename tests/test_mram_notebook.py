"""The STT-MRAM notebook (the student's view) executes at its quick sizes and prints what it claims: hand-checked
Δ, I_c0 and t_D, the closed-form resistance, the exact deterministic switching time, SDE means within standard
errors of the exact Fokker–Planck means, and gradients against finite differences."""

from __future__ import annotations

import re

import pytest
from conftest import run_notebook

EXPECTED = [
    "family: STTMRAM",
    "Delta = 82.88, I_c0 = 43.46 uA, t_D = 1.949 ns",
    "V = 0.00 V: R_P = 6000 ohm, R_AP = 21429 ohm, closed form R_P(1 + TMR/(1 + V^2/V_h^2)) = 21429 ohm",
    "V = 0.50 V: R_P = 6000 ohm, R_AP = 13714 ohm, closed form R_P(1 + TMR/(1 + V^2/V_h^2)) = 13714 ohm",
    "rectangular pulse at WER 0.0001: 2.43 I_c0",
]


@pytest.mark.slow
def test_mram_notebook_runs_and_prints_its_checks(tmp_path, monkeypatch):
    out = run_notebook("mram.ipynb", tmp_path, monkeypatch)
    print(out)
    missing = [s for s in EXPECTED if s not in out]
    assert not missing, f"mram.ipynb did not print: {missing}"
    # hand evaluation, deterministic LLGS vs the exact integral, gradients vs finite differences
    diffs = [float(x) for x in re.findall(r"relative difference ([0-9.]+(?:e[-+]?\d+)?)", out)]
    assert len(diffs) >= 7, diffs
    assert max(diffs) < 1e-4, diffs
    # the SDE's mean switching times lie within 4 standard errors of the exact Fokker–Planck means
    errors = [float(x) for x in re.findall(r"\(([-+][0-9.]+) standard errors\)", out)]
    assert len(errors) == 3 and max(abs(e) for e in errors) < 4, errors
    # the thermal slope (Kramers prefactor out) tends to Δ with the barrier: within 5 % at i = 0.2–0.4 (3 % measured)
    slope, delta = (float(x) for x in re.search(r"slope ([0-9.]+) vs Delta ([0-9.]+)", out).groups())
    assert abs(slope / delta - 1) < 0.05
