"""Ferroelectric HfO2 (FeCap, FeFET): NLS switching over a distribution of activation fields.

References: the NLS law (Tagantsev et al., PRB 66, 214109 (2002)) with Merz's switching time and KAI kinetics,
P = −P_r + 2P_r ∫ f(E_a)(1 − exp(−(t/τ)^β)) dE_a, τ = τ_0 exp((E_a/E)^α); the "NLS literature fit" (GB2 a 6.7582,
b 1.6686 MV/cm, p 2.0998, q 1.3641, P_r 22.7186 µC/cm², τ_0 446.33 ns, α 4.2408, β 1.9134, 8.3 nm film,
E [MV/cm] = V/0.83) and Deng et al.'s multi-domain FeFET (VLSI 2020: E_a ~ N(2.3 V, 0.4 V) across the film,
τ_0 19 ns, α 3, β 2, P_r 25 µC/cm², ε_FE 28, t_FE 8 nm, t_IL 1 nm, 20 domains). The references below are written
independently in numpy/scipy in the published units (MV/cm, µC/cm², volts across the film) and integrated with
scipy.integrate.quad.
"""

from __future__ import annotations

import dataclasses
import math
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import REPO, central_difference
from scipy import integrate, special, stats

import imcphys
from imcphys._integrate import solve_pulse
from imcphys.device import parameters, replace
from imcphys.models import FeCap, FeFET
from imcphys.models.ferroelectric import FerroelectricState, sample_domains
from imcphys.population import take
from imcphys.program import IncrementalAmplitude, Schedule, program

NLS = dict(a=6.7582, b=1.6686, p=2.0998, q=1.3641, pr=22.7186, tau0=446.33e-9, alpha=4.2408, beta=1.9134)
DENG = dict(mu=2.3, sigma=0.4, pr=25.0, tau0=19e-9, alpha=3.0, beta=2.0)


# ------------------------------------------------------------------------------------ independent references
def nls_switched(e_a, field, t, prm=NLS):
    """1 − exp(−(t/τ)^β) with τ = τ_0 exp((E_a/E)^α); E_a and E in one unit (MV/cm or volts)."""
    lnh = np.log(t / prm["tau0"]) - (np.maximum(e_a, 0.0) / field) ** prm["alpha"]
    return -np.expm1(-np.exp(prm["beta"] * lnh))


def gb2_pdf(e, prm=NLS):
    a, b, p, q = prm["a"], prm["b"], prm["p"], prm["q"]
    return (a / b) * (e / b) ** (a * p - 1) / (special.beta(p, q) * (1 + (e / b) ** a) ** (p + q))


def nls_fraction(integrand_of_ea, field, ts):
    """∫ f_GB2(E) g(E) dE [1] by adaptive quadrature, breakpoints at the switching front(s) of fields ``field``."""
    fronts = [f * max(math.log(t / NLS["tau0"]), 1e-3) ** (1 / NLS["alpha"]) for f, t in zip(field, ts)]
    pts = sorted({x * s for x in fronts for s in (0.9, 1.0, 1.1)} | {NLS["b"]})
    val, _ = integrate.quad(
        lambda e: gb2_pdf(e) * integrand_of_ea(e), 0.0, 60.0, points=pts, limit=800, epsabs=1e-13, epsrel=1e-13
    )
    return val


def deng_fraction(v_fe, t):
    """Gaussian-averaged switched fraction of Deng's set at v_fe volts across the film for t seconds."""
    f = lambda v: stats.norm.pdf(v, DENG["mu"], DENG["sigma"]) * nls_switched(v, v_fe, t, DENG)  # noqa: E731
    front = v_fe * math.log(t / DENG["tau0"]) ** (1 / DENG["alpha"])
    low, _ = integrate.quad(f, -np.inf, 0.0, epsabs=1e-15)
    high, _ = integrate.quad(f, 0.0, 12.0, points=[front * 0.95, front, front * 1.05], limit=500, epsabs=1e-14)
    return low + high


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cap():
    return imcphys.load_card(REPO / "devices" / "fecap_nls_hfo2.toml")


