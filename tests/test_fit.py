"""Fitting: transforms, standard errors against scipy, ReRAM round trips (DC sweep and pulse response), standard
errors against the spread of fits over noise realisations, flags, the report, the CLI and the notebook.

Synthetic "measurements" are simulated from the official Stanford RRAM card with the reference (adaptive)
solver and multiplicative log-normal noise of NOISE decades, then fitted from a card whose free parameters are
perturbed by 30–50 % (random sign). A fit "recovers" a parameter when it lies within 3 reported standard
errors of the truth (99.7 % for a correct Gaussian error) and, where the data determine it, within 5 %.
"""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO
from scipy.optimize import curve_fit

import imcphys
from imcphys.data import Dataset
from imcphys.fit import Free, LogAbs
from imcphys.fit._transforms import _make_transform

NOISE = 0.02  # decades of current, about 4.7 % rms
CARD = imcphys.cards_dir() / "reram_stanford_v1.toml"
DC_FREE = ["i0", "gap_decay_length", "v0", "gamma0_reset"]
PULSE_FREE = ["activation_energy", "gamma0", "gap_decay_length"]  # the user story's names
SEEDS = range(5)


@pytest.fixture(scope="module")
def truth():
    return imcphys.load_card(CARD)


@pytest.fixture(scope="module")
def dc_clean(truth):
    """The official DC test: triangle 0 → 2 V → 0 → −2 V → 0 with 4 ms ramps, 201 samples, from RESET."""
    ts = np.linspace(0.0, 16e-3, 201)
    solve = eqx.filter_jit(
        lambda d, t: imcphys.simulate(d, d.gap_max, imcphys.triangle_sweep(2.0, 4e-3), t, rtol=1e-8, atol=1e-10)
    )
    sol = solve(truth, ts)
    return ts, np.asarray(sol.drive), np.asarray(sol.observed)


PULSE_AMPLITUDES = np.concatenate([np.linspace(1.2, 1.6, 17), np.linspace(-0.9, -1.5, 25)])  # V, 50 ns each


@pytest.fixture(scope="module")
def pulse_clean(truth):
    """Incremental SET then RESET pulses (50 ns) from RESET, read at 0.1 V after each; adaptive reference."""
    step = jax.jit(lambda g, a: truth.pulse(g, a, 50e-9).state)
    gap, reads = truth.gap_max, []
    for a in PULSE_AMPLITUDES:
        gap = step(gap, a)
        reads.append(float(truth.read(gap)))
    return np.array(reads)


def dc_data(dc_clean, rng) -> Dataset:
    ts, v, i = dc_clean
    noisy = i * 10 ** (NOISE * rng.standard_normal(i.shape))
    return Dataset.from_arrays({"t": (ts * 1e3, "ms"), "V": (v, "V"), "I": (noisy * 1e6, "uA")})


def pulse_data(pulse_clean, rng) -> Dataset:
    noisy = pulse_clean * 10 ** (NOISE * rng.standard_normal(pulse_clean.shape))
    return Dataset.from_arrays(
        {
            "amplitude": (PULSE_AMPLITUDES, "V"),
            "width": (np.full(PULSE_AMPLITUDES.shape, 50.0), "ns"),
            "I": (noisy, "A"),
        }
    )


def perturbed(device, names, rng):
    factors = 1 + rng.choice([-1.0, 1.0], len(names)) * rng.uniform(0.3, 0.5, len(names))
    return imcphys.replace(device, **{n: float(getattr(device, n)) * f for n, f in zip(names, factors)})


def true_values(device, names):
    return np.array([float(getattr(device, n)) for n in names])


def recovered(result, truth_values, rel: float = 0.05) -> bool:
    err = np.abs(result.values - truth_values)
    return bool(np.all(err < 3 * result.std_errors) and np.all(err < rel * np.abs(truth_values)))


