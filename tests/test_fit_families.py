"""Fitting every family: round trips, standard errors against the spread over noise realisations, the PCM drift
exponent of a population, and ``imcphys fit`` for each kind of measurement.

Per family, "measurements" are simulated from its card (the closed form the fit uses: the question here is the
fit, the models' closed forms are tested against their ODEs in the family tests) with noise, for SEEDS seeds.
Each seed has its own noise draw and its own start: every free parameter perturbed by 30–50 % (random sign),
then multi-start (STARTS solver starts: the perturbed card and random points within a factor 2 of it, no
screening). All seeds are fitted by one :func:`imcphys.fit_each` call, one compilation per family, shared with
the CLI test of that family (same rows per vmapped chunk: STARTS).

A seed "recovers" the parameters when every one lies within 3 reported standard errors of the truth (99.7 % for
a correct Gaussian error) and within 5 %; the designs are chosen so that the data determine every free
parameter to better than 2.5 % (checked). The same fits give the spread test: the standard deviation of
(fit − truth) over the seeds that reached the global optimum against the median reported standard error.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import imcphys
from imcphys.device import parameter_ranges
from imcphys.fit import infer_kind, measurement
from imcphys.models.flash import pump_output, vth_pulses
from imcphys.models.pcm import drift_trace

SEEDS = 40
STARTS = 4


def perturbed(truth: np.ndarray, rng: np.random.Generator, m: int) -> np.ndarray:
    """(m, n) start values: each parameter (truth: (n,) or (m, n)) × (1 ± U(0.3, 0.5)), random sign."""
    truth = np.broadcast_to(truth, (m, truth.shape[-1]))
    return truth * (1 + rng.choice([-1.0, 1.0], truth.shape) * rng.uniform(0.3, 0.5, truth.shape))


def recovered(values: np.ndarray, std_errors: np.ndarray, truth: np.ndarray, rel: float = 0.05) -> np.ndarray:
    err = np.abs(values - truth)
    return np.all((err < 3 * std_errors) & (err < rel * np.abs(truth)), axis=-1)


def spread_ratio(values: np.ndarray, std_errors: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """std over seeds of (fit − truth) / median reported standard error, per parameter."""
    return np.std(values - truth, axis=0, ddof=1) / np.median(std_errors, axis=0)


def values_of(module, names) -> np.ndarray:
    return np.array([float(getattr(module, n)) for n in names])


def round_trip(start, experiment, observed, free, truth_values, *, seed: int):
    rng = np.random.default_rng(seed)
    seeds = len(observed[0] if isinstance(observed, list) else observed)
    initial = perturbed(truth_values, rng, seeds)
    for j, name in enumerate(free):  # a start outside a parameter's physical range (e.g. ideality < 1) is refused
        r = parameter_ranges(start)[name]
        margin = 1e-3 * np.abs(np.asarray(truth_values)[..., j])  # one truth, or one per device
        lower = -np.inf if r["lower"] is None else r["lower"] + margin
        upper = np.inf if r["upper"] is None else r["upper"] - margin
        initial[:, j] = np.clip(initial[:, j], lower, upper)
    return imcphys.fit_each(
        start,
        experiment,
        observed,
        free=free,
        key=jax.random.key(seed),
        initial=initial,
        starts=STARTS,
        batch=1,
        progress=False,
    )


def check_round_trip(res, truth_values):
    ok = recovered(res.values, res.std_errors, truth_values)
    assert ok.sum() >= 0.8 * len(ok), (res.values / truth_values)[~ok]
    assert np.all(np.median(res.relative_errors, axis=0) < 0.025), np.median(res.relative_errors, axis=0)


def check_spread(res, truth_values):
    """Over the seeds whose best start reached the global optimum (residual scale within 1.5× of the median:
    a seed whose starts all stopped in a local minimum is a multi-start failure, counted by the round trip)."""
    converged = res.noise < 1.5 * np.median(res.noise)
    assert converged.sum() >= 0.8 * len(converged)
    truth_values = np.broadcast_to(truth_values, res.values.shape)[converged]
    ratio = spread_ratio(res.values[converged], res.std_errors[converged], truth_values)
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio


# ============================================================================ PCM: statistical model, per device
T_DRIFT = np.concatenate([[0.0], np.geomspace(1.0, 1e6, 24)])  # s since programming: 25 reads
G_TARGET = 10e-6  # S


def drift_reads(model: imcphys.PCMStatistical, m: int, key) -> tuple[imcphys.PCMState, np.ndarray]:
    """m devices programmed to G_TARGET, each read at T_DRIFT with the model's 1/f read noise: (states, (m, 25))."""
    k_prog, k_read = jax.random.split(key)
    states = model.program(jnp.full(m, G_TARGET), key=k_prog)
    return states, np.asarray(model.conductance(states, T_DRIFT[:, None], key=k_read)).T


