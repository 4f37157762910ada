"""STT-MRAM (perpendicular MTJ, macrospin): closed forms by hand, the SDE against exact physics (deterministic LLGS,
Fokker–Planck mean first-passage times, Boltzmann equilibrium), the fixed-step kernel against the diffrax
reference, gradients, vmap/jit/keys, bad input, write-verify, read margin and the Monte Carlo study.

Parameter values: Arm's MRAM simulation framework, Verilog-A compact model (llg_parameters.va,
dimension_parameters.va, conductance_parameters.va, BSD-3); constants CODATA 2018. Every reference below is
computed independently here (numpy/scipy) from the equations quoted in each test.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, central_difference
from scipy import integrate, optimize, special, stats

import imcphys
from imcphys.models.mram import (
    STTMRAM,
    first_switching_time,
    grid_write_pulse,
    heun_increments,
    mram_switching_time,
    mram_write_error_rate,
    optimize_write_pulse,
    read_margin,
    sde_solve,
)
from imcphys.population import sample
from imcphys.program import FixedAmplitude, program

MU0, GAMMA, KB, Q = 1.25663706212e-6, 1.76085963023e11, 1.380649e-23, 1.602176634e-19  # CODATA 2018
HBAR = 6.62607015e-34 / (2 * math.pi)
# Arm Verilog-A defaults: K_i, M_s, t_FL, d, alpha, N_x, N_z, P, R_P; TMR = 2P^2/(1 - P^2); V_h 0.5 V (Zhang et al.
# 2012, assumed)
ARM = dict(ki=1e-3, ms=1.2e6, t=1.0e-9, d=50e-9, alpha=0.01, nx=0.029, nz=0.941, p=0.75, rp=6e3, vh=0.5, temp=300.0)
TMR0 = 2 * 0.75**2 / (1 - 0.75**2)  # 2.5714...
N = 1000  # junctions per SDE run: one compiled shape for every SDE test
WRITE_WIDTH = 3.6e-9  # at 2.5·I_c0 (Sun's time 3.9 ns): WER about 0.3, so that retries happen


def hand(p=ARM):
    """H_k, Δ, I_c0 and t_D from the module docstring's equations, evaluated here with numpy."""
    vol = math.pi / 4 * p["d"] ** 2 * p["t"]
    hk = 2 * p["ki"] / (p["t"] * MU0 * p["ms"]) - p["ms"] * (p["nz"] - p["nx"])
    delta = MU0 * p["ms"] * hk * vol / (2 * KB * p["temp"])
    eta = p["p"] / (1 + p["p"] ** 2)
    ic0 = 4 * Q * p["alpha"] * KB * p["temp"] * delta / (HBAR * eta)
    t_d = (1 + p["alpha"] ** 2) / (p["alpha"] * GAMMA * MU0 * hk)
    return hk, delta, ic0, t_d


def fokker_planck_mean_time(delta: float, ratio: float, t_d: float, points: int = 200_001) -> float:
    """Exact mean first-passage time to the equator of the axially symmetric macrospin under i = I/I_c0, from
    the Boltzmann state of the starting well (zero current).

    With s = cos θ (θ from the starting pole) the Fokker–Planck equation is ∂p/∂t = ∂_s[B(∂_s p + p ∂_sΦ)],
    B = (1 − s²)/(2Δt_D), Φ = −Δ(s − i)² (its drift is the LLGS's −(1 − s²)(i − s)/t_D, its equilibrium at
    i = 0 Boltzmann's e^{Δs²}). Reflecting at s = 1, absorbing at s = 0:
    T(s0) = ∫_0^{s0} e^{Φ(y)}/B(y) ∫_y^1 e^{−Φ(z)} dz dy, averaged over p0(s0) ∝ e^{Δ s0²}.
    """
    th = np.linspace(0.0, math.pi / 2, points)
    s, sin = np.cos(th), np.sin(th)
    g = delta * (s - ratio) ** 2
    with np.errstate(divide="ignore"):
        log_w = g + np.log(sin)  # log of e^{−Φ} sin θ, −inf at θ = 0
    # ln ∫_0^θ e^{−Φ} sin θ' dθ' by the trapezoidal rule, accumulated in log space (no overflow at any Δ, i)
    steps = np.logaddexp(log_w[:-1], log_w[1:]) + math.log(0.5 * (th[1] - th[0]))
    log_inner = np.logaddexp.accumulate(steps)
    p0 = integrate.cumulative_trapezoid(np.exp(delta * (s**2 - 1)) * sin, th, initial=0.0)
    p0 /= p0[-1]
    f = np.zeros_like(th)
    f[1:] = np.exp(-g[1:] + log_inner - np.log(sin[1:])) * p0[1:]
    return 2 * delta * t_d * integrate.trapezoid(f, th)


