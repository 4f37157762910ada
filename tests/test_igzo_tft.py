"""The oxide TFT on its own and on measured devices: the trap ideality and contact-resistance physics (exact limits,
convergence, gradients), the ``transfer`` kind of a standalone :class:`imcphys.IGZOTransistor`, the card fitted to
the measured dataset ``igzo_tft_pytft`` (a die refitted within the goal, the fitted card reloading to the same
curves, the residual's gradient against finite differences) and ``imcphys fit`` driven by the card's ``[fit]``
table."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import central_difference

import imcphys
from imcphys.constants import K_B, Q
from imcphys.fit import measurement

CARD = "igzo_tft_pytft"
DATASET = "igzo_tft_pytft"
FLOOR = 5e-11  # A, the floor of imcphys.experiments.igzo_tft_measured (PROVENANCE.md: instrument floor, offsets)
GOAL = 0.1  # decades: the per-die goal of the measured fit
#: A TFT like the measured ones (W/L = 10/10 µm, n = 1, n_t = 6, γ = 1), without an off-state floor.
TFT = imcphys.IGZOTransistor(
    width=10e-6,
    length=10e-6,
    threshold_voltage=-1.0,
    ideality=1.0,
    trap_ideality=6.0,
    band_tail_exponent=1.0,
    sheet_current=2e-7,
    off_current=0.0,
)
PHI_T = K_B * 298.15 / Q  # thermal voltage at the card's 298.15 K (T = T_ref: V_T is the threshold), CODATA


# -------------------------------------------------------------------------------------------- trap ideality
def test_trap_ideality_sets_the_subthreshold_slope_not_the_saturation():
    """Below threshold x_t → x/n_t: one decade per SS = n·n_t·(kT/q)·ln 10 with the drain factor 1 − e^{−V_DS/φ_t}
    of free carriers; above threshold x_t → x: saturation at V_DS = V_GS − V_T (n = 1) whatever n_t."""
    tft = TFT
    ss = float(tft.subthreshold_swing())
    assert ss == pytest.approx(1.0 * 6.0 * PHI_T * math.log(10.0), rel=1e-14)
    v0 = float(tft.threshold_voltage) - 6.0  # x/s = −6/(n_t (γ+1) n φ_t) ≈ −19: the trap term is below 1e-8 V
    i = np.asarray(tft.drain_current(jnp.array([v0, v0 + ss, v0 + 2 * ss]), 1.0, contacts=False))
    np.testing.assert_allclose(i[1:] / i[:-1], 10.0, rtol=1e-6)
    ratio = float(tft.drain_current(v0, PHI_T, contacts=False) / tft.drain_current(v0, 1.0, contacts=False))
    assert ratio == pytest.approx(1.0 - math.exp(-1.0), rel=1e-6)
    # far above threshold, F(x) − F(x − V_DS) = x² − (x − V_DS)² for γ = 1: saturation I_sq·(W/L)·x² at V_DS >= x,
    # and at V_DS = x/2 three quarters of it, for n_t = 6 as for n_t = 1
    x = 10.0
    i_sat = float(tft.sheet_current) * x**2
    for n_t in (1.0, 6.0):
        t = imcphys.replace(tft, trap_ideality=n_t)
        v_gs = float(t.threshold_voltage) + x
        assert float(t.drain_current(v_gs, 2 * x, contacts=False)) == pytest.approx(i_sat, rel=1e-9)
        assert float(t.drain_current(v_gs, x / 2, contacts=False)) == pytest.approx(0.75 * i_sat, rel=1e-9)


# ----------------------------------------------------------------------------------------------- contacts
@pytest.mark.parametrize("rcw", [0.14, 100.0])
def test_contact_resistance_solve_converges(rcw):
    """The current through the contacts solves I = I_ch(V_GS − I·R, V_DS − 2·I·R), R = R_C·W/W, to the rounding
    of its residual, for a contact resistance like the measured one (R·g_m ≈ 0.1) and one 700× larger; jit = eager
    to rounding."""
    tft = imcphys.replace(TFT, contact_resistance=rcw)
    v_gs, v_ds = jnp.linspace(-10.0, 20.0, 61)[:, None], jnp.array([0.01, 0.1, 5.1, 15.1])
    i = tft.drain_current(v_gs, v_ds)
    r = rcw / float(tft.width)
    channel = tft.drain_current(v_gs - i * r, v_ds - 2 * i * r, contacts=False)
    assert np.max(np.abs(np.asarray(channel / i - 1.0))) < (1e-11 if rcw < 1 else 1e-9)
    # jit against eager: XLA fuses the Newton iterations, so equal to rounding (a part has no bit-for-bit pulse)
    jitted = jax.jit(lambda t, a, b: t.drain_current(a, b))(tft, v_gs, v_ds)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(i), rtol=1e-11)


def test_contact_resistance_limits():
    """R = 0: the closed form; a channel turned fully on at V_DS = 1 mV is a resistor in series with 2R; a
    contact-dominated device passes V_DS/(2R)."""
    v_gs, v_ds = jnp.linspace(-3.0, 20.0, 24), 0.5
    np.testing.assert_allclose(
        np.asarray(TFT.drain_current(v_gs, v_ds)), np.asarray(TFT.drain_current(v_gs, v_ds, contacts=False)), rtol=1e-13
    )
    on = float(TFT.threshold_voltage) + 15.0
    r_channel = 1e-3 / float(TFT.drain_current(on, 1e-3, contacts=False))
    rcw = 0.5  # Ω·m: R = 50 kΩ per contact, comparable to the channel
    i = float(imcphys.replace(TFT, contact_resistance=rcw).drain_current(on, 1e-3))
    assert i == pytest.approx(1e-3 / (r_channel + 2 * rcw / 10e-6), rel=1e-3)
    huge = imcphys.replace(TFT, contact_resistance=1e4)  # R = 1 GΩ per contact
    assert float(huge.drain_current(20.0, 15.1)) == pytest.approx(15.1 / 2e9, rel=1e-3)


def test_gradients_with_contacts_match_finite_differences():
    """Implicit derivatives through the contact solve (one Newton step from the root) against central
    differences, for the parameters a fit frees and for the terminal voltages; vmap equals a loop."""
    base = imcphys.replace(TFT, contact_resistance=0.14)
    names = ("contact_resistance", "trap_ideality", "sheet_current", "threshold_voltage", "band_tail_exponent")

    def current(values, v_gs, v_ds):
        return imcphys.replace(base, **values).drain_current(v_gs, v_ds)

    values = {n: float(getattr(base, n)) for n in names}
    grad = jax.jit(jax.grad(current, argnums=(0, 1, 2)))
    current = jax.jit(current)
    for v_gs, v_ds in ((0.0, 0.1), (5.0, 5.1), (18.0, 15.1)):
        g_p, g_gs, g_ds = grad(values, v_gs, v_ds)
        for n in names:
            fd = central_difference(lambda x: current({**values, n: x}, v_gs, v_ds), values[n])
            assert float(g_p[n]) == pytest.approx(fd, rel=2e-6), (n, v_gs, v_ds)
        assert float(g_gs) == pytest.approx(central_difference(lambda x: current(values, x, v_ds), v_gs), rel=2e-6)
        assert float(g_ds) == pytest.approx(central_difference(lambda x: current(values, v_gs, x), v_ds), rel=2e-6)
    rcws = jnp.array([0.0, 0.05, 0.5, 5.0])
    batched = jax.vmap(lambda r: imcphys.replace(base, contact_resistance=r).drain_current(4.0, 2.0))(rcws)
    looped = [float(imcphys.replace(base, contact_resistance=r).drain_current(4.0, 2.0)) for r in rcws]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-13)


def test_transfer_length_method_recovers_the_contact_resistance():
    """The transfer-length method of the experiment, on curves of the model with R_C·W = 14 Ω·cm at L = 5, 10,
    20 µm and thresholds that differ by length. Far above threshold with γ = 1, F(x) − F(x − v) = 2xv − v², and
    with the contacts' shifts x → x − IR, v → v − 2IR this is (v − 2IR)(2x − v): V_DS/I = 2R + L/(W·I_sq·(2x −
    V_DS)) exactly, so the intercept is R_C·W and the slope R_sh = 1/(I_sq·(2x − V_DS)) [Ω] to rounding (the
    overdrives fall on the V_GS grid: no interpolation error)."""
    from imcphys.experiments.igzo_tft_measured import transfer_length

    rcw, thresholds, v_ds = 0.14, (-0.5, 0.0, 0.4), 0.1
    v_gs = np.linspace(-10.0, 20.0, 601)
    sweeps = []
    for length, v_t in zip((5e-6, 10e-6, 20e-6), thresholds):
        tft = imcphys.replace(TFT, length=length, threshold_voltage=v_t, contact_resistance=rcw)
        i_d = np.asarray(tft.drain_current(v_gs, v_ds))
        cols = {"V_GS": (v_gs, "V"), "V_DS": (np.full_like(v_gs, v_ds), "V"), "I_D": (i_d, "A")}
        cols |= {"W": (np.full_like(v_gs, 10.0), "um"), "L": (np.full_like(v_gs, length * 1e6), "um")}
        sweeps.append(imcphys.Dataset.from_arrays(cols))
    rows = transfer_length(sweeps, thresholds, overdrives=(8.0, 16.0))
    for row in rows:
        x = row["overdrive_V"]
        assert row["contact_resistance_ohm_m"] == pytest.approx(rcw, rel=1e-9), x
        assert row["sheet_ohm"] == pytest.approx(1.0 / (float(TFT.sheet_current) * (2 * x - v_ds)), rel=1e-9), x
    with pytest.raises(ValueError, match="at least two channel lengths"):
        transfer_length(sweeps[:1], thresholds[:1])


def test_headline_fails_when_a_die_misses_the_goal():
    """The demo's headline for the measured TFT: met only when the worst die is within the goal [decades]."""
    from imcphys.experiments.igzo_tft_measured import headlines

    def row(worst: float):
        (out,) = headlines({"max_rms_decades": worst, "goal_rms_decades": GOAL, "dies_within_goal": 7, "dies": 8})
        return out

    assert row(0.099).met and not row(0.125).met
    assert "rms ≤ 0.1 decade" in row(0.125).claim and row(0.125).value == 0.125 and row(0.125).unit == "decade"


