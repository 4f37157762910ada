"""Readout calibration by gradient (imcphys.readout): the learned-step-size ADC gradient, input checks, and
notebooks/calibrate_readout.ipynb — per-column ADC range/gain/offset and PCM drift compensation fitted by gradient
on one programmed array and judged on a fresh one, the refresh interval of a 2T0C array on fresh cells — run end to
end."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imcphys.readout import ADC, ColumnCalibration, calibrate, calibrate_columns, calibrate_drift_compensation


def test_lsq_adc_is_exact_forward_with_the_learned_step_size_gradient():
    """Forward: the exact 4-bit ADC. d/d full_scale: (round(u) − u)/(2^(b−1) − 1) inside the range (Esser et al.,
    ICLR 2020, with Δ = full_scale/7), ±7/7 = ±1 when saturated; d/d current: 1 inside, 0 saturated."""
    current = jnp.array([-2.0e-6, -0.33e-6, 0.05e-6, 0.61e-6, 0.999e-6, 1.7e-6])
    exact = ADC(full_scale=1e-6, bits=4)(current)
    lsq = ADC(full_scale=1e-6, bits=4, mode="lsq")
    np.testing.assert_array_equal(lsq(current), exact)
    d_range = jax.jacfwd(lambda fs: ADC(full_scale=fs, bits=4, mode="lsq")(current))(1e-6)
    u = np.clip(np.asarray(current), -1e-6, 1e-6) / (1e-6 / 7)
    np.testing.assert_allclose(d_range, (np.round(u) - u) / 7 + np.where(np.abs(u) >= 7, np.sign(u), 0.0), atol=1e-12)
    d_current = jax.vmap(jax.grad(lambda i: lsq(i)))(current)
    np.testing.assert_array_equal(d_current, [0, 1, 1, 1, 1, 0])


def test_calibration_inputs_are_checked():
    cal = ColumnCalibration(full_scale=jnp.ones(3), gain=jnp.ones(3), offset=jnp.zeros(3), bits=4)
    with pytest.raises(ValueError, match="shape"):
        calibrate_columns(cal, jnp.ones((5, 2)), jnp.ones((5, 2)), steps=2)
    with pytest.raises(ValueError, match="full_scale"):
        ColumnCalibration(full_scale=jnp.ones(3), gain=jnp.ones(2), offset=jnp.zeros(3))
    with pytest.raises(ValueError, match="full_scale"):
        ColumnCalibration(full_scale=-jnp.ones(3), gain=jnp.ones(3), offset=jnp.zeros(3))
    with pytest.raises(ValueError, match="outputs"):
        calibrate_drift_compensation(jnp.ones((2, 4, 3)), jnp.ones((4, 3)), jnp.ones(3), 20.0, nu=0.05, steps=2)
    with pytest.raises(ValueError, match="steps"):
        calibrate(lambda p, s: p**2, jnp.ones(()), steps=0, learning_rate=0.1)
    with pytest.raises(ValueError, match="ADC.mode"):
        ADC(mode="round")


def test_calibrate_reaches_the_minimum_of_a_quadratic():
    """The generic loop: Adam on (p − 3)² + progress·0 from 0 ends near 3, the loss falling."""
    params, history = calibrate(
        lambda p, progress: (p["x"] - 3.0) ** 2 + 0.0 * progress, {"x": jnp.zeros(())}, steps=300, learning_rate=0.05
    )
    assert float(params["x"]) == pytest.approx(3.0, abs=1e-2) and history[-1] < 1e-3 * history[0]


@pytest.mark.slow
def test_notebook_runs_end_to_end(tmp_path, monkeypatch):
    """notebooks/calibrate_readout.ipynb in its quick sizes: the gradient-calibrated ADC settings and drift
    compensation beat the hand settings on a fresh array, the 2T0C refresh interval on fresh cells (the notebook
    prints the comparisons it measured)."""
    from conftest import run_notebook

    printed = run_notebook("calibrate_readout.ipynb", tmp_path, monkeypatch, timeout=600)
    assert "calibrated beats the hand setting on the fresh array: True" in printed
    assert "gradient compensation beats both on the fresh array: True" in printed
    assert "gradient refresh interval beats the hand rule on fresh cells: True" in printed
