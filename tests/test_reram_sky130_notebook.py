"""The SKY130 ReRAM notebook executes at its quick sizes and prints the checks it states: the PDK reference
values, the access transistor against measured silicon, the PDK operating points, KCL at the node, and its
comparisons (thermal ODE against the exact exponential, fixed-step against adaptive, jax.grad against a finite
difference)."""

from __future__ import annotations

import re

import pytest
from conftest import run_notebook

EXPECTED = [
    "dT_f/dt at 4.0 nm, +1.0 V, 600 K [m/s]       model 9.39646e-05   PDK reference 9.39646e-05",
    "dT_f/dt at 4.9 nm, -1.0 V, 600 K [m/s]       model -0.000320491   PDK reference -0.000320491",
    "steady temperature at 4.9 nm, 0.5 V [K]      model 322.26   PDK reference 322.26",
    "card vs measured SKY130 silicon (W/L = 7/0.5 um): rms 0.109 decades over 452 points",
    "PDK SET   WL 1.7 V, BL 2.4 V, 1 us, fresh cell: 2.984e-07 -> 1.002e-04 S",
    "RESET WL 2.5 V, SL 2.6 V, 1 us: 1.002e-04 -> 9.540e-05 S (not reset)",
    "(reset)",
    "0 unconverged, level error rate 0.000",
    "paramset reram_sky130 sky130_fd_pr_reram__reram_cell;",
]


@pytest.mark.slow
def test_sky130_notebook_runs_and_prints_its_checks(tmp_path, monkeypatch):
    out = run_notebook("reram_sky130.ipynb", tmp_path, monkeypatch)
    print(out)
    missing = [s for s in EXPECTED if s not in out]
    assert not missing, f"the notebook did not print: {missing}"
    diffs = [float(x) for x in re.findall(r"relative difference[^0-9\n]*?([0-9.]+(?:e[-+]?\d+)?)", out)]
    assert len(diffs) == 3 and max(diffs) < 1e-3, diffs  # thermal ODE, fixed-step, gradient
    kcl = float(re.search(r"largest relative residual ([0-9.]+e[-+]\d+)", out).group(1))
    assert kcl < 1e-9