def drift_template(model, reads):
    data = imcphys.Dataset.from_arrays({"t": (T_DRIFT, "s"), "G": (reads[0] * 1e6, "uS")})
    return drift_trace(data, model)


@pytest.fixture(scope="module")
def pcm_device_fits():
    """Seeds = devices: each one's g_prog and ν fitted to its own drift trace. The read noise is the
    published one × 0.2 (an average of 25 reads per point): with the published noise (about 8 % per read) one
    trace gives ν to about 9 % only (see the population test)."""
    model = imcphys.replace(imcphys.PCMStatistical(), read_noise_scale=0.2)
    states, reads = drift_reads(model, SEEDS, jax.random.key(1))
    start, exp = drift_template(model, reads)
    truth = np.stack([np.asarray(states.g_prog), np.asarray(states.nu)], axis=1)
    return round_trip(start, exp, reads, ["g_prog", "nu"], truth, seed=2), truth


def test_pcm_drift_round_trip_recovers_g0_and_nu_per_device(pcm_device_fits):
    res, truth = pcm_device_fits
    assert res.names == ("g_prog", "nu") and res.units == ("S", "1")
    check_round_trip(res, truth)


def test_pcm_drift_standard_errors_match_spread_over_noise(pcm_device_fits):
    check_spread(*pcm_device_fits)


@pytest.fixture(scope="module")
def pcm_population_fits():
    """200 devices at 10 µS with the published read noise, each fitted from its first read and the level's
    mean ν (one start: the problem is linear in ln g_prog and ν)."""
    model = imcphys.PCMStatistical()
    states, reads = drift_reads(model, 200, jax.random.key(3))
    start, exp = drift_template(model, reads)
    mu, _ = model.drift_exponent_stats(G_TARGET)
    initial = np.stack([reads[:, 0], np.full(len(reads), float(mu))], axis=1)
    # 4 devices per vmapped chunk: the rows of the per-device fits above (one compilation)
    res = imcphys.fit_each(
        start,
        exp,
        reads,
        free=["g_prog", "nu"],
        key=jax.random.key(4),
        initial=initial,
        starts=1,
        batch=STARTS,
        progress=False,
    )
    return res, states, model


def test_pcm_drift_exponent_distribution_of_a_population(pcm_population_fits):
    """Joshi et al. 2020 at g/g_max = 0.4: ν = |N(μ_ν, σ_ν²)| with μ_ν = 0.049 and σ_ν = 0.008 (both at their
    clip values). One trace gives ν to ± 0.0044, so the fitted values scatter by sqrt(σ_ν² + 0.0044²); the
    population's own spread comes back once the fit errors are taken out."""
    res, states, model = pcm_population_fits
    assert res.ok.all()
    mu, sigma = (float(x) for x in model.drift_exponent_stats(G_TARGET))
    assert (mu, sigma) == pytest.approx((0.049, 0.008))
    pop = res.population()["nu"]
    true_nu = np.asarray(states.nu)
    assert pop["mean_std_error"] == pytest.approx(0.0044, rel=0.2)
    assert pop["std"] > 1.2 * np.std(true_nu, ddof=1)  # the fitted values scatter more than the devices
    # the devices' own spread, within its sampling error (about 7 % here)
    assert pop["intrinsic_std"] == pytest.approx(np.std(true_nu, ddof=1), rel=0.2)
    assert pop["intrinsic_std"] == pytest.approx(sigma, rel=0.25)
    assert abs(pop["mean"] - true_nu.mean()) < 3 * pop["mean_std_error"] / np.sqrt(len(res))
    assert abs(pop["mean"] - mu) < 3 * pop["std"] / np.sqrt(len(res))