@pytest.fixture(scope="module")
def dev():
    return STTMRAM()


@pytest.fixture(scope="module")
def small():
    """Δ ≈ 21 and α = 0.1 (d = 25 nm): thermal activation within nanoseconds (the exponent Δ(1 − i)² does not
    depend on α; t_D does)."""
    return imcphys.replace(STTMRAM(), diameter=25e-9, damping=0.1)


# ------------------------------------------------------------------------------------ closed forms by hand
def test_card_is_the_arm_verilog_a_defaults(dev):
    card = imcphys.load_card(REPO / "devices" / "mram_pmtj.toml")
    assert isinstance(card, STTMRAM)
    for name, value in imcphys.parameters(dev).items():
        np.testing.assert_allclose(imcphys.parameters(card)[name], value, rtol=1e-12, err_msg=name)
    assert float(card.tmr) == pytest.approx(TMR0, rel=1e-12)
    assert float(card.parallel_resistance()) == pytest.approx(6e3, rel=1e-12)  # p_r_p
    specs = imcphys.cards.read_card(REPO / "devices" / "mram_pmtj.toml").variability_specs()
    assert set(specs) == {"tmr", "resistance_area", "diameter", "interface_anisotropy"}


def test_thermal_stability_critical_current_and_dynamic_time_by_hand(dev):
    hk, delta, ic0, t_d = hand()
    assert float(dev.anisotropy_field()) == pytest.approx(hk, rel=1e-12)
    assert float(dev.thermal_stability()) == pytest.approx(delta, rel=1e-12)
    assert float(dev.critical_current()) == pytest.approx(ic0, rel=1e-12)
    assert float(dev.dynamic_time()) == pytest.approx(t_d, rel=1e-12)
    # the same numbers rounded, as quoted in the module docstring
    assert (round(hk), round(delta, 2), round(ic0 * 1e6, 2), round(t_d * 1e9, 3)) == (231891, 82.88, 43.46, 1.949)
    # I_c0 written without T: 2eαμ0MsHkV/(ħη); Δ scales as 1/T, I_c0 not at all
    hot = imcphys.replace(dev, temperature=400.0)
    assert float(hot.thermal_stability()) == pytest.approx(delta * 300 / 400, rel=1e-12)
    assert float(hot.critical_current()) == pytest.approx(ic0, rel=1e-12)


@pytest.mark.parametrize("volts", [0.0, 0.25, 0.5])
def test_resistance_at_p_ap_and_bias(dev, volts):
    x = (volts / 0.5) ** 2
    # R = R_P(1 + x + TMR)/(1 + x + TMR(1 + cos θ)/2): P → R_P; AP → R_P(1 + TMR/(1 + x)); 90° in between
    assert float(dev.resistance(1.0, volts)) == pytest.approx(6e3, rel=1e-12)
    assert float(dev.resistance(-1.0, volts)) == pytest.approx(6e3 * (1 + TMR0 / (1 + x)), rel=1e-12)
    assert float(dev.resistance(0.0, volts)) == pytest.approx(6e3 * (1 + x + TMR0) / (1 + x + TMR0 / 2), rel=1e-12)
    assert {0.0: 21428.571, 0.25: 18342.857, 0.5: 13714.286}[volts] == pytest.approx(
        float(dev.resistance(-1.0, volts)), abs=1e-3
    )
    assert float(dev.tmr_at(volts)) == pytest.approx(TMR0 / (1 + x), rel=1e-12)


