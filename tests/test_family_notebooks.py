"""The four family notebooks (the student's view: every number printed by code) execute at their quick sizes and
print what they claim: the physics checks they state (published values, closed forms, gradients against finite
differences)."""

from __future__ import annotations

import re

import pytest
from conftest import run_notebook

pytestmark = pytest.mark.slow

#: strings each notebook must print (deterministic: physics of the embedded cards, not noise or timings)
EXPECTED = {
    "reram.ipynb": [
        "field threshold: SET from g_max above +1.392 V, RESET from g_min below -1.050 V",
        "read at 0.1 V: R_on = 541.8 ohm (g_min), R_off = 2.186e+05 ohm (g_max), ratio 403",
        "dI_read/dV_pulse: jax.grad",
        "std errors from truth",
    ],
    "pcm.ipynb": [
        "calibration: joshi2020",
        "25 °C throughout                 drift per decade 1e3 -> 1e4 s: 20.57%",
        "power law with ν = ν_a = 0.10 (full RESET plug, a = 1): 1 - 10^-ν = 20.57% per decade",
        "MVM error at 1 year: no compensation ",
        "dG(1 day)/dT_amb at 85 °C: jax.grad ",
    ],
    "flash.ipynb": [
        "Fowler–Nordheim, Si/SiO2 (3.2 eV, 0.42 m0): A = 1.147e-06 A/V², B = 2.534e+10 V/m",
        "TT07 pump, 6.0 V under 1 µA: ValueError: requested voltage exceeds what the DicksonPump can hold",
        "under jit: equinox.EquinoxRuntimeError: requested voltage exceeds",
        "all verified: True",
    ],
    "igzo_2t0c.ipynb": [
        "activation energy from the Arrhenius slope at the hold bias: 0.5000 eV (card: 0.5000 eV)",
        "shortest retention of any level at 25 °C: 500 s (published: > 100 s)",
        "written outside the margin: 0",
        "dt/dC_SN: jax.grad 250 s/fF, finite difference 250 s/fF, t/C_SN 250 s/fF",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_family_notebook_runs_and_prints_its_checks(name, tmp_path, monkeypatch):
    out = run_notebook(name, tmp_path, monkeypatch)
    print(out)
    missing = [s for s in EXPECTED[name] if s not in out]
    assert not missing, f"{name} did not print: {missing}"
    # every "relative difference" a notebook prints (gradient vs finite difference, ODE vs closed form) is small
    diffs = [float(x) for x in re.findall(r"relative difference[^0-9\n]*?([0-9.]+(?:e[-+]?\d+)?)", out)]
    assert diffs, f"{name} printed no relative difference"
    assert max(diffs) < 1e-4, diffs