@pytest.fixture(scope="module")
def fet():
    return imcphys.load_card(REPO / "devices" / "fefet_multidomain.toml")


@pytest.fixture(scope="module")
def after_pulses():
    """P (FeCap) or V_T (FeFET) after a train of (amplitude [V], width [s]) pulses from the erased state."""

    @eqx.filter_jit
    def run(device, amplitudes, widths):
        def step(state, aw):
            return device.pulse(state, aw[0], aw[1]).state, None

        state, _ = jax.lax.scan(step, device.initial_state("down"), (amplitudes, widths))
        return device.read(state)

    return run


# ------------------------------------------------------------------------------------- published values
def test_units_the_card_stores_b_in_mv_per_cm_and_the_model_takes_e_over_the_film(cap):
    assert float(cap.gb2_b) == pytest.approx(1.6686e8, rel=1e-12)  # 1.6686 MV/cm in V/m
    assert float(cap.film_thickness) == pytest.approx(8.3e-9, rel=1e-12)
    # E [MV/cm] = V/0.83 for the 8.3 nm film (not E = V): 1 V is 1.2048 MV/cm
    assert float(cap.field(1.0)) == pytest.approx(1e8 / 0.83, rel=1e-12)
    # a domain at E_a = b switches in τ_0·e when V = 0.83 V/(MV/cm) · 1.6686 MV/cm = 1.385 V across the film
    v = 0.83 * NLS["b"]
    assert float(cap.switching_time(cap.field(v), cap.gb2_b)) == pytest.approx(NLS["tau0"] * math.e, rel=1e-12)


def test_deng_single_domain_switching_time_at_ea_equal_v(fet):
    # Deng et al., VLSI 2020 defaults: a domain with E_a = 2.3 V at 2.3 V across the film has τ = τ0·e^1 = 19 ns·e
    # = 51.65 ns (Merz, α = 3)
    e = 2.3 / fet.film_thickness
    tau = float(fet.switching_time(e, e))
    assert tau == pytest.approx(19e-9 * math.e, rel=1e-12)
    assert tau == pytest.approx(51.65e-9, abs=0.005e-9)


def test_fefet_coupling_and_threshold_window(fet):
    # series FE (28/8 nm) and SiO2 (3.9/1 nm) capacitors: κ = 3.9/(3.5 + 3.9)
    assert float(fet.coupling()) == pytest.approx(3.9 / 7.4, rel=1e-14)
    down, up = fet.initial_state("down"), fet.initial_state("up")
    assert float(fet.read(down)) == pytest.approx(1.5, rel=1e-14)  # V_T0 + window/2 (erased: high V_T)
    assert float(fet.read(up)) == pytest.approx(0.5, rel=1e-12)
    assert float(fet.polarization(down)) == pytest.approx(-0.25, rel=1e-14)  # −25 µC/cm²


def test_deng_gaussian_average_against_independent_quadrature(fet):
    # gate 4.0 V -> 2.108 V across the film, 100 ns: the switched fraction of N(2.3 V, 0.4 V) domains
    v_gate, t = 4.0, 100e-9
    v_fe = v_gate * 3.9 / 7.4
    state = fet.pulse(fet.initial_state("down"), v_gate, t).state
    expected = deng_fraction(v_fe, t)
    assert 0.2 < expected < 0.8
    assert float(fet.switched_fraction(state)) == pytest.approx(expected, abs=5e-10)
    assert float(fet.read(state)) == pytest.approx(1.5 - expected, abs=1e-9)  # V_T0 + w/2 − w·fraction


