"""IGZO TFT and 2T0C gain cell: sub-threshold physics, retention (event vs quadrature vs analytic), the published
card figures, gradients, vmap and input errors."""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import central_difference

import imcphys
from imcphys.constants import K_B, K_B_EV, Q

LI2025 = imcphys.cards_dir() / "igzo_2t0c_li2025.toml"
ITZO = imcphys.cards_dir() / "itzo_2t0c.toml"


@pytest.fixture(scope="module")
def li_cell() -> imcphys.Cell2T0C:
    return imcphys.load_card(LI2025)


#: Compiled once for every cell of the same structure (parameters are traced): eager JAX would compile each op.
LEVEL_RETENTION = eqx.filter_jit(lambda cell: cell.level_retention())
READ_LEVELS = eqx.filter_jit(lambda cell: cell.read_current(cell.level_voltages()))


@pytest.fixture(scope="module")
def event_retention():
    """One compiled event solve for every test: (cell, v0, lower, upper, v_wbl) -> t [s]."""
    return eqx.filter_jit(lambda cell, v0, lo, hi, v_wbl=0.0: cell.retention_time_event(v0, lo, hi, v_wbl=v_wbl))


# ----------------------------------------------------------------------------------------- transistor physics
def test_subthreshold_swing_thermal_limit_from_codata():
    # SS = (kT/q) ln 10 at n = 1 with the exact SI 2019 k and q: 59.52 mV/dec at 300 K
    tft = imcphys.IGZOTransistor(ideality=1.0, temperature=300.0)
    expected = 1.380649e-23 * 300.0 / 1.602176634e-19 * math.log(10.0)
    assert float(tft.subthreshold_swing()) == pytest.approx(expected, rel=1e-14)
    assert float(tft.subthreshold_swing()) == pytest.approx(0.05952, abs=1e-5)
    assert K_B == 1.380649e-23 and Q == 1.602176634e-19


def test_one_decade_per_swing_in_subthreshold():
    tft = imcphys.IGZOTransistor(off_current=0.0, temperature=330.0)
    ss = float(tft.subthreshold_swing())
    vt = float(tft.threshold_at_temperature())
    v_gs = jnp.array([vt - 1.2, vt - 1.2 + ss, vt - 1.2 + 2 * ss])
    i = np.asarray(tft.drain_current(v_gs, 1.0))
    np.testing.assert_allclose(i[1:] / i[:-1], 10.0, rtol=1e-6)
    # drain factor 1 − exp(−V_DS/φ_t) of the sub-threshold current
    phi = K_B * 330.0 / Q
    ratio = float(tft.drain_current(vt - 1.2, phi) / tft.drain_current(vt - 1.2, 1.0))
    assert ratio == pytest.approx(1.0 - math.exp(-1.0), rel=1e-6)


def test_current_smooth_antisymmetric_and_power_law_above_threshold():
    tft = imcphys.IGZOTransistor(off_current=0.0)
    # saturation far above threshold: I_sq (W/L) (V_GS − V_T)^(γ+1)
    vt, p = float(tft.threshold_voltage), float(tft.band_tail_exponent) + 1
    i_sat = float(tft.drain_current(vt + 1.5, 3.0))
    assert i_sat == pytest.approx(float(tft.sheet_current * tft.width / tft.length) * 1.5**p, rel=1e-6)
    # source/drain exchange and a finite, continuous slope through V_DS = 0
    assert float(tft.drain_current(1.2, -0.3)) == pytest.approx(-float(tft.drain_current(1.5, 0.3)), rel=1e-12)
    g = jax.grad(lambda v: tft.drain_current(1.2, v))
    assert float(g(0.0)) == pytest.approx(float(g(1e-7)), rel=1e-4)
    assert float(g(-1e-7)) == pytest.approx(float(g(1e-7)), rel=1e-4)


# ----------------------------------------------------------------------------------------------- retention
def test_retention_event_matches_constant_leak_and_quadrature(li_cell, event_retention):
    # Word line at −1 V: the write transistor is deep off and the Arrhenius floor I_off·W is the whole leak, so
    # t_ret = C_SN·ΔV/I_leak (analytic, constant-leak limit).
    v, margin = li_cell.level_voltages()[4], li_cell.level_margin()
    leak = float(li_cell.write_transistor().off_current_per_width() * li_cell.write_width)
    analytic = float(li_cell.storage_capacitance) * float(margin) / leak
    t_event = float(event_retention(li_cell, v, v - margin, v + margin, 0.0))
    t_quad = float(eqx.filter_jit(lambda c: c.retention_time(v, v - margin, v + margin))(li_cell))
    assert t_event == pytest.approx(analytic, rel=1e-4)
    assert t_quad == pytest.approx(t_event, rel=1e-7)


