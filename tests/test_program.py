"""Program-and-verify (imcphys.program) on the Stanford ReRAM model: the loop's accounting against a hand-written
loop, the smooth and straight-through modes against the exact mode as τ → 0, gradients against central finite
differences of the smooth mode, gradient optimisation against random search and grid search (judged in exact mode
on a fresh population), unreachable targets reported, report helpers, bad input.

Sizes are small and shapes shared (one population size N, one schedule length K) so that each compiled program
is reused across tests: compilation dominates the time of this file.
"""

from __future__ import annotations

import logging
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import central_difference

import imcphys
from imcphys.experiments.optimize_write_verify import hand_tuned_ramp
from imcphys.experiments.reram_stanford import DEMO_SPREAD
from imcphys.population import Normal, sample, take
from imcphys.program import (
    Bidirectional,
    FixedAmplitude,
    IncrementalAmplitude,
    NotImprovedWarning,
    ProgramReport,
    Schedule,
    Smoothing,
    WriteCost,
    evaluate,
    grid_search,
    optimize_scheme,
    program,
    random_search,
    settings,
    value_and_grad,
    with_settings,
)

N = 128  # cells in every population of this file (train and fresh alike, so programs compile once)
K = 10  # pulse budget of the schedules
COST = WriteCost(pulse_weight=0.003, energy_weight=1e7)
SMOOTH = Smoothing(verify=0.05, polarity=0.1, clip=0.05, device=0.05)


@pytest.fixture(scope="module")
def dev():
    return imcphys.StanfordReRAM()


@pytest.fixture(scope="module")
def pops(dev):
    """Training and fresh populations (device-to-device spread of the ReRAM demo), independent draws."""
    return sample(dev, DEMO_SPREAD, N, key=jax.random.key(11)), sample(dev, DEMO_SPREAD, N, key=jax.random.key(12))


@pytest.fixture(scope="module")
def held_out(dev):
    """A third independent draw, on which refinement selects its iterate (neither trained on nor judged on)."""
    return sample(dev, DEMO_SPREAD, N, key=jax.random.key(17))


@pytest.fixture(scope="module")
def levels(dev):
    """3-bit targets: read currents [A] of 8 gaps evenly spaced from 1.5 nm to 0.4 nm (nominal cell)."""
    return dev.read(jnp.linspace(1.5e-9, 0.4e-9, 8))


@pytest.fixture(scope="module")
def schedule():
    return hand_tuned_ramp(K)


def fresh_objectives(schemes, fresh, levels):
    """Exact-mode objective of each scheme on the fresh population, averaged over 4 cycle-to-cycle noise draws
    (the same draws for every scheme): the objective of 128 cells varies by about ±15 % from draw to draw."""
    return np.mean(
        [
            evaluate(schemes, fresh, targets=levels, objective=COST, key=jax.random.key(100 + i), initial="set")
            for i in range(4)
        ],
        axis=0,
    )


def test_schedule_from_scheme_runs_the_same_pulses(schedule):
    np.testing.assert_allclose(schedule.set_amplitude, 1.15 + 0.01 * np.arange(K), rtol=1e-15)
    np.testing.assert_allclose(schedule.reset_amplitude, 1.05 + 0.03 * np.arange(K), rtol=1e-15)
    assert len(jax.tree_util.tree_leaves(settings(schedule))) == 5
    assert sum(np.size(v) for v in settings(schedule).values()) == 4 * K + 1