def test_nls_expectation_within_1e6_of_pr_against_scipy_quad(cap, after_pulses):
    """The quadrature's polarization against adaptive quadrature over E_a in the published units, for single
    pulses of 0.6-2.5 V and 1 ns-1 s, and for two trains (two amplitudes; up then down: a minor loop)."""
    pr = NLS["pr"] * 1e-2  # C/m²
    cases, refs = [], []
    for v in (0.6, 1.0, 1.4, 1.8, 2.5):
        for t in (1e-9, 1e-7, 1e-5, 1e-3, 1.0):
            e = v / 0.83  # MV/cm
            cases.append(([v, 0.0], [t, 0.0]))
            refs.append(nls_fraction(lambda x, e=e, t=t: nls_switched(x, e, t), [e], [t]))
    # a train of two amplitudes: h adds, h = t1/τ(E1) + t2/τ(E2)
    e1, e2, t1, t2 = 1.2 / 0.83, 1.6 / 0.83, 3e-6, 2e-7

    def two(x):
        lnh1 = np.log(t1 / NLS["tau0"]) - (x / e1) ** NLS["alpha"]
        lnh2 = np.log(t2 / NLS["tau0"]) - (x / e2) ** NLS["alpha"]
        return -np.expm1(-((np.exp(lnh1) + np.exp(lnh2)) ** NLS["beta"]))

    cases.append(([1.2, 1.6], [t1, t2]))
    refs.append(nls_fraction(two, [e1, e2], [t1 + t2, t2]))
    # up then down: the reverse pulse restarts the episode, p = p_up (1 − p_sw,down)
    e_up, e_down, t_up, t_down = 1.6 / 0.83, 1.3 / 0.83, 1e-6, 2e-6
    cases.append(([1.6, -1.3], [t_up, t_down]))
    refs.append(
        nls_fraction(
            lambda x: nls_switched(x, e_up, t_up) * (1 - nls_switched(x, e_down, t_down)),
            [e_up, e_down],
            [t_up, t_down],
        )
    )
    errors = []
    for (amps, widths), ref in zip(cases, refs):
        p = float(after_pulses(cap, jnp.array(amps), jnp.array(widths)))
        errors.append(abs(p - (-pr + 2 * pr * ref)) / pr)
    assert max(errors) < 1e-6, max(errors)


def test_ramp_history_against_quad(cap):
    # (1/T)∫_0^T dt/τ(E t/T) for a linear ramp, closed form (incomplete gamma) vs quadrature in t
    e = float(cap.field(1.6))
    for e_a in (0.5 * e, e, 1.5 * e, 2.2 * e):
        ref, _ = integrate.quad(
            lambda u: math.exp(-((e_a / (e * u)) ** NLS["alpha"])) / NLS["tau0"] if u > 0 else 0.0,
            0.0,
            1.0,
            epsabs=0,
            epsrel=1e-12,
            limit=200,
        )
        assert float(cap.ramp_rate(e, e_a)) == pytest.approx(ref, rel=1e-9)


# ------------------------------------------------------------------------------------------- exact physics
def test_two_pulses_of_half_width_equal_one(cap, fet):
    for dev, amp, width in ((cap, 1.5, 2e-6), (cap, -2.2, 3e-8), (fet, 4.2, 7e-8)):
        s0 = dev.pulse(dev.initial_state("up" if amp < 0 else "down"), 0.5 * amp, 1e-7).state
        one = dev.pulse(s0, amp, width).state
        two = dev.pulse(dev.pulse(s0, amp, width / 2).state, amp, width / 2).state
        np.testing.assert_allclose(two.history, one.history, rtol=1e-12, atol=0)
        assert float(dev.read(two)) == pytest.approx(float(dev.read(one)), rel=1e-12)
    # ten pulses of t/10 (accumulation) and one of t
    s0 = cap.initial_state("down")
    one = cap.pulse(s0, 1.4, 1e-6).state
    ten = s0
    for _ in range(10):
        ten = cap.pulse(ten, 1.4, 1e-7).state
    assert float(cap.polarization(ten)) == pytest.approx(float(cap.polarization(one)), rel=1e-12)


