"""SkyWater SKY130 ReRAM: PDK reference values, the equations against an independent numpy evaluation, the thermal
ODE's exact solution, pulses against scipy and fixed-step against adaptive, gradients, vmap/jit, bad input.

Equations and calibrated defaults: the SkyWater PDK model sky130_fd_pr_reram__reram_cell (repository
google/skywater-pdk-libs-sky130_fd_pr_reram, cells/reram_cell/sky130_fd_pr_reram__reram_cell.va, commit 31cefa6),
re-implemented independently in numpy below.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, central_difference
from scipy.integrate import solve_ivp

import imcphys
from imcphys.models import SkyWaterReRAM, SkyWaterState

KB, Q = 1.380649e-23, 1.602176634e-19  # CODATA 2018 (exact SI)
PDK = dict(
    tox=5.0e-9,
    tf_max=4.9e-9,
    tf_min=3.3e-9,
    e_gen=1.501,
    e_rec=1.500,
    i_k1=6.140e-5,
    tf_ref=4.7249e-9,
    v_ref=0.430,
    v_k1=150.0,
    g_k0=16.5,
    g_k1=-1.25,
    t0=300.0,
    c_th=3.1825e-16,
    tau=0.23e-9,
    a0=0.25e-9,
)


def np_current(tf: float, v: float) -> float:
    """I = I_k1 exp(−(t_ox − T_f)/(t_ox − T_f,ref)) sinh(V/V_ref)."""
    return PDK["i_k1"] * math.exp(-(PDK["tox"] - tf) / (PDK["tox"] - PDK["tf_ref"])) * math.sinh(v / PDK["v_ref"])


def np_rate(tf: float, v: float, temp: float) -> float:
    """dT_f/dt = v_k1 [e^(−E_gen/φ) e^(γ a0 V/(t_ox φ)) − e^(−E_rec/φ) e^(−γ a0 V/(t_ox φ))], φ = kT/q."""
    phi = KB * temp / Q
    gamma = PDK["g_k0"] + PDK["g_k1"] * ((PDK["tox"] - tf) / 1e-9) ** 3
    x = gamma * PDK["a0"] / PDK["tox"] * v / phi
    return PDK["v_k1"] * (math.exp(-PDK["e_gen"] / phi) * math.exp(x) - math.exp(-PDK["e_rec"] / phi) * math.exp(-x))


def np_temperature_rate(tf: float, v: float, temp: float) -> float:
    """dT/dt = |V I|/C_th − (T − T_0)/τ_th."""
    return abs(v * np_current(tf, v)) / PDK["c_th"] - (temp - PDK["t0"]) / PDK["tau"]


def scipy_pulse(tf0: float, temp0: float, v: float, width: float) -> tuple[float, float]:
    """The PDK ODE at constant V by scipy (Radau, rtol 1e-10), the filament held at its bounds."""

    def f(t, y):
        tf = min(max(y[0], PDK["tf_min"]), PDK["tf_max"])
        r = np_rate(tf, v, y[1])
        if (y[0] >= PDK["tf_max"] and r > 0) or (y[0] <= PDK["tf_min"] and r < 0):
            r = 0.0
        return [r, np_temperature_rate(tf, v, y[1])]

    sol = solve_ivp(f, (0.0, width), [tf0, temp0], method="Radau", rtol=1e-10, atol=[1e-20, 1e-8])
    return min(max(sol.y[0, -1], PDK["tf_min"]), PDK["tf_max"]), sol.y[1, -1]


@pytest.fixture(scope="module")
def dev():
    return SkyWaterReRAM()


@pytest.fixture(scope="module")
def pulses():
    """Adaptive and fixed-step (64 intervals) pulses, vmapped over (state, amplitude): one compile each."""
    adaptive = eqx.filter_jit(jax.vmap(lambda d, s, a: d.pulse(s, a, 1e-6), in_axes=(None, 0, 0)))
    fixed = eqx.filter_jit(jax.vmap(lambda d, s, a: d.pulse(s, a, 1e-6, fixed_steps=64), in_axes=(None, 0, 0)))
    return adaptive, fixed


def _stack(states):
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *states)


def test_pdk_reference_values(dev):
    # the PDK model's equations at its calibrated defaults, evaluated with numpy and CODATA k and q (four digits)
    assert float(dev.read(dev.initial_state("reset"))) == pytest.approx(2.984e-7, rel=2e-4)
    assert float(dev.read(dev.initial_state("set"))) == pytest.approx(1.002e-4, rel=5e-4)
    assert float(dev.filament_rate(4.0e-9, 1.0, 600.0)) == pytest.approx(9.39646e-5, rel=1e-5)
    assert float(dev.filament_rate(4.9e-9, -1.0, 600.0)) == pytest.approx(-3.20491e-4, rel=1e-5)
    assert float(dev.steady_temperature(4.9e-9, 0.5)) == pytest.approx(322.26, abs=0.005)


def test_equations_match_independent_numpy(dev):
    for tf in (3.3e-9, 3.9e-9, 4.4e-9, 4.9e-9):
        for v in (-2.0, -1.0, -0.3, 0.0, 0.1, 0.5, 1.0, 2.4):
            for temp in (300.0, 600.0, 1200.0):
                state = SkyWaterState(jnp.asarray(tf), jnp.asarray(temp))
                rhs = dev.rhs(0.0, state, v)
                assert float(dev.current(tf, v)) == pytest.approx(np_current(tf, v), rel=1e-10, abs=1e-300)
                assert float(rhs.filament) == pytest.approx(np_rate(tf, v, temp), rel=1e-10, abs=1e-300)
                assert float(rhs.temperature) == pytest.approx(np_temperature_rate(tf, v, temp), rel=1e-10)
    # read = I(0.1 V)/0.1 V, a conductance
    assert float(dev.read(dev.initial_state("set"))) == pytest.approx(np_current(4.9e-9, 0.1) / 0.1, rel=1e-12)


@pytest.mark.slow
def test_thermal_ode_relaxes_to_t0_plus_p_tau_over_c(dev):
    # at T_f = T_f,max and 0.5 V the filament stays at its bound, so P = |V I| is constant and
    # T(t) = T_ss + (T_0 − T_ss) exp(−t/τ_th) exactly, with T_ss = T_0 + P τ_th / C_th
    tau = PDK["tau"]
    t_ss = PDK["t0"] + abs(0.5 * np_current(4.9e-9, 0.5)) * tau / PDK["c_th"]
    ts = jnp.array([0.0, tau, 3 * tau, 30 * tau])
    sol = imcphys.simulate(dev, dev.initial_state("set"), imcphys.hold(0.5, 30 * tau), ts, rtol=1e-10, atol=1e-12)
    exact = t_ss + (PDK["t0"] - t_ss) * np.exp(-np.asarray(ts) / tau)
    np.testing.assert_allclose(sol.states.temperature, exact, rtol=1e-8)
    assert float(sol.states.temperature[-1]) == pytest.approx(t_ss, rel=1e-9)
    np.testing.assert_allclose(sol.states.filament, 4.9e-9, rtol=1e-15)


@pytest.mark.slow
def test_adaptive_pulses_match_scipy(dev, pulses):
    adaptive, _ = pulses
    set_, reset = dev.initial_state("set"), dev.initial_state("reset")
    cases = [(set_, -1.2), (set_, -1.4), (reset, 1.9)]
    res = adaptive(dev, _stack([s for s, _ in cases]), jnp.array([a for _, a in cases]))
    for i, (s, a) in enumerate(cases):
        tf, temp = scipy_pulse(float(s.filament), float(s.temperature), a, 1e-6)
        assert float(res.state.filament[i]) == pytest.approx(tf, rel=1e-7)
        assert float(res.state.temperature[i]) == pytest.approx(temp, rel=1e-6)
    assert float(res.state.filament[0]) < 4.7e-9  # −1.2 V, 1 µs resets part of the filament


@pytest.mark.slow
def test_fixed_step_pulses_match_adaptive(dev, pulses):
    adaptive, fixed = pulses
    set_, reset = dev.initial_state("set"), dev.initial_state("reset")
    cases = [(set_, -1.2), (set_, -1.4), (reset, 1.9), (reset, 2.2)]
    states, amps = _stack([s for s, _ in cases]), jnp.array([a for _, a in cases])
    ref, fast = adaptive(dev, states, amps), fixed(dev, states, amps)
    np.testing.assert_allclose(dev.read(fast.state), dev.read(ref.state), rtol=2e-3)
    np.testing.assert_allclose(fast.energy, ref.energy, rtol=2e-2)
    np.testing.assert_allclose(fast.state.temperature, ref.state.temperature, rtol=1e-3)
    assert float(fast.state.filament[3]) == pytest.approx(4.9e-9, rel=1e-12)  # 2.2 V sets fully


def test_gradients_match_finite_differences(dev):
    def g_after(amplitude, e_gen):
        d = imcphys.replace(dev, generation_energy=e_gen)
        return d.read(d.pulse(d.initial_state("set"), amplitude, 1e-6, fixed_steps=64).state)

    f = jax.jit(g_after)
    grad = jax.jit(jax.grad(g_after, argnums=(0, 1)))
    da, de = grad(-1.3, 1.501)
    assert float(da) == pytest.approx(central_difference(lambda a: f(a, 1.501), -1.3), rel=1e-5)
    # E_gen enters only the generation term, which a RESET pulse barely uses: a small but exact derivative
    assert float(de) == pytest.approx(central_difference(lambda e: f(-1.3, e), 1.501), rel=1e-4, abs=1e-18)
    assert float(da) > 0  # a deeper RESET (more negative) lowers the conductance


def test_vmap_equals_loop_and_jit_equals_eager(dev):
    tf = jnp.array([3.4e-9, 4.0e-9, 4.8e-9])
    v = jnp.array([-1.1, 0.7, 1.6])
    temp = jnp.array([310.0, 450.0, 700.0])
    batched = jax.vmap(lambda a, b, c: dev.filament_rate(a, b, c))(tf, v, temp)
    looped = jnp.stack([dev.filament_rate(a, b, c) for a, b, c in zip(tf, v, temp)])
    np.testing.assert_array_equal(batched, looped)
    eager = dev.pulse(dev.initial_state("set"), -1.3, 1e-6, fixed_steps=16)
    jitted = eqx.filter_jit(lambda d: d.pulse(d.initial_state("set"), -1.3, 1e-6, fixed_steps=16))(dev)
    np.testing.assert_allclose(jitted.state.filament, eager.state.filament, rtol=1e-14)
    np.testing.assert_allclose(jitted.energy, eager.energy, rtol=1e-12)


def test_bad_input_names_the_parameter(dev):
    with pytest.raises(ValueError, match=r"SkyWaterReRAM.thermal_capacitance must be finite and in \(0, inf\) J/K"):
        SkyWaterReRAM(thermal_capacitance=-1e-16)
    with pytest.raises(ValueError, match="filament_min must be smaller than SkyWaterReRAM.filament_max"):
        SkyWaterReRAM(filament_min=5e-9, filament_max=4e-9)
    with pytest.raises(ValueError, match=r"filament_initial must be in \[filament_min, filament_max\]"):
        SkyWaterReRAM(filament_initial=2e-9)
    with pytest.raises(ValueError, match="thermal_time_constant must be finite"):
        imcphys.replace(dev, thermal_time_constant=0.0)
    with pytest.raises(ValueError, match="initial_state"):
        dev.initial_state("formed")
    with pytest.raises(ValueError, match=r"width must be finite and in \(0, inf\) s"):
        dev.pulse(dev.initial_state("reset"), 2.0, -1e-6, fixed_steps=8)
    with pytest.raises(ValueError, match="fixed_steps must be a positive integer"):
        dev.pulse(dev.initial_state("reset"), 2.0, 1e-6, fixed_steps=0)


def test_card_is_the_pdk_defaults(dev):
    card = imcphys.load_card(REPO / "devices" / "reram_sky130.toml")
    assert isinstance(card, SkyWaterReRAM)
    for name, value in imcphys.parameters(dev).items():
        np.testing.assert_allclose(getattr(card, name), value, rtol=1e-12, err_msg=name)