def test_loop_matches_a_hand_written_loop(dev, pops, levels, schedule):
    """Pulses, energy [J], time [s] and final read of the exact mode equal an explicit Python loop over
    device.pulse with the same per-pulse keys (noise on)."""
    key = jax.random.key(5)
    rep = program(pops[0], schedule, targets=levels, key=key, verify="exact", initial="set")
    pulse = eqx.filter_jit(lambda d, g, a, w, k: d.pulse(g, a, w, fixed_steps=16, key=k))
    cell_keys = jax.random.split(key, N)
    for i in (0, 3, 6):  # three cells, three different target levels
        d, target = take(pops[0], i), float(levels[i % 8])
        gap, pulses, energy, time, reads = d.gap_min, 0, 0.0, 0.0, 0
        for k in range(K):
            reads += 1
            err = math.log(float(d.read(gap)) / target)
            if abs(err) < 0.2:
                break
            amp = schedule.set_amplitude[k] if err < 0 else -schedule.reset_amplitude[k]
            res = pulse(
                d,
                gap,
                amp,
                schedule.set_width[k] if err < 0 else schedule.reset_width[k],
                jax.random.fold_in(cell_keys[i], k),
            )
            gap, pulses, energy, time = res.state, pulses + 1, energy + float(res.energy), time + float(res.duration)
        else:
            reads += 1  # final verify after the last pulse
        assert float(rep.pulses[i]) == pulses
        assert float(rep.energy[i]) == pytest.approx(energy, rel=1e-12)
        assert float(rep.time[i]) == pytest.approx(time + reads * schedule.verify_time, rel=1e-12)
        assert float(rep.read[i]) == pytest.approx(float(d.read(gap)), rel=1e-12)
        assert bool(rep.converged[i]) == (abs(math.log(float(d.read(gap)) / target)) < 0.2)
    again = program(pops[0], schedule, targets=levels, key=key, verify="exact", initial="set")
    np.testing.assert_array_equal(again.read, rep.read)  # same key, bit-identical


def test_smooth_and_straight_through_tend_to_exact(pops, levels, schedule):
    key = jax.random.key(6)
    exact = program(pops[0], schedule, targets=levels, key=key, verify="exact", initial="set")
    assert 0 < exact.unconverged < N and np.ptp(exact.pulses) > 3  # a non-trivial case: cells differ
    gaps = []
    for factor in (1.0, 1e-1, 1e-2, 1e-3, 1e-5):
        smooth = program(
            pops[0], schedule, targets=levels, key=key, verify="smooth", smoothing=SMOOTH.scaled(factor), initial="set"
        )
        gaps.append(
            (
                np.max(np.abs(np.log(smooth.read / exact.read))),
                np.max(np.abs(smooth.pulses - exact.pulses)),
                np.max(np.abs(smooth.energy / exact.energy - 1)),
            )
        )
        st = program(
            pops[0],
            schedule,
            targets=levels,
            key=key,
            verify="straight_through",
            smoothing=SMOOTH.scaled(factor),
            initial="set",
        )
        for name in ("read", "pulses", "energy", "time", "converged"):  # forward is the exact mode, bit for bit
            np.testing.assert_array_equal(getattr(st, name), getattr(exact, name))
    gaps = np.array(gaps)
    assert gaps[0, 1] > 0.5  # at τ = (0.05, 0.1) the smooth mode is far from exact ...
    assert np.all(np.diff(gaps[:, 0]) <= 0) and np.all(np.diff(gaps[:, 1]) <= 0)  # ... and closes in monotonically
    assert gaps[-1, 0] < 1e-9 and gaps[-1, 1] < 1e-9 and gaps[-1, 2] < 1e-9  # final reads, pulses and energy


def test_gradients_match_finite_differences_of_the_smooth_mode(pops, levels, schedule):
    key = jax.random.key(7)
    kw = dict(targets=levels, objective=COST, key=key, verify="smooth", smoothing=SMOOTH, initial="set")
    value, grads = value_and_grad(schedule, pops[0], **kw)

    def objective(s):
        return float(
            COST(program(pops[0], s, targets=levels, key=key, verify="smooth", smoothing=SMOOTH, initial="set"))
        )

    assert value == pytest.approx(objective(schedule), rel=1e-12)
    checked = 0
    for name, g in grads.items():
        base = np.asarray(getattr(schedule, name))
        for idx in [()] if base.ndim == 0 else [(0,), (3,), (K - 1,)]:

            def f(x, name=name, idx=idx, base=base):
                return objective(with_settings(schedule, **{name: jnp.asarray(base).at[idx].set(x)}))

            # step 1e-6: the smooth objective's curvature makes the error of a 1e-5 step up to ~1e-3 for some
            # noise draws (it scales as the step squared: measured 7.6e-4 at 1e-5, 7.6e-6 at 1e-6)
            fd = central_difference(f, float(base[idx]), rel=1e-6)
            assert float(g[idx]) == pytest.approx(fd, rel=2e-4, abs=1e-9 * abs(value / base[idx])), (name, idx)
            checked += 1
    assert checked == 13
    assert any(abs(float(g[0])) > 0 for k, g in grads.items() if k != "tolerance")  # not a flat landscape