# -------------------------------------------------------------------------------------------- the dataset
def test_dataset_sweeps_load_with_geometry_and_provenance():
    files = [p.name for p in imcphys.datasets.dataset_files(DATASET)]
    assert len(files) == 18  # 18 sweeps of 8 dies (PROVENANCE.md)
    d = imcphys.load_dataset(DATASET, file="A1_10_10_3.csv")
    assert len(d) == 244 and d["L"][0] == pytest.approx(10e-6) and d["W"][0] == pytest.approx(10e-6)
    assert sorted(set(d["V_DS"])) == pytest.approx([0.1, 4.1, 8.1, 12.1])  # the files with Ugconst_step 4
    assert d["V_GS"][0] == -10.0 and d["I_D"][0] == pytest.approx(-1.545e-11)  # first row of the raw file
    note = imcphys.datasets.provenance(DATASET)
    assert "9329dbe13b8da317388c7e92a856eda494327d83" in note and "MIT" in note
    assert "Copyright (c) 2024 Arpan Biswas" in (imcphys.datasets.dataset_dir(DATASET) / "LICENSE").read_text()


def test_transfer_kind_of_a_transistor_checks_the_geometry():
    card = imcphys.read_card(CARD)
    tft = card.device()
    data = imcphys.load_dataset(DATASET, file="D1_10_10_1.csv")
    assert imcphys.fit.infer_kind(data, tft) == "transfer"
    module, experiment = measurement(None, data, tft, floor=FLOOR)
    assert module is tft and experiment.points == int(np.sum(np.abs(data["I_D"]) > FLOOR))
    short = imcphys.load_dataset(DATASET, file="B1_10_5_1.csv")
    with pytest.raises(ValueError, match=r"B1_10_5_1.csv, row \d+, column 'L \[um\]': .* L = 5 µm, .* length is 10"):
        measurement("transfer", short, tft, floor=FLOOR)
    module, _ = measurement("transfer", short, imcphys.replace(tft, length=5e-6), floor=FLOOR)
    assert float(module.length) == 5e-6
    # a column of another dimension is refused by name (here the current written in volts)
    cols = {"V_GS": (data["V_GS"], "V"), "V_DS": (data["V_DS"], "V"), "I_D": (data["I_D"], "V")}
    with pytest.raises(ValueError, match=r"column 'I_D \[V\]': .* needs I_D as a current"):
        measurement("transfer", imcphys.Dataset.from_arrays(cols), tft, floor=FLOOR)