def test_pcm_population_standard_errors_match_spread(pcm_population_fits):
    res, states, _ = pcm_population_fits
    check_spread(res, np.stack([np.asarray(states.g_prog), np.asarray(states.nu)], axis=1))


# ==================================================================================== PCM: physical cell
PCM_CELL_CARD = imcphys.cards_dir() / "pcm_cell_gst.toml"
PCM_CELL_FREE = ["g_amorphous", "drift_exponent", "quench_barrier"]
T_CELL = np.geomspace(1e-7, 1e5, 40)  # s after the RESET quench
NOISE_DECADES = 0.01


@pytest.fixture(scope="module")
def pcm_cell():
    truth = imcphys.load_card(PCM_CELL_CARD)
    clean = imcphys.Dataset.from_arrays({"t": (T_CELL, "s"), "G": (np.ones_like(T_CELL), "S")})
    _, exp = drift_trace(clean, truth)
    g = np.asarray(exp.predict(truth))
    noisy = g * 10 ** (NOISE_DECADES * np.random.default_rng(5).standard_normal((SEEDS, g.size)))
    res = round_trip(truth, exp, noisy, PCM_CELL_FREE, values_of(truth, PCM_CELL_FREE), seed=6)
    return truth, noisy, res


def test_pcm_cell_drift_round_trip(pcm_cell):
    """G = G_a0 (1 + t/τ)^−ν_a after a RESET (a full plug at 25 °C), τ = kT e^{E_b0/kT}/(E_s v_0) ≈ 0.4 µs:
    the trace from 0.1 µs fixes G_a0, ν_a and (through τ) the quench barrier E_b0."""
    truth, _, res = pcm_cell
    check_round_trip(res, values_of(truth, PCM_CELL_FREE))
    assert np.median(res.noise) == pytest.approx(NOISE_DECADES, rel=0.15)


def test_pcm_cell_standard_errors_match_spread(pcm_cell):
    truth, _, res = pcm_cell
    check_spread(res, values_of(truth, PCM_CELL_FREE))


# ============================================================================ Flash: V_th after each pulse
FLASH_CARD = imcphys.cards_dir() / "flash_fg.toml"
FLASH_FREE = ["barrier_height", "coupling_ratio", "neutral_threshold"]
NOISE_VTH = 5e-3  # V
# program transients at 15, 17 and 19 V (widths 0.1 µs … 2 ms, cumulative), a 1 ms −20 V erase between them
_WIDTHS = 1e-7 * 3.0 ** np.arange(10)
FLASH_AMPLITUDES = np.concatenate([np.full(10, 15.0), [-20.0], np.full(10, 17.0), [-20.0], np.full(10, 19.0)])
FLASH_WIDTHS = np.concatenate([_WIDTHS, [1e-3], _WIDTHS, [1e-3], _WIDTHS])


def flash_dataset(vth: np.ndarray) -> imcphys.Dataset:
    return imcphys.Dataset.from_arrays(
        {"amplitude": (FLASH_AMPLITUDES, "V"), "width": (FLASH_WIDTHS * 1e6, "us"), "Vth": (vth, "V")}
    )