def test_voltage_under_current_solves_the_bias_dependent_resistance(dev):
    currents = np.array([-300e-6, -50e-6, 1e-9, 20e-6, 87e-6, 200e-6, 500e-6])
    for c in (-1.0, -0.3, 0.0, 1.0):
        v = np.asarray(dev.voltage(c, currents))
        residual = v - currents * np.asarray(dev.resistance(c, v))
        assert np.max(np.abs(residual)) < 1e-13
        # root by bisection, independent of the Newton iteration
        for i, vi in zip(currents, v, strict=True):
            root = optimize.brentq(lambda u, i=i: u - i * float(dev.resistance(c, u)), -5.0, 5.0, xtol=1e-15)
            assert vi == pytest.approx(root, abs=1e-12)


def test_switching_probability_closed_forms_by_hand(dev):
    _, delta, ic0, t_d = hand()
    # thermal regime: P = 1 − exp(−t/τ), τ = τ0 exp(Δ(1 − i)²), τ0 = 1 ns
    i, t = 0.7, 1e-6
    tau = 1e-9 * math.exp(delta * (1 - i) ** 2)
    assert float(dev.switching_probability(i * ic0, t)) == pytest.approx(-math.expm1(-t / tau), rel=1e-12)
    # read disturb: the AP junction at I = V_read/R_AP(V_read), same form; tiny, so no cancellation
    i_read = 0.1 / (6e3 * (1 + TMR0 / (1 + 0.04)))
    tau_read = 1e-9 * math.exp(delta * (1 - i_read / ic0) ** 2)
    assert float(dev.read_disturb_probability(10e-9)) == pytest.approx(-math.expm1(-10e-9 / tau_read), rel=1e-10)
    assert float(dev.read_disturb_probability(10e-9)) == pytest.approx(3.27e-28, rel=1e-2)
    # precessional: Sun's time, and Butler's P = exp(−(π²Δ/4)(i − 1)/(i e^{2(i−1)t/t_D} − 1))
    for i in (1.5, 2.0, 5.0):
        sun = t_d * math.log(math.pi / 2 * math.sqrt(2 * delta)) / (i - 1)
        assert float(dev.precessional_switching_time(i * ic0)) == pytest.approx(sun, rel=1e-12)
        for t in (0.3 * sun, sun, 3 * sun):
            x = math.pi**2 * delta / 4 * (i - 1) / (i * math.exp(2 * (i - 1) * t / t_d) - 1)
            assert float(dev.switching_probability(i * ic0, t)) == pytest.approx(math.exp(-x), rel=1e-12)
            assert float(dev.write_error_rate(i * ic0, t)) == pytest.approx(-math.expm1(-x), rel=1e-10)
    # smooth through i = 1 on the precessional branch: the limit 1/(1 + 2t/t_D)
    x1 = math.pi**2 * delta / 4 / (1 + 2 * 5e-9 / t_d)
    assert float(dev.switching_probability(ic0, 5e-9)) == pytest.approx(math.exp(-x1), rel=1e-9)
    # one segment of the staircase form is the rectangular pulse
    assert float(dev.staircase_write_error_rate(jnp.array([2 * ic0]), jnp.array([6e-9]))) == pytest.approx(
        float(dev.write_error_rate(2 * ic0, 6e-9)), rel=1e-12
    )


# ------------------------------------------------------------------------------------- gradients, vmap, jit
def test_gradients_of_switching_probability_match_finite_differences(dev):
    ic0 = float(dev.critical_current())
    for ratio, width in ((0.7, 1e-6), (2.0, 6e-9), (3.0, 2e-9), (2.5, 12e-9)):
        i = ratio * ic0
        # through the WER (1 − P computed without cancellation: a finite difference of P at P ≈ 1 − 1e-6 is not)
        d_i = jax.grad(lambda c: dev.write_error_rate(c, width))(i)
        d_w = jax.grad(lambda w: dev.write_error_rate(i, w))(width)
        assert float(d_i) == pytest.approx(central_difference(lambda c: dev.write_error_rate(c, width), i), rel=1e-6)
        assert float(d_w) == pytest.approx(central_difference(lambda w: dev.write_error_rate(i, w), width), rel=1e-6)
        assert float(jax.grad(lambda c: dev.switching_probability(c, width))(i)) == pytest.approx(-float(d_i), rel=1e-9)
        # ln(WER) at WER ~ 1e-6 (where 1 − P cancels) and with respect to a device parameter
        g = jax.grad(lambda k: replace_ki(dev, k).log_write_error_rate(i, width))(1e-3)
        fd = central_difference(lambda k: replace_ki(dev, k).log_write_error_rate(i, width), 1e-3)
        assert float(g) == pytest.approx(fd, rel=1e-5)
        assert np.isfinite(float(g))