def test_a_cell_written_outside_its_margin_has_zero_retention(li_cell, event_retention):
    """Not inf: a level written outside its margin has already failed (Monte Carlo counts it as an error)."""
    v, margin = li_cell.level_voltages()[4], li_cell.level_margin()
    for v0 in (v - 1.5 * margin, v + 1.5 * margin):
        assert float(eqx.filter_jit(lambda c, x: c.retention_time(x, v - margin, v + margin))(li_cell, v0)) == 0.0
        assert float(event_retention(li_cell, v0, v - margin, v + margin, 0.0)) == 0.0
    offsets = jnp.array([0.0, 1.5]) * margin
    t = np.asarray(eqx.filter_jit(lambda c, o: jax.vmap(lambda x: c.level_retention(v_offset=x))(o))(li_cell, offsets))
    assert np.all(t[0] > 100.0) and np.all(t[1] == 0.0)


def test_log_time_decay_when_storage_node_is_the_source(event_retention):
    # Bit line held at 1.2 V above the node: the node is the write transistor's source, V_GS = V_WWL − V_SN
    # falls as it charges, and V_SN(t) = nφ_t ln(e^{V0/nφ_t} + A t/(C nφ_t)): one SS per decade of time.
    cell = imcphys.Cell2T0C(off_current=0.0, hold_wordline_voltage=0.0, temperature=300.0)
    v_wbl = 1.2
    ts = jnp.geomspace(10.0, 1e4, 7)
    v = np.asarray(eqx.filter_jit(lambda c: c.hold_trace(0.0, jnp.concatenate([jnp.zeros(1), ts]), v_wbl=v_wbl))(cell))[
        1:
    ]
    ss = float(cell.write_transistor().subthreshold_swing())
    slope = np.diff(v) / np.diff(np.log10(np.asarray(ts)))
    np.testing.assert_allclose(slope, ss, rtol=2e-3)
    n_phi = ss / math.log(10.0)
    a = -float(cell.leak_current(0.0, v_wbl))  # current into the node at V_SN = 0 [A]
    analytic = n_phi * np.log(1.0 + a * np.asarray(ts) / (float(cell.storage_capacitance) * n_phi))
    np.testing.assert_allclose(v, analytic, atol=2e-4)  # the drain factor 1 − e^{−V_DS/φt} ≈ 1 − 1e-12
    # retention (upward exit) by the event and by quadrature agree in this exponential regime too
    t_quad = float(eqx.filter_jit(lambda c: c.retention_time(0.2, 0.1, 0.3, v_wbl=v_wbl))(cell))
    t_event = float(event_retention(cell, 0.2, 0.1, 0.3, v_wbl))
    assert t_quad == pytest.approx(t_event, rel=1e-6)


def test_li2025_card_holds_eight_levels_over_100_s_at_25C(li_cell, event_retention):
    assert li_cell.levels == 8  # published: 3-bit cell (Li et al. 2025)
    assert float(li_cell.write_length) == pytest.approx(180e-9) and float(li_cell.read_length) == pytest.approx(270e-9)
    v, margin = li_cell.level_voltages(), li_cell.level_margin()
    t = np.array([float(event_retention(li_cell, vk, vk - margin, vk + margin, 0.0)) for vk in v])
    assert np.all(t > 100.0)  # published: retention > 100 s
    np.testing.assert_allclose(np.asarray(LEVEL_RETENTION(li_cell)), t, rtol=1e-6)  # fast path vs event
    # read current rises monotonically with the level: the levels are distinguishable
    assert np.all(np.diff(np.asarray(READ_LEVELS(li_cell))) > 0)


def test_itzo_card_retention_over_1e4_s():
    cell = imcphys.load_card(ITZO)
    assert float(cell.off_current) * 1e-6 == pytest.approx(2.33e-18, rel=1e-12)  # A/µm, published
    t = np.asarray(LEVEL_RETENTION(cell))
    assert np.all(t > 1e4)  # published: > 10 000 s (level 0 sits at the bit-line hold level: never leaves)


def test_arrhenius_slope_recovers_card_activation_energy(li_cell):
    temps = jnp.array([298.15, 318.15, 338.15, 358.15])
    t = jax.jit(jax.vmap(lambda temp: li_cell.at_temperature(temp).level_retention()))(temps)
    assert np.all(np.diff(np.asarray(t), axis=0) < 0)  # retention falls with temperature
    for level in (0, 7):
        slope = np.polyfit(1.0 / (K_B_EV * np.asarray(temps)), np.log(np.asarray(t[:, level])), 1)[0]
        assert slope == pytest.approx(float(li_cell.off_activation_energy), rel=0.01)


