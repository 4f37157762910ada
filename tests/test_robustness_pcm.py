"""Property-based robustness of the PCM models (hypothesis): PCMStatistical and PCMCell under random and extreme
inputs — each call raises a clear error naming the parameter, or returns finite values and finite gradients.
Times 0 and 1 ps – 1e9 s, temperatures 1–1000 K, currents to ±1 mA, parameters across decades."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from robustness import (
    CLEAR_ERRORS,
    assert_names,
    decades,
    direction,
    examples,
    finite,
    temperatures,
    times,
    value_and_jvp,
    widths,
)

import imcphys
from imcphys.models.pcm import PCMCell, PCMCellState, PCMStatistical

KEY = jax.random.key(0)
TARGETS = 4  # every example programs four fractions of g_max: one shape, one compilation
seeds = st.integers(0, 2**31 - 1)


# ------------------------------------------------------------------------------------------- PCMStatistical
@pytest.fixture(scope="module")
def statistical():
    """Programming, drift and the noisy read, with their derivative along a random direction of every parameter,
    the targets and the time."""

    def run(diff, key):
        dev, frac, t = diff
        state = dev.program(frac * dev.g_max, key=key)
        read = dev.conductance(state, t, key=jax.random.fold_in(key, 1))
        return state.g_prog, state.nu, dev.drift(state, t), read, dev.read_noise_std(state.g_prog, t)

    return value_and_jvp(run)


@examples(400)
@given(
    g_max=decades(25e-6),
    t0=decades(20.0, 4.0),
    t_read=decades(250e-9, 4.0),
    s_prog=st.floats(0.0, 10.0),
    s_read=st.floats(0.0, 10.0),
    s_drift=st.floats(0.0, 10.0),
    fracs=st.lists(st.floats(0.0, 1.0), min_size=TARGETS, max_size=TARGETS),
    t=times,
    seed=seeds,
)
def test_statistical_finite_values_and_gradients(
    statistical, g_max, t0, t_read, s_prog, s_read, s_drift, fracs, t, seed
):
    dev = PCMStatistical(
        g_max=g_max, t0=t0, t_read=t_read, prog_noise_scale=s_prog, read_noise_scale=s_read, drift_scale=s_drift
    )
    diff = (dev, jnp.asarray(fracs), jnp.asarray(t, dtype=float))
    out, tangent = statistical(diff, direction(diff, seed), jax.random.key(seed))
    assert finite(out) and finite(tangent)
    g_prog, nu, drifted, read, sigma_n = (np.asarray(x) for x in out)
    assert np.all(g_prog >= 0) and np.all(nu >= 0) and np.all(read >= 0) and np.all(sigma_n >= 0)
    assert np.all(drifted <= g_prog * (1 + 1e-12))  # drift only lowers the conductance


@pytest.fixture(scope="module")
def calibrations():
    """The calibration-specific formulas (ν statistics, Q_s, σ_n) without random draws, both calibrations."""

    def run(diffs):
        out = []
        for dev, g, g_prog, t in diffs:
            out += [*dev.drift_exponent_stats(g), dev.programming_noise_std(g), dev.read_noise_std(g_prog, t)]
        return out

    return value_and_jvp(run)


@examples(300)
@given(
    g_max=decades(25e-6),
    t0=decades(20.0, 4.0),
    t_read=decades(250e-9, 4.0),
    frac=st.floats(0.0, 1.0),
    overshoot=st.floats(0.0, 100.0),
    t=times,
    seed=seeds,
)
def test_both_calibrations_finite_and_positive(calibrations, g_max, t0, t_read, frac, overshoot, t, seed):
    """ν statistics and read noise of targets in [0, g_max] and of programmed values up to 100 g_max (programming
    noise overshoots): finite, non-negative, with finite derivatives, for the Joshi 2020 and HERMES fits."""
    diffs = [
        (
            PCMStatistical(g_max=g_max, t0=t0, t_read=t_read, calibration=c),
            jnp.asarray(frac * g_max),
            jnp.asarray(overshoot * g_max),
            jnp.asarray(t, dtype=float),
        )
        for c in ("joshi2020", "hermes")
    ]
    out, tangent = calibrations(diffs, direction(diffs, seed))
    assert finite(out) and finite(tangent)
    assert all(float(x) >= 0 for x in out)


@examples(200)
@given(
    name=st.sampled_from(
        ["g_max", "t0", "t_read", "prog_noise_scale", "read_noise_scale", "drift_scale", "prog_g_max_reference"]
    ),
    value=st.one_of(st.floats(-1e3, 0.0), st.just(float("nan")), st.just(float("inf")), st.just(float("-inf"))),
)
def test_statistical_bad_parameters_raise_naming_them(name, value):
    if value == 0.0 and name in ("prog_noise_scale", "read_noise_scale", "drift_scale"):
        PCMStatistical(**{name: value})  # a scale of 0 switches that noise off: allowed
        return
    with pytest.raises(ValueError) as err:
        PCMStatistical(**{name: value})
    assert_names(err.value, f"PCMStatistical.{name}")


@examples(200)
@given(
    frac=st.one_of(st.floats(-10.0, -1e-3), st.floats(1.01, 1e3), st.just(float("nan"))),
    bad_t=st.one_of(st.floats(-1e9, -1e-12), st.just(float("nan")), st.just(float("inf"))),
)
def test_statistical_bad_inputs_raise_clear_errors(frac, bad_t):
    """Eagerly: ValueError before any random number is drawn."""
    dev = PCMStatistical()
    with pytest.raises(ValueError) as err:
        dev.program(jnp.full(TARGETS, frac * 25e-6), key=KEY)
    assert_names(err.value, "g_target")
    state = imcphys.models.pcm.PCMState(g_prog=jnp.full(TARGETS, 10e-6), nu=jnp.full(TARGETS, 0.05))
    with pytest.raises(ValueError) as err:
        dev.conductance(state, bad_t, key=KEY)
    assert_names(err.value, "t (time since programming)")


def test_statistical_bad_inputs_under_jit_raise(statistical):
    """Under jit the same checks raise through ``eqx.error_if``, naming the input."""
    for frac, t, name in (
        (jnp.full(TARGETS, 0.5), -1.0, "t (time since programming)"),
        (jnp.full(TARGETS, 2.0), 1.0, "g_target"),
    ):
        diff = (PCMStatistical(), frac, jnp.asarray(t, dtype=float))
        with pytest.raises(CLEAR_ERRORS) as err:
            statistical(diff, direction(diff, 0), KEY)
        assert_names(err.value, name)


# ------------------------------------------------------------------------------------------------- PCMCell
CELL_PARAMS = dict(
    g_crystalline=decades(25e-6),
    g_amorphous=decades(0.25e-6),
    conduction_activation_energy=st.floats(0.0, 1.0),
    drift_exponent=st.floats(0.0, 0.5),
    attempt_frequency=decades(1e13, 3.0),
    quench_barrier=st.floats(0.0, 2.0),
    barrier_span=decades(2.0, 1.0),
    growth_velocity=decades(1.0, 3.0),
    growth_activation_energy=st.floats(0.0, 5.0),
    plug_thickness=decades(50e-9, 1.0),
    thermal_resistance=decades(2e7, 1.0),
    on_resistance=decades(3e3, 1.0),
    ambient_temperature=temperatures,
)


@pytest.fixture(scope="module")
def cell_pulse():
    """A pulse on the fixed-step path (exact for piecewise-constant temperature) and the read after it."""

    def run(diff):
        dev, a, d, amp, width, temp = diff
        res = dev.pulse(PCMCellState(a, d), amp, width, fixed_steps=8)
        return dev.conductance(res.state, temp) / dev.g_crystalline, res

    return value_and_jvp(run)


def _cell_or_error(params):
    try:
        return PCMCell(**params)
    except ValueError as err:
        assert_names(err, *(f"PCMCell.{n}" for n in params))
        return None


@examples(500)
@given(
    params=st.fixed_dictionaries(CELL_PARAMS),
    a=st.floats(0.0, 1.0),
    d=st.floats(0.0, 1.0),
    amp=st.floats(-1e-3, 1e-3, allow_subnormal=False),
    width=widths,
    temp=temperatures,
    seed=seeds,
)
def test_cell_pulse_finite_values_and_gradients(cell_pulse, params, a, d, amp, width, temp, seed):
    dev = _cell_or_error(params)
    if dev is None:
        return
    diff = (dev, *(jnp.asarray(x, dtype=float) for x in (a, d, amp, width, temp)))
    try:
        (g, res), tangent = cell_pulse(diff, direction(diff, seed))
    except CLEAR_ERRORS as err:  # refused: beyond amplitude_range(), a SET above melting, a read above melting
        (_, set_max), (reset_min, _) = dev.amplitude_range()
        beyond = not reset_min <= amp <= set_max
        too_hot = amp > 0 and float(dev.ambient_temperature + dev.heating(amp)) >= float(dev.melting_temperature)
        assert beyond or too_hot or temp >= float(dev.melting_temperature)
        assert_names(err, "amplitude", "melting current", "temperature")
        return
    assert np.isfinite(float(g)) and float(g) >= 0 and finite(res) and finite(tangent)
    assert 0.0 <= float(res.state.amorphous) <= 1.0 and 0.0 <= float(res.state.defects) <= 1.0
    assert float(res.energy) >= 0.0


@pytest.fixture(scope="module")
def cell_rates():
    def run(diff):
        dev, a, d, temp, duration = diff
        state = PCMCellState(a, d)
        relaxed = dev.relax(state, duration, temp)
        return (
            dev.relaxation_rate(d, temp),
            dev.growth_velocity_at(temp),
            dev.conductance(state, temp),
            relaxed.amorphous,
            relaxed.defects,
            dev.conductance(relaxed, temp),
        )

    return value_and_jvp(run)


@examples(500)
@given(
    a=st.floats(0.0, 1.0),
    d=st.floats(0.0, 1.0),
    temp=st.floats(1e-2, 1e5),
    duration=times,
    ambient=st.floats(1.0, 899.0),
    seed=seeds,
)
def test_cell_rates_never_overflow(cell_rates, a, d, temp, duration, ambient, seed):
    """Arrhenius rates exp(−E/kT) from 0.01 K to 1e5 K and anneals of 0 to 1e9 s: finite values and gradients
    below melting, a clear error naming the temperature at or above it."""
    diff = (PCMCell(ambient_temperature=ambient), *(jnp.asarray(x, dtype=float) for x in (a, d, temp, duration)))
    try:
        out, tangent = cell_rates(diff, direction(diff, seed))
    except CLEAR_ERRORS as err:
        assert temp >= float(diff[0].melting_temperature)
        assert_names(err, "temperature")
        return
    assert finite(out) and finite(tangent)
    # an anneal only crystallises and relaxes (to rounding)
    assert 0.0 <= float(out[3]) <= a + 1e-12 and 0.0 <= float(out[4]) <= d + 1e-12


def test_cell_ambient_above_melting_is_refused():
    with pytest.raises(ValueError) as err:
        PCMCell(ambient_temperature=950.0)
    assert_names(err.value, "PCMCell.ambient_temperature")


@pytest.fixture(scope="module")
def bake():
    def run(diff):
        dev, temp, duration = diff
        sol = imcphys.simulate(
            dev,
            dev.initial_state("reset"),
            imcphys.hold(temp, duration),
            jnp.stack([0.0 * duration, duration]),
            fixed_steps=16,
        )
        return sol.observed[-1] / dev.g_crystalline, sol.states

    return value_and_jvp(run)


@examples(150)
@given(temp=temperatures, duration=widths, seed=seeds)
def test_cell_bake_through_simulate(bake, temp, duration, seed):
    """A bake as a stimulus (the ambient temperature is the drive) on the fixed-step path: finite and in range
    below melting, refused at or above it."""
    diff = (PCMCell(), jnp.asarray(temp), jnp.asarray(duration))
    try:
        (g, states), tangent = bake(diff, direction(diff, seed))
    except CLEAR_ERRORS as err:  # a bake at or above melting is refused (drive_range())
        assert temp >= float(diff[0].melting_temperature)
        assert_names(err, "drive_range")
        return
    assert np.isfinite(float(g)) and float(g) >= 0 and finite(states) and finite(tangent)
    assert np.all((np.asarray(states.amorphous) >= 0) & (np.asarray(states.amorphous) <= 1))