def test_rich_schedule_gradient_beats_random_search(pops, levels):
    """41 settings (per-iteration SET/RESET amplitude and width + tolerance) from a constant start: Adam on the
    smooth objective vs the best of as many random schedules, both judged in exact mode on a fresh population."""
    train, fresh = pops
    start = Schedule(
        set_amplitude=jnp.full(K, 1.2),
        set_width=jnp.full(K, 20e-9),
        reset_amplitude=jnp.full(K, 1.2),
        reset_width=jnp.full(K, 20e-9),
        tolerance=0.2,
    )
    res = optimize_scheme(
        start,
        train,
        targets=levels,
        objective=COST,
        steps=30,
        key=jax.random.key(8),
        validation=fresh,
        smoothing=SMOOTH,
        check_every=10,
        initial="set",
    )
    assert res.settings_count == 41 and res.evaluations == 30 + 4
    assert res.report.verify == "exact" and res.report.cells == N
    bounds = {
        "set_amplitude": (1.0, 2.0),
        "reset_amplitude": (0.9, 2.0),
        "set_width": (5e-9, 100e-9),
        "reset_width": (5e-9, 100e-9),
        "tolerance": (0.05, 0.5),
    }
    rnd = random_search(
        start,
        train,
        targets=levels,
        objective=COST,
        bounds=bounds,
        evaluations=res.evaluations,
        key=jax.random.key(9),
        initial="set",
    )
    assert rnd.evaluations == res.evaluations
    objective_gradient, objective_random = fresh_objectives([res.scheme, rnd.scheme], fresh, levels)
    assert objective_gradient < 0.5 * objective_random, (objective_gradient, objective_random)
    assert res.objective < 0.5 * res.objective_start
    assert res.improved and not res.start_kept


def test_gradient_ramp_beats_the_hand_tuned_ramp(pops, held_out, levels, schedule):
    """The recipe for multi-level writes: a ramp (start and step per polarity, widths, tolerance) from a neutral
    start, optimised by gradient on an objective that counts level misses and caps the squared error, selected in
    exact mode on a held-out population, programs the fresh population with fewer bit errors than the notebook's
    hand-tuned ramp at the same pulse budget (BER averaged over 4 cycle-to-cycle noise draws, common to both)."""
    train, fresh = pops
    neutral = Bidirectional(
        iterations=K,
        set_start=1.1,
        set_step=0.02,
        reset_start=1.1,
        reset_step=0.02,
        set_width=20e-9,
        reset_width=20e-9,
        tolerance=0.2,
    )
    margin = 0.5 * float(np.log(levels[1] / levels[0]))  # half the ln-current spacing: the read margin
    ber_cost = WriteCost(
        pulse_weight=0.003, energy_weight=1e7, miss_weight=1.0, miss_margin=margin, miss_width=0.05, error_cap=margin
    )
    res = optimize_scheme(
        neutral,
        train,
        targets=levels,
        objective=ber_cost,
        steps=10,
        key=jax.random.key(8),
        validation=fresh,
        smoothing=SMOOTH,
        check_every=5,
        selection=held_out,
        initial="set",
        progress=False,
    )
    assert res.improved and not res.start_kept

    def ber(scheme):
        return np.mean(
            [
                program(fresh, scheme, targets=levels, key=jax.random.key(100 + i), verify="exact", initial="set").ber()
                for i in range(4)
            ]
        )

    ber_gradient, ber_hand = ber(Schedule.from_scheme(res.scheme)), ber(schedule)
    assert ber_gradient < 0.7 * ber_hand, (ber_gradient, ber_hand)


def test_optimize_scheme_reports_each_step_and_warns_when_it_returns_the_start(
    pops, held_out, levels, schedule, caplog
):
    """Steps that all climb the objective (signed gradient ascent, 30 % per step in every setting): no checked
    iterate beats the start on the selection population, so the start comes back, with a warning and
    ``improved`` False; every step and every check is logged."""
    train, fresh = pops
    ascent = optax.chain(optax.scale_by_sign(), optax.scale(0.3))
    with (
        caplog.at_level(logging.INFO, logger="imcphys.program"),
        pytest.warns(NotImprovedWarning, match="the start is returned"),
    ):
        res = optimize_scheme(
            schedule,
            train,
            targets=levels,
            objective=COST,
            steps=2,
            key=jax.random.key(8),
            validation=fresh,
            smoothing=SMOOTH,
            check_every=1,
            selection=held_out,
            optimizer=ascent,
            initial="set",
            progress=False,
        )
    assert res.start_kept and not res.improved
    assert res.objective == res.objective_start
    for name, value in settings(schedule).items():
        np.testing.assert_array_equal(getattr(res.scheme, name), value)
    assert np.all(res.checks[1:, 1] > res.checks[0, 1]), res.checks
    messages = [r.getMessage() for r in caplog.records]
    assert sum("smooth objective" in m for m in messages) == 2
    assert sum("exact objective" in m for m in messages) == 3