@pytest.fixture(scope="module")
def flash():
    truth = imcphys.load_card(FLASH_CARD)
    exp = vth_pulses(flash_dataset(np.zeros(FLASH_AMPLITUDES.size)), source="ideal", initial="erased")
    vth = np.asarray(exp.predict(truth))
    noisy = vth + NOISE_VTH * np.random.default_rng(7).standard_normal((SEEDS, vth.size))
    res = round_trip(truth, exp, noisy, FLASH_FREE, values_of(truth, FLASH_FREE), seed=8)
    return truth, noisy, res


def test_flash_vth_round_trip(flash):
    """Fowler–Nordheim program transients from a pulse generator: their onset and slope fix the barrier φ_B
    and the coupling ratio α_G, the read offset V_T0."""
    truth, _, res = flash
    check_round_trip(res, values_of(truth, FLASH_FREE))
    assert np.median(res.noise) == pytest.approx(NOISE_VTH, rel=0.15)


def test_flash_vth_standard_errors_match_spread(flash):
    truth, _, res = flash
    check_spread(res, values_of(truth, FLASH_FREE))


# =========================================================== Flash: V_th after each pulse, through the pump
FLASH_PUMP_FREE = ["barrier_height", "coupling_ratio", "pump_capacitance"]
FLASH_PUMP_SEEDS = 5
FLASH_PUMP_STEPS = 16  # fixed steps per pulse, for the data and the fit alike
# pulses of 1 µs … 256 µs (cumulative) at 15, 17 and 19 V, a 1 ms −20 V erase between them: the pump (from
# rest at every pulse) needs about a microsecond to reach the word-line target, so the short pulses see its rise
_PUMP_WIDTHS = 1e-6 * 4.0 ** np.arange(5)
FLASH_PUMP_AMPLITUDES = np.concatenate([np.full(5, 15.0), [-20.0], np.full(5, 17.0), [-20.0], np.full(5, 19.0)])
FLASH_PUMP_WIDTHS = np.concatenate([_PUMP_WIDTHS, [1e-3], _PUMP_WIDTHS, [1e-3], _PUMP_WIDTHS])
#: the pump capacitance is fitted within [7.5, 60] pF: below about 7 pF the card's 10-stage pump cannot hold
#: the 20 V erase (the model refuses such a pulse); far above 20 pF it charges the word line so fast that the
#: 1 µs pulses no longer see its rise, and V_th stops depending on it (a start there cannot move)
C_PUMP_BOUNDS = (7.5e-12, 60e-12)  # F


def flash_pump_data(vth: np.ndarray) -> imcphys.Dataset:
    return imcphys.Dataset.from_arrays(
        {"amplitude": (FLASH_PUMP_AMPLITUDES, "V"), "width": (FLASH_PUMP_WIDTHS * 1e6, "us"), "Vth": (vth, "V")}
    )


@pytest.fixture(scope="module")
def flash_pump():
    """The card's cell, its amplitudes capped at the 20 V this experiment asks for (so that its pump may be
    fitted down to where it just reaches 20 V)."""
    truth = dataclasses.replace(imcphys.load_card(FLASH_CARD), max_amplitude=20.0)
    exp = vth_pulses(
        flash_pump_data(np.zeros(FLASH_PUMP_AMPLITUDES.size)),
        source="pump",
        initial="erased",
        fixed_steps=FLASH_PUMP_STEPS,
    )
    vth = np.asarray(exp.predict(truth))
    noisy = vth + NOISE_VTH * np.random.default_rng(17).standard_normal((FLASH_PUMP_SEEDS, vth.size))
    truth_values = values_of(truth, FLASH_PUMP_FREE)
    free = [
        "barrier_height",
        imcphys.fit.Free("coupling_ratio", 0.0, 1.0),
        imcphys.fit.Free("pump_capacitance", *C_PUMP_BOUNDS),
    ]
    res = imcphys.fit_each(
        truth,
        exp,
        noisy,
        free=free,
        key=jax.random.key(18),
        starts=2,
        candidates=8,
        initial=perturbed(truth_values, np.random.default_rng(18), FLASH_PUMP_SEEDS),
        progress=False,
    )
    return truth, vth, res


