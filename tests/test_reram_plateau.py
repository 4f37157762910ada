"""The Stanford ReRAM fixed-cost plateau (``pulse(..., fixed_steps=32)`` of a rectangular pulse without noise: time
as a quadrature over the gap) against the adaptive solve, which is the reference.

Every comparison runs one vmapped call on each side, over 4000 cells (one compiled shape for the whole module). The
acceptance bar for a population path: >= 99.9 % of cells within 1 % of the adaptive solve in read current, none
beyond 5 %. The below-threshold and at-a-bound cases are exact physics: the gap keeps its value and the energy is
V·I(g)·T.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import imcphys

CELLS = 4000
WIDTH = 100e-9
STEPS = 32


@pytest.fixture(scope="module")
def dev():
    return imcphys.load_card("reram_stanford_v1")


@pytest.fixture(scope="module")
def both():
    """(fixed, adaptive): vmapped pulses over (start gap, amplitude), each compiled once for the module."""

    def batch(steps):
        one = lambda d, g, a: d.pulse(g, a, WIDTH, fixed_steps=steps)  # noqa: E731
        return eqx.filter_jit(eqx.filter_vmap(one, in_axes=(None, 0, 0)))

    return batch(STEPS), batch(None)


def compare(device, both, gaps, amps):
    """Relative read-current and energy errors of the plateau against the adaptive solve, and both results."""
    gaps = jnp.broadcast_to(jnp.asarray(gaps, dtype=float), (CELLS,))
    amps = jnp.asarray(amps, dtype=float)
    assert amps.shape == (CELLS,)
    fast, ref = (f(device, gaps, amps) for f in both)
    i_err = np.abs(np.asarray(device.read(fast.state) / device.read(ref.state)) - 1.0)
    e_err = np.abs(np.asarray(fast.energy / ref.energy) - 1.0)
    assert np.all(np.isfinite(i_err)) and np.all(np.isfinite(e_err))
    return i_err, e_err, fast, ref


def assert_population_bar(i_err):
    assert np.mean(i_err <= 0.01) >= 0.999, (np.mean(i_err <= 0.01), i_err.max())
    assert i_err.max() <= 0.05


def test_set_sweep_through_the_runaway_band(dev, both):
    # the band where a 100 ns SET from the RESET gap runs away inside the pulse: a fixed time mesh of 32 graded Heun
    # steps put 4.8 % of these cells more than 1 % off (worst 85 %)
    i_err, e_err, _, _ = compare(dev, both, dev.gap_max, jnp.linspace(1.45, 1.75, CELLS))
    assert_population_bar(i_err)
    assert e_err.max() <= 0.01


def test_reset_sweep_over_the_whole_range(dev, both):
    i_err, e_err, _, _ = compare(dev, both, dev.gap_min, jnp.linspace(-dev.max_amplitude, -0.5, CELLS))
    assert_population_bar(i_err)
    assert e_err.max() <= 0.01


def test_random_start_gaps_and_amplitudes(dev, both):
    kg, ka = jax.random.split(jax.random.key(0))
    gaps = jax.random.uniform(kg, (CELLS,), minval=float(dev.gap_min), maxval=float(dev.gap_max))
    amps = jax.random.uniform(ka, (CELLS,), minval=-dev.max_amplitude, maxval=dev.max_amplitude)
    i_err, e_err, _, _ = compare(dev, both, gaps, amps)
    assert_population_bar(i_err)
    assert e_err.max() <= 0.02


def test_below_threshold_and_at_a_bound_the_gap_stays(dev, both):
    # SET from g_max: the field gamma(g_max)·V/t_ox reaches F_min at V = F_min t_ox / (gamma0 − beta (g_max/1 nm)^3)
    v_th = float(dev.min_field * dev.oxide_thickness / (dev.gamma0 - dev.beta * (dev.gap_max / 1e-9) ** 3))
    below = jnp.linspace(0.05, 0.999 * v_th, CELLS // 2)
    # a cell already at the bound its pulse drives it to: SET from g_min, RESET from g_max
    at_bound = jnp.linspace(0.05, dev.max_amplitude, CELLS // 4)
    gaps = jnp.concatenate([jnp.full(CELLS // 2, dev.gap_max), jnp.full(CELLS // 4, dev.gap_min)])
    gaps = jnp.concatenate([gaps, jnp.full(CELLS // 4, dev.gap_max)])
    amps = jnp.concatenate([below, at_bound, -at_bound])
    i_err, e_err, fast, _ = compare(dev, both, gaps, amps)
    np.testing.assert_array_equal(np.asarray(fast.state), np.asarray(gaps))
    exact = amps * dev.current(gaps, amps) * WIDTH  # nothing moves: E = V I(g) T
    np.testing.assert_allclose(np.asarray(fast.energy), np.asarray(exact), rtol=1e-12)
    assert i_err.max() <= 1e-6 and e_err.max() <= 1e-6


@pytest.mark.parametrize(
    "change",
    [
        {"thermal_resistance": 0.0},  # no self-heating: T = T_0 along the whole path
        {"field_threshold_width": 0.0},  # the Verilog-A's hard F_min step
        {"beta": 0.0},  # a field that does not change along the path
        {"field_threshold_width": 1.4e8},  # a wide ramp (10 % of F_min), the smooth relaxation for optimisers
    ],
    ids=lambda c: next(iter(c)) + "=" + str(next(iter(c.values()))),
)
def test_limits_of_the_physics(dev, both, change):
    device = imcphys.replace(dev, **change)
    amps = jnp.linspace(-dev.max_amplitude, dev.max_amplitude, CELLS)
    for start in (device.gap_max, device.gap_min, 0.5 * (device.gap_min + device.gap_max)):
        i_err, e_err, _, _ = compare(device, both, start, amps)
        assert_population_bar(i_err)
        assert e_err.max() <= 0.02


CASES = [  # (start, amplitude [V])
    ("gap_max", 1.5),  # the card's reference pulse: SET from g_max, ending on the open-gate segment
    ("gap_max", 1.5456),  # SET whose runaway ends inside the pulse (the worst cell of the sweep above)
    ("gap_min", -1.3),  # RESET ending on the open-gate segment
    ("gap_min", -1.0515),  # RESET stalling in the F_min ramp
]


@pytest.mark.slow
def test_gradients_match_finite_differences(dev):
    """d read / d (amplitude, width, E_a) for every case at once: one vmapped gradient, one vmapped value call."""

    def read_after(a, w, ea, g):
        d = imcphys.replace(dev, activation_energy=ea)
        return d.read(d.pulse(g, a, w, fixed_steps=STEPS).state)

    x0 = np.array([[amp, WIDTH, float(dev.activation_energy)] for _, amp in CASES])
    gaps = jnp.asarray([float(getattr(dev, start)) for start, _ in CASES])
    grads = jax.jit(jax.vmap(jax.grad(read_after, argnums=(0, 1, 2))))(*jnp.asarray(x0.T), gaps)
    # central differences, h = 1e-6 |x| (conftest.central_difference), all points in one call
    h = 1e-6 * np.abs(x0)
    rows, starts = [], []
    for k in range(len(CASES)):
        for j in range(3):
            for sign in (1.0, -1.0):
                x = x0[k].copy()
                x[j] += sign * h[k, j]
                rows.append(x)
                starts.append(gaps[k])
    points = jnp.asarray(np.array(rows))
    values = np.asarray(jax.jit(jax.vmap(read_after))(*points.T, jnp.asarray(starts))).reshape(len(CASES), 3, 2)
    fd = (values[..., 0] - values[..., 1]) / (2 * h)
    autodiff = np.stack([np.asarray(g) for g in grads], axis=1)
    # compared as elasticities x·df/dx / |f| (one tolerance for every unit), as tests/test_contract.py does
    scale = np.abs(np.asarray(jax.jit(jax.vmap(read_after))(*jnp.asarray(x0.T), gaps)))[:, None]
    np.testing.assert_allclose(autodiff * x0 / scale, fd * x0 / scale, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_vmap_equals_a_loop_and_jit_equals_eager(dev):
    gaps = jnp.asarray([float(getattr(dev, start)) for start, _ in CASES])
    amps = jnp.asarray([amp for _, amp in CASES])
    batched = eqx.filter_vmap(lambda g, a: dev.pulse(g, a, WIDTH, fixed_steps=STEPS))(gaps, amps)
    jitted_pulse = eqx.filter_jit(lambda d, g, a: d.pulse(g, a, WIDTH, fixed_steps=STEPS))
    for k in range(len(amps)):
        eager = dev.pulse(gaps[k], amps[k], WIDTH, fixed_steps=STEPS)
        jitted = jitted_pulse(dev, gaps[k], amps[k])
        assert float(jitted.state) == float(eager.state) and float(jitted.energy) == float(eager.energy)
        np.testing.assert_allclose(float(batched.state[k]), float(eager.state), rtol=1e-12)
        np.testing.assert_allclose(float(batched.energy[k]), float(eager.energy), rtol=1e-12)