def test_gradient_refinement_improves_the_grid_optimum(pops, held_out, levels):
    """Classic 3-setting scheme (incremental RESET from the SET state: start, step, tolerance): the best point of
    a 3×3×2 grid, refined by gradient steps, programs a fresh population with a lower exact objective. The
    iterate kept is the best in exact mode on a held-out selection population (the grid point if none beats it):
    selecting on the training population let its noise pick a worse iterate at full size."""
    train, fresh = pops
    ispp = IncrementalAmplitude(iterations=K, start=1.0, step=0.04, width=20e-9, tolerance=0.2, polarity="reset")
    grid = grid_search(
        ispp,
        train,
        targets=levels,
        objective=COST,
        key=jax.random.key(13),
        initial="set",
        grid={"start": [0.9, 1.0, 1.1], "step": [0.02, 0.04, 0.08], "tolerance": [0.15, 0.3]},
    )
    assert grid.evaluations == 18 and grid.objective == pytest.approx(np.min(grid.objectives))
    refined = optimize_scheme(
        grid.scheme,
        train,
        targets=levels,
        objective=COST,
        steps=15,
        key=jax.random.key(14),
        validation=fresh,
        free=("start", "step", "tolerance"),
        smoothing=SMOOTH.scaled(0.5),
        anneal=0.2,
        learning_rate=0.02,
        check_every=5,
        selection=held_out,
        initial="set",
    )
    assert float(refined.scheme.width) == float(ispp.width)  # not a free setting
    fresh_grid, fresh_refined = fresh_objectives([grid.scheme, refined.scheme], fresh, levels)
    assert fresh_refined < 0.95 * fresh_grid, (fresh_grid, fresh_refined)
    assert refined.report.verify == "exact" and refined.evaluations == 15 + 4
    with pytest.raises(ValueError, match="selection"):
        optimize_scheme(
            grid.scheme,
            train,
            targets=levels,
            objective=COST,
            steps=1,
            key=jax.random.key(14),
            validation=fresh,
            smoothing=SMOOTH,
            selection=fresh,
        )


def test_write_cost_counts_level_misses_and_caps_the_squared_error(pops, levels, schedule):
    """WriteCost's miss term is w_m·mean(σ((|e| − m)/τ_m)): with a narrow τ_m it counts the cells beyond the read
    margin (half the 0.629 ln-current spacing of the levels); the cap turns e² into c² tanh(e²/c²)."""
    rep = program(pops[1], schedule, targets=levels, key=jax.random.key(5), verify="exact", initial="set")
    e = np.asarray(rep.error)
    margin = 0.5 * float(np.log(levels[1] / levels[0]))
    base = WriteCost(pulse_weight=0.003, energy_weight=1e7)
    plain = float(base(rep))
    sharp = WriteCost(pulse_weight=0.003, energy_weight=1e7, miss_weight=2.0, miss_margin=margin, miss_width=1e-9)
    assert np.any(np.abs(e) > margin)  # the count is not trivially zero
    assert float(sharp(rep)) - plain == pytest.approx(2.0 * np.mean(np.abs(e) > margin), rel=1e-12)
    capped = WriteCost(pulse_weight=0.003, energy_weight=1e7, error_cap=margin)
    expected = plain - np.mean(e**2) + np.mean(margin**2 * np.tanh(e**2 / margin**2))
    assert float(capped(rep)) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="WriteCost.miss_margin"):
        WriteCost(pulse_weight=0.0, energy_weight=0.0, miss_weight=1.0, miss_margin=0.0)
    with pytest.raises(ValueError, match="WriteCost.error_cap"):
        WriteCost(pulse_weight=0.0, energy_weight=0.0, error_cap=-1.0)


