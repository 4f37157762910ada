"""Property-based robustness of the Flash family (hypothesis): the Dickson pump, the Fowler–Nordheim floating-gate
cell, its pump-fed pulses and ISPP — each call raises a clear error naming the parameter, or returns finite values
and finite gradients. Control-gate voltages to ±50 V, widths 1 ps – 1e6 s, parameters across decades."""

from __future__ import annotations

import equinox as eqx
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
    value_and_jvp,
    voltages,
    widths,
)

from imcphys.models.flash import DicksonPump, FloatingGateCell, fowler_nordheim_current_density, ispp

seeds = st.integers(0, 2**31 - 1)
PUMP_PARAMS = dict(
    supply_voltage=decades(1.8, 1.0),
    clock_amplitude=decades(1.8, 1.0),
    clock_frequency=decades(10e6, 3.0),
    capacitance=decades(1.25e-12, 3.0),
    stray_capacitance=st.one_of(st.just(0.0), decades(0.2e-12, 3.0)),
    threshold_voltage=st.floats(0.0, 2.0),
    switch_resistance=decades(20e3, 3.0),
    clock_resistance=st.one_of(st.just(0.0), decades(1e3, 3.0)),
    output_capacitance=decades(1.5e-12, 3.0),
    load_conductance=st.one_of(st.just(0.0), decades(1e-6, 3.0)),
    load_current=st.one_of(st.just(0.0), decades(1e-6, 3.0)),
)


# ------------------------------------------------------------------------------------------------ the pump
@pytest.fixture(scope="module")
def pump_closed_forms():
    def run(diff):
        pump, x, i_extra = diff
        ss = pump.steady_state(i_extra)
        return (
            ss.v_out,
            ss.ripple,
            ss.supply_power,
            pump.output_resistance(),
            pump.stage_resistances(),
            pump.ladder_rhs(x, i_extra),
            pump.supply_power(x),
            pump.regulation_ripple(0.5 * ss.v_out),
            pump.regulated_nodes(0.5 * ss.v_out),
        )

    return value_and_jvp(run)


@examples(400)
@given(
    params=st.fixed_dictionaries(PUMP_PARAMS),
    nodes=st.lists(st.floats(-50.0, 50.0), min_size=4, max_size=4),
    i_extra=st.floats(0.0, 1e-3),
    seed=seeds,
)
def test_pump_finite_values_and_gradients(pump_closed_forms, params, nodes, i_extra, seed):
    """Steady state, output resistance, the averaged ladder's vector field at any node voltages to ±50 V, supply
    power and regulation: finite, with finite derivatives w.r.t. every parameter, node and load."""
    pump = DicksonPump(**params)
    diff = (pump, jnp.asarray(nodes), jnp.asarray(i_extra))
    out, tangent = pump_closed_forms(diff, direction(diff, seed))
    assert finite(out) and finite(tangent)
    assert np.all(np.asarray(out[4]) > 0)  # every stage resistance is positive
    assert float(out[3]) > 0 and float(out[1]) >= 0


@examples(200)
@given(
    name=st.sampled_from(sorted(PUMP_PARAMS) + ["stages"]),
    value=st.one_of(st.floats(-1e3, -1e-12), st.just(float("nan")), st.just(float("inf"))),
)
def test_pump_bad_parameters_raise_naming_them(name, value):
    if name == "stages":
        value = int(value) if np.isfinite(value) else 0
    with pytest.raises(ValueError) as err:
        DicksonPump(**{name: value})
    assert_names(err.value, f"DicksonPump.{name}", "DicksonPump.stages")


# -------------------------------------------------------------------------------------- floating-gate cell
CELL_PARAMS = dict(
    tunnel_oxide_thickness=decades(8e-9, 1.0),
    coupling_ratio=st.floats(0.01, 0.99),
    tunnel_area=decades(1e-14, 2.0),
    barrier_height=st.floats(0.5, 5.0),
    erase_barrier_height=st.floats(0.5, 5.0),
    oxide_mass_ratio=decades(0.42, 1.0),
    slope_factor=st.floats(1.0, 3.0),
    specific_current=decades(0.5e-6, 2.0),
    read_current=decades(0.1e-6, 2.0),
    temperature=temperatures,
)


@pytest.fixture(scope="module")
def cell_physics():
    def run(diff):
        cell, dvth, v_cg, width = diff
        return (
            cell.tunnel_current_density(dvth, v_cg),
            cell.dvth_rate(dvth, v_cg),
            cell.gate_current(dvth, v_cg),
            cell.constant_voltage_pulse(dvth, v_cg, width),
            cell.read(dvth),
            cell.drain_current(dvth, v_cg),
        )

    return value_and_jvp(run)


@examples(250)
@given(params=st.fixed_dictionaries(CELL_PARAMS), dvth=st.floats(-20.0, 20.0), v_cg=voltages, width=widths, seed=seeds)
def test_cell_tunnelling_never_overflows(cell_physics, params, dvth, v_cg, width, seed):
    """Fowler–Nordheim current, rate, the exact constant-voltage pulse and the read at control-gate voltages to
    ±50 V: finite values and derivatives; a pulse moves ΔV_th toward V_CG and never past it."""
    cell = FloatingGateCell(**params)
    diff = (cell, *(jnp.asarray(x, dtype=float) for x in (dvth, v_cg, width)))
    out, tangent = cell_physics(diff, direction(diff, seed))
    assert finite(out) and finite(tangent)
    after = float(out[3])
    assert min(dvth, v_cg) - 1e-9 <= after <= max(dvth, v_cg) + 1e-9