# ------------------------------------------------------------------------------------ the card on a die
@pytest.fixture(scope="module")
def die_fit():
    """The card's default transfer parameters refitted to die D1 (the settings of the CLI test below, so that the
    compilation is shared)."""
    card = imcphys.read_card(CARD)
    data = imcphys.load_dataset(DATASET, file="D1_10_10_1.csv")
    device, experiment = measurement("transfer", data, card.device(), floor=FLOOR)
    result = imcphys.fit(
        device,
        experiment,
        free=card.default_free("transfer"),
        key=jax.random.key(0),
        starts=2,
        candidates=0,
        card=card,
        progress=False,
    )
    return card, data, result


def test_die_fit_meets_the_goal_and_the_fitted_card_reloads(die_fit, tmp_path):
    card, data, result = die_fit
    assert result.names == tuple(card.fit["transfer"])
    assert result.rms[0] <= GOAL and all(s == "ok" for s in result.status)
    path = result.save_card(tmp_path / "d1.toml")
    reloaded = imcphys.read_card(path)
    assert reloaded.fit == card.fit  # the [fit] table round-trips
    assert all(reloaded.provenance[n]["status"] == "fitted" for n in result.names)
    again = np.asarray(reloaded.device().drain_current(data["V_GS"], data["V_DS"]))
    np.testing.assert_allclose(again, np.asarray(result.device.drain_current(data["V_GS"], data["V_DS"])), rtol=1e-12)
    # the fit's own predictions come from the solver's last step: the same curves to its convergence
    np.testing.assert_allclose(again, result.predictions[0], rtol=1e-4)