def test_flash_vth_through_the_pump_round_trip(flash_pump):
    """V_th transients with the word line driven by the cell's Dickson pump (from rest at every pulse, through
    the word line's RC): the transients fix φ_B and α_G as with an ideal source, and the pump's rise, which
    eats the first microseconds of every pulse, fixes its pump capacitance C."""
    truth, vth, res = flash_pump
    # the pump matters here: an ideal source on the same pulses gives other thresholds (by volts)
    ideal = np.asarray(vth_pulses(flash_pump_data(vth), source="ideal", initial="erased").predict(truth))
    assert np.max(np.abs(ideal - vth)) > 1.0
    truth_values = values_of(truth, FLASH_PUMP_FREE)
    ok = recovered(res.values, res.std_errors, truth_values)
    assert ok.sum() >= 0.8 * len(ok), (res.values / truth_values)[~ok]
    # the design determines all three to better than 0.2 % (5 mV noise on 17 thresholds)
    assert np.all(np.median(res.relative_errors[ok], axis=0) < 2e-3), res.relative_errors


# ====================================================================== Flash: Dickson pump from a card
PUMP_CARD = imcphys.cards_dir() / "dickson_tt07.toml"
PUMP_FREE = ["stray_capacitance", "load_conductance", "clock_resistance"]
F_CLK = np.geomspace(10e3, 50e6, 30)  # Hz
NOISE_PUMP = 5e-3  # V


@pytest.fixture(scope="module")
def pump():
    truth = imcphys.load_card(PUMP_CARD)
    exp = pump_output(imcphys.Dataset.from_arrays({"f_clk": (F_CLK, "Hz"), "V_out": (np.zeros(F_CLK.size), "V")}))
    v = np.asarray(exp.predict(truth))
    noisy = v + NOISE_PUMP * np.random.default_rng(9).standard_normal((SEEDS, v.size))
    res = round_trip(truth, exp, noisy, PUMP_FREE, values_of(truth, PUMP_FREE), seed=10)
    return truth, noisy, res


def test_pump_output_round_trip(pump):
    """V_out(f) of the TT07 pump card: the plateau fixes C_s (through α) and the load G_L (through R_out·I),
    the high-frequency droop the clock-driver resistance R_φ."""
    truth, _, res = pump
    check_round_trip(res, values_of(truth, PUMP_FREE))


def test_pump_standard_errors_match_spread(pump):
    truth, _, res = pump
    check_spread(res, values_of(truth, PUMP_FREE))


# ============================================================================== IGZO: TFT transfer curves
IGZO_CARD = imcphys.cards_dir() / "igzo_2t0c_li2025.toml"
TRANSFER_FREE = ["threshold_voltage", "ideality", "band_tail_exponent", "sheet_current"]
V_GS = np.tile(np.linspace(-0.5, 2.0, 26), 2)  # V, transfer curves at V_DS = 0.05 V and 1 V
V_DS = np.repeat([0.05, 1.0], 26)
FLOOR = 1e-13  # A, the instrument's floor: the off-state current (~1e-19 A) is far below it
NOISE_TRANSFER = 0.01  # decades


def transfer_dataset(i_d):
    return imcphys.Dataset.from_arrays({"V_GS": (V_GS, "V"), "V_DS": (V_DS, "V"), "I_D": (i_d, "A")})


@pytest.fixture(scope="module")
def igzo_transfer():
    truth = imcphys.load_card(IGZO_CARD)
    _, exp = measurement("transfer", transfer_dataset(np.ones(V_GS.size)), truth, floor=FLOOR)
    i_d = np.asarray(exp.predict(truth))
    noisy = i_d * 10 ** (NOISE_TRANSFER * np.random.default_rng(12).standard_normal((SEEDS, i_d.size)))
    res = round_trip(truth, exp, noisy, TRANSFER_FREE, values_of(truth, TRANSFER_FREE), seed=13)
    return truth, noisy, res