# --------------------------------------------------------------------------------------------- transforms
def test_transforms_map_onto_bounds_and_back(truth):
    specs = [
        "gap_velocity",
        Free("beta", log=False),
        Free("gamma0", lower=10.0),
        Free("gamma0_reset", upper=20.0),
        Free("activation_energy", lower=0.3, upper=1.5),
    ]
    tr = _make_transform(truth, specs)
    assert tr.log == (True, False, True, True, True)
    p0 = true_values(truth, tr.names)
    theta0 = tr.theta(p0)
    np.testing.assert_allclose(tr.params(jnp.asarray(theta0)), p0, rtol=1e-12)
    np.testing.assert_allclose(theta0[[0, 1]], 0.0, atol=1e-15)  # unbounded: θ = 0 at the start value
    # far out in θ every bound holds and the saturated ones are flagged
    for sign, side in ((-1.0, "lower"), (1.0, "upper")):
        p = np.asarray(tr.params(jnp.full(5, 40.0 * sign)))
        assert np.all(p[[0, 2, 3, 4]] > 0) and p[2] >= 10.0 and p[3] <= 20.0 and 0.3 <= p[4] <= 1.5
        flags = tr.pinned(np.full(5, 40.0 * sign))
        assert flags == [None, None, "lower" if side == "lower" else None, "upper" if side == "upper" else None, side]
    assert tr.pinned(theta0) == [None] * 5


def test_declared_ranges_bound_a_fit(truth):
    # StanfordReRAM declares v0 in (0, 10] V and i0 in (0, 10] mA: a fit stays inside them without --free bounds
    tr = _make_transform(truth, ["v0", "i0", "gap_velocity"])
    high = np.asarray(tr.params(jnp.full(3, 40.0)))
    assert high[0] <= 10.0 and high[1] <= 1e-2 and high[2] > 1e10  # gap_velocity: only >= 0, the log scale holds it
    assert np.all(np.asarray(tr.params(jnp.full(3, -40.0))) > 0)


def test_a_start_on_a_closed_declared_bound_keeps_the_bound():
    # IGZOTransistor declares trap_ideality in [1, inf): started at 1 (its default), a fit may not go below it
    from imcphys.models import IGZOTransistor

    tft = IGZOTransistor()
    tr = _make_transform(tft, ["trap_ideality"])
    theta = tr.theta(np.array([float(tft.trap_ideality)]))
    assert np.all(np.isfinite(theta))
    assert float(tr.params(jnp.asarray(theta))[0]) == pytest.approx(1.0, rel=1e-8)
    assert float(tr.params(jnp.full(1, -40.0))[0]) >= 1.0


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_parameter", "has no parameter 'no_such_parameter'"),
        (Free("v0", lower=0.3), "must lie strictly inside the bounds"),
        (Free("v0", lower=0.3, upper=0.2), "must be below the upper bound"),
        (Free("v0", lower=-1.0, log=True), "log scale needs a positive"),
    ],
)
def test_bad_free_parameters_are_named(truth, spec, message):
    with pytest.raises(ValueError, match=message):
        _make_transform(truth, [spec])


# ----------------------------------------------------------------- standard errors on a closed-form model
def _iv_model(device, inputs):
    gap, v = inputs
    return device.current(gap, v)


@pytest.fixture(scope="module")
def static_iv(truth):
    """I–V of the LRS (g_min) and HRS (g_max) states below the switching threshold, with noise."""
    v = np.tile(np.linspace(0.05, 0.6, 30), 2)
    gap = np.repeat([float(truth.gap_min), float(truth.gap_max)], 30)
    rng = np.random.default_rng(11)
    i = np.asarray(truth.current(gap, v)) * 10 ** (NOISE * rng.standard_normal(v.shape))
    return gap, v, i


def test_standard_errors_and_correlations_match_scipy_curve_fit(truth, static_iv):
    gap, v, i = static_iv
    exp = imcphys.Experiment(
        _iv_model,
        (jnp.asarray(gap), jnp.asarray(v)),
        i,
        residual=LogAbs(),
        x=v,
        x_label="V [V]",
        y_label="I [A]",
        name="static I-V",
    )
    start = imcphys.replace(truth, i0=1.3e-3, gap_decay_length=0.2e-9, v0=0.3)
    res = imcphys.fit(
        start, exp, free=["i0", "gap_decay_length", "v0"], key=jax.random.key(0), starts=1, candidates=0, progress=False
    )

    # independent: scipy on log10|I| = log10 I0 − g/(g0 ln 10) + log10 sinh(V/V0), same noise estimate, in
    # well-scaled coordinates (ln I0, g0 in nm, V0) whose errors convert exactly
    def log_i(x, ln_i0, g0_nm, v0):
        return ln_i0 / np.log(10) - x[0] * 1e9 / (g0_nm * np.log(10)) + np.log10(np.sinh(x[1] / v0))

    q, cov = curve_fit(log_i, np.stack([gap, v]), np.log10(i), p0=[np.log(1.3e-3), 0.2, 0.3])
    p = np.array([np.exp(q[0]), q[1] * 1e-9, q[2]])
    se = np.sqrt(np.diag(cov)) * np.array([p[0], 1e-9, 1.0])
    np.testing.assert_allclose(res.values, p, rtol=1e-6)
    np.testing.assert_allclose(res.std_errors, se, rtol=1e-4)
    np.testing.assert_allclose(res.correlation, cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov))), atol=1e-4)
    assert res.status == ("ok", "ok", "ok")
    assert res.rms[0] == pytest.approx(NOISE, rel=0.2)