def replace_ki(dev, ki):
    return eqx.tree_at(lambda d: d.interface_anisotropy, dev, jnp.asarray(ki))


def test_vmap_equals_loop_and_jit_equals_eager(dev):
    ic0 = float(dev.critical_current())
    currents = jnp.linspace(0.2, 6.0, 40) * ic0
    widths = jnp.geomspace(1e-9, 1e-6, 40)
    batched = jax.vmap(dev.switching_probability)(currents, widths)
    looped = np.array([float(dev.switching_probability(c, w)) for c, w in zip(currents, widths, strict=True)])
    np.testing.assert_allclose(batched, looped, rtol=1e-14, atol=0)
    jitted = jax.jit(jax.vmap(dev.switching_probability))(currents, widths)
    np.testing.assert_allclose(jitted, batched, rtol=1e-13, atol=0)
    assert float(eqx.filter_jit(lambda d: d.voltage(-1.0, 1e-4))(dev)) == float(dev.voltage(-1.0, 1e-4))


def test_sde_vmap_equals_loop_and_keys_reproduce(dev):
    ic0 = float(dev.critical_current())
    key = jax.random.key(3)
    t = mram_switching_time(dev, 2 * ic0, key=key, n=N)
    again = mram_switching_time(dev, 2 * ic0, key=key, n=N)
    np.testing.assert_array_equal(t, again)  # same key: bit-identical
    other = mram_switching_time(dev, 2 * ic0, key=jax.random.key(4), n=N)
    assert np.mean(np.asarray(t) == np.asarray(other)) < 0.01
    # vmap over junctions equals a loop of single junctions (the per-junction kernel of the Monte Carlo study)
    one = eqx.filter_jit(lambda d, k: first_switching_time(d, 2 * ic0, key=k, steps=600, dt=2e-11))
    keys = jax.random.split(key, 4)
    batched = eqx.filter_vmap(one, in_axes=(None, 0))(dev, keys)
    np.testing.assert_allclose(batched, [float(one(dev, k)) for k in keys], rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(batched)))


# ---------------------------------------------------------------------------------- SDE vs exact physics
def exact_angle(dev, ratio, theta0, t):
    """θ(t) of the zero-temperature LLGS, t_D dθ/dt = sin θ (i − cos θ), from t(θ) = t_D ∫ dθ/(sin θ(i − cos θ))."""
    t_d = float(dev.dynamic_time())

    def elapsed(th):
        f = lambda x: 1 / (math.sin(x) * (ratio - math.cos(x)))  # noqa: E731
        return t_d * integrate.quad(f, theta0, th, epsabs=0, epsrel=1e-12, limit=200)[0]

    assert elapsed(math.pi / 2) > t  # still before the equator: the root is bracketed
    return optimize.brentq(lambda th: elapsed(th) - t, theta0, math.pi / 2, xtol=1e-14)


def test_zero_temperature_sde_is_the_deterministic_llgs(dev):
    """At T = 0 the thermal SDE kernel is the deterministic LLGS: m_z after the pulse agrees with the adaptive
    diffrax solve of ``rhs`` and with the exact angle of t_D dθ/dt = sin θ (i − cos θ)."""
    ic0 = float(dev.critical_current())
    cold = imcphys.replace(dev, temperature=0.0)
    start = dev.initial_state("ap")  # tilted by θ0 = 1/√(2Δ) at 300 K
    theta0 = float(dev.initial_angle())
    sde_pulse = eqx.filter_jit(lambda d, a, w, k: d.pulse(start, a, w, fixed_steps=400, key=k))
    adaptive_pulse = eqx.filter_jit(lambda d, a, w: d.pulse(start, a, w))
    for ratio, width in ((2.0, 4e-9), (5.0, 1.2e-9)):
        exact = -math.cos(exact_angle(dev, ratio, theta0, width))  # m_z = −cos θ, θ from the AP pole
        sde = sde_pulse(cold, ratio * ic0, width, jax.random.key(0))
        adaptive = adaptive_pulse(dev, ratio * ic0, width)
        assert float(adaptive.state[2]) == pytest.approx(exact, abs=2e-5)  # diffrax Tsit5, rtol 1e-6
        assert float(sde.state[2]) == pytest.approx(exact, abs=2e-4)
        assert float(jnp.linalg.norm(sde.state)) == pytest.approx(1.0, abs=1e-14)
        # noise really is off: another key gives the same state
        np.testing.assert_array_equal(sde.state, sde_pulse(cold, ratio * ic0, width, jax.random.key(1)).state)