def test_igzo_transfer_round_trip(igzo_transfer):
    """Write-transistor transfer curves above the instrument floor: the sub-threshold slope fixes n, the
    onset V_T, the power law above threshold γ and I_sq; the points below the floor take no part."""
    truth, noisy, res = igzo_transfer
    check_round_trip(res, values_of(truth, TRANSFER_FREE))
    assert np.all(res.dof == int(np.sum(np.abs(noisy[0]) > FLOOR)) - len(TRANSFER_FREE))


def test_igzo_transfer_standard_errors_match_spread(igzo_transfer):
    truth, _, res = igzo_transfer
    check_spread(res, values_of(truth, TRANSFER_FREE))


# ====================================================================== IGZO: 2T0C retention, two temperatures
RETENTION_FREE = ["off_current", "off_activation_energy"]
T_HOLD = np.geomspace(1.0, 1e4, 30)  # s after writing the top level (1.0 V)


def retention_dataset(temperature, i_read):
    return imcphys.Dataset.from_arrays(
        {"t": (T_HOLD, "s"), "T": (np.full(T_HOLD.size, temperature), "K"), "I_read": (i_read, "A")}
    )


@pytest.fixture(scope="module")
def igzo_retention():
    """Read current while the top level (1.0 V) leaks away at 25 °C and at 85 °C, fitted together."""
    truth = imcphys.load_card(IGZO_CARD)
    exps = [measurement(None, retention_dataset(temp, np.ones(T_HOLD.size)), truth)[1] for temp in (298.15, 358.15)]
    rng = np.random.default_rng(14)
    # fewer seeds: each fit runs two adaptive ODE solves per evaluation (16 seeds: the spread to about 18 %)
    noisy = [
        np.asarray(e.predict(truth)) * 10 ** (NOISE_DECADES * rng.standard_normal((16, T_HOLD.size))) for e in exps
    ]
    res = round_trip(truth, exps, noisy, RETENTION_FREE, values_of(truth, RETENTION_FREE), seed=15)
    return truth, res


def test_igzo_retention_round_trip(igzo_retention):
    """With the word line at −1 V the write transistor's channel is off by ~20 decades: the node leaks
    through the off-state floor I_off(T)·W, Arrhenius in T; two temperatures fix I_off and E_a."""
    truth, res = igzo_retention
    check_round_trip(res, values_of(truth, RETENTION_FREE))


def test_igzo_retention_standard_errors_match_spread(igzo_retention):
    truth, res = igzo_retention
    check_spread(res, values_of(truth, RETENTION_FREE))


# ================================================================================================= CLI
def _run_cli(args):
    from typer.testing import CliRunner

    from imcphys.cli import app

    run = CliRunner().invoke(app, ["fit", *args, "--starts", str(STARTS), "--candidates", "0", "--quiet"])
    assert run.exit_code == 0, run.output
    return run


def _perturbed_card(card_path, names, factors, path):
    card = imcphys.read_card(card_path)
    device = imcphys.replace(card.device(), **{n: float(getattr(card.device(), n)) * f for n, f in zip(names, factors)})
    return imcphys.save_card(device, path, template=card)


