"""Stanford RRAM model: published defaults, official stimuli, exact physics, gradients, vmap/jit, bad input.

Reference values come from the model equations of Guan et al. (IEEE EDL 2012) / Jiang et al. (IEEE TED 2016) with
the official Verilog-A defaults (rram_v_1_0_0.va, doi:10.4231/D37H1DN48), re-implemented independently in numpy
below and solved with scipy where an ODE is involved.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import central_difference
from scipy.integrate import solve_ivp

import imcphys

Q, KB = 1.602176634e-19, 1.380649e-23
OFFICIAL = dict(
    g0=0.25e-9,
    V0=0.25,
    I0=1e-3,
    vel0=10.0,
    beta=0.8,
    gamma0=16.0,
    Ea=0.6,
    a0=0.25e-9,
    tox=12e-9,
    Fmin=1.4e9,
    gmin=0.2e-9,
    gmax=1.7e-9,
    T0=298.0,
    Rth=2.1e3,
)


def numpy_rate(g: float, v: float, p=OFFICIAL) -> float:
    """dg/dt of the Verilog-A (hard field threshold), evaluated at the clipped gap."""
    g = min(max(g, p["gmin"]), p["gmax"])
    i = p["I0"] * math.exp(-g / p["g0"]) * math.sinh(v / p["V0"])
    t = p["T0"] + abs(v * i) * p["Rth"]
    gamma = (p["gamma0"] if v >= 0 else 16.0) - p["beta"] * (g / 1e-9) ** 3
    if gamma * abs(v) / p["tox"] < p["Fmin"]:
        return 0.0
    return -p["vel0"] * math.exp(-Q * p["Ea"] / (KB * t)) * math.sinh(gamma * p["a0"] / p["tox"] * Q * v / (KB * t))


def scipy_pulse(g0: float, v: float, width: float) -> float:
    sol = solve_ivp(lambda t, y: [numpy_rate(y[0], v)], (0.0, width), [g0], method="DOP853", rtol=1e-11, atol=1e-21)
    return min(max(sol.y[0, -1], OFFICIAL["gmin"]), OFFICIAL["gmax"])


@pytest.fixture(scope="module")
def dev():
    return imcphys.StanfordReRAM()


def _arrays(pulse):
    """``pulse`` with the amplitude and width passed as float arrays: a Python float is static to filter_jit (one
    compilation per value), an array is not (one compilation for every amplitude and width)."""
    return lambda d, g, a, w: pulse(d, g, jnp.asarray(a, dtype=float), jnp.asarray(w, dtype=float))


@pytest.fixture(scope="module")
def adaptive_pulse():
    return _arrays(eqx.filter_jit(lambda d, g, a, w: d.pulse(g, a, w)))


@pytest.fixture(scope="module")
def fixed_pulse():
    return _arrays(eqx.filter_jit(lambda d, g, a, w: d.pulse(g, a, w, fixed_steps=32)))


def test_read_resistance_at_g_min_and_g_max(dev):
    # R = V / (I0 exp(-g/g0) sinh(V/V0)) at V = 0.1 V
    r_on = 0.1 / (1e-3 * math.exp(-0.2 / 0.25) * math.sinh(0.1 / 0.25))
    r_off = 0.1 / (1e-3 * math.exp(-1.7 / 0.25) * math.sinh(0.1 / 0.25))
    assert float(dev.resistance(dev.gap_min)) == pytest.approx(r_on, rel=1e-12)  # 541.8 Ω
    assert float(dev.resistance(dev.gap_max)) == pytest.approx(r_off, rel=1e-12)  # 218.6 kΩ
    assert float(dev.read(dev.gap_min)) == pytest.approx(0.1 / r_on, rel=1e-12)
    np.testing.assert_allclose(
        dev.current(jnp.array([0.2e-9, 1.7e-9]), jnp.array([[0.1], [-0.1]])),
        [[0.1 / r_on, 0.1 / r_off], [-0.1 / r_on, -0.1 / r_off]],
        rtol=1e-12,
    )


def test_defaults_match_official_card(dev):
    card_dev = imcphys.load_card(imcphys.cards_dir() / "reram_stanford_v1.toml")
    for name, value in imcphys.parameters(dev).items():
        np.testing.assert_allclose(getattr(card_dev, name), value, rtol=1e-12, err_msg=name)


def test_gap_rate_matches_independent_implementation(dev):
    # hard threshold for an exact comparison with the Verilog-A equations
    hard = imcphys.replace(dev, field_threshold_width=0.0)
    for g in (0.2e-9, 0.7e-9, 1.2e-9, 1.7e-9):
        for v in (-2.0, -1.3, -1.0, 0.3, 1.5, 1.8):
            assert float(hard.gap_rate(g, v)) == pytest.approx(numpy_rate(g, v), rel=1e-10, abs=1e-300)


def test_official_set_and_reset_pulses(dev, adaptive_pulse):
    g_set = adaptive_pulse(dev, dev.gap_max, 1.8, 100e-9).state
    assert float(g_set) == pytest.approx(0.2e-9, rel=1e-12)  # fully set: gap at g_min
    g_reset = adaptive_pulse(dev, dev.gap_min, -1.3, 100e-9).state
    assert float(dev.resistance(g_reset) / dev.resistance(dev.gap_min)) > 10  # reset: resistance up > 10×
    # against an independent scipy solve of the Verilog-A equations (DOP853, rtol 1e-11)
    assert float(g_reset) == pytest.approx(scipy_pulse(0.2e-9, -1.3, 100e-9), rel=2e-6)
    g_partial = adaptive_pulse(dev, dev.gap_max, 1.5, 100e-9).state
    assert float(g_partial) == pytest.approx(scipy_pulse(1.7e-9, 1.5, 100e-9), rel=2e-6)


def test_pulse_energy_against_quadrature(dev, adaptive_pulse):
    # E = ∫ V I(g(t)) dt along the scipy trajectory
    v = -1.3
    sol = solve_ivp(
        lambda t, y: [
            numpy_rate(y[0], v),
            v * 1e-3 * math.exp(-min(max(y[0], 0.2e-9), 1.7e-9) / 0.25e-9) * math.sinh(v / 0.25),
        ],
        (0, 100e-9),
        [0.2e-9, 0.0],
        method="DOP853",
        rtol=1e-11,
        atol=[1e-21, 1e-22],
    )
    assert float(adaptive_pulse(dev, dev.gap_min, v, 100e-9).energy) == pytest.approx(sol.y[1, -1], rel=1e-5)


def test_dc_sweep_pinched_hysteresis_switches_at_field_threshold(dev):
    ts = jnp.linspace(0.0, 16e-3, 1601)
    sol = imcphys.simulate(dev, dev.gap_max, imcphys.triangle_sweep(2.0, 4e-3), ts)
    v, i, g = (np.asarray(x) for x in (sol.drive, sol.observed, sol.states))
    assert sol.result == diffrax.RESULTS.successful
    np.testing.assert_allclose(i[v == 0], 0.0, atol=0)  # pinched at the origin
    # SET where γ(g_max)|V|/t_ox = F_min: V = F_min t_ox / (γ0 − β 1.7³) = 1.392 V
    v_th_set = 1.4e9 * 12e-9 / (16 - 0.8 * 1.7**3)
    mid = 0.95e-9
    k_set = np.argmax(g < mid)
    assert v_th_set <= v[k_set] <= v_th_set + 0.02
    # RESET begins where γ(g_min)|V|/t_ox = F_min: |V| = 1.050 V
    v_th_reset = 1.4e9 * 12e-9 / (16 - 0.8 * 0.2**3)
    k_move = np.argmax((np.arange(len(g)) > k_set) & (g > 0.2e-9 * 1.001))
    assert -v_th_reset - 0.02 <= v[k_move] <= -v_th_reset
    # hysteresis: at +1 V on the way down the current is ~ (R_off/R_on) larger than on the way up
    up, down = np.argmin(abs(ts - 2e-3)), np.argmin(abs(ts - 6e-3))
    assert v[up] == pytest.approx(1.0) and v[down] == pytest.approx(1.0)
    assert i[down] / i[up] == pytest.approx(math.exp((1.7 - 0.2) / 0.25), rel=1e-6)
    assert g[-1] == pytest.approx(1.7e-9)  # back to fully reset


def test_set_time_about_a_decade_per_0p2_volt(dev):
    from imcphys.experiments.reram_stanford import switching_time

    vs = jnp.array([1.5, 1.7, 1.9])
    ts = jnp.geomspace(1e-12, 1e-3, 301)
    t = np.asarray(eqx.filter_jit(jax.vmap(lambda v: switching_time(dev, v, ts)))(vs))
    decades = -np.diff(np.log10(t))
    assert np.all((decades > 0.75) & (decades < 1.25)), decades


def test_gradients_match_finite_differences(dev, fixed_pulse, adaptive_pulse):
    def final_current(d, a, w, pulse):
        # arrays, not Python floats: filter_jit would compile once per float value
        return d.read(pulse(d, d.gap_min, jnp.asarray(a), jnp.asarray(w)).state)

    # amplitude and width, adaptive and fixed-step paths
    for pulse, rel in ((fixed_pulse, 1e-5), (adaptive_pulse, 1e-4)):
        # compiled as one (eagerly the derivative of the jitted pulse compiles its forward and backward passes apart)
        da, dw = jax.jit(jax.grad(lambda a, w: final_current(dev, a, w, pulse), argnums=(0, 1)))(-1.3, 100e-9)
        assert float(da) == pytest.approx(
            central_difference(lambda a: final_current(dev, a, 100e-9, pulse), -1.3), rel=rel
        )
        assert float(dw) == pytest.approx(
            central_difference(lambda w: final_current(dev, -1.3, w, pulse), 100e-9), rel=rel
        )
    # every model parameter on the fixed-step path: tests/test_contract.py (for every card)


@pytest.mark.parametrize("start, amp", [("reset", 1.8), ("set", -1.3), ("reset", 1.5), ("set", -1.5), ("set", -1.1)])
def test_fixed_step_within_one_percent_of_adaptive(dev, adaptive_pulse, fixed_pulse, start, amp):
    g0 = dev.initial_state(start)
    ref, fast = adaptive_pulse(dev, g0, amp, 100e-9), fixed_pulse(dev, g0, amp, 100e-9)
    assert float(dev.read(fast.state)) == pytest.approx(float(dev.read(ref.state)), rel=0.01)
    assert float(fast.energy) == pytest.approx(float(ref.energy), rel=0.005)


def test_cycle_to_cycle_noise_is_a_wiener_process(dev):
    # With the drift switched off (gap_velocity = 0) the gap random-walks with σ = δg0 √τ s(T) √width while the
    # field is above threshold; at g = 1 nm and 1.5 V the self-heating is < 0.1 K, so s(T) ≈ s(T0).
    d = imcphys.replace(dev, gap_velocity=0.0)
    n, width = 4000, 100e-9
    keys = jax.random.split(jax.random.key(7), n)
    g = jax.vmap(lambda k: imcphys.apply_pulse(d, 1.0e-9, 1.5, width, fixed_steps=64, key=k))(keys)
    temp = float(d.temperature(1.0e-9, 1.5))
    sigma = 0.02 * math.sqrt(1e-9) / (1 + math.exp((450 - temp) / 500)) * math.sqrt(width)
    assert float(jnp.mean(g)) == pytest.approx(1.0e-9, abs=3 * sigma / math.sqrt(n))
    assert float(jnp.std(g)) == pytest.approx(sigma, rel=3 / math.sqrt(2 * n))
    again = jax.vmap(lambda k: imcphys.apply_pulse(d, 1.0e-9, 1.5, width, fixed_steps=64, key=k))(keys)
    np.testing.assert_array_equal(g, again)  # same keys, identical results
    below = imcphys.apply_pulse(d, 1.0e-9, 0.5, width, fixed_steps=64, key=keys[0])  # below threshold: no noise
    assert float(below) == pytest.approx(1.0e-9, rel=1e-15)


def test_noise_needs_fixed_step_path(dev):
    with pytest.raises(ValueError, match="fixed_steps"):
        imcphys.apply_pulse(dev, dev.gap_min, -1.3, 100e-9, key=jax.random.key(0))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(gap_min=1.7e-9, gap_max=1.7e-9), "gap_min"),
        (dict(gap_min=2e-9), "gap_min"),
        (dict(oxide_thickness=-12e-9), "oxide_thickness"),
        (dict(thermal_resistance=float("nan")), "thermal_resistance"),
    ],
)
def test_bad_parameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        imcphys.StanfordReRAM(**kwargs)


@pytest.mark.parametrize(
    "amp, width, name", [(1.0, 0.0, "width"), (1.0, -1e-9, "width"), (float("nan"), 1e-9, "amplitude")]
)
def test_bad_pulse_raises_naming_parameter(dev, amp, width, name):
    with pytest.raises(ValueError, match=name):
        imcphys.apply_pulse(dev, dev.gap_min, amp, width)
    with pytest.raises(ValueError, match=name):
        imcphys.apply_pulse(dev, dev.gap_min, amp, width, fixed_steps=8)


def test_bad_width_under_jit_raises(dev):
    f = jax.jit(lambda w: imcphys.apply_pulse(dev, dev.gap_min, -1.3, w, fixed_steps=8))
    with pytest.raises(Exception, match="width"):
        f(0.0).block_until_ready()


def test_solver_failure_is_reported_not_hidden(dev):
    ts = jnp.array([0.0, 16e-3])
    sol = imcphys.simulate(dev, dev.gap_max, imcphys.triangle_sweep(2.0, 4e-3), ts, max_steps=4, throw=False)
    assert sol.result != diffrax.RESULTS.successful
    with pytest.raises(Exception, match="max"):
        imcphys.simulate(dev, dev.gap_max, imcphys.triangle_sweep(2.0, 4e-3), ts, max_steps=4)