def test_sun_time_is_approached_above_the_critical_current(dev):
    """Mean first-switching time of 1000 thermal junctions vs Sun's t_D ln(π/(2θ0))/(i − 1): within 10 % at
    5·I_c0, and closer there than at 2·I_c0 (the small-angle form improves with i)."""
    ic0 = float(dev.critical_current())
    dev_at = {}
    for ratio in (2.0, 5.0):
        t = np.asarray(mram_switching_time(dev, ratio * ic0, key=jax.random.key(7), n=N))
        assert np.all(np.isfinite(t))
        dev_at[ratio] = np.mean(t) / float(dev.precessional_switching_time(ratio * ic0)) - 1
    assert abs(dev_at[5.0]) < 0.10
    assert abs(dev_at[5.0]) < abs(dev_at[2.0])


@pytest.mark.parametrize("case", ["thermal", "precessional"])
def test_sde_mean_switching_time_equals_fokker_planck(dev, small, case):
    """The SDE's mean first-passage time to the equator equals the exact Fokker–Planck one (quadrature): at
    i = 0.7 with Δ ≈ 21 (thermal activation over a barrier of 1.9 kT) and at i = 2 on the default card."""
    d, ratio = (small, 0.7) if case == "thermal" else (dev, 2.0)
    exact = fokker_planck_mean_time(float(d.thermal_stability()), ratio, float(d.dynamic_time()))
    t = np.asarray(mram_switching_time(d, ratio * float(d.critical_current()), key=jax.random.key(11), n=N, t_max=1e-6))
    assert np.all(np.isfinite(t))
    # the library's differentiable quadrature of the same equation
    assert float(d.mean_switching_time(ratio * float(d.critical_current()))) == pytest.approx(exact, rel=5e-4)
    sem = np.std(t) / math.sqrt(N)
    assert abs(np.mean(t) - exact) < 4 * sem + 0.01 * exact, (np.mean(t), exact, sem)


def test_thermal_state_is_boltzmann_and_the_sde_keeps_it(dev, small):
    """Initial states follow p(cos θ) ∝ exp(Δ cos²θ) (KS test against the Dawson-function CDF), and the SDE at
    zero current keeps that equilibrium (the thermal field obeys the fluctuation–dissipation theorem)."""
    keys = jax.random.split(jax.random.key(5), N)
    for d in (dev, small):
        delta = float(d.thermal_stability())
        cos = np.asarray(-eqx.filter_jit(jax.vmap(lambda k: d.thermal_state("ap", key=k)))(keys)[:, 2])
        cdf = lambda c: (
            np.exp(delta * (c**2 - 1)) * special.dawsn(math.sqrt(delta) * c) / special.dawsn(math.sqrt(delta))
        )  # noqa: E731
        assert stats.kstest(cos, cdf).pvalue > 1e-3
    # equilibrium from the deterministic tilt: after 10 t_D at zero current, <1 − cos θ> is Boltzmann's
    delta = float(dev.thermal_stability())
    grid = np.linspace(0, 1, 200_001)
    w = np.exp(delta * (grid**2 - 1))
    expected = integrate.trapezoid((1 - grid) * w, grid) / integrate.trapezoid(w, grid)  # ≈ 1/(2Δ)
    ten_t_d = 10 * float(dev.dynamic_time())
    relax = eqx.filter_jit(
        eqx.filter_vmap(lambda k: dev.pulse(dev.initial_state("ap"), 0.0, ten_t_d, fixed_steps=500, key=k).state)
    )(keys)
    one_minus = 1 + np.asarray(relax[:, 2])
    assert abs(np.mean(one_minus) - expected) < 4 * np.std(one_minus) / math.sqrt(N)


