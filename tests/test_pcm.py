"""PCM: the statistical model against its published formulas (and aihwkit itself when installed), Monte Carlo
statistics, the physical drift model against its exact solution and the Arrhenius bake equivalence,
programming, readout and drift compensation, gradients against finite differences, vmap/jit, bad input.

Published values: Nandakumar et al., ICECS 2019; Joshi et al., Nat. Commun. 11, 2473 (2020) and IBM aihwkit's
PCMLikeNoiseModel (src/aihwkit/inference/noise/pcm.py); HERMES: Le Gallo et al., Nat. Electron. 6, 680 (2023)
and aihwkit's HermesNoiseModel (num_devices = 2). They are re-implemented independently in numpy below.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import central_difference
from scipy import stats

import imcphys
from imcphys import readout
from imcphys._random import normals, threefry2x32
from imcphys.constants import K_B_EV
from imcphys.experiments.pcm_drift import program_and_verify, program_tile, temperature_profile, tile_outputs
from imcphys.models import PCMCellState, PCMState

US = 1e-6
TARGETS_US = np.array([0.0, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 12.5, 20.0, 25.0])


# --------------------------------------------------------------------------------- independent numpy formulas
def joshi_sigma_prog_us(g_us, g_max_us=25.0):
    x = g_us / g_max_us
    return (0.26348 + 1.9650 * x - 1.1731 * x**2) * g_max_us / 25.0  # µS (Joshi 2020 / aihwkit)


def joshi_nu_stats(g_us, g_max_us=25.0):
    x = np.maximum(g_us / g_max_us, 1e-7)
    return (np.clip(-0.0155 * np.log(x) + 0.0244, 0.049, 0.1), np.clip(-0.0125 * np.log(x) - 0.0059, 0.008, 0.045))


def joshi_q_s(g_us, g_max_us=25.0):
    return np.minimum(0.0088 / np.maximum((g_us / g_max_us) ** 0.65, 1e-3), 0.2)


def hermes_formulas(g_us):
    """HermesNoiseModel, num_devices = 2, g_max = 20.7 µS: (σ_prog [µS], μ_ν, σ_ν, Q_s)."""
    x = g_us / 20.7
    xc = np.maximum(x, 1e-7)
    sig = 0.16603222 + 4.71806468 * x - 8.48101252 * x**2 + 4.68961419 * x**3
    mu = np.where(
        x < 0.0945, np.clip(-0.0387 * np.log(xc) - 0.0182, 0.0720, 0.13), -0.0436 * x**2 - 0.0126 * x + 0.0736
    )
    sd = np.where(
        x < 0.3055, np.clip(-0.0117 * np.log(xc) - 0.0057, 0.0091, 0.04), -0.0118 * x**2 + 0.0093 * x + 0.0073
    )
    q = np.where(
        x < 0.16,
        np.clip(-0.0117 * np.log(xc) - 0.0069, 0.015, 0.04),
        0.0069 * x**3 - 0.0280 * x**2 + 0.0211 * x + 0.0123,
    )
    return sig, mu, sd, q


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def model():
    return imcphys.PCMStatistical()


@pytest.fixture(scope="module")
def hermes():
    return imcphys.load_card(imcphys.cards_dir() / "pcm_hermes.toml")


@pytest.fixture(scope="module")
def cell():
    return imcphys.PCMCell()


@pytest.fixture(scope="module")
def solve():
    """One compiled diffrax solve of a PCMCell under a three-segment temperature profile."""
    return eqx.filter_jit(lambda c, state, profile, ts: imcphys.simulate(c, state, profile, ts, rtol=1e-9, atol=1e-12))


@pytest.fixture(scope="module")
def set_pulse():
    """(adaptive, fixed-step) jitted SET/RESET pulses of a PCMCell."""
    adaptive = eqx.filter_jit(lambda c, s, a, w, r: c.pulse(s, a, w, rise=r, fall=r))
    fixed = eqx.filter_jit(lambda c, s, a, w, r: c.pulse(s, a, w, rise=r, fall=r, fixed_steps=64))
    return adaptive, fixed


# =========================================================================== statistical model: formulas
def test_random_normals_are_threefry_and_standard():
    # The fused hash is bit-identical to JAX's Threefry-2x32 (Salmon et al. 2011)
    from jax.extend.random import threefry_2x32

    k = jnp.array([0x13198A2E, 0x03707344], dtype=jnp.uint32)
    x = jnp.arange(64, dtype=jnp.uint32)
    np.testing.assert_array_equal(
        np.concatenate(threefry2x32(k[0], k[1], x, x + 1000)), threefry_2x32(k, jnp.concatenate([x, x + 1000]))
    )
    n = 200_000
    z1, z2 = jax.jit(lambda k: normals(k, (n,), 2, jnp.float64))(jr.key(3))
    for z in (z1, z2):  # mean, std within 3σ of N(0, 1); KS test
        assert abs(float(jnp.mean(z))) < 3 / math.sqrt(n)
        assert abs(float(jnp.std(z)) - 1) < 3 / math.sqrt(2 * n)
        assert stats.kstest(np.asarray(z[:50_000]), "norm").pvalue > 1e-3
    assert abs(float(jnp.corrcoef(z1, z2)[0, 1])) < 3 / math.sqrt(n)
    z32 = normals(jr.key(3), (1000,), 1, jnp.float32)[0]
    assert z32.dtype == jnp.float32 and float(jnp.max(jnp.abs(z32))) < 5.5  # 24-bit grid: |z| <= 5.42


def test_joshi_formulas_match_published(model):
    g = jnp.asarray(TARGETS_US * US)
    np.testing.assert_allclose(model.programming_noise_std(g), joshi_sigma_prog_us(TARGETS_US) * US, rtol=1e-12)
    mu, sd = model.drift_exponent_stats(g)
    mu_ref, sd_ref = joshi_nu_stats(TARGETS_US)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-12)
    np.testing.assert_allclose(sd, sd_ref, rtol=1e-12)
    np.testing.assert_allclose(model.read_noise_q(g), joshi_q_s(TARGETS_US), rtol=1e-12)
    # spot values: σ_prog(25 µS) = 0.26348 + 1.9650 − 1.1731 = 1.05538 µS; μ_ν, σ_ν at the clips
    assert float(model.programming_noise_std(25 * US)) == pytest.approx(1.05538e-6, rel=1e-12)
    assert [float(v) for v in model.drift_exponent_stats(0.0)] == pytest.approx([0.1, 0.045], rel=1e-12)
    assert [float(v) for v in model.drift_exponent_stats(25 * US)] == pytest.approx([0.049, 0.008], rel=1e-12)
    # σ_prog scales with g_max (polynomial fitted at 25 µS): at g_max = 50 µS and the same x, twice the noise
    m50 = imcphys.replace(model, g_max=50 * US)
    double = 2 * float(model.programming_noise_std(12.5 * US))
    assert float(m50.programming_noise_std(25 * US)) == pytest.approx(double, rel=1e-12)


def test_hermes_card_matches_published(hermes):
    g_us = TARGETS_US * 20.7 / 25.0
    sig, mu, sd, q = hermes_formulas(g_us)
    g = jnp.asarray(g_us * US)
    np.testing.assert_allclose(hermes.programming_noise_std(g), sig * US, rtol=1e-12)
    np.testing.assert_allclose(hermes.drift_exponent_stats(g)[0], mu, rtol=1e-12)
    np.testing.assert_allclose(hermes.drift_exponent_stats(g)[1], sd, rtol=1e-12)
    np.testing.assert_allclose(hermes.read_noise_q(g), q, rtol=1e-12)
    assert float(hermes.g_max) == pytest.approx(20.7e-6) and float(hermes.t0) == 300.0
    assert float(hermes.t_read) == pytest.approx(512e-9)


def test_joshi_card_is_the_default(model):
    card = imcphys.load_card(imcphys.cards_dir() / "pcm_joshi2020.toml")
    for name, value in imcphys.parameters(model).items():
        np.testing.assert_allclose(getattr(card, name), value, rtol=1e-12, err_msg=name)
    assert card.calibration == "joshi2020"


@pytest.mark.filterwarnings("ignore::UserWarning")  # aihwkit 1.1's own torch deprecation warnings
@pytest.mark.parametrize("which", ["joshi2020", "hermes"])
def test_identical_to_aihwkit_with_the_same_normals(model, hermes, which, monkeypatch):
    """aihwkit's own noise model, fed the normals imcphys draws, gives the same conductances (clipping, order
    and placement of every noise term), with non-default noise scales."""
    torch = pytest.importorskip("torch")
    module = "pcm" if which == "joshi2020" else "hermes"
    aihwkit_noise = pytest.importorskip(f"aihwkit.inference.noise.{module}")
    scales = dict(prog_noise_scale=1.3, read_noise_scale=0.7, drift_scale=1.2)
    ours = imcphys.replace(model if which == "joshi2020" else hermes, **scales)
    g_max_us = float(ours.g_max) / US
    ref = (
        aihwkit_noise.PCMLikeNoiseModel(g_max=g_max_us, **scales)
        if which == "joshi2020"
        else aihwkit_noise.HermesNoiseModel(num_devices=2, **scales)
    )
    g_target = jnp.linspace(0.0, ours.g_max, 2001)
    k_prog, k_read = jr.key(11), jr.key(12)
    t = 3600.0
    state = eqx.filter_jit(lambda m: m.program(g_target, key=k_prog))(ours)
    g_t = eqx.filter_jit(lambda m, s: m.conductance(s, t, k_read))(ours, state)
    z_prog, z_nu, z_read = jax.jit(
        lambda: (*normals(k_prog, g_target.shape, 2, jnp.float64), *normals(k_read, g_target.shape, 1, jnp.float64))
    )()
    queue = [torch.from_numpy(np.array(z)) for z in (z_prog, z_nu, z_read)]
    monkeypatch.setattr(aihwkit_noise, "randn_like", lambda x: queue.pop(0))
    gt = torch.from_numpy(np.asarray(g_target) / US)
    g_prog = ref.apply_programming_noise_to_conductance(gt.clone())
    nu = ref.generate_drift_coefficients(gt.clone())
    g_ref = ref.apply_drift_noise_to_conductance(g_prog, nu, t)
    np.testing.assert_allclose(np.asarray(state.g_prog) / US, g_prog.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state.nu, nu.numpy(), rtol=1e-12, atol=1e-15)
    same = np.ones(g_target.shape, bool)
    if which == "hermes":
        # deliberate difference: aihwkit evaluates HERMES's read-noise cubic (fitted on g <= g_max) beyond g_max,
        # where it turns negative at 1.6 g_max; imcphys reads a device programmed above g_max with the noise of
        # g_max. Elsewhere identical; above g_max, identical to aihwkit fed the read noise of g_max.
        same = np.asarray(state.g_prog) <= ours.g_max
        assert 0 < np.sum(~same) < same.size // 10
        q_at_max = ours.read_noise_q(ours.g_max)
        sigma = (
            float(ours.read_noise_scale) * q_at_max * np.sqrt(np.log((t + ours.t0 + ours.t_read) / (2 * ours.t_read)))
        )
        g_drift = ours.drift(state, t)
        expected = np.maximum(g_drift + np.abs(g_drift) * sigma * np.asarray(z_read), 0.0)
        np.testing.assert_allclose(np.asarray(g_t)[~same], expected[~same], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_t)[same] / US, g_ref.numpy()[same], rtol=1e-12, atol=1e-15)
    assert np.sum(g_ref.numpy() == 0) > 0  # the clip at 0 was exercised


# =========================================================================== statistical model: Monte Carlo
def test_monte_carlo_statistics_within_three_sigma(model):
    n = 200_000
    g_us = np.array([0.0, 2.5, 5.0, 12.5, 25.0])
    state = jax.jit(lambda g, k: model.program(g, key=k))(
        jnp.broadcast_to(jnp.asarray(g_us * US)[:, None], (g_us.size, n)), jr.key(5)
    )
    mu, sd = joshi_nu_stats(g_us)
    for i in range(g_us.size):
        # ν = |N(μ_ν, σ_ν²)|: a folded normal (scipy) — mean and std within 3σ/√N
        fold = stats.foldnorm(mu[i] / sd[i], scale=sd[i])
        m, v, _, kurt = (float(q) for q in fold.stats(moments="mvsk"))
        nu = np.asarray(state.nu[i])
        assert abs(nu.mean() - m) < 3 * math.sqrt(v / n), g_us[i]
        assert abs(nu.std() - math.sqrt(v)) < 3 * math.sqrt(v) * math.sqrt((kurt + 2) / (4 * n)), g_us[i]
        g = np.asarray(state.g_prog[i]) / US
        s_prog = joshi_sigma_prog_us(g_us[i])
        if g_us[i] == 0:  # max(σ z, 0): a rectified normal, mean σ/√(2π), half the devices at exactly 0
            assert abs(g.mean() - s_prog / math.sqrt(2 * math.pi)) < 3 * s_prog * 0.584 / math.sqrt(n)
            assert abs(np.mean(g == 0) - 0.5) < 3 * 0.5 / math.sqrt(n)
        else:  # clipping negligible (target ≥ 5.6 σ_prog): mean = target, std = σ_prog
            assert abs(g.mean() - g_us[i]) < 3 * s_prog / math.sqrt(n)
            assert abs(g.std() - s_prog) < 3 * s_prog / math.sqrt(2 * n)


def test_drift_power_law_with_t0_20s_and_read_noise(model):
    state = PCMState(g_prog=jnp.array([1e-6, 10e-6, 25e-6]), nu=jnp.array([0.1, 0.06, 0.049]))
    t = jnp.geomspace(1.0, 1e8, 9)[:, None]
    g = model.conductance(state, t)
    np.testing.assert_allclose(g, state.g_prog * ((t + 20.0) / 20.0) ** -state.nu, rtol=1e-13)
    # log G against log(t + t0) is a line of slope −ν; at t = 0 nothing has drifted
    slopes = np.polyfit(np.log(np.asarray(t[:, 0]) + 20.0), np.log(np.asarray(g)), 1)[0]
    np.testing.assert_allclose(slopes, -state.nu, rtol=1e-12)
    np.testing.assert_allclose(model.conductance(state, 0.0), state.g_prog, rtol=0)
    # read noise: relative std Q_s sqrt(ln((t + t0 + t_read)/(2 t_read))) at 1 day, 10 µS (no clipping there)
    n = 200_000
    s1 = PCMState(g_prog=jnp.full(n, 10e-6), nu=jnp.full(n, 0.06))
    noisy = eqx.filter_jit(lambda m: m.conductance(s1, 86400.0, jr.key(2)) / m.conductance(s1, 86400.0))
    rel = np.asarray(noisy(model)) - 1
    sigma_n = joshi_q_s(10.0) * math.sqrt(math.log((86400 + 20 + 250e-9) / (2 * 250e-9)))
    assert abs(rel.mean()) < 3 * sigma_n / math.sqrt(n)
    assert abs(rel.std() - sigma_n) < 3 * sigma_n / math.sqrt(2 * n)


def test_drift_ode_in_diffrax_equals_closed_form(model):
    state = PCMState(g_prog=jnp.array(12e-6), nu=jnp.array(0.07))
    ts = jnp.geomspace(1.0, 1e7, 8).at[0].set(0.0)
    sol = eqx.filter_jit(imcphys.simulate)(model, state, imcphys.hold(0.0, 1e7), ts, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sol.observed, model.conductance(state, ts), rtol=1e-7)


def test_program_vmap_equals_loop_and_jit_equals_eager(model):
    g = jnp.linspace(0.0, 25e-6, 12).reshape(3, 4)
    keys = jr.split(jr.key(8), 3)
    batched = jax.vmap(lambda k, row: model.program(row, key=k))(keys, g)
    for i in range(3):
        one = model.program(g[i], key=keys[i])
        np.testing.assert_array_equal(batched.g_prog[i], one.g_prog)
        np.testing.assert_array_equal(batched.nu[i], one.nu)
    eager = model.conductance(model.program(g, key=keys[0]), 3600.0, keys[1])
    pipeline = eqx.filter_jit(lambda m, x, k1, k2: m.conductance(m.program(x, key=k1), 3600.0, k2))
    jitted = pipeline(model, g, keys[0], keys[1])
    np.testing.assert_allclose(jitted, eager, rtol=1e-13)
    np.testing.assert_array_equal(model.program(g, key=keys[0]).g_prog, model.program(g, key=keys[0]).g_prog)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda m: m.program(jnp.array([1e-6, -1e-7]), key=jr.key(0)), "g_target"),
        (lambda m: m.program(jnp.array([26e-6]), key=jr.key(0)), "g_target"),
        (lambda m: m.programming_noise_std(-1e-6), "g_target"),
        (lambda m: m.drift_exponent_stats(30e-6), "g_target"),
        (lambda m: m.conductance(PCMState(jnp.ones(2) * 1e-6, jnp.ones(2) * 0.05), -1.0), "t"),
        (
            lambda m: m.conductance(
                PCMState(jnp.ones(2) * 1e-6, jnp.ones(2) * 0.05), jnp.array([1.0, -5.0]), jr.key(0)
            ),
            "t",
        ),
    ],
)
def test_bad_input_raises_naming_it(model, call, name):
    with pytest.raises(ValueError, match=name):
        call(model)


def test_bad_input_under_jit_raises(model):
    with pytest.raises(Exception, match="g_target"):
        program = jax.jit(lambda g: model.program(g, key=jr.key(0)).g_prog)
        program(jnp.array([1e-6, 30e-6])).block_until_ready()
    state = PCMState(jnp.ones(2) * 1e-6, jnp.ones(2) * 0.05)
    with pytest.raises(Exception, match="t"):
        jax.jit(lambda t: model.conductance(state, t))(-1.0).block_until_ready()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(g_max=-1e-6), "g_max"),
        (dict(t0=0.0), "t0"),
        (dict(read_noise_scale=-0.1), "read_noise_scale"),
        (dict(calibration="ibm"), "calibration"),
    ],
)
def test_bad_model_parameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        imcphys.PCMStatistical(**kwargs)


# =========================================================================== physical cell: drift and bakes
def _closed_form_g(cell, state, t, temperature):
    return cell.conductance(cell.relax(state, t, temperature), temperature)


@pytest.mark.parametrize("temperature", [298.15, 358.15])
def test_cell_drift_is_a_power_law_of_slope_minus_a_nu(cell, solve, temperature):
    ts = jnp.unique(jnp.concatenate([jnp.zeros(1), jnp.geomspace(1.0, 1e6, 13)]))
    for a in (1.0, 0.5):
        state = PCMCellState(jnp.asarray(a), jnp.asarray(1.0))
        profile = temperature_profile((temperature, 1e6), (temperature, 1.0), (temperature, 1.0))
        sol = solve(cell, state, profile, ts)
        g = np.asarray(sol.observed)[1:]
        # ODE (diffrax, adaptive) against the exact solution E_b(t) = kT ln(e^{E_b0/kT} + (E_s/kT) v0 t)
        np.testing.assert_allclose(g, _closed_form_g(cell, state, ts[1:], temperature), rtol=2e-6)
        slope, intercept = np.polyfit(np.log(np.asarray(ts[1:])), np.log(g), 1)
        # ν = a ν_a whatever the temperature; deviation from the line: −ν τ/t with τ < 1 µs, so < 1e-6 here
        # (at 85 °C crystal growth, 2.8e-19 m/s, bends and flattens it by ~2e-5)
        assert slope == pytest.approx(-a * 0.1, rel=1e-4)
        assert np.max(np.abs(np.log(g) - (slope * np.log(np.asarray(ts[1:])) + intercept))) < 5e-5


def test_drift_above_ten_percent_per_decade_at_85C(cell, solve):
    ts = jnp.array([0.0, 1e3, 1e4, 1e5])
    sol = solve(cell, cell.initial_state("reset"), temperature_profile((358.15, 1e5), (358.15, 1.0), (358.15, 1.0)), ts)
    per_decade = 1 - np.asarray(sol.observed[2:] / sol.observed[1:3])
    # survey: > 10 %/decade at 85 °C; this model: exactly 1 − 10^−ν_a = 20.57 % for the full amorphous plug
    assert np.all(per_decade > 0.10)
    np.testing.assert_allclose(per_decade, 1 - 10**-0.1, rtol=1e-4)  # 1e-5 from crystal growth at 85 °C


def test_bake_equals_longer_room_temperature_wait_by_arrhenius_factor(cell, solve):
    """RESET, 1 h at 85 °C, then 25 °C (diffrax, temperature steps). The bake is equivalent to a
    room-temperature wait t_b (T_r/T_b) exp(E_b (1/kT_r − 1/kT_b)), E_b the relaxation barrier it reached
    (module docstring)."""
    t_r, t_b, day, hour = 298.15, 358.15, 86400.0, 3600.0
    ts = jnp.array([0.0, hour, hour + day, hour + 2 * day])
    profile = temperature_profile((t_b, hour), (t_r, 1e7), (t_r, 1.0))
    baked = solve(cell, cell.initial_state("reset"), profile, ts)
    after = jax.tree_util.tree_map(lambda x: x[1], baked.states)
    e_b = float(cell.barrier(after.defects))
    factor = (t_r / t_b) * math.exp(e_b * (1 / (K_B_EV * t_r) - 1 / (K_B_EV * t_b)))
    t_eq = hour * factor
    assert factor > 1e3  # an hour at 85 °C is months at 25 °C
    room = solve(
        cell,
        cell.initial_state("reset"),
        temperature_profile((t_r, t_eq), (t_r, 1.0), (t_r, 1.0)),
        jnp.array([0.0, t_eq / 2, t_eq, t_eq + 1.0]),
    )
    assert float(room.states.defects[2]) == pytest.approx(float(after.defects), rel=1e-6)
    assert float(room.observed[2]) == pytest.approx(float(baked.observed[1]), rel=1e-5)  # both read at 25 °C
    # temperature step: back at 25 °C drift stalls — a day changes G by < 0.1 % (6.5 % a day after
    # programming)
    assert float(baked.observed[2] / baked.observed[1]) == pytest.approx(1.0, abs=1e-3)
    unbaked = _closed_form_g(cell, cell.initial_state("reset"), jnp.array([day, 2 * day]), t_r)
    assert float(unbaked[1] / unbaked[0]) == pytest.approx(2**-0.1, rel=1e-5)


# =========================================================================== physical cell: programming
def test_reset_melt_fraction_and_quench(cell):
    dt_m = 900.0 - 298.15  # T_m − T_amb
    for current in (80e-6, 105e-6, 115e-6, 125e-6):
        over = 2e7 * current**2 * 3e3 / dt_m  # R_th I² R_on / (T_m − T_amb)
        expected = min(max((over - 1) / 0.5, 0), 1)
        assert float(cell.melt_fraction(current)) == pytest.approx(expected, abs=1e-12)
    full = cell.pulse(cell.initial_state("set"), -130e-6, 50e-9).state  # eager: only the RESET branch runs
    assert (float(full.amorphous), float(full.defects)) == (1.0, 1.0)
    assert float(cell.read(full)) == pytest.approx(0.25e-6, rel=1e-12)  # fresh glass: G_a0
    partial = cell.pulse(cell.initial_state("set"), -110e-6, 50e-9).state
    assert float(partial.amorphous) == pytest.approx(float(cell.melt_fraction(110e-6)), rel=1e-12)
    # a pulse below the melting current heats the SET cell to 448 K: nothing melts, nothing grows
    cold = cell.pulse(cell.initial_state("set"), -50e-6, 50e-9).state
    assert float(cold.amorphous) == 0.0
    assert float(cell.melting_current()) == pytest.approx(math.sqrt(dt_m / (2e7 * 3e3)), rel=1e-12)


def test_set_pulse_fixed_step_against_adaptive(cell, set_pulse):
    adaptive, fixed = set_pulse
    reset = cell.initial_state("reset")
    for amp, rise in ((78e-6, 0.0), (80e-6, 0.0), (79e-6, 20e-9)):
        ref, fast = adaptive(cell, reset, amp, 100e-9, rise), fixed(cell, reset, amp, 100e-9, rise)
        assert 0.01 < float(ref.state.amorphous) < 0.99  # a partial SET
        tol = 1e-5 if rise == 0 else 1e-2  # rectangular: exact; trapezoid: 64 pieces per edge
        assert float(cell.read(fast.state)) == pytest.approx(float(cell.read(ref.state)), rel=tol)
        assert float(fast.energy) == pytest.approx(amp**2 * 3e3 * (100e-9 + 2 * rise / 3), rel=1e-12)
        assert float(ref.energy) == pytest.approx(float(fast.energy), rel=1e-5)
    # growth during a rectangular pulse: Δa = v_g(T) w / h exactly
    temp = 298.15 + 2e7 * (78e-6) ** 2 * 3e3
    v = 1.0 * math.exp(-2.7 / K_B_EV * (1 / temp - 1 / 700.0))
    grown = 1 - float(fixed(cell, reset, 78e-6, 100e-9, 0.0).state.amorphous)
    assert grown == pytest.approx(v * 100e-9 / 50e-9, rel=1e-10)


def test_program_and_verify_reaches_targets(cell):
    targets = jnp.array([1e-6, 3e-6, 8e-6, 20e-6])
    states, pulses = jax.jit(jax.vmap(lambda g: program_and_verify(cell, g)))(targets)
    np.testing.assert_allclose(cell.read(states), targets, rtol=0.02)
    assert np.all(np.asarray(pulses) <= 80)


def test_cell_gradients_match_finite_differences(cell):
    reset = cell.initial_state("reset")
    names = ("growth_activation_energy", "thermal_resistance", "drift_exponent", "quench_barrier")

    def g_after(p):  # conductance after a partial SET (trapezoid, fixed-step path) and one hour at 330 K
        c = imcphys.replace(cell, **{n: p[n] for n in names})
        state = c.pulse(reset, p["amp"], p["width"], rise=10e-9, fall=10e-9, fixed_steps=64).state
        return c.conductance(c.relax(state, 3600.0, p["temp"]), p["temp"])

    # one compiled function: its value for the finite differences, its gradient for the comparison
    value_and_grad = jax.jit(jax.value_and_grad(g_after))
    p0 = {"amp": 79e-6, "width": 100e-9, "temp": 330.0, **{n: float(getattr(cell, n)) for n in names}}
    p0 = {k: jnp.asarray(v) for k, v in p0.items()}
    _, grads = value_and_grad(p0)
    for name in p0:
        fd = central_difference(lambda v, n=name: value_and_grad({**p0, n: jnp.asarray(v)})[0], float(p0[name]))
        assert float(grads[name]) == pytest.approx(fd, rel=1e-5), name


def test_cell_bad_input_raises(cell):
    with pytest.raises(ValueError, match=r"PCMCell.pulse: amplitude 0.00012 A is outside \[-0.00015, 9.5e-05\] A"):
        cell.pulse(cell.initial_state("reset"), 120e-6, 100e-9, fixed_steps=1)
    wide = dataclasses.replace(cell, max_set_current=200e-6)  # a SET limit above the melting current, 100 µA
    with pytest.raises(ValueError, match="SET amplitude"):
        wide.pulse(cell.initial_state("reset"), 120e-6, 100e-9, fixed_steps=1)
    with pytest.raises(ValueError, match="duration"):
        cell.relax(cell.initial_state("reset"), -1.0)
    with pytest.raises(ValueError, match="full_reset_ratio"):
        imcphys.PCMCell(full_reset_ratio=1.0)
    with pytest.raises(ValueError, match="plug_thickness"):
        imcphys.PCMCell(plug_thickness=0.0)


def test_cell_card_is_the_default(cell):
    card = imcphys.load_card(imcphys.cards_dir() / "pcm_cell_gst.toml")
    for name, value in imcphys.parameters(cell).items():
        np.testing.assert_allclose(getattr(card, name), value, rtol=1e-12, err_msg=name)


# =========================================================================== readout and compensation
def test_differential_pairs_and_adc():
    w = jnp.array([[0.5, -1.0], [0.0, 0.25]])
    gp, gm, scale = readout.weights_to_pairs(w, 25e-6)
    np.testing.assert_allclose(gp, [[12.5e-6, 0], [0, 6.25e-6]], rtol=1e-12)  # |W|max = 1 → g_max
    np.testing.assert_allclose(gm, [[0, 25e-6], [0, 0]], rtol=1e-12)
    np.testing.assert_allclose(readout.pairs_to_weights(gp, gm, scale), w, rtol=1e-12)
    x = jnp.array([1.0, -0.5])
    y = readout.currents_to_outputs(readout.analog_mvm(gp, gm, x), scale)
    np.testing.assert_allclose(y, x @ w, rtol=1e-12)
    adc = readout.ADC(full_scale=1e-6, bits=4)  # 15 levels, Δ = 1/7 µA
    i = jnp.array([0.0, 0.07e-6, 0.08e-6, -0.51e-6, 3e-6])  # u = I/Δ = 0, 0.49, 0.56, −3.57, saturated
    np.testing.assert_allclose(adc(i), np.array([0, 0, 1, -4, 7]) * 1e-6 / 7, rtol=1e-12)
    ste = readout.ADC(full_scale=1e-6, bits=4, mode="ste")
    np.testing.assert_allclose(ste(i), adc(i), rtol=0)
    np.testing.assert_allclose(jax.vmap(jax.grad(lambda c: ste(c)))(i), [1, 1, 1, 1, 0])
    smooth = readout.ADC(full_scale=1e-6, bits=4, mode="smooth", sharpness=200.0)
    # ≥ 0.2 LSB away from the decision points
    u = (jnp.arange(-6, 7)[:, None] + jnp.array([-0.3, 0.0, 0.3])).ravel() * 1e-6 / 7
    np.testing.assert_allclose(smooth(u), adc(u), rtol=1e-12, atol=1e-24)


def test_uniform_drift_is_removed_by_compensation(model):
    w = jr.uniform(jr.key(1), (64, 16), minval=-1, maxval=1)
    x = jr.uniform(jr.key(2), (8, 64), minval=-1, maxval=1)
    gp, gm, scale = readout.weights_to_pairs(w, model.g_max)
    t = 86400.0
    # one ν for the whole tile: a global gain undoes it exactly, whether measured or from the power law
    same = (PCMState(gp, jnp.full_like(gp, 0.06)), PCMState(gm, jnp.full_like(gm, 0.06)), scale)
    drifted = readout.currents_to_outputs(
        readout.analog_mvm(model.conductance(same[0], t), model.conductance(same[1], t), x), scale
    )
    alpha = readout.power_law_compensation(t, 0.06, model.t0)
    np.testing.assert_allclose(alpha * drifted, x @ w, rtol=1e-12)
    ref = readout.probe_outputs(gp, gm)
    now = readout.probe_outputs(model.conductance(same[0], t), model.conductance(same[1], t))
    assert float(readout.global_drift_compensation(ref, now)) == pytest.approx(float(alpha), rel=1e-12)
    # one ν per column: only the per-column gains undo it
    nu_col = jnp.linspace(0.03, 0.1, 16)
    nu = jnp.broadcast_to(nu_col, gp.shape)
    cols = (PCMState(gp, nu), PCMState(gm, nu), scale)
    y_col = readout.currents_to_outputs(
        readout.analog_mvm(model.conductance(cols[0], t), model.conductance(cols[1], t), x), scale
    )
    now = readout.probe_outputs(model.conductance(cols[0], t), model.conductance(cols[1], t))
    np.testing.assert_allclose(readout.per_column_drift_compensation(ref, now) * y_col, x @ w, rtol=1e-12)
    assert float(readout.relative_error(readout.global_drift_compensation(ref, now) * y_col, x @ w)) > 0.01


def test_mvm_error_gradients_match_finite_differences(model):
    """Relative MVM error of a programmed and drifted 32×32 tile (keys fixed, smooth 6-bit ADC) against the
    noise scales, g_max, the compensation reference time, the ADC range and a power-law compensation
    exponent."""
    w = jr.uniform(jr.key(1), (32, 32), minval=-1, maxval=1)
    x = jr.uniform(jr.key(2), (8, 32), minval=-1, maxval=1)
    k_prog, k_read = jr.key(3), jr.key(4)
    t = 86400.0

    def error(p):
        m = imcphys.replace(
            model, g_max=p["g_max"], prog_noise_scale=p["prog"], read_noise_scale=p["read"], drift_scale=p["drift"]
        )
        adc = readout.ADC(full_scale=p["adc_range"], bits=6, mode="smooth", sharpness=4.0)
        tile = program_tile(m, w, key=k_prog)
        y = tile_outputs(m, tile, x, t, key=k_read, compensation="global", t_ref=p["t_ref"], adc=adc)
        y = y * readout.power_law_compensation(t, p["nu_comp"], m.t0)  # a second, model-based gain
        return readout.relative_error(y, x @ w)

    p0 = {"g_max": 25e-6, "prog": 1.0, "read": 1.0, "drift": 1.0, "t_ref": 10.0, "adc_range": 30e-6, "nu_comp": 0.01}
    p0 = {k: jnp.asarray(v) for k, v in p0.items()}
    value_and_grad = jax.jit(jax.value_and_grad(error))  # one compilation for values and gradients
    err0, grads = value_and_grad(p0)
    assert 0.02 < float(err0) < 0.5
    for name in p0:
        fd = central_difference(lambda v, n=name: value_and_grad({**p0, n: jnp.asarray(v)})[0], float(p0[name]))
        assert float(grads[name]) == pytest.approx(fd, rel=1e-4), name
        assert abs(fd * float(p0[name])) > 1e-5, name  # every parameter matters