def test_unconstrained_and_pinned_parameters_are_flagged(truth, static_iv):
    gap, v, i = static_iv
    exp = imcphys.Experiment(_iv_model, (jnp.asarray(gap), jnp.asarray(v)), i, residual=LogAbs())
    # the static I–V does not depend on the activation energy: no information, flagged, infinite error
    res = imcphys.fit(
        truth, exp, free=["v0", "activation_energy"], key=jax.random.key(0), starts=1, candidates=0, progress=False
    )
    assert res.status == ("ok", "unconstrained") and np.isinf(res.std_errors[1])
    assert np.isfinite(res.std_errors[0]) and "unconstrained" in str(res.summary())
    # V0 = 0.25 V in truth, but capped at 0.2 V: the fit ends at the bound, flagged, no standard error
    start = imcphys.replace(truth, v0=0.15)
    res = imcphys.fit(
        start, exp, free=["i0", Free("v0", upper=0.2)], key=jax.random.key(0), starts=1, candidates=0, progress=False
    )
    assert res.status[1] == "at upper bound" and np.isnan(res.std_errors[1])
    assert res.values[1] == pytest.approx(0.2, rel=0.01)


# ---------------------------------------------------------------------------------------------- DC sweep
@pytest.fixture(scope="module")
def dc_round_trips(truth, dc_clean):
    results = []
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        data = dc_data(dc_clean, rng)
        start = perturbed(truth, DC_FREE, rng)
        # the DC landscape of these parameters is benign: the start and one random draw, no screening; one
        # start at a time, like the spread fits below (one compilation)
        results.append(
            imcphys.fit(
                start,
                imcphys.dc_sweep(data),
                free=DC_FREE,
                key=jax.random.key(seed),
                starts=2,
                batch=1,
                candidates=0,
                progress=False,
            )
        )
    return results


def test_dc_sweep_round_trip_recovers_parameters(truth, dc_round_trips):
    ok = [recovered(r, true_values(truth, DC_FREE)) for r in dc_round_trips]
    assert sum(ok) >= 0.8 * len(ok), [r.values / true_values(truth, DC_FREE) for r in dc_round_trips]
    for r in dc_round_trips:
        # the residual scale estimates the noise put in (0.02 decades)
        assert r.noise == pytest.approx(NOISE, rel=0.15)
        assert np.all(r.relative_errors < 0.01) and r.status == ("ok",) * 4


@pytest.fixture(scope="module")
def spread_fits_dc(truth, dc_clean):
    fits = []
    for seed in range(20):
        data = dc_data(dc_clean, np.random.default_rng(200 + seed))
        fits.append(
            imcphys.fit(
                truth,
                imcphys.dc_sweep(data),
                free=DC_FREE,
                key=jax.random.key(seed),
                starts=1,
                batch=1,
                candidates=0,
                progress=False,
            )
        )
    return fits


def test_dc_sweep_standard_errors_match_spread_over_noise_realisations(truth, spread_fits_dc):
    values = np.array([f.values for f in spread_fits_dc])
    reported = np.median([f.std_errors for f in spread_fits_dc], axis=0)
    ratio = values.std(axis=0, ddof=1) / reported
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio
    # no bias: the mean of the fits lies within 3 standard errors of the mean of the truth. This also bounds
    # the error of the fit's loose solver tolerances (rtol 1e-3) against the rtol 1e-8 data.
    mean_error = np.abs(values.mean(axis=0) - true_values(truth, DC_FREE))
    assert np.all(mean_error < 3 * reported / np.sqrt(len(values))), mean_error / reported


# ---------------------------------------------------------------------------------------- pulse response
@pytest.fixture(scope="module")
def pulse_round_trips(truth, pulse_clean):
    results = []
    for seed in SEEDS:
        rng = np.random.default_rng(300 + seed)
        data = pulse_data(pulse_clean, rng)
        start = perturbed(truth, PULSE_FREE, rng)
        results.append(
            imcphys.fit(
                start,
                imcphys.pulse_response(data),
                free=PULSE_FREE,
                key=jax.random.key(seed),
                starts=8,
                candidates=128,
                progress=False,
            )
        )  # the CLI's shapes: one compilation
    return results