def test_transfer_residual_gradient_matches_finite_differences(die_fit):
    """∂(½Σr²)/∂p of the measured-die residual (log10|I_D|, contacts included) against central differences."""
    _, _, result = die_fit
    experiment = result.experiments[0]
    values = {n: float(v) for n, v in zip(result.names, result.values)}

    def cost(p):
        r = experiment.core().weighted_residuals(experiment.predict(imcphys.replace(result.device, **p)))
        return 0.5 * jnp.sum(r**2)

    gradient, cost = jax.jit(jax.grad(cost)), jax.jit(cost)
    grad = gradient(values)
    shifted = {**values, "threshold_voltage": values["threshold_voltage"] + 0.05}  # off the optimum: g ≠ 0
    grad_off = gradient(shifted)
    for n in values:
        fd = central_difference(lambda x: cost({**shifted, n: x}), shifted[n], rel=1e-5)
        assert float(grad_off[n]) == pytest.approx(fd, rel=1e-5, abs=1e-9 * abs(fd) + 1e-12), n
    # at the optimum the gradient vanishes next to its size a little away from it
    scale = max(abs(float(grad_off[n])) * abs(shifted[n]) for n in values)
    assert max(abs(float(grad[n])) * abs(values[n]) for n in values) < 1e-3 * scale