def test_unreachable_targets_are_reported(dev, pops, levels, schedule):
    """Half the cells get a target above the largest read current any cell can reach (twice the read at g_min):
    every one of them is reported unconverged, with the full pulse budget spent."""
    pop = pops[0]
    top = 2 * float(jnp.max(jax.vmap(lambda d: d.read(d.gap_min))(pop)))
    targets = jnp.where(jnp.arange(N) % 2 == 0, top, levels[jnp.arange(N) % 8])
    rep = program(pop, schedule, targets=targets, key=jax.random.key(16), verify="exact", initial="set")
    impossible = np.flatnonzero(np.arange(N) % 2 == 0)
    assert set(impossible) <= set(rep.unconverged_cells)
    assert rep.unconverged >= len(impossible) and rep.unconverged == len(rep.unconverged_cells)
    np.testing.assert_array_equal(rep.pulses[impossible], K)
    assert np.all(rep.error[impossible] < -0.2)
    assert rep.summary()["unconverged_cells"] == rep.unconverged


def test_report_level_helpers():
    """Decoding, level error rate, Gray-coded BER and histograms on hand-made reads (4 levels, 2 bits)."""
    levels = np.array([1e-6, 2e-6, 4e-6, 8e-6])
    target = np.tile(levels, 3)
    read = target.copy()
    read[1] = 1.3e-6  # level 1 read as level 0 (geometric midpoint 1.414e-6): 1 bit wrong
    read[6] = 1.5e-6  # level 2 read as level 1: 1 bit
    read[3] = 1.1e-6  # level 3 read as level 0: Gray 10 vs 00, 1 bit
    z = jnp.zeros(12)
    rep = ProgramReport(
        read=jnp.asarray(read),
        target=jnp.asarray(target),
        error=jnp.log(read / target),
        pulses=z,
        energy=z,
        time=z,
        converged=jnp.abs(jnp.log(read / target)) < 0.1,
        state=z,
        tolerance=jnp.asarray(0.1),
        iterations=5,
        error_scale="log",
        verify="exact",
    )
    np.testing.assert_array_equal(rep.decoded_level(), [0, 0, 2, 0, 0, 1, 1, 3, 0, 1, 2, 3])
    assert rep.level_error_rate() == pytest.approx(3 / 12)
    assert rep.ber() == pytest.approx(3 / 24)
    assert rep.unconverged == 3 and list(rep.unconverged_cells) == [1, 3, 6]
    edges, counts = rep.histogram(bins=10)
    assert counts.shape == (4, 10) and counts.sum() == 12 and np.all(counts.sum(axis=1) == 3)
    assert edges[0] == pytest.approx(1e-6) and edges[-1] == pytest.approx(8e-6)


