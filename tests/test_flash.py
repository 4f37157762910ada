"""Flash through a charge pump: Dickson pump (averaged vs switched vs Dickson's formula), Fowler–Nordheim
cell, pump-fed programming, ISPP, gradients, vmap/jit, bad input, cards and the measured SKY130 data.

Reference numbers: Dickson, IEEE JSSC 11(3), 374 (1976) (steady state and output resistance); Lenzlinger &
Snow, J. Appl. Phys. 40, 278 (1969) and Sze & Ng, *Physics of Semiconductor Devices* 3rd ed. (2007), ch. 6
(FN: A = 1.54e-6·(m_0/m_ox)/φ_B A/V², B = 6.83e7·(m_ox/m_0)^½·φ_B^{3/2} V/cm, φ_B in eV); Suh et al., IEEE
JSSC 30(11), 1149 (1995) (ISPP: ΔV_th per step = ΔV_pp in steady state).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.constants as sc
from conftest import central_difference

import imcphys
from imcphys.models.flash import (
    DicksonPump,
    FloatingGateCell,
    fowler_nordheim_coefficients,
    fowler_nordheim_current_density,
    ispp,
    program_wordline_switched,
    simulate_switched,
    switched_steady_state,
)
from imcphys.population import Normal, sample


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def cell():
    return FloatingGateCell()


@pytest.fixture(scope="module")
def population(cell):
    spread = {"tunnel_oxide_thickness": Normal(std=0.03, relative=True), "coupling_ratio": Normal(std=0.02)}
    return sample(cell, spread, 6, key=jax.random.key(3))


@pytest.fixture(scope="module")
def steady_switched():
    return eqx.filter_jit(lambda p: switched_steady_state(p))


def _arrays(f):
    """Call ``f`` with its numbers as arrays: ``eqx.filter_jit`` treats Python floats as static (a recompile
    each)."""
    return lambda c, *xs: f(c, *(jnp.asarray(x, dtype=float) for x in xs))


@pytest.fixture(scope="module")
def pulse_fixed():
    return _arrays(eqx.filter_jit(lambda c, d, a, w: c.pulse(d, a, w, fixed_steps=32)))


@pytest.fixture(scope="module")
def pulse_adaptive():
    return _arrays(eqx.filter_jit(lambda c, d, a, w: c.pulse(d, a, w)))


def dickson(n, vdd, vphi, vt, c, cs, f, i):
    """Dickson (1976), eq. for the output with threshold and stray capacitance."""
    return vdd - vt + n * (c / (c + cs) * vphi - vt - i / (f * (c + cs)))


def mean_offset(c_node, c_load, f, i):
    """Cycle mean below Dickson's end-of-transfer output: I·C'/(8 f C_L (C' + C_L)) (this module's analysis)."""
    return i * c_node / (8 * f * c_load * (c_node + c_load))


# ------------------------------------------------------------------------------------------ Fowler–Nordheim
def test_fn_coefficients_from_codata_and_textbook():
    a, b = fowler_nordheim_coefficients(3.2, 0.42)
    phi, m_ox = 3.2 * sc.e, 0.42 * sc.m_e  # scipy's CODATA, independent of imcphys.constants
    a_ref = sc.e**3 * sc.m_e / (8 * math.pi * sc.h * phi * m_ox)
    b_ref = 8 * math.pi * math.sqrt(2 * m_ox) * phi**1.5 / (3 * sc.e * sc.h)
    assert float(a) == pytest.approx(a_ref, rel=1e-8)
    assert float(b) == pytest.approx(b_ref, rel=1e-8)
    # Sze & Ng: A = 1.54e-6/(φ·m_ox/m0) A/V² = 1.146e-6; B = 6.83e7·sqrt(0.42)·3.2^1.5 V/cm = 2.533e10 V/m
    assert float(a) == pytest.approx(1.54e-6 / (3.2 * 0.42), rel=2e-3)
    assert float(b) == pytest.approx(6.83e7 * math.sqrt(0.42) * 3.2**1.5 * 100, rel=2e-3)
    # B ∝ φ^{3/2} m^{1/2}, A ∝ 1/(φ m)
    a2, b2 = fowler_nordheim_coefficients(4.0, 0.5)
    assert float(b2 / b) == pytest.approx((4.0 / 3.2) ** 1.5 * math.sqrt(0.5 / 0.42), rel=1e-12)
    assert float(a2 / a) == pytest.approx(3.2 * 0.42 / (4.0 * 0.5), rel=1e-12)


def test_fn_plot_slope_is_minus_b():
    a, b = fowler_nordheim_coefficients(3.2, 0.42)
    e = jnp.array([8e8, 1.0e9, 1.2e9])
    j = fowler_nordheim_current_density(e, a, b)
    slope = np.polyfit(1.0 / np.asarray(e), np.log(np.asarray(j) / np.asarray(e) ** 2), 1)[0]
    assert slope == pytest.approx(-float(b), rel=1e-10)
    assert float(fowler_nordheim_current_density(-1e9, a, b)) == pytest.approx(-float(j[1]), rel=1e-14)
    assert float(jax.grad(lambda x: fowler_nordheim_current_density(x, a, b))(0.0)) == 0.0


def test_constant_voltage_closed_form_matches_ode(cell):
    # program from erased and erase from programmed: the exact solution against the adaptive ODE (core
    # simulate)
    solve = _arrays(
        eqx.filter_jit(
            lambda c, d, v, w: imcphys.simulate(
                c, d, imcphys.hold(v, w), jnp.stack([0.0 * w, w]), rtol=1e-10, atol=1e-12
            )
        )
    )
    for dvth0, v_cg, width in [(-3.0, 17.0, 10e-6), (2.0, -17.0, 50e-6), (-3.0, 14.0, 1e-3)]:
        exact = float(cell.constant_voltage_pulse(dvth0, v_cg, width))
        sol = solve(cell, dvth0, v_cg, width)
        assert float(sol.states[-1]) == pytest.approx(exact, abs=1e-6)
        assert (exact - dvth0) * v_cg > 0  # positive V_CG programs, negative erases


def test_read_is_vth_at_read_current(cell):
    d = jnp.array([-3.0, 0.0, 2.5])
    vth = cell.read(d)
    np.testing.assert_allclose(cell.drain_current(d, vth), float(cell.read_current), rtol=1e-12)
    np.testing.assert_allclose(np.diff(np.asarray(vth)), np.diff(np.asarray(d)), rtol=1e-12)
    # weak inversion: 1/(n U_T) per volt; U_T = kT/q at 300 K
    u_t = sc.k * 300.0 / sc.e
    v = float(vth[1]) - 0.4
    slope = jax.grad(lambda x: jnp.log(cell.drain_current(0.0, x)))(v)
    assert float(slope) == pytest.approx(1.0 / (1.3 * u_t), rel=2e-3)


# -------------------------------------------------------------------------------------------- Dickson pump
@pytest.mark.parametrize("stages", [1, 2, 5, 12])
def test_steady_state_is_dickson_formula(stages):
    for f, c, i in [(1e5, 1e-12, 0.0), (1e6, 5e-12, 1e-7), (2e7, 20e-12, 20e-6)]:
        c_load = 100 * c
        r_on = 1e-7 / (f * c)  # R_on → 0: complete transfer, and the load current drops < 1e-10 V in R_on
        ideal = DicksonPump(
            stages=stages,
            clock_frequency=f,
            capacitance=c,
            stray_capacitance=0.0,
            threshold_voltage=0.0,
            clock_resistance=0.0,
            output_capacitance=c_load,
            switch_resistance=r_on,
            load_current=i,
        )
        expected = (stages + 1) * 1.8 - stages * i / (f * c) - mean_offset(c, c_load, f, i)  # (N+1)V_DD − N I/(fC)
        assert float(ideal.steady_state().v_out) == pytest.approx(expected, rel=1e-10, abs=1e-12)
        real = imcphys.replace(ideal, threshold_voltage=0.5, stray_capacitance=0.3 * c, clock_amplitude=1.5)
        expected = dickson(stages, 1.8, 1.5, 0.5, c, 0.3 * c, f, i) - mean_offset(1.3 * c, c_load, f, i)
        assert float(real.steady_state().v_out) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_output_resistance_is_n_over_fc():
    for stages, f, c in [(3, 1e6, 1e-12), (8, 2e7, 10e-12)]:
        pump = DicksonPump(
            stages=stages,
            clock_frequency=f,
            capacitance=c,
            stray_capacitance=0.0,
            output_capacitance=1e4 * c,
            switch_resistance=1e-7 / (f * c),
        )
        r_out = -jax.grad(lambda i, pump=pump: pump.steady_state(i).v_out)(0.0)
        assert float(r_out) == pytest.approx(stages / (f * c), rel=1e-4)  # + C/(8fC_L(C+C_L)): 1e-5 relative

        def v_out(cs, pump=pump):
            return imcphys.replace(pump, stray_capacitance=cs, load_current=1e-6).steady_state().v_out

        assert float(jax.grad(v_out)(0.1 * c)) == pytest.approx(central_difference(v_out, 0.1 * c), rel=1e-6)


def test_switched_agrees_with_averaged_and_dickson(steady_switched):
    base = dict(stages=3, clock_frequency=1e6, capacitance=1.25e-12, output_capacitance=30e-12)
    cases = [
        dict(
            switch_resistance=2e3,
            clock_resistance=1.0,
            stray_capacitance=0.0,
            threshold_voltage=0.0,
            load_current=1e-6,
        ),  # ideal Dickson pump
        dict(switch_resistance=2e3, clock_resistance=1.0, stray_capacitance=0.25e-12, load_current=1e-6),
        dict(switch_resistance=40e3, clock_resistance=1e3, load_conductance=1 / 19e6),  # incomplete transfer
        dict(switch_resistance=20e3, clock_resistance=20e3, load_current=0.3e-6),  # clock swing 1 − tanh(10)
    ]
    for case in cases:
        pump = DicksonPump(**base, **case)
        avg, sw = pump.steady_state(), steady_switched(pump)
        assert float(sw.v_out) == pytest.approx(float(avg.v_out), rel=2e-4), case
        assert float(sw.supply_power) == pytest.approx(float(avg.supply_power), rel=2e-3), case
    ideal = DicksonPump(**base, **cases[0])
    expected = dickson(3, 1.8, 1.8, 0.0, 1.25e-12, 0.0, 1e6, 1e-6) - mean_offset(1.25e-12, 30e-12, 1e6, 1e-6)
    assert float(steady_switched(ideal).v_out) == pytest.approx(expected, rel=2e-4)
    # energy: an ideal pump draws (N+1)·V_DD per coulomb delivered
    assert float(steady_switched(ideal).supply_power) == pytest.approx(4 * 1.8 * 1e-6, rel=2e-3)


def test_ripple_is_load_over_f_cl(steady_switched):
    pump = DicksonPump(
        stages=3,
        clock_frequency=1e6,
        capacitance=1.25e-12,
        stray_capacitance=0.0,
        threshold_voltage=0.0,
        clock_resistance=1.0,
        switch_resistance=2e3,
        output_capacitance=62.5e-12,
        load_current=2e-6,
    )
    ripple = float(steady_switched(pump).ripple)
    # ≈ I_L/(f·C_L) = 32 mV; a little less because the last device conducts all its half period (C' shares the
    # drain then: I/(2f)·(1/C_L + 1/(C_L + C')) = 31.7 mV) and the transfer through R_on is not instantaneous
    assert ripple == pytest.approx(2e-6 / (1e6 * 62.5e-12), rel=0.04)
    assert ripple == pytest.approx(2e-6 / 2e6 * (1 / 62.5e-12 + 1 / 63.75e-12), rel=0.02)
    assert float(pump.steady_state().ripple) == pytest.approx(2e-6 / (1e6 * 62.5e-12), rel=1e-12)


def test_rise_time_averaged_vs_switched():
    pump = DicksonPump(
        stages=4, clock_frequency=5e6, switch_resistance=2e3, output_capacitance=6e-12, load_current=1e-6
    )
    cycles = 240
    sw = simulate_switched(pump, cycles, samples=3)
    t_sw, v_sw = (np.arange(cycles) + 0.5) / 5e6, np.asarray(sw.cycle_mean())
    ts = jnp.linspace(0.0, cycles / 5e6, 481)
    avg = imcphys.simulate(pump, pump.initial_state("rest"), imcphys.hold(0.0, cycles / 5e6), ts)
    v_avg = np.asarray(avg.observed)
    assert v_avg[-1] == pytest.approx(float(pump.steady_state().v_out), rel=5e-4)  # 8 time constants
    assert v_sw[-1] == pytest.approx(v_avg[-1], rel=2e-3)

    def rise(t, v):
        x = (v - v[0]) / (v[-1] - v[0])
        return np.interp(0.9, x, t) - np.interp(0.1, x, t)

    assert rise(t_sw, v_sw) == pytest.approx(rise(np.asarray(ts), v_avg), rel=0.03)
    # energy drawn while rising and settling (0.4 % of the steady-state power × time is the rise itself)
    assert float(sw.energy[-1]) == pytest.approx(float(avg.energy[-1]), rel=0.03)


# ---------------------------------------------------------------------------------- pump-fed programming
def test_pump_fed_pulse_fixed_vs_adaptive_vs_switched(cell, pulse_fixed, pulse_adaptive):
    d0 = cell.initial_state()
    for v in (16.0, 20.0, -18.0):
        start = d0 if v > 0 else 2.0
        fixed = pulse_fixed(cell, start, v, 10e-6)
        adaptive = pulse_adaptive(cell, start, v, 10e-6)
        assert float(fixed.state) == pytest.approx(float(adaptive.state), abs=0.01)
        assert float(fixed.energy) == pytest.approx(float(adaptive.energy), rel=0.01)
    # the switched pump (every clock phase, bang-bang regulator) against the averaged one
    sw = program_wordline_switched(cell, d0, 20.0, 10e-6)
    fixed = pulse_fixed(cell, d0, 20.0, 10e-6)
    assert float(sw.dvth[0]) == pytest.approx(float(fixed.state), abs=0.04)
    assert float(sw.energy_per_cell) == pytest.approx(float(fixed.energy), rel=0.06)
    # the pump's rise costs programming against an ideal 20 V source; a pump already regulated at 20 V costs
    # only the word line's charging (R_wl·C_wl = 20 ns) and the charge-sharing dip: within 50 mV of the source
    ideal = float(cell.constant_voltage_pulse(d0, 20.0, 10e-6))
    assert float(fixed.state) < ideal - 0.3
    warm = pulse_fixed(dataclasses.replace(cell, pump_precharged=True), d0, 20.0, 10e-6)
    assert float(warm.state) == pytest.approx(ideal, abs=0.05)


# --------------------------------------------------------------------------------------------------- ISPP
@pytest.mark.parametrize("thickness", [7e-9, 9e-9])
def test_ispp_step_equals_dvpp(cell, thickness):
    dev = imcphys.replace(cell, tunnel_oxide_thickness=thickness)
    for width in (1e-6, 10e-6, 100e-6):
        res = ispp(
            dev,
            dev.initial_state(),
            v_start=13.0,
            v_step=0.5,
            width=width,
            verify_level=jnp.inf,
            max_pulses=24,
            source="ideal",
        )
        steps = np.diff(np.asarray(res.vth))[-4:]
        np.testing.assert_allclose(steps, 0.5, rtol=0.01)
    # through the regulated pump the mean output sits half a regulation ripple above target, and that ripple
    # shrinks as the target rises: the step is ΔV_pp·(1 − 1/(2 R_out f (C_L + C'))) (module analysis)
    pump = dev.pump
    slope = 1 - 1 / (
        2 * pump.output_resistance() * pump.clock_frequency * (pump.output_capacitance + pump.node_capacitance())
    )
    for width in (10e-6, 100e-6):
        res = ispp(
            dev,
            dev.initial_state(),
            v_start=13.0 if thickness < 8e-9 else 15.0,
            v_step=0.5,
            width=width,
            verify_level=jnp.inf,
            max_pulses=16,
        )
        steps = np.diff(np.asarray(res.vth))[-4:]
        np.testing.assert_allclose(steps, 0.5 * float(slope), rtol=0.01)


def test_ispp_verify_and_gradients_of_width(population):
    verify = 2.0
    kw = dict(verify_level=verify, max_pulses=12, fixed_steps=12)

    def width_of(v_start, v_step, width):
        res = ispp(population, population.initial_state(), v_start=v_start, v_step=v_step, width=width, **kw)
        return jnp.std(res.final_vth)

    res = ispp(population, population.initial_state(), v_start=15.0, v_step=0.4, width=10e-6, **kw)
    final = np.asarray(res.final_vth)
    assert np.all(final >= verify) and np.all(np.asarray(res.verified) == 1.0)
    assert np.all(final < verify + 0.4 + 0.05)  # overshoot at most one step (plus the pump's ripple offset)
    assert np.all(np.asarray(res.pulses) >= 1)
    assert float(res.energy_per_cell) > 0.0
    args = (15.0, 0.4, 10e-6)
    grads = jax.grad(width_of, argnums=(0, 1, 2))(*args)
    for i, g in enumerate(grads):
        fd = central_difference(
            lambda x, i=i: width_of(*[x if j == i else a for j, a in enumerate(args)]), args[i], rel=1e-5
        )
        assert float(g) == pytest.approx(fd, rel=1e-3, abs=1e-9), i


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_reported(cell):
    with pytest.raises(ValueError, match="stages"):
        DicksonPump(stages=0)
    with pytest.raises(ValueError, match="clock_frequency"):
        DicksonPump(clock_frequency=0.0)
    with pytest.raises(ValueError, match="clock_frequency"):
        DicksonPump(clock_frequency=-1e6)
    with pytest.raises(ValueError, match="coupling_ratio"):
        FloatingGateCell(coupling_ratio=1.2)
    assert cell.amplitude_range() == ((0.0, 22.0), (-22.0, 0.0))  # static, within the pump's reach
    with pytest.raises(ValueError, match="max_amplitude"):
        FloatingGateCell(max_amplitude=30.0)  # beyond the 25.0 V the default pump holds under its divider
    # max_amplitude <= the pump's reach (checked above): a pulse beyond it is refused by the amplitude range
    reach = float(cell.pump.steady_state().v_out)
    with pytest.raises(ValueError, match=r"amplitude 25.5\d* V is outside \[-22, 22\] V"):
        cell.pulse(cell.initial_state(), reach + 0.5, 10e-6, fixed_steps=8)
    with pytest.raises(ValueError, match=r"amplitude -25.5\d* V is outside \[-22, 22\] V"):
        cell.pulse(cell.initial_state(), -(reach + 0.5), 10e-6, fixed_steps=8)
    heavy = DicksonPump(load_conductance=1e-5)  # 100 kΩ on the TT07-like pump: 4.7 V unloaded, far less here
    with pytest.raises(ValueError, match="reachable"):
        heavy.check_reach(4.0)
    with pytest.raises(eqx.EquinoxRuntimeError, match="exceeds what the DicksonPump can hold"):
        eqx.filter_jit(lambda v: heavy.check_reach(v))(jnp.asarray(4.0))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"FloatingGateCell.pulse: amplitude outside \[-22, 22\] V"):
        eqx.filter_jit(lambda a: cell.pulse(cell.initial_state(), a, 10e-6, fixed_steps=8).state)(
            jnp.asarray(reach + 0.5)
        )
    with pytest.raises(ValueError, match="rise"):
        cell.pulse(cell.initial_state(), 18.0, 10e-6, rise=1e-7, fixed_steps=8)
    with pytest.raises(ValueError, match="pump_capacitance"):
        pop = sample(cell, {"pump_capacitance": Normal(std=0.1, relative=True)}, 3, key=jax.random.key(0))
        ispp(pop, pop.initial_state(), v_start=15.0, v_step=0.5, width=1e-5, verify_level=2.0, max_pulses=2)


# -------------------------------------------------------------------------------------- cards and silicon
def test_cards_load(cell):
    fg = imcphys.load_card(imcphys.cards_dir() / "flash_fg.toml")
    for name, value in imcphys.parameters(cell).items():
        np.testing.assert_allclose(getattr(fg, name), value, rtol=1e-12, err_msg=name)
    assert fg.pump_stages == 10
    tt07 = imcphys.load_card(imcphys.cards_dir() / "dickson_tt07.toml")
    assert isinstance(tt07, DicksonPump) and tt07.stages == 3
    assert float(tt07.capacitance) == pytest.approx(1.25e-12)
    # the fitted silicon pump behind the floating-gate cell: 3 stages hold 4.5 V, so max_amplitude must follow
    with pytest.raises(ValueError, match="max_amplitude"):
        fg.with_pump(tt07)
    on_tt07 = fg.with_pump(tt07, max_amplitude=4.0)
    assert on_tt07.pump == tt07 and on_tt07.amplitude_range()[0][1] == 4.0


def test_sonos_window_inside_sky130_spec(pulse_fixed):
    card = imcphys.read_card("sonos_sky130")
    rows = {"VTE4522C": card.spec["erased_vt"], "VTP4522C": card.spec["programmed_vt"]}  # published E-test limits
    sonos = card.device()
    assert float(sonos.read_current) == pytest.approx(2.05e-6)  # VT defined at I_D = 2.05 µA
    # published conditions: program V_G = +6.7 V, well −3.8 V for 2 ms; erase the reverse for 6 ms
    d = sonos.initial_state("erased")
    assert float(sonos.read(d)) == pytest.approx(float(rows["VTE4522C"]["nominal"]), abs=1e-3)
    for _ in range(2):  # cycle to the periodic program/erase state
        d = pulse_fixed(sonos, d, 10.5, 2e-3).state
        vt_p = float(sonos.read(d))
        d = pulse_fixed(sonos, d, -10.5, 6e-3).state
        vt_e = float(sonos.read(d))
    for vt, name in [(vt_p, "VTP4522C"), (vt_e, "VTE4522C")]:
        assert rows[name]["lower"] < vt < rows[name]["upper"], name
        assert vt == pytest.approx(float(rows[name]["nominal"]), abs=0.1), name


def test_tt07_pump_fit_reaches_target():
    from imcphys.experiments import flash_pump_fit

    f, v = flash_pump_fit.load_measurement()
    res = flash_pump_fit.fit(f, v)
    band = (f >= 50e3) & (f <= 20e6)
    assert float(np.sqrt(np.mean(res["residuals"][band] ** 2))) <= 0.1  # the bar: ≤ 0.1 V rms
    assert np.all(res["std_log"] < 0.2)  # every fitted parameter determined to better than 20 %
    card = imcphys.load_card(imcphys.cards_dir() / "dickson_tt07.toml")
    fitted = np.exp(res["theta"]) * np.array([s for s, _, _ in flash_pump_fit.FREE.values()])
    for value, name in zip(fitted, flash_pump_fit.FREE, strict=True):
        assert float(getattr(card, name)) == pytest.approx(float(value), rel=1e-3), name