# ---------------------------------------------------------------------------- fixed step vs the reference
@pytest.mark.slow
def test_fixed_step_kernel_converges_to_diffrax_on_the_same_brownian_path(dev):
    """Lab frame, pathwise: the fixed-step Heun kernel driven by the increments of a VirtualBrownianTree
    converges to diffrax's Stratonovich Heun solve on that tree (strong error shrinking with the step)."""
    ic0 = float(dev.critical_current())
    t1, key = 0.4e-9, jax.random.key(9)
    m0 = dev.thermal_state("ap", key=jax.random.key(2))
    fine = 0.4e-9 / 3200
    ref = sde_solve(dev, m0, 3 * ic0, jnp.array([0.0, t1]), key=key, dt=fine, brownian_tol=fine / 4)[-1]
    tree = diffrax.VirtualBrownianTree(0.0, t1, tol=fine / 4, shape=(3,), key=key)
    errors = []
    for steps in (100, 400):
        dt = t1 / steps
        edges = jnp.arange(steps + 1) * dt
        dws = jax.vmap(tree.evaluate)(edges[:-1], edges[1:])
        errors.append(float(jnp.linalg.norm(heun_increments(dev, m0, 3 * ic0, dws, dt) - ref)))
    assert errors[1] < errors[0] / 2
    assert errors[1] < 2e-3


def test_rotating_frame_production_path_matches_the_lab_frame(dev):
    """The production kernel (rotating frame, t_D/100 steps) and the full lab-frame LLGS (precession period/200
    steps, pathwise-checked against diffrax above) give the same first-switching-time distribution."""
    ic0 = float(dev.critical_current())
    rot = np.asarray(mram_switching_time(dev, 3 * ic0, key=jax.random.key(21), n=N))
    lab = np.asarray(
        mram_switching_time(
            dev, 3 * ic0, key=jax.random.key(22), n=N, frame="lab", dt=float(dev.precession_period()) / 200
        )
    )
    assert stats.ks_2samp(rot, lab).pvalue > 1e-3
    assert np.mean(rot) == pytest.approx(np.mean(lab), rel=0.03)


@pytest.mark.slow
def test_closed_form_wer_within_a_factor_two_of_the_sde(dev):
    """Documented validity of the precessional closed form: within a factor 2 of the SDE's WER for i = 2 … 5
    (measured with 1e5 junctions: ×1.3–1.8 at 2·I_c0, ×0.90–0.93 at 4·I_c0)."""
    ic0 = float(dev.critical_current())
    for ratio in (2.0, 5.0):
        sun = float(dev.precessional_switching_time(ratio * ic0))
        widths = jnp.array([sun, 1.25 * sun])
        sde = np.asarray(mram_write_error_rate(dev, ratio * ic0, widths, key=jax.random.key(31), n=N))
        closed = np.asarray(dev.write_error_rate(ratio * ic0, widths))
        assert np.all(sde > 20 / N)  # enough errors counted to compare
        assert np.all((closed / sde > 0.5) & (closed / sde < 2.0)), (ratio, closed, sde)


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"damping": -0.1}, "STTMRAM.damping"),
        ({"diameter": 0.0}, "STTMRAM.diameter"),
        ({"polarization": 1.0}, "STTMRAM.polarization"),
        ({"temperature": -1.0}, "STTMRAM.temperature"),
        ({"interface_anisotropy": 2e-4}, "shape anisotropy"),
        ({"max_current": 0.0}, "STTMRAM.max_current"),
    ],
)
def test_bad_parameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        STTMRAM(**kwargs)


def test_bad_calls_raise_naming_the_argument(dev):
    with pytest.raises(ValueError, match="n \\(number of junctions\\)"):
        mram_switching_time(dev, 1e-4, key=jax.random.key(0), n=0)
    with pytest.raises(ValueError, match="current must be nonzero"):
        mram_switching_time(dev, 0.0, key=jax.random.key(0), n=4)
    with pytest.raises(ValueError, match="widths must be finite and in \\(0, inf\\) s"):
        mram_write_error_rate(dev, 1e-4, [-1e-9], key=jax.random.key(0), n=4)
    with pytest.raises(ValueError, match="fixed_steps must be a positive integer"):
        dev.pulse(dev.initial_state(), 1e-4, 1e-9, key=jax.random.key(0))
    with pytest.raises(ValueError, match="which must be one of"):
        dev.initial_state("up")
    with pytest.raises(ValueError, match="wer_target must be finite and in"):
        optimize_write_pulse(dev, 2.0, steps=3)
    with pytest.raises(ValueError, match="frame must be"):
        mram_switching_time(dev, 1e-4, key=jax.random.key(0), n=4, frame="spin")