def test_saturation_and_reset(cap):
    """A strong pulse leaves only the GB2 tail E_a > E·ln(t/τ_0)^(1/α) unswitched (a heavy tail: f ~ E^(−aq−1));
    a reset pulse restarts the episode of a partly switched film and erases it the same way."""
    pr = NLS["pr"] * 1e-2
    down = cap.initial_state("down")
    up = cap.pulse(down, 3.5, 1e-3).state
    e_up = 3.5 / 0.83
    ref_up = nls_fraction(lambda x: nls_switched(x, e_up, 1e-3), [e_up], [1e-3])
    assert 1 - ref_up < 1e-5  # 4.2 MV/cm for 1 ms: all but the tail above 6.8 MV/cm
    assert float(cap.polarization(up)) == pytest.approx(-pr + 2 * pr * ref_up, abs=1e-6 * pr)
    partial = cap.pulse(down, 1.4, 3e-7).state
    reset = cap.pulse(partial, -3.5, 1e-3)
    e_p = 1.4 / 0.83
    ref = nls_fraction(
        lambda x: nls_switched(x, e_p, 3e-7) * (1 - nls_switched(x, e_up, 1e-3)), [e_p, e_up], [3e-7, 1e-3]
    )
    assert float(cap.polarization(reset.state)) == pytest.approx(-pr + 2 * pr * ref, abs=1e-6 * pr)
    # energy: switching charge × film voltage + C V², both drawn from the driver (area 0.01 µm², ε_FE 30)
    dp = float(cap.polarization(reset.state) - cap.polarization(partial))
    c = 8.8541878128e-12 * 30.0 / 8.3e-9
    assert float(reset.energy) == pytest.approx(1e-14 * (-3.5 * dp + c * 3.5**2), rel=1e-9)
    assert float(reset.duration) == 1e-3


def test_closed_form_pulse_against_the_ode(cap):
    """The closed-form pulse (with ramps) against the generic adaptive solve of rhs; its switching energy against
    ∫ power dt."""
    s0 = cap.initial_state("down")
    ode_pulse = eqx.filter_jit(lambda d, s, a, w, r, f: solve_pulse(d, s, a, w, rise=r, fall=f, rtol=1e-10, atol=1e-12))
    for amp, width, rise, fall in ((1.5, 4e-7, 0.0, 0.0), (1.7, 2e-7, 5e-8, 8e-8)):
        closed = cap.pulse(s0, amp, width, rise=rise, fall=fall)
        ode = ode_pulse(cap, s0, *map(jnp.asarray, (amp, width, rise, fall)))
        assert float(cap.polarization(closed.state)) == pytest.approx(float(cap.polarization(ode.state)), abs=1e-9)
        if rise == 0.0:
            dielectric = 1e-14 * 8.8541878128e-12 * 30.0 / 8.3e-9 * amp**2
            assert float(closed.energy) - dielectric == pytest.approx(float(ode.energy), rel=1e-7)


# ---------------------------------------------------------------------------------------------- gradients
GRAD_SKIP = {"domain_variates"}


@pytest.mark.parametrize("which", ["cap", "fet"])
def test_gradients_against_central_differences(which, cap, fet):
    """d(read after an up pulse and a partial reverse pulse)/d(amplitudes, widths, every parameter)."""
    dev, amps = (cap, (1.6, -1.25)) if which == "cap" else (fet, (4.2, -3.6))
    widths = (2e-7, 5e-7)

    @eqx.filter_jit
    def read(d, a1, w1, a2, w2):
        s = d.pulse(d.initial_state("down"), a1, w1).state
        return d.read(d.pulse(s, a2, w2).state)

    args = tuple(jnp.asarray(x) for x in (amps[0], widths[0], amps[1], widths[1]))  # arrays: traced, not static
    # one compiled gradient for the arguments and every parameter (a second compile per tree is what costs here)
    grad_args, dgrad = eqx.filter_jit(jax.grad(lambda a, d: read(d, *a), argnums=(0, 1)))(args, dev)
    for i, g in enumerate(grad_args):
        f = lambda x, i=i: read(dev, *[jnp.asarray(x) if j == i else a for j, a in enumerate(args)])  # noqa: E731
        fd = central_difference(f, float(args[i]))
        assert float(g) == pytest.approx(fd, rel=1e-6), f"argument {i}"
    used = 0
    for name, value in parameters(dev).items():
        if name in GRAD_SKIP:
            continue
        g = float(getattr(dgrad, name))
        fd = central_difference(lambda x, name=name: read(replace(dev, **{name: x}), *args), float(value))
        scale = abs(fd) * float(value)  # sensitivity to a relative change
        if scale < 1e-12:
            assert g * float(value) == pytest.approx(0.0, abs=1e-12), name  # e.g. the other distribution's
        else:
            used += 1
            assert g == pytest.approx(fd, rel=2e-6), name
    assert used >= 8