@pytest.mark.parametrize("family", ["pump", "pcm_cell", "flash_ideal", "igzo_transfer"])
def test_cli_fits_each_family_from_a_perturbed_card(family, request, tmp_path):
    """``imcphys fit`` infers the kind from the columns, fits from a card 30–40 % off, writes the card and the
    report; the values agree with the truth within 3 standard errors (the --starts of the round trips: the
    compilation is shared)."""
    extra, factors = [], [1.3, 0.7, 1.4]
    if family == "pump":
        truth, noisy, _ = request.getfixturevalue("pump")
        card, names = PUMP_CARD, PUMP_FREE
        data = [imcphys.Dataset.from_arrays({"f_clk": (F_CLK / 1e3, "kHz"), "V_out": (noisy[0], "V")})]
    elif family == "pcm_cell":
        truth, noisy, _ = request.getfixturevalue("pcm_cell")
        card, names = PCM_CELL_CARD, PCM_CELL_FREE
        data = [imcphys.Dataset.from_arrays({"t": (T_CELL, "s"), "G": (noisy[0] * 1e6, "uS")})]
    elif family == "flash_ideal":
        truth, noisy, _ = request.getfixturevalue("flash")
        card, names = FLASH_CARD, FLASH_FREE
        data = [flash_dataset(noisy[0])]
        extra = ["--set", "source=ideal"]
    else:
        truth, noisy, _ = request.getfixturevalue("igzo_transfer")
        card, names = IGZO_CARD, TRANSFER_FREE
        data = [transfer_dataset(noisy[0])]
        extra, factors = ["--floor", str(FLOOR)], [1.3, 1.3, 0.7, 1.4]  # n >= 1
    paths = [str(d.to_csv(tmp_path / f"{family}_{k}.csv")) for k, d in enumerate(data)]
    start = _perturbed_card(card, names, factors[: len(names)], tmp_path / "start.toml")
    out = tmp_path / "out"
    files = [a for path in paths for a in ("--data", path)]
    run = _run_cli(["--card", str(start), *files, "--free", *names, "--out", str(out), *extra])
    assert "multi-start" in run.output
    report = json.loads((out / "fit_report.json").read_text())
    for p in report["parameters"]:
        assert abs(p["value_si"] - float(getattr(truth, p["name"]))) < 3 * p["std_error_si"], p
        assert p["status"] == "ok"
    fitted = imcphys.read_card(out / "start_fitted.toml")
    assert all(fitted.provenance[n]["status"] == "fitted" for n in names)


def test_cli_fits_a_pcm_device_state_without_writing_a_card(pcm_device_fits, tmp_path):
    """A drift trace on the statistical PCM card fits that device's g_prog and ν (its state); the card's
    parameters describe a population, so no card is written."""
    model = imcphys.replace(imcphys.PCMStatistical(), read_noise_scale=0.2)
    states, reads = drift_reads(model, 1, jax.random.key(11))
    card = imcphys.save_card(
        model, tmp_path / "pcm.toml", template=imcphys.read_card(imcphys.cards_dir() / "pcm_joshi2020.toml")
    )
    csv_path = imcphys.Dataset.from_arrays({"t": (T_DRIFT, "s"), "G": (reads[0] * 1e6, "uS")}).to_csv(
        tmp_path / "device3.csv"
    )
    out = tmp_path / "out"
    run = _run_cli(["--card", str(card), "--data", str(csv_path), "--free", "g_prog", "nu", "--out", str(out)])
    assert "nu" in run.output and not list(out.glob("*.toml"))
    report = {p["name"]: p for p in json.loads((out / "fit_report.json").read_text())["parameters"]}
    assert abs(report["nu"]["value_si"] - float(states.nu[0])) < 3 * report["nu"]["std_error_si"]
    assert abs(report["g_prog"]["value_si"] - float(states.g_prog[0])) < 3 * report["g_prog"]["std_error_si"]