# ------------------------------------------------------------------ write-verify, read margin, pulse search
def test_write_verify_through_program_and_verify(dev):
    """Write (AP → P), verify, rewrite on failure, through the generic program-and-verify: a junction relaxes
    for 5 ns after each pulse (``settle_time``), so every attempt is independent and a cell fails all k pulses
    with probability WER^k; pulses, energy and latency are accounted."""
    ic0 = float(dev.critical_current())
    settle = 10e-9  # 5 t_D: a failed junction is back in equilibrium before the next attempt
    settled = STTMRAM(settle_time=settle)
    n, width, amp = 512, WRITE_WIDTH, 2.5 * ic0
    pop = sample(settled, {}, n, key=jax.random.key(40))  # identical junctions: attempts are i.i.d.
    starts = eqx.filter_jit(eqx.filter_vmap(lambda d, k: d.thermal_state("ap", key=k)))(
        pop, jax.random.split(jax.random.key(41), n)
    )
    target = float(dev.read(jnp.array([0.0, 0.0, 1.0])))  # nominal P read current
    scheme = FixedAmplitude(iterations=3, amplitude=amp, width=width, tolerance=0.6, polarity="set")
    rep = program(
        pop, scheme, targets=[target], key=jax.random.key(42), verify="exact", initial=starts, fixed_steps=200
    )
    pulses = np.asarray(rep.pulses)
    wer1 = np.mean(pulses > 1)  # failed the first attempt
    assert 0.1 < wer1 < 0.5  # a pulse chosen to fail often enough to count retries
    # independent attempts: failing the second given the first is as likely as failing the first
    assert np.mean(pulses[pulses > 1] > 2) == pytest.approx(wer1, abs=4 * math.sqrt(wer1 / np.sum(pulses > 1)))
    assert rep.unconverged == int(np.sum(~np.asarray(rep.converged)))
    # energy: between I²R_P·width and I·V_AP(I)·width per pulse (the resistance falls as the junction switches)
    lo, hi = amp**2 * 6e3 * width, float(dev.write_energy(amp, width))
    per_pulse = np.asarray(rep.energy) / pulses
    assert np.all((per_pulse > lo) & (per_pulse < hi))
    # time: every pulse with its settling, plus one 10 ns verify read per verify
    reads = np.minimum(pulses + 1, 3 + 1)
    np.testing.assert_allclose(np.asarray(rep.time), pulses * (width + settle) + reads * 10e-9, rtol=1e-12)
    assert rep.latency == pytest.approx(float(np.max(np.asarray(rep.time))))