# ------------------------------------------------------------------------------------- vmap, jit, populations
@pytest.fixture(scope="module")
def population(fet):
    return sample_domains(fet, 64, key=jr.key(3))


def test_vmap_equals_loop_and_jit_equals_eager(population):
    amps = jnp.linspace(3.0, 5.0, 64)
    pulse = lambda d, a: d.pulse(d.initial_state(), a, 1e-7)  # noqa: E731
    vm = eqx.filter_jit(eqx.filter_vmap(lambda d, a: d.read(pulse(d, a).state)))(population, amps)
    one = eqx.filter_jit(pulse)
    for i in (0, 17, 63):
        cell = take(population, i)
        assert float(vm[i]) == pytest.approx(float(cell.read(one(cell, amps[i]).state)), rel=1e-14)
    cell = take(population, 5)
    eager = pulse(cell, 3.9)
    jitted = one(cell, jnp.asarray(3.9))
    np.testing.assert_allclose(jitted.state.history, eager.state.history, rtol=1e-14)
    assert float(jitted.energy) == pytest.approx(float(eager.energy), rel=1e-14)


def test_a_cell_does_not_depend_on_the_population_size(fet, population):
    small = sample_domains(fet, 8, key=jr.key(3))
    np.testing.assert_array_equal(small.domain_variates, population.domain_variates[:8])


def _mc(device, cells, *, key, amplitude, width):
    k_devices, k_noise = jr.split(key)  # independent streams (a key reused here correlates E_a and thresholds)
    pop = sample_domains(device, cells, key=k_devices)
    keys = jr.split(k_noise, cells)
    run = eqx.filter_jit(
        eqx.filter_vmap(lambda d, k: d.polarization(d.pulse(d.initial_state(), amplitude, width, key=k).state))
    )
    return np.asarray(run(pop, keys))


@pytest.mark.parametrize("stochastic", [False, True])
def test_finite_domains_converge_to_the_expectation(fet, stochastic):
    """2000 devices of 20 domains: the mean within 3σ/√M of the expectation; the spread that of N domains —
    binomial σ_P = 2P_r√(p(1−p)/N) for stochastic two-state domains, 2P_r√(Var_E_a[p_sw]/N) (quadrature) for
    deterministic ones (always below the binomial bound)."""
    dev = dataclasses.replace(fet, stochastic=stochastic)
    amplitude, width, cells, n = 4.0, 1e-7, 2000, 20
    p_exp = fet.polarization(fet.pulse(fet.initial_state(), amplitude, width).state)
    frac = float((p_exp / fet.remanent_polarization + 1) / 2)
    e_a, w = fet.activation_fields()
    p_nodes = np.asarray(fet._up(fet.pulse(fet.initial_state(), amplitude, width).state))
    var_det = float(np.sum(np.asarray(w) * p_nodes**2) - frac**2)
    pr = float(fet.remanent_polarization)
    sigma = 2 * pr * math.sqrt((frac * (1 - frac) if stochastic else var_det) / n)
    assert sigma <= 2 * pr * math.sqrt(frac * (1 - frac) / n) + 1e-15
    p = _mc(dev, cells, key=jr.key(11), amplitude=amplitude, width=width)
    assert abs(p.mean() - float(p_exp)) < 3 * sigma / math.sqrt(cells)
    assert p.std(ddof=1) == pytest.approx(sigma, rel=0.08)  # σ of a 2000-sample std: 1.6 %
    if stochastic:  # two-state domains: polarization in steps of 2P_r/N
        steps = (p / pr + 1) * n / 2
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)