def test_pulse_response_round_trip_recovers_parameters(truth, pulse_round_trips):
    ok = [recovered(r, true_values(truth, PULSE_FREE)) for r in pulse_round_trips]
    assert sum(ok) >= 0.8 * len(ok), [r.values / true_values(truth, PULSE_FREE) for r in pulse_round_trips]


def test_pulse_response_standard_errors_match_spread_over_noise_realisations(truth, pulse_clean):
    fits = [
        imcphys.fit(
            truth,
            imcphys.pulse_response(pulse_data(pulse_clean, np.random.default_rng(400 + s))),
            free=PULSE_FREE,
            key=jax.random.key(s),
            starts=1,
            candidates=0,
            progress=False,
        )
        for s in range(30)
    ]
    values = np.array([f.values for f in fits])
    ratio = values.std(axis=0, ddof=1) / np.median([f.std_errors for f in fits], axis=0)
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio


def test_optax_path_reaches_the_levenberg_marquardt_optimum(truth, static_iv):
    gap, v, i = static_iv
    exp = imcphys.Experiment(_iv_model, (jnp.asarray(gap), jnp.asarray(v)), i, residual=LogAbs())
    start = imcphys.replace(truth, i0=1.3e-3, gap_decay_length=0.2e-9, v0=0.3)
    names = ["i0", "gap_decay_length", "v0"]
    lm = imcphys.fit(start, exp, free=names, key=jax.random.key(0), starts=1, candidates=0, progress=False)
    adam = imcphys.fit(
        start,
        exp,
        free=names,
        key=jax.random.key(0),
        starts=4,
        candidates=0,
        max_steps=1000,
        solver=optax.adam(optax.exponential_decay(3e-2, 500, 0.1)),
        progress=False,
    )
    assert adam.solver.startswith("optax") and len(adam.starts.cost) == 4
    assert np.all(np.abs(adam.values - lm.values) < 0.05 * lm.std_errors), (adam.values - lm.values) / lm.std_errors
    assert adam.cost == pytest.approx(lm.cost, rel=1e-6)
    np.testing.assert_allclose(adam.std_errors, lm.std_errors, rtol=1e-3)


# ------------------------------------------------------------------------------- result: report, card, plot
def test_fit_result_summary_report_card_and_plot(truth, dc_round_trips, tmp_path):
    res = dc_round_trips[0]
    card = imcphys.read_card(CARD)
    res.card = card  # display in the card's units (nm, mA)
    text = str(res.summary())
    for name in DC_FREE:
        assert name in text
    assert "± " in text and " nm " in text and "decades" in text and "correlations" in text
    report = json.loads(json.dumps(res.report()))
    g0 = next(p for p in report["parameters"] if p["name"] == "gap_decay_length")
    assert g0["unit"] == "nm" and g0["value"] == pytest.approx(res.values[1] * 1e9, rel=1e-12)
    assert g0["std_error"] == pytest.approx(res.std_errors[1] * 1e9, rel=1e-9)
    assert report["experiments"][0]["rms_residual"] == pytest.approx(res.rms[0])

    saved = imcphys.read_card(res.save_card(tmp_path / "cell.toml"))
    for i, name in enumerate(DC_FREE):
        assert saved.parameters[name] == pytest.approx(res.values[i], rel=1e-12)
        assert saved.provenance[name]["status"] == "fitted"
        se = convert_back(saved.provenance[name]["std_error"], saved.provenance[name]["unit"], res.units[i])
        assert se == pytest.approx(res.std_errors[i], rel=1e-3)
    assert saved.provenance["activation_energy"]["status"] == "published"  # not free: provenance kept

    fig = res.plot(tmp_path / "fit.png")
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
    assert ("", "|I| [A]") in labels and ("V [V]", "residual [decades]") in labels
    assert (tmp_path / "fit.png").stat().st_size > 10_000


def convert_back(value, unit, si):
    from imcphys.units import convert

    return float(convert(value, unit, si))


# ------------------------------------------------------------------------------- another family, measured
def _pump_output(pump, f_clk):
    return imcphys.replace(pump, clock_frequency=f_clk).steady_state().v_out