def test_read_margin_against_exact_distributions(dev):
    """Reference-cell read: with only a TMR spread, an AP cell is misread when its TMR falls below the TMR at
    which I_AP = I_ref — the normal CDF exactly; with no spread and a sense offset, Φ(−margin/σ)."""
    i_ref = 0.5 * (0.1 / 6e3 + 0.1 / (6e3 * (1 + TMR0 / 1.04)))
    tmr_star = (0.1 / i_ref / 6e3 - 1) * 1.04
    assert float(read_margin(sample(dev, {}, 1, key=jax.random.key(0)), dev).reference_current) == pytest.approx(
        i_ref, rel=1e-12
    )
    # a low-TMR junction (TMR 1.0) with a 30 % TMR spread truncated at 0 (drawn by scipy): its CDF
    low = imcphys.replace(dev, tmr=1.0)
    i_ref = 0.5 * (0.1 / 6e3 + 0.1 / (6e3 * (1 + 1.0 / 1.04)))
    tmr_star = (0.1 / i_ref / 6e3 - 1) * 1.04
    n, sigma = 20000, 0.3
    draws = stats.truncnorm.rvs(
        -1.0 / sigma, np.inf, loc=1.0, scale=sigma, size=n, random_state=np.random.default_rng(50)
    )
    pop = eqx.tree_at(lambda d: d.tmr, sample(low, {}, n, key=jax.random.key(50)), jnp.asarray(draws))
    rm = read_margin(pop, low)
    p_ap = stats.truncnorm.cdf(tmr_star, -1.0 / sigma, np.inf, loc=1.0, scale=sigma)
    assert 0.005 < p_ap < 0.05
    assert float(np.mean(rm.error_ap)) == pytest.approx(p_ap, abs=4 * math.sqrt(p_ap / n))
    assert float(np.mean(rm.error_p)) == 0.0  # the TMR does not move R_P
    i_ref = 0.5 * (0.1 / 6e3 + 0.1 / (6e3 * (1 + TMR0 / 1.04)))
    one = sample(dev, {}, 1, key=jax.random.key(0))
    off = read_margin(one, dev, offset_std=2e-6)
    assert float(off.error_p[0]) == pytest.approx(stats.norm.cdf(-(0.1 / 6e3 - i_ref) / 2e-6), rel=1e-12)
    assert float(off.read_error_rate()) == pytest.approx(
        0.5 * (float(off.error_p[0]) + float(off.error_ap[0])), rel=1e-14
    )


def test_gradient_pulse_search_meets_the_target_and_beats_the_grid(dev):
    """Least write energy at WER 1e-6 (closed form): the gradient search of a rectangular pulse reaches the
    optimum of a 20001-point brute-force scan; for a two-step pulse (3 settings) it beats a grid of the same
    number of evaluations and the best rectangular pulse."""
    one = optimize_write_pulse(dev, 1e-6, steps=60)
    brute = grid_write_pulse(dev, 1e-6, evaluations=20001)
    assert float(one.wer) == pytest.approx(1e-6, rel=1e-9)
    assert float(one.energy) == pytest.approx(float(brute.energy), rel=1e-5)
    two = optimize_write_pulse(dev, 1e-6, steps=60, segments=2)
    grid_two = grid_write_pulse(dev, 1e-6, evaluations=60, segments=2)
    assert float(two.wer) == pytest.approx(1e-6, rel=1e-9)
    assert grid_two.evaluations <= two.evaluations
    assert float(two.energy) < float(grid_two.energy)
    assert float(two.energy) <= float(one.energy) * (1 + 1e-9)


@pytest.mark.slow
def test_montecarlo_study_counts_equal_the_direct_computation(tmp_path, dev):
    from imcphys.models.mram import first_switching_time
    from imcphys.montecarlo import get_study, montecarlo, noise_key, population_key, study_names
    from imcphys.population import cell_keys, pulse_keys

    assert {"mram_wer", "mram_read"} <= set(study_names())
    card = REPO / "devices" / "mram_pmtj.toml"
    widths = [2e-9, 5e-9]
    res = montecarlo(
        "mram_wer",
        card=card,
        cells=64,
        key=jax.random.key(60),
        out=tmp_path / "w",
        progress=False,
        chunk_cells=64,
        current_ratios=[3.0],
        widths=widths,
    )
    study = get_study("mram_wer", card=card, current_ratios=[3.0], widths=widths)
    pop = sample(study.device, study.specs, 64, key=population_key(jax.random.key(60)))
    keys = pulse_keys(cell_keys(noise_key(jax.random.key(60)), jnp.arange(64)), 1)
    steps, dt = study.settings["steps"], study.settings["dt_s"]
    times = eqx.filter_jit(
        eqx.filter_vmap(
            lambda d, k: first_switching_time(d, study.settings["currents_A"][0], key=k[0], steps=steps, dt=dt)
        )
    )(pop, keys)
    expected = np.sum(np.asarray(times)[:, None] > np.array(widths)[None, :], axis=0)
    np.testing.assert_array_equal(res.counts["write_errors"].values[0], expected)
    read = montecarlo(
        "mram_read", card=card, cells=64, key=jax.random.key(61), out=tmp_path / "r", progress=False, chunk_cells=64
    )
    assert float(read.ber().max()) == 0.0  # 5 % TMR and RA spreads: far from the reference
