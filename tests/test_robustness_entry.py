"""Property-based robustness of the entry points (hypothesis): program-and-verify schemes, fitting, the CSV loader
and the stimuli, under random and extreme inputs — each call raises a clear error naming what is wrong, or returns
finite values (and finite gradients where it is differentiable). Solver failures are reported, never hidden."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from robustness import CLEAR_ERRORS, assert_names, decades, examples, finite, voltages, widths

import imcphys
from imcphys.data import load_csv
from imcphys.experiments.reram_stanford import DEMO_SPREAD
from imcphys.population import sample
from imcphys.program import Bidirectional, IncrementalAmplitude, Smoothing, WriteCost, program, value_and_grad

CELLS = 8
ITERATIONS = 6
seeds = st.integers(0, 2**31 - 1)
magnitudes = st.floats(1e-3, 50.0)  # beyond the ReRAM's 3 V range: clipped by the scheme
pulse_widths = st.floats(1e-12, 1e-3)


# ------------------------------------------------------------------------------------------ program & verify
@pytest.fixture(scope="module")
def population():
    dev = imcphys.StanfordReRAM()
    return sample(dev, DEMO_SPREAD, CELLS, key=jax.random.key(1)), dev.read(jnp.linspace(1.5e-9, 0.4e-9, 4))


@examples(150)
@given(
    set_start=magnitudes,
    set_step=st.floats(0.0, 5.0),
    reset_start=magnitudes,
    reset_step=st.floats(0.0, 5.0),
    set_width=pulse_widths,
    reset_width=pulse_widths,
    tolerance=st.floats(1e-3, 5.0),
    seed=seeds,
)
def test_program_exact_any_scheme(
    population, set_start, set_step, reset_start, reset_step, set_width, reset_width, tolerance, seed
):
    """Exact program-and-verify with any bidirectional scheme: finite reads, errors, energy and time; pulse counts
    within the budget; cells reported converged exactly when their final error is inside the tolerance."""
    pop, levels = population
    scheme = Bidirectional(
        iterations=ITERATIONS,
        set_start=set_start,
        set_step=set_step,
        reset_start=reset_start,
        reset_step=reset_step,
        set_width=set_width,
        reset_width=reset_width,
        tolerance=tolerance,
    )
    rep = program(pop, scheme, targets=levels, key=jax.random.key(seed), verify="exact", initial="set", fixed_steps=4)
    assert finite((rep.read, rep.error, rep.energy, rep.time, rep.state))
    pulses = np.asarray(rep.pulses)
    assert np.all((pulses >= 0) & (pulses <= ITERATIONS)) and np.all(np.asarray(rep.energy) >= 0)
    np.testing.assert_array_equal(np.asarray(rep.converged), np.abs(np.asarray(rep.error)) < tolerance)


@examples(60)
@given(
    start=st.floats(0.5, 3.0),
    step=st.floats(1e-3, 0.5),
    width=st.floats(1e-10, 1e-6),
    tolerance=st.floats(0.01, 1.0),
    tau=decades(0.05, 1.0),
    seed=seeds,
)
def test_program_smooth_gradients_finite(population, start, step, width, tolerance, tau, seed):
    """The smooth relaxation's objective and its gradient w.r.t. every setting, at any temperature."""
    pop, levels = population
    scheme = IncrementalAmplitude(iterations=ITERATIONS, start=start, step=step, width=width, tolerance=tolerance)
    smoothing = Smoothing(verify=tau, polarity=tau, clip=tau, device=tau)
    value, grads = value_and_grad(
        scheme,
        pop,
        targets=levels,
        objective=WriteCost(pulse_weight=0.01, energy_weight=1e7),
        key=jax.random.key(seed),
        verify="smooth",
        smoothing=smoothing,
        initial="reset",
        fixed_steps=4,
    )
    assert np.isfinite(value) and finite(grads)


@examples(200)
@given(
    name=st.sampled_from(["start", "step", "width", "tolerance"]),
    value=st.one_of(st.floats(-1e3, 0.0), st.just(float("nan")), st.just(float("inf"))),
    iterations=st.integers(-2, 3),
)
def test_scheme_bad_settings_raise_naming_them(name, value, iterations):
    good = dict(start=1.0, step=0.1, width=1e-8, tolerance=0.1)
    with pytest.raises(ValueError) as err:
        IncrementalAmplitude(iterations=3, **(good | {name: value}))
    assert_names(err.value, f"IncrementalAmplitude.{name}")
    if iterations < 1:
        with pytest.raises(ValueError) as err:
            IncrementalAmplitude(iterations=iterations, **good)
        assert_names(err.value, "iterations")


# ------------------------------------------------------------------------------------------------ fitting
POINTS = 12


def _iv(device, v):
    return device.current(device.gap_min, v)


@examples(60)
@given(
    observed=st.lists(
        st.one_of(decades(1e-6, 6.0), decades(1e-6, 6.0).map(lambda x: -x)), min_size=POINTS, max_size=POINTS
    ),
    v0=decades(0.25, 1.0),
    seed=seeds,
)
def test_fit_any_data_finite_or_flagged(observed, v0, seed):
    """Levenberg–Marquardt fits of two parameters to arbitrary (even absurd) currents spanning 12 decades: a
    finite best fit and cost; every standard error finite, or infinite with the parameter flagged."""
    v = jnp.linspace(-0.5, 0.5, POINTS)
    exp = imcphys.Experiment(_iv, v, np.asarray(observed), residual=imcphys.LogAbs(), x=v, name="I-V")
    res = imcphys.fit(
        imcphys.StanfordReRAM(v0=v0),
        exp,
        free=["i0", "v0"],
        key=jax.random.key(seed),
        starts=2,
        candidates=4,
        max_steps=16,
        batch=2,
        progress=False,
    )
    assert np.all(np.isfinite(res.values)) and np.all(res.values > 0) and np.isfinite(res.cost)
    for se, status in zip(res.std_errors, res.status):
        assert np.isfinite(se) or status != "ok"