def test_dickson_pump_fits_the_measured_sky130_pump_through_the_generic_api():
    """A user-supplied model function: the averaged Dickson pump (imcphys.models.flash) against the measured
    3-stage TT07 pump, free C_s, G_L and R_φ from the flash study's start values. Bar: rms ≤ 0.1 V over 50 kHz–20
    MHz."""
    from imcphys.experiments.flash_pump_fit import FREE, KNOWN

    data = imcphys.load_dataset("dickson_tt07")
    f, v = data["f_clk"], data["V_out"]
    on = f > 0  # f = 0: the pump is stopped, not an operating point
    exp = imcphys.Experiment(
        _pump_output,
        jnp.asarray(f[on]),
        v[on],
        residual=imcphys.Absolute("V"),
        x=f[on],
        x_label="f_clk [Hz]",
        y_label="V_out [V]",
        name="TT07 pump",
        log_x=True,
    )
    start = imcphys.DicksonPump(
        stages=3, clock_frequency=1e6, **KNOWN, **{name: scale * value for name, (scale, value, _) in FREE.items()}
    )
    res = imcphys.fit(start, exp, free=list(FREE), key=jax.random.key(0), starts=4, candidates=32, progress=False)
    band = (f[on] >= 50e3) & (f[on] <= 20e6)
    assert np.sqrt(np.mean(res.residuals[0][band] ** 2)) <= 0.1
    assert res.status == ("ok",) * 3 and np.all(res.relative_errors < 0.1)
    assert res.starts.reached_best.sum() >= 3


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_fit_writes_card_report_and_plot(truth, pulse_clean, tmp_path):
    from typer.testing import CliRunner

    from imcphys.cli import app

    csv_path = pulse_data(pulse_clean, np.random.default_rng(500)).to_csv(tmp_path / "cell07_pulses.csv")
    out = tmp_path / "out"
    args = [
        "fit",
        "--card",
        str(CARD),
        "--data",
        str(csv_path),
        "--free",
        *PULSE_FREE,
        "--out",
        str(out),
        "--starts",
        "8",
        "--candidates",
        "128",
    ]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert "multi-start" in run.output and "activation_energy" in run.output
    report = json.loads((out / "fit_report.json").read_text())
    fitted = {p["name"]: p["value_si"] for p in report["parameters"]}
    for name in PULSE_FREE:
        assert fitted[name] == pytest.approx(float(getattr(truth, name)), rel=0.05)
    card = imcphys.read_card(out / "reram_stanford_v1_fitted.toml")
    assert card.provenance["gamma0"]["status"] == "fitted"
    assert (out / "fit.png").exists()

    bad = tmp_path / "bad.csv"
    bad.write_text("amplitude [V],width [ns],I [A]\n1.5,50,1e-6\n1.5,50,abc\n")
    run = CliRunner().invoke(
        app, ["fit", "--card", str(CARD), "--data", str(bad), "--free", "gamma0", "--out", str(out), "--quiet"]
    )
    assert run.exit_code == 2 and "bad.csv, row 3, column 'I [A]': not a number" in run.output


# -------------------------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_fit_notebook_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    path = REPO / "notebooks" / "fit_measured_data.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    # the summary table, the malformed-file message and the card written at the end
    assert "± std error" in text and "decades" in text and "row 4, column 'I [uA]'" in text
    assert "[parameters.activation_energy]" in text and 'status = "fitted"' in text


def test_fit_plot_draws_stacked_curves_apart_and_loops_whole():
    from imcphys.fit._results import _broken_at_jumps

    two_sweeps = np.concatenate([np.linspace(-0.5, 2.5, 31)] * 2)  # e.g. transfer curves at two V_DS
    assert list(np.nonzero(np.isnan(_broken_at_jumps(two_sweeps, two_sweeps)[0]))[0]) == [31]
    loop = np.concatenate([np.linspace(0, 2, 21), np.linspace(1.9, -2, 40), np.linspace(-1.9, 0, 20)])
    times = np.geomspace(1.0, 3e8, 60)
    for x in (loop, times):  # a DC hysteresis loop and a log time grid stay one line
        assert not np.any(np.isnan(_broken_at_jumps(x, x)[0]))
    two_traces = np.concatenate([np.geomspace(1.0, 1e4, 30)] * 2)  # retention at two temperatures
    assert list(np.nonzero(np.isnan(_broken_at_jumps(two_traces, two_traces)[0]))[0]) == [30]