def test_kinds_are_inferred_from_columns_and_mismatches_named():
    """Each family declares its measurement kinds (columns and builder) next to its physics; the kind is read off a
    file's columns among the family's own kinds, and a kind the family does not have is refused by name."""

    def ds(*names):
        return imcphys.Dataset.from_arrays({n: (np.arange(1.0, 4.0), "1") for n in names})

    reram, cell, pump = imcphys.StanfordReRAM(), imcphys.PCMCell(), imcphys.DicksonPump()
    flash, gain = imcphys.FloatingGateCell(), imcphys.Cell2T0C()
    cases = [
        (("t", "V", "I"), reram, "dc"),
        (("amplitude", "width", "I"), reram, "pulse"),
        (("amplitude", "width", "Vth"), flash, "vth"),
        (("t", "G"), cell, "drift"),
        (("t", "G"), imcphys.PCMStatistical(), "drift"),
        (("t", "T", "G"), cell, "retention"),
        (("t", "T", "I_read"), gain, "retention"),
        (("V_GS", "V_DS", "I_D"), gain, "transfer"),
        (("f_clk", "V_out"), pump, "pump"),
    ]
    assert [infer_kind(ds(*c), dev) for c, dev, _ in cases] == [k for *_, k in cases]
    with pytest.raises(ValueError, match="cannot tell the kind.*a StanfordReRAM can be fitted to — dc: t, V, I"):
        infer_kind(ds("x", "y"), reram)
    with pytest.raises(ValueError, match="cannot be fitted to a .pump. measurement; its kinds: dc, pulse"):
        measurement("pump", ds("f_clk", "V_out"), reram)
    with pytest.raises(ValueError, match="cannot be fitted to a 'iv' measurement"):
        measurement("iv", ds("t", "V", "I"), reram)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['source'\] for a 'drift' measurement"):
        measurement("drift", ds("t", "G"), cell, source="ideal")


def test_cli_free_bounds_in_card_units(pump, tmp_path):
    """``--free NAME:LO:HI`` (and one-sided ``NAME::HI``) bounds a parameter in the card's unit of it (pF, nS,
    kohm here); the fit stays inside and still recovers the truth."""
    truth, noisy, _ = pump
    path = imcphys.Dataset.from_arrays({"f_clk": (F_CLK, "Hz"), "V_out": (noisy[1], "V")}).to_csv(tmp_path / "pump.csv")
    start = _perturbed_card(PUMP_CARD, PUMP_FREE, [1.3, 0.7, 1.4], tmp_path / "start.toml")
    out = tmp_path / "out"
    specs = ["stray_capacitance:0.1:0.5", "load_conductance:20:200", "clock_resistance::10"]
    _run_cli(["--card", str(start), "--data", str(path), "--free", *specs, "--out", str(out)])
    report = {p["name"]: p for p in json.loads((out / "fit_report.json").read_text())["parameters"]}
    for name, (lo, hi) in {
        "stray_capacitance": (0.1e-12, 0.5e-12),
        "load_conductance": (20e-9, 200e-9),
        "clock_resistance": (-np.inf, 10e3),
    }.items():
        p = report[name]
        assert lo < p["value_si"] < hi and p["status"] == "ok", p
        assert abs(p["value_si"] - float(getattr(truth, name))) < 3 * p["std_error_si"], p


@pytest.mark.parametrize(
    "spec, message",
    [
        ("stray_capacitance:0.5:0.1", "stray_capacitance: the lower bound 0.5 must be below the upper bound 0.1 pF"),
        ("stray_capacitance:0.5:0.5", "stray_capacitance: the lower bound 0.5 must be below the upper bound 0.5 pF"),
        (
            "stray_capacitance:-1:0.5",
            "stray_capacitance: the lower bound -1e-12 F lies outside the parameter's allowed range",
        ),
        ("stray_capacitance:0.1:zero", "stray_capacitance: the upper bound 'zero' is not a number"),
        ("stray_capacitance:0.1", "stray_capacitance: bounds are written NAME:LO:HI"),
        ("stray_capacitance:0.3:0.5", "stray_capacitance: the start value 2.264e-13 F must lie strictly inside"),
    ],
)
def test_cli_bad_free_bounds_are_named(spec, message, tmp_path):
    path = imcphys.Dataset.from_arrays({"f_clk": (F_CLK, "Hz"), "V_out": (np.ones(F_CLK.size), "V")}).to_csv(
        tmp_path / "pump.csv"
    )
    from typer.testing import CliRunner

    from imcphys.cli import app

    run = CliRunner().invoke(
        app,
        [
            "fit",
            "--card",
            str(PUMP_CARD),
            "--data",
            str(path),
            "--free",
            spec,
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
    )
    assert run.exit_code == 2
    assert message in " ".join(run.output.split()), run.output