@examples(100)
@given(bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]), where=st.integers(0, POINTS - 1))
def test_fit_bad_data_raise_clear_errors(bad, where):
    observed = np.full(POINTS, 1e-6)
    observed[where] = bad
    with pytest.raises(ValueError) as err:
        imcphys.Experiment(_iv, jnp.linspace(-0.5, 0.5, POINTS), observed, residual=imcphys.LogAbs(), name="I-V")
    assert_names(err.value, f"element {where}")


def test_fit_bad_arguments_raise_clear_errors():
    exp = imcphys.Experiment(_iv, jnp.linspace(-0.5, 0.5, POINTS), np.full(POINTS, 1e-6), residual=imcphys.LogAbs())
    dev = imcphys.StanfordReRAM()
    for kwargs, name in (
        (dict(free=["no_such_parameter"]), "no_such_parameter"),
        (dict(free=["v0"], starts=0), "starts"),
        (dict(free=["v0"], spread=1.0), "spread"),
    ):
        with pytest.raises(ValueError) as err:
            imcphys.fit(dev, exp, key=jax.random.key(0), progress=False, **kwargs)
        assert_names(err.value, name)


# --------------------------------------------------------------------------------------------- CSV loader
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr), st.integers(-(10**6), 10**6).map(str)
)
bad_cells = st.sampled_from(["", "nan", "inf", "-inf", "abc", "1e999", "1,5", "0x1p3", " "])
units = st.sampled_from(
    ["s", "ms", "V", "mV", "A", "nA", "uS", "degC", "1", "ohm", "Hz", "furlong/fortnight", "parsec", "blorp", "", "m/s"]
)
names = st.sampled_from(["t", "time", "V", "I", "G", "f_clk", "T", "amplitude", "width"])


@st.composite
def csv_texts(draw):
    cols = draw(st.lists(names, min_size=1, max_size=4))
    header = []
    for name in cols:
        style = draw(st.integers(0, 5))
        header.append(name if style == 0 else f"{name} [{draw(units)}]")
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        cells = [draw(st.one_of(numbers, numbers, numbers, bad_cells)) for _ in range(len(cols))]
        if draw(st.integers(0, 9)) == 0:
            cells = cells[:-1] if draw(st.booleans()) else cells + ["1"]
        rows.append(",".join(cells))
    lines = [",".join(header)] + rows
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "# a comment")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "")
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


@examples(500)
@given(text=csv_texts())
def test_load_csv_random_files(tmp_path_factory, text):
    """Random (mostly malformed) CSV files: a dataset of finite SI columns with a time column that increases, or a
    ValueError naming the file and the row (or the header) at fault."""
    path = tmp_path_factory.getbasetemp() / "random.csv"
    path.write_text(text)
    try:
        data = load_csv(path)
    except ValueError as err:
        assert str(path) in str(err) and "row" in str(err), str(err)
        return
    assert len(data) >= 1 and data.names
    for name in data.names:
        column = data[name]
        assert column.shape == (len(data),) and np.all(np.isfinite(column))
    time = next((n for n in data.names if n.lower() in ("t", "time")), None)
    if time is not None:
        assert np.all(np.diff(data[time]) > 0)


def test_load_csv_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_csv(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------------------ stimuli
@examples(100)
@given(
    amplitudes=st.lists(st.one_of(voltages, st.just(float("nan"))), min_size=1, max_size=4),
    width=st.one_of(widths, st.floats(-1.0, 0.0)),
    period=st.one_of(widths, st.just(float("inf"))),
    v_max=st.one_of(voltages, st.just(float("inf"))),
    rate=st.one_of(decades(1.0, 6.0), st.floats(-1.0, 0.0)),
)
def test_stimuli_finite_or_clear_errors(amplitudes, width, period, v_max, rate):
    """Pulse trains, triangle sweeps and holds: finite waveforms with increasing breakpoints, or a ValueError
    naming the argument."""
    for build, args in (
        (imcphys.pulse_train, (amplitudes, width, period)),
        (imcphys.triangle_sweep, (v_max, rate)),
        (imcphys.hold, (amplitudes[0], width)),
    ):
        try:
            stim = build(*args)
        except CLEAR_ERRORS as err:
            assert_names(err, "amplitude", "width", "period", "v_max", "ramp_time", "duration", "value", "stimulus")
            continue
        tb = np.asarray(stim.breakpoints)
        assert np.all(np.isfinite(tb)) and np.all(np.diff(tb) >= 0)
        assert np.all(np.isfinite(np.asarray(jax.vmap(stim)(jnp.linspace(tb[0], tb[-1], 17)))))


# ------------------------------------------------------------------------------------------ solver failures
def test_solver_failure_is_reported_never_silent():
    """An adaptive solve that runs out of steps: ``throw=False`` reports it in ``Solution.result``; the default
    raises. Never a silently wrong state."""
    dev = imcphys.StanfordReRAM()
    stim = imcphys.stimulus.pulse(2.0, 1e-6)
    ts = jnp.array([0.0, 1e-6])
    ok = imcphys.simulate(dev, dev.gap_max, stim, ts)
    assert ok.result == diffrax.RESULTS.successful
    bad = imcphys.simulate(dev, dev.gap_max, stim, ts, max_steps=2, throw=False)
    assert bad.result != diffrax.RESULTS.successful
    with pytest.raises(CLEAR_ERRORS) as err:
        imcphys.simulate(dev, dev.gap_max, stim, ts, max_steps=2)
    assert_names(err.value, "maximum number of solver steps")