# ------------------------------------------------------------------------------------------ program-and-verify
def test_program_and_verify_eight_levels_through_the_generic_layer(fet, population):
    """ISPP on the gate (amplitude steps), verify on V_T: 8 levels (the erased V_T and 7 below it) on 64 finite
    devices. A domain of a 20-domain device moves V_T by up to window/20 = 50 mV, so the verify band is ±30 mV."""
    levels = jnp.linspace(1.5, 0.6, 8)
    scheme = IncrementalAmplitude(
        iterations=60, start=2.4, step=0.02, width=100e-9, tolerance=0.03, polarity="reset", error_scale="linear"
    )
    report = program(population, scheme, targets=levels, key=None, verify="exact")
    assert report.unconverged == 0
    assert np.all(np.abs(np.asarray(report.read) - np.asarray(report.target)) < 0.03)
    vt = eqx.filter_vmap(lambda d, s: d.read(s))(population, report.state)
    np.testing.assert_allclose(vt, report.read, rtol=1e-14)
    # the first level is the erased state (no pulse); energy is counted per applied pulse, positive
    first = np.asarray(report.target) == float(levels[0])
    assert np.all(np.asarray(report.pulses)[first] == 0)
    assert np.all(np.asarray(report.energy)[~first] > 0)


def test_program_and_verify_by_pulse_width_on_polarization(cap):
    """Width steps (a Schedule of widths growing 10 % per pulse at 1.3 V), verify on P: accumulation reaches
    every level from below (200-domain capacitors)."""
    pop = sample_domains(cap, 8, key=jr.key(5), domains=200)
    widths = 1e-8 * 1.1 ** jnp.arange(80)
    scheme = Schedule(
        set_amplitude=jnp.full(80, 1.3),
        set_width=widths,
        reset_amplitude=jnp.full(80, 1.3),
        reset_width=widths,
        tolerance=0.01,
        error_scale="linear",
        direction="set",
    )
    targets = jnp.array([-0.1, 0.0, 0.1, 0.18])
    report = program(pop, scheme, targets=targets, key=None, verify="exact")
    assert report.unconverged == 0
    assert np.all(np.abs(np.asarray(report.read) - np.asarray(report.target)) < 0.01)
    assert np.all(np.diff(np.asarray(report.pulses)[:4]) > 0)  # a higher level takes more accumulated pulses


# --------------------------------------------------------------------------------------------- bad input
def test_bad_input_names_the_parameter_and_range(cap, fet):
    with pytest.raises(ValueError, match=r"FeCap\.gb2_a must be finite and in \(0, 100\]"):
        FeCap(gb2_a=-1.0)
    with pytest.raises(ValueError, match=r"FeFET\.alpha must be finite and in \(1, 20\]"):
        FeFET(alpha=1.0)
    with pytest.raises(ValueError, match=r"FeCap\.remanent_polarization .* C/m\^2"):
        replace(cap, remanent_polarization=0.0)
    with pytest.raises(ValueError, match="distribution must be 'gb2' or 'gaussian'"):
        FeCap(distribution="weibull")
    with pytest.raises(ValueError, match=r"FeCap\.pulse: amplitude 5 V is outside \[-4, 4\] V"):
        cap.pulse(cap.initial_state(), 5.0, 1e-7)
    with pytest.raises(ValueError, match=r"FeFET\.pulse width must be finite and in \[0, inf\) s"):
        fet.pulse(fet.initial_state(), 3.0, -1e-9)
    with pytest.raises(ValueError, match="number of domains must be a positive integer"):
        cap.with_domains(key=jr.key(0))
    stochastic = dataclasses.replace(fet, stochastic=True).with_domains(key=jr.key(0))
    with pytest.raises(ValueError, match="needs key="):
        stochastic.pulse(stochastic.initial_state(), 3.0, 1e-7)
    with pytest.raises(ValueError, match="must be one of"):
        cap.initial_state("left")


