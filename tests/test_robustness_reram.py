"""Property-based robustness of the foundation (hypothesis): stimuli, the Stanford ReRAM model, apply_pulse and
simulate under random and extreme inputs — each call raises a clear ValueError or returns finite values and finite
gradients (a pulse beyond the amplitude range is refused). Voltages to ±50 V, temperatures 1–1000 K, widths
1 ps–1e6 s, parameters across decades."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import imcphys

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

voltages = st.floats(-50.0, 50.0, allow_nan=False, allow_subnormal=False)  # XLA flushes denormals to 0
widths = st.floats(1e-12, 1e6).filter(lambda w: w > 0)
temperatures = st.floats(1.0, 1000.0)
gaps = st.floats(0.0, 3e-9)


def _decades(nominal: float, span: float = 2.0):
    return st.floats(-span, span).map(lambda e: nominal * 10.0**e)


@pytest.fixture(scope="module")
def pulse_and_grad():
    """Jitted ``(dev, g0, amp, width) -> (I, (dI/d dev, dI/d amp, dI/d width))``: the read current after a
    fixed-step pulse and its reverse-mode gradients with respect to the device's parameters, the amplitude and the
    width, all from one compilation."""

    def final_current(dev, g0, amp, width):
        return dev.read(imcphys.apply_pulse(dev, g0, amp, width, fixed_steps=16))

    @eqx.filter_jit
    def value_and_grads(dev, g0, amp, width):
        return eqx.filter_value_and_grad(lambda diff: final_current(diff[0], g0, diff[1], diff[2]))((dev, amp, width))

    # Python floats are static to filter_jit (one compilation per value): pass arrays
    return lambda d, *xs: value_and_grads(d, *(jnp.asarray(x, dtype=float) for x in xs))


def _finite_tree(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array)))


@SETTINGS
@given(amp=voltages, width=widths, temp=temperatures, g0=gaps)
def test_fixed_pulse_finite_values_and_gradients(pulse_and_grad, amp, width, temp, g0):
    dev = imcphys.StanfordReRAM(ambient_temperature=temp)
    if abs(amp) > dev.max_amplitude:  # beyond the amplitude range: refused (under jit, by eqx.error_if)
        with pytest.raises(eqx.EquinoxRuntimeError, match="StanfordReRAM.pulse: amplitude outside"):
            pulse_and_grad(dev, g0, amp, width)
        return
    i, (grad, grad_amp, grad_width) = pulse_and_grad(dev, g0, amp, width)
    assert np.isfinite(float(i))
    assert _finite_tree(grad)
    assert np.isfinite(float(grad_amp)) and np.isfinite(float(grad_width))


@SETTINGS
@given(
    g0=_decades(0.25e-9),
    v0=_decades(0.25, 1.0),
    i0=_decades(1e-3),
    vel=_decades(10.0, 3.0),
    ea=st.floats(0.01, 3.0),
    tox=_decades(12e-9, 1.0),
    rth=_decades(2.1e3, 3.0),
    amp=voltages,
    width=widths,
)
def test_constructor_raises_or_gives_finite_physics(pulse_and_grad, g0, v0, i0, vel, ea, tox, rth, amp, width):
    try:
        dev = imcphys.StanfordReRAM(
            gap_decay_length=g0,
            v0=v0,
            i0=i0,
            gap_velocity=vel,
            activation_energy=ea,
            oxide_thickness=tox,
            thermal_resistance=rth,
        )
    except ValueError as err:
        assert any(name in str(err) for name in ("gap_decay_length", "v0", "i0", "oxide_thickness", "gap_max"))
        return
    if abs(amp) > dev.max_amplitude:
        return  # refused (test_fixed_pulse_finite_values_and_gradients)
    i, (grad, _, _) = pulse_and_grad(dev, dev.gap_min, amp, width)
    assert np.isfinite(float(i))
    assert _finite_tree(grad)


@pytest.fixture(scope="module")
def rates():
    @eqx.filter_jit
    def f(dev, gap, v):
        return [jax.value_and_grad(fn, argnums=(0, 1))(gap, v) for fn in (dev.current, dev.gap_rate, dev.temperature)]

    return f


@SETTINGS
@given(gap=st.floats(-1e-8, 1e-8), v=st.floats(-1e3, 1e3), temp=temperatures)
def test_rates_never_overflow(rates, gap, v, temp):
    dev = imcphys.StanfordReRAM(ambient_temperature=temp)
    for val, (dg, dv) in rates(dev, jnp.asarray(gap), jnp.asarray(v)):
        assert np.isfinite(float(val)) and np.isfinite(float(dg)) and np.isfinite(float(dv))


@pytest.fixture(scope="module")
def adaptive():
    return eqx.filter_jit(lambda d, g, a, w, r: d.pulse(g, a, w, rise=r, fall=r))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amp=st.floats(-3.0, 3.0), width=st.floats(1e-10, 1e-5), rise=st.floats(0.0, 1e-8))
def test_adaptive_pulse_finite_or_reported(adaptive, amp, width, rise):
    dev = imcphys.StanfordReRAM()
    r = adaptive(dev, dev.gap_min if amp < 0 else dev.gap_max, *(jnp.asarray(x) for x in (amp, width, rise)))
    assert np.isfinite(float(r.state)) and np.isfinite(float(r.energy))
    assert float(dev.gap_min) <= float(r.state) <= float(dev.gap_max)


@SETTINGS
@given(
    amp=st.one_of(voltages, st.just(float("nan")), st.just(float("inf"))),
    width=st.one_of(widths, st.floats(-1.0, 0.0), st.just(float("nan"))),
)
def test_bad_pulse_inputs_raise_clear_errors(amp, width):
    if np.isfinite(amp) and np.isfinite(width) and width > 0:
        p = imcphys.Pulse(amp, width)
        assert float(p(0.0)) == amp
        return
    with pytest.raises(ValueError, match="amplitude|width"):
        imcphys.Pulse(amp, width)