def test_cli_fits_the_cards_default_parameters(die_fit, tmp_path):
    """``imcphys fit --card devices/igzo_tft_pytft.toml --data X.csv --kind transfer --floor F --out DIR``,
    without --free: the card's [fit] parameters, a fitted card in DIR."""
    from typer.testing import CliRunner

    from imcphys.cli import app

    _, data, result = die_fit
    cols = {"V_GS": (data["V_GS"], "V"), "V_DS": (data["V_DS"], "V"), "I_D": (data["I_D"], "A")}
    csv = imcphys.Dataset.from_arrays(cols).to_csv(tmp_path / "die.csv")
    out = tmp_path / "out"
    args = ["fit", "--card", "devices/igzo_tft_pytft.toml", "--data", str(csv), "--kind", "transfer"]
    # the floor of the fixture (a floor is a static setting: another one would compile the fit again)
    args += ["--floor", "5e-11", "--out", str(out), "--starts", "2", "--candidates", "0", "--quiet"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    report = json.loads((out / "fit_report.json").read_text())
    assert [p["name"] for p in report["parameters"]] == list(result.names)
    fitted = imcphys.read_card(out / "igzo_tft_pytft_fitted.toml")
    for n, v in zip(result.names, result.values):
        assert float(getattr(fitted.device(), n)) == pytest.approx(v, rel=1e-6)
    no_table = imcphys.save_card(fitted.device(), tmp_path / "bare.toml")  # no template: no [fit] table
    run = CliRunner().invoke(app, ["fit", "--card", str(no_table), "--data", str(csv), "--out", str(out)])
    assert run.exit_code == 2 and "no default free parameters for a 'transfer' fit" in run.output


# ------------------------------------------------------------------------------------------- variability
def test_monte_carlo_draws_the_measured_spread():
    """A population drawn from the card's [variability] has the spreads and correlations the per-die fits gave
    (the table's numbers; 20000 transistors: sampling errors ~1 %)."""
    card = imcphys.read_card(CARD)
    tft = card.device()
    group = card.variability["transfer"]
    pop = imcphys.population.sample(tft, card.variability_specs(), 20000, key=jax.random.key(3))
    v_t, n_t = np.asarray(pop.threshold_voltage), np.asarray(pop.trap_ideality)
    ln_i = np.log(np.asarray(pop.sheet_current))
    members = group["parameters"]
    assert np.mean(v_t) == pytest.approx(float(tft.threshold_voltage), abs=0.05)
    assert np.std(v_t) == pytest.approx(members["threshold_voltage"]["std"], rel=0.03)
    assert np.std(ln_i) == pytest.approx(members["sheet_current"]["sigma"], rel=0.03)
    assert np.min(n_t) >= 1.0  # truncated at the declared bound
    corr = np.corrcoef([v_t, ln_i])[0, 1]
    assert corr == pytest.approx(group["correlation"][0][3], abs=0.03)
    # the truncation at n_t = 1 (1.6 σ below the centre) thins the V_T–n_t correlation only a little
    assert np.corrcoef([v_t, n_t])[0, 1] == pytest.approx(group["correlation"][0][1], abs=0.05)


@pytest.mark.slow
def test_measured_experiment_quick_run_reproduces_the_card(tmp_path):
    """``experiments/igzo_tft_measured.py --quick``: a JSON with every die's rms residual in decades, and a fitted
    card whose centre and [variability] are those of ``devices/igzo_tft_pytft.toml`` (which the full run wrote)."""
    from imcphys.experiments import igzo_tft_measured, run_study

    section = run_study(igzo_tft_measured.run, tmp_path, quick=True)
    numbers = json.loads((tmp_path / "igzo_tft_measured.json").read_text())
    assert sorted(numbers["per_die"]) == sorted(igzo_tft_measured.DIES)
    rms = {d: v["rms_decades"] for d, v in numbers["per_die"].items()}
    assert all(0 < r < 0.13 for r in rms.values()), rms  # the full run: 0.035 (D1) to 0.125 (A2)
    assert numbers["dies_within_goal"] == sum(r <= GOAL for r in rms.values()) >= 7
    fitted = imcphys.read_card(numbers["card"])
    card = imcphys.read_card(CARD)
    # the same population to 2 % of its spread (one start per die here, four in the full run)
    for name, spec in card.variability["transfer"]["parameters"].items():
        a, b = float(getattr(fitted.device(), name)), float(getattr(card.device(), name))
        if spec["distribution"] == "lognormal":
            assert abs(math.log(a / b)) <= 0.02 * spec["sigma"], name
        else:
            assert abs(a - b) <= 0.02 * spec["std"], name
    np.testing.assert_allclose(
        fitted.variability["transfer"]["correlation"], card.variability["transfer"]["correlation"], atol=2e-3
    )
    assert len(section.figures) == 4 and all(f.path.is_file() for f in section.figures)