def test_cards_round_trip(tmp_path):
    for name in ("fecap_nls_hfo2", "fefet_multidomain"):
        card = imcphys.read_card(REPO / "devices" / f"{name}.toml")
        back = imcphys.load_card(imcphys.save_card(card.device(), tmp_path / f"{name}.toml", template=card))
        for key, value in parameters(card.device()).items():
            np.testing.assert_allclose(getattr(back, key), value, rtol=1e-14, err_msg=key)
        assert (back.distribution, back.nodes, back.domains) == (card.device().distribution, 320, card.device().domains)


def test_state_types(cap):
    s = cap.initial_state()
    assert isinstance(s, FerroelectricState) and s.threshold is None and s.start.shape == (320,)


# ------------------------------------------------------------------------------------ Monte Carlo, notebook
@pytest.mark.slow
def test_monte_carlo_spread_against_domain_count(tmp_path):
    """The registered study: stochastic two-state domains give the binomial spread 2P_r√(p(1−p)/N) and a mean at
    the expectation, for every domain count."""
    from imcphys.montecarlo import montecarlo

    cells, counts = 800, [5, 20, 80]
    run = montecarlo(
        "ferroelectric_domain_spread",
        card=REPO / "devices" / "fefet_multidomain.toml",
        cells=cells,
        chunk_cells=cells,
        key=jr.key(4),
        out=tmp_path / "spread",
        progress=False,
        domains=counts,
        stochastic=True,
    )
    settings = run.manifest["identity"]["settings"]
    expected, pr = settings["expected_polarization_C_m2"], 0.25
    assert abs(expected) < 1e-6 * pr  # the default amplitude switches half the film
    p = run.dataset()["polarization"].values
    for j, n in enumerate(counts):
        sigma = 2 * pr * math.sqrt(0.25 / n)
        assert p[:, j].std(ddof=1) == pytest.approx(sigma, rel=0.1)  # std of a std over 800 cells: 2.5 %
        assert abs(p[:, j].mean() - expected) < 3 * sigma / math.sqrt(cells)


@pytest.mark.slow
def test_monte_carlo_write_verify_levels(tmp_path):
    from imcphys.montecarlo import montecarlo

    cells = 400
    run = montecarlo(
        "fefet_write_verify",
        card=REPO / "devices" / "fefet_multidomain.toml",
        cells=cells,
        chunk_cells=cells,
        key=jr.key(5),
        out=tmp_path / "wv",
        progress=False,
    )
    ds = run.dataset()
    assert int(ds["pulse_histogram"].sum()) == cells
    converged = cells - int(ds["unconverged"])
    assert converged >= 0.95 * cells
    levels = np.asarray(run.manifest["identity"]["settings"]["levels_V"])
    vt, level = ds["vt"].values, ds["level"].values
    ok = np.abs(vt - levels[level]) < 0.03
    assert ok.sum() == converged  # converged cells are exactly those inside their verify band
    assert int(ds["level_errors"]) <= cells - converged  # only unconverged cells can be misread


@pytest.mark.slow
def test_notebook_runs_and_prints_its_checks(tmp_path, monkeypatch):
    from conftest import run_notebook

    out = run_notebook("ferroelectric.ipynb", tmp_path, monkeypatch)
    for expected in (
        "tau(E_a = E) for Deng's set at 2.3 V: 51.65 ns",
        "field of 1 V across the NLS film: 1.2048 MV/cm",
        "12 pulses of 200 ns vs one of 2.4 us at 1.3 V",
        "dP/dalpha: jax.grad",
    ):
        assert expected in out, expected
    diffs = [float(x) for x in re.findall(r"relative difference[^0-9\n]*?([0-9.]+(?:e[-+]?\d+)?)", out)]
    assert len(diffs) >= 5 and max(diffs) < 1e-6, diffs