@examples(200)
@given(field=st.one_of(st.floats(-1e12, 1e12), st.just(0.0)), seed=seeds)
def test_fowler_nordheim_at_any_field(field, seed):
    a, b = 1.15e-6, 2.53e10
    j, dj = jax.jvp(lambda e: fowler_nordheim_current_density(e, a, b), (jnp.asarray(field),), (jnp.asarray(1.0),))
    assert np.isfinite(float(j)) and np.isfinite(float(dj))
    assert np.sign(float(j)) == np.sign(field) or float(j) == 0.0


@examples(200)
@given(
    name=st.sampled_from(sorted(CELL_PARAMS) + ["wordline_resistance", "cells_per_wordline"]),
    value=st.one_of(st.floats(-1e3, 0.0), st.just(float("nan")), st.just(float("inf"))),
)
def test_cell_bad_parameters_raise_naming_them(name, value):
    if name == "coupling_ratio" and value == 0.0:
        value = 1.0  # (0, 1) open at both ends
    with pytest.raises(ValueError) as err:
        FloatingGateCell(**{name: value})
    assert_names(err.value, f"FloatingGateCell.{name}")


# ---------------------------------------------------------------------------------------- pump-fed pulses
@pytest.fixture(scope="module")
def pump_fed_pulse():
    def run(diff):
        cell, dvth, amplitude, width = diff
        res = cell.pulse(dvth, amplitude, width, fixed_steps=8)
        return cell.read(res.state), res.energy

    return value_and_jvp(run)


@examples(60)
@given(
    dvth=st.floats(-5.0, 5.0),
    amplitude=voltages,
    width=widths,
    tox=decades(8e-9, 0.3),
    alpha=st.floats(0.3, 0.8),
    seed=seeds,
)
def test_pump_fed_pulse_finite_or_refused(pump_fed_pulse, dvth, amplitude, width, tox, alpha, seed):
    """A pulse through the pump at any requested voltage to ±50 V: beyond the cell's amplitude range (within the
    pump's reach) it is refused with a clear error (never clipped); within it, finite V_th, energy and
    derivatives."""
    cell = FloatingGateCell(tunnel_oxide_thickness=tox, coupling_ratio=alpha)
    limit = min(float(cell.pump.steady_state().v_out), cell.max_amplitude)
    diff = (cell, *(jnp.asarray(x, dtype=float) for x in (dvth, amplitude, width)))
    try:
        (vth, energy), tangent = pump_fed_pulse(diff, direction(diff, seed))
    except CLEAR_ERRORS as err:
        assert abs(amplitude) > limit
        assert_names(err, "amplitude outside", "requested voltage exceeds what the DicksonPump can hold")
        return
    assert abs(amplitude) <= limit
    assert np.isfinite(float(vth)) and np.isfinite(float(energy)) and float(energy) >= 0 and finite(tangent)


@pytest.fixture(scope="module")
def ispp_run():
    def run(cells, dvth0, v_start, v_step, width, verify):
        res = ispp(
            cells,
            dvth0,
            v_start=v_start,
            v_step=v_step,
            width=width,
            verify_level=verify,
            max_pulses=4,
            fixed_steps=2,
            pump_substeps=1,
        )
        return res.final_vth, res.pulses, res.energy_per_cell

    return eqx.filter_jit(run)


@examples(40)
@given(
    dvth0=st.lists(st.floats(-4.0, 0.0), min_size=3, max_size=3),
    v_start=st.floats(8.0, 14.0),
    v_step=st.floats(0.0, 1.0),
    width=st.floats(1e-7, 1e-4),
    verify=st.floats(-2.0, 4.0),
)
def test_ispp_finite_or_refused(ispp_run, dvth0, v_start, v_step, width, verify):
    """Pump-fed ISPP on a word line of three cells: finite V_th and energy, pulse counts within the budget; a
    schedule beyond the pump's reach is refused. (Its gradients are those of the pump-fed pulse, tested above.)"""
    cells = FloatingGateCell()
    reach = float(cells.pump.steady_state().v_out)
    try:
        vth, pulses, energy = ispp_run(
            cells, *(jnp.asarray(x, dtype=float) for x in (dvth0, v_start, v_step, width, verify))
        )
    except CLEAR_ERRORS as err:
        assert v_start + 3 * v_step > reach
        assert_names(err, "requested voltage exceeds what the DicksonPump can hold")
        return
    assert finite((vth, pulses, energy))
    assert np.all((np.asarray(pulses) >= 0) & (np.asarray(pulses) <= 4)) and float(energy) >= 0


@examples(100)
@given(
    width=st.one_of(st.floats(-1.0, 0.0), st.just(float("nan"))),
    v_step=st.floats(-5.0, -1e-6),
    max_pulses=st.integers(-3, 0),
)
def test_ispp_bad_settings_raise_naming_them(width, v_step, max_pulses):
    cells = FloatingGateCell()
    for kwargs, name in (
        (dict(width=width), "ispp width"),
        (dict(v_step=v_step), "ispp v_step"),
        (dict(max_pulses=max_pulses), "max_pulses"),
    ):
        settings = dict(v_start=10.0, v_step=0.5, width=1e-6, verify_level=2.0, max_pulses=4) | kwargs
        with pytest.raises(ValueError) as err:
            ispp(cells, jnp.zeros(2), **settings)
        assert_names(err.value, name)