# ------------------------------------------------------------------------------------------ gradients, vmap
def _retention_quadrature(cell, c_sn, v_t, v_write):
    """Retention [s] of the level at 0.65 V (margin 50 mV) after writing with the bit line at ``v_write`` [V]."""
    cell = imcphys.replace(cell, storage_capacitance=c_sn, threshold_voltage=v_t)
    return cell.retention_time(cell.write(v_write, fixed_steps=8), 0.6, 0.7)


@pytest.mark.parametrize("event", [False, True])
def test_retention_gradients_match_finite_differences(li_cell, event, event_retention):
    # Hot and with the word line at −0.6 V: sub-threshold and floor both leak, so V_T matters. The quadrature
    # path is differentiated through the write (fixed-step backward Euler) w.r.t. the write voltage; the event
    # solve w.r.t. the written level it starts from (the write's own derivative is the same code).
    cell = imcphys.replace(li_cell, hold_wordline_voltage=-0.6, temperature=358.15)

    def fn(c_sn, v_t, v, adjoint=None):
        cell_x = imcphys.replace(cell, storage_capacitance=c_sn, threshold_voltage=v_t)
        if event:
            if adjoint is None:
                return event_retention(cell_x, v, 0.6, 0.7, 0.0)
            return cell_x.retention_time_event(v, 0.6, 0.7, adjoint=adjoint)
        return _retention_quadrature(cell, c_sn, v_t, v)

    x0 = (2e-15, 0.5, 0.656 if event else 0.8)
    f = fn if event else jax.jit(fn)
    if event:  # forward mode: compiles several times faster than reverse mode through the event solve
        grads = jax.jit(jax.jacfwd(lambda *x: fn(*x, adjoint=diffrax.ForwardMode()), argnums=(0, 1, 2)))(*x0)
    else:
        grads = jax.jit(jax.jacfwd(fn, argnums=(0, 1, 2)))(*x0)
    assert np.isfinite(float(f(*x0))) and float(f(*x0)) > 0
    for k, g in enumerate(grads):

        def partial(x, k=k):
            args = list(x0)
            args[k] = x
            return f(*args)

        fd = central_difference(partial, x0[k], rel=1e-5)
        assert float(g) == pytest.approx(fd, rel=2e-4), f"argument {k}"
        assert abs(float(g)) > 0


def test_vmap_over_cells_equals_loop(li_cell):
    cells = [
        imcphys.replace(li_cell, storage_capacitance=c, threshold_voltage=vt, off_current=i)
        for c, vt, i in ((1.5e-15, 0.45, 2e-12), (2e-15, 0.5, 1e-12), (3e-15, 0.6, 5e-13))
    ]
    pop = imcphys.population.stack(cells)
    batched = np.asarray(eqx.filter_jit(eqx.filter_vmap(lambda c: c.level_retention()))(pop))
    looped = np.stack([np.asarray(LEVEL_RETENTION(c)) for c in cells])
    np.testing.assert_allclose(batched, looped, rtol=1e-13)
    read_b = np.asarray(eqx.filter_jit(eqx.filter_vmap(lambda c: c.read_current(c.level_voltages())))(pop))
    np.testing.assert_allclose(read_b, np.stack([np.asarray(READ_LEVELS(c)) for c in cells]), rtol=1e-13)