def test_smoothed_widens_the_field_threshold_only(dev):
    assert dev.smoothed(0.0).field_threshold_width == dev.field_threshold_width
    assert float(dev.smoothed(0.05).field_threshold_width) == pytest.approx(0.05 * 1.4e9)
    assert float(dev.smoothed(0.05).min_field) == float(dev.min_field)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: IncrementalAmplitude(iterations=0, start=1.0, step=0.1, width=1e-8, tolerance=0.1), "iterations"),
        (lambda: IncrementalAmplitude(iterations=5, start=1.0, step=0.1, width=1e-8, tolerance=-0.1), "tolerance"),
        (lambda: FixedAmplitude(iterations=5, amplitude=1.0, width=0.0, tolerance=0.1), "width"),
        (lambda: FixedAmplitude(iterations=5, amplitude=1.0, width=1e-8, tolerance=0.1, polarity="up"), "polarity"),
        (
            lambda: Bidirectional(
                iterations=5,
                set_start=1.0,
                set_step=-0.1,
                reset_start=1.0,
                reset_step=0.0,
                set_width=1e-8,
                reset_width=1e-8,
                tolerance=0.1,
            ),
            "set_step",
        ),
        (
            lambda: Schedule(
                set_amplitude=jnp.ones(3),
                set_width=jnp.ones(4),
                reset_amplitude=jnp.ones(3),
                reset_width=jnp.ones(3),
                tolerance=0.1,
            ),
            "set_width",
        ),
        (
            lambda: Schedule(
                set_amplitude=jnp.ones(3),
                set_width=jnp.ones(3),
                reset_amplitude=jnp.ones(3),
                reset_width=jnp.ones(3),
                tolerance=0.1,
                error_scale="dB",
            ),
            "error_scale",
        ),
        (lambda: Smoothing(verify=0.0, polarity=0.1, clip=0.1, device=0.0), "verify"),
    ],
)
def test_bad_settings_raise_naming_them(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_bad_calls_raise_naming_the_parameter(pops, levels, schedule):
    pop, fresh = pops
    kw = dict(targets=levels, key=jax.random.key(0), initial="set")
    with pytest.raises(ValueError, match="verify"):
        program(pop, schedule, verify="hard", **kw)
    with pytest.raises(ValueError, match="smoothing"):
        program(pop, schedule, verify="smooth", **kw)
    with pytest.raises(ValueError, match="targets"):
        program(pop, schedule, verify="exact", targets=-levels, key=None)
    with pytest.raises(ValueError, match="targets"):
        program(pop, schedule, verify="exact", targets=jnp.ones((2, 2)), key=None)
    with pytest.raises(ValueError, match="fixed_steps"):
        program(pop, schedule, verify="exact", fixed_steps=0, **kw)
    opt = dict(targets=levels, objective=COST, steps=2, key=jax.random.key(0), smoothing=SMOOTH)
    with pytest.raises(ValueError, match="validation"):
        optimize_scheme(schedule, pop, validation=pop, **opt)
    with pytest.raises(ValueError, match="free"):
        optimize_scheme(schedule, pop, validation=fresh, free=("gain",), **opt)
    with pytest.raises(ValueError, match="bounds"):
        random_search(
            schedule,
            pop,
            targets=levels,
            objective=COST,
            bounds={"tolerance": (0.5, 0.1)},
            evaluations=2,
            key=jax.random.key(0),
        )


@pytest.mark.slow
def test_notebook_runs_end_to_end(tmp_path, monkeypatch):
    """notebooks/optimize_write_verify.ipynb executes without error in its quick sizes."""
    from conftest import run_notebook

    printed = run_notebook("optimize_write_verify.ipynb", tmp_path, monkeypatch, timeout=900)
    assert "straight-through forward equals exact: True" in printed
    assert "fresh population, exact mode" in printed


def test_generic_over_families_pcm_cell():
    """The same code programs a second family: the physical PCM cell (current pulses, a two-field state, its own
    pulse method, no cycle-to-cycle noise). Exact mode equals a hand-written loop; smooth mode at τ → 0 equals it."""
    cell = imcphys.PCMCell()
    pop = sample(
        cell,
        {"plug_thickness": Normal(std=0.05, relative=True), "growth_activation_energy": Normal(std=0.02)},
        8,
        key=jax.random.key(21),
    )
    scheme = FixedAmplitude(iterations=6, amplitude=80e-6, width=20e-9, tolerance=0.2)
    targets = jnp.array([1e-6, 3e-6])
    rep = program(pop, scheme, targets=targets, key=None, verify="exact", initial="reset", fixed_steps=4)
    assert np.ptp(rep.pulses) > 0  # cells differ
    pulse = eqx.filter_jit(lambda d, s: d.pulse(s, 80e-6, 20e-9, fixed_steps=4))
    for i in range(8):
        d, target = take(pop, i), float(targets[i % 2])
        state, pulses, energy = d.initial_state("reset"), 0, 0.0
        while pulses < 6 and math.log(float(d.read(state)) / target) < -0.2:  # SET raises G; stop at G >= 0.82 G_t
            res = pulse(d, state)
            state, pulses, energy = res.state, pulses + 1, energy + float(res.energy)
        assert float(rep.pulses[i]) == pulses and float(rep.energy[i]) == pytest.approx(energy, rel=1e-12)
        assert float(rep.read[i]) == pytest.approx(float(d.read(state)), rel=1e-12)
    smooth = program(
        pop,
        scheme,
        targets=targets,
        key=None,
        verify="smooth",
        initial="reset",
        fixed_steps=4,
        smoothing=Smoothing(verify=1e-7, polarity=1e-7, clip=1e-12, device=0.0),
    )
    np.testing.assert_allclose(smooth.read, rep.read, rtol=1e-9)
    np.testing.assert_allclose(smooth.pulses, rep.pulses, atol=1e-9)