def test_write_fixed_step_matches_adaptive_and_kickback(li_cell):
    adaptive = float(eqx.filter_jit(lambda c: c.write(0.8))(li_cell))
    fixed = float(eqx.filter_jit(lambda c: c.write(0.8, fixed_steps=64))(li_cell))
    assert fixed == pytest.approx(adaptive, abs=2e-3)
    # an abrupt fall gives the full kickback C_c/C_SN·ΔV_WWL; a 2 ns fall gives some of it back
    abrupt = float(li_cell.write(0.8, fall=0.0))
    ratio = float(li_cell.coupling_capacitance / li_cell.storage_capacitance)
    swing = float(li_cell.write_wordline_voltage - li_cell.hold_wordline_voltage)
    assert abrupt == pytest.approx(0.8 - ratio * swing, abs=1e-6)
    assert abrupt < adaptive < 0.8


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors(li_cell):
    with pytest.raises(ValueError, match="storage_capacitance"):
        imcphys.Cell2T0C(storage_capacitance=0.0)
    with pytest.raises(ValueError, match="storage_capacitance"):
        imcphys.Cell2T0C(storage_capacitance=-1e-15)
    with pytest.raises(ValueError, match="64 levels do not fit"):
        imcphys.Cell2T0C(levels=64)
    with pytest.raises(ValueError, match="do not fit"):
        li_cell.level_voltages(levels=40)
    with pytest.raises(ValueError, match="cannot be written"):
        imcphys.Cell2T0C(window_high=2.2)
    with pytest.raises(ValueError, match="temperature"):
        imcphys.Cell2T0C(temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        li_cell.at_temperature(-10.0)
    with pytest.raises(ValueError, match="temperature"):
        imcphys.IGZOTransistor(temperature=0.0)


# ------------------------------------------------------------------------------ fast hold path, classifier
def test_fast_hold_path_matches_diffrax(li_cell):
    ts = np.geomspace(1.0, 1e4, 9)
    hot = li_cell.at_temperature(358.15)
    v0 = jnp.asarray(li_cell.level_voltages())
    ref = np.asarray(
        eqx.filter_jit(eqx.filter_vmap(lambda v: hot.hold_trace(v, jnp.concatenate([jnp.zeros(1), jnp.asarray(ts)]))))(
            v0
        )
    )[:, 1:]
    fast = np.asarray(eqx.filter_jit(lambda c: c.hold_voltage(v0, ts))(hot))
    far = ref > 0.1  # away from the bit-line level where a fully decayed node settles
    assert far.sum() > 20
    assert np.max(np.abs(fast - ref)[far]) < 2e-3


def test_classifier_loss_gradients_match_finite_differences(li_cell):
    from imcphys.experiments import igzo_2t0c_retention

    x_tr, y_tr, x_te, y_te = igzo_2t0c_retention.digits_split()
    w, b = igzo_2t0c_retention.train_classifier(x_tr[:300], y_tr[:300], steps=100)
    q, scale = igzo_2t0c_retention.quantise_int4(w)
    x, y = jnp.asarray(x_te[:64]), jnp.asarray(y_te[:64])
    hot = imcphys.replace(li_cell, temperature=358.15)
    v_levels = jax.jit(igzo_2t0c_retention.current_linear_levels)(hot)
    # write voltages calibrated on the nominal cell, as a controller would
    v_write = jax.jit(lambda c, v: igzo_2t0c_retention.write_voltages(c, v, fixed_steps=8))(hot, v_levels)
    i_levels = hot.read_current(v_levels)
    unit = (i_levels[-1] - i_levels[0]) / (igzo_2t0c_retention.MAGNITUDES - 1)

    def loss(c_sn, v_t, offset):
        cell = imcphys.replace(hot, storage_capacitance=c_sn, threshold_voltage=v_t)
        return igzo_2t0c_retention.smooth_loss(cell, v_write, unit, offset, q, scale, b, x, y, hold_time=10.0)

    x0 = (2e-15, 0.5, 0.0)
    f = jax.jit(loss)
    grads = jax.jit(jax.jacfwd(loss, argnums=(0, 1, 2)))(*x0)  # forward mode: half the compile time of grad
    for k, g in enumerate(grads):

        def partial(v, k=k):
            args = list(x0)
            args[k] = v
            return f(*args)

        fd = central_difference(partial, x0[k], rel=1e-5, abs_step=1e-6)
        assert float(g) == pytest.approx(fd, rel=1e-3, abs=1e-9 * abs(fd) + 1e-12), f"argument {k}"
        assert abs(float(g)) > 0


def test_montecarlo_retention_ber_study(tmp_path, li_cell):
    from imcphys.montecarlo import population_key

    temps, times = [298.15, 358.15], [1.0, 100.0, 1e3, 86400.0]
    run = imcphys.montecarlo(
        "igzo_retention_ber",
        card=LI2025,
        cells=64,
        chunk_cells=32,
        key=jax.random.key(3),
        out=tmp_path / "mc",
        progress=False,
        temperatures=temps,
        hold_times=times,
    )
    ber = np.asarray(run.ber())  # (temperature, time)
    # independent check: the same cells (population_key) through level_retention directly
    card = imcphys.read_card(LI2025)
    pop = imcphys.population.sample(li_cell, card.variability_specs(), 64, key=population_key(jax.random.key(3)))
    per_temp = eqx.filter_jit(eqx.filter_vmap(lambda c, t: c.at_temperature(t).level_retention(), in_axes=(0, None)))
    ret = np.stack([np.asarray(per_temp(pop, jnp.asarray(t))) for t in temps])  # (temperature, cell, level)
    expected = (ret[:, None] < np.asarray(times)[None, :, None, None]).mean(axis=(2, 3))
    np.testing.assert_allclose(ber, expected, rtol=0, atol=1e-12)
    assert np.all(np.diff(ber, axis=1) >= 0) and np.all(ber[1] >= ber[0])  # worse with time and temperature
    assert ber[0, 0] == 0.0 and ber[0, -1] == 1.0  # every level holds 1 s at 25 °C and none survives a day
