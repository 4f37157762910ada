"""Program-and-verify (imcphys.program) on a second family, the physical PCM cell (imcphys.PCMCell), through the
same generic code as ReRAM: multi-level programming by partial RESET from the SET state (each RESET pulse of
current I melts and quenches an amorphous fraction a_m(I), so a rising current schedule walks the conductance down
the levels). The smooth and straight-through modes against the exact mode as τ → 0, gradients of the objective
with respect to every setting against central finite differences of the smooth mode, targets that no pulse within
the budget can reach reported.

One population size N and one schedule length K, so each compiled program serves several tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import central_difference

import imcphys
from imcphys.experiments.optimize_write_verify import PCM_SPREAD
from imcphys.models.pcm import PCMCellState
from imcphys.population import sample
from imcphys.program import (
    IncrementalAmplitude,
    Schedule,
    Smoothing,
    WriteCost,
    program,
    value_and_grad,
    with_settings,
)

N = 64  # cells
K = 10  # pulse budget
STEPS = 1  # pieces per pulse edge on the fast path (the pulses here have no edges)
COST = WriteCost(pulse_weight=0.003, energy_weight=5e9)  # as in the study: 0.66 pJ per RESET pulse ~ 0.003
SMOOTH = Smoothing(verify=0.05, polarity=0.1, clip=1e-6, device=0.0)  # clip width 1 µA


@pytest.fixture(scope="module")
def cell():
    return imcphys.PCMCell(max_set_current=90e-6)


@pytest.fixture(scope="module")
def pop(cell):
    return sample(cell, PCM_SPREAD, N, key=jax.random.key(31))


@pytest.fixture(scope="module")
def levels(cell):
    """3-bit targets [S]: conductances of amorphous fractions 0.15 … 0.85 of fresh glass on the nominal cell."""
    return cell.read(PCMCellState(jnp.linspace(0.15, 0.85, 8), jnp.ones(8)))


@pytest.fixture(scope="module")
def schedule():
    """Incremental RESET from 100 µA in 2 µA steps, 20 ns, written as a per-iteration RESET schedule."""
    ramp = IncrementalAmplitude(iterations=K, start=100e-6, step=2e-6, width=20e-9, tolerance=0.2, polarity="reset")
    return Schedule.from_scheme(ramp)


def run(pop, scheme, targets, verify, smoothing=None):
    return program(
        pop, scheme, targets=targets, key=None, verify=verify, smoothing=smoothing, initial="set", fixed_steps=STEPS
    )


def test_smooth_and_straight_through_tend_to_exact(pop, levels, schedule):
    assert schedule.direction == "reset" and schedule.iterations == K
    exact = run(pop, schedule, levels, "exact")
    assert np.ptp(exact.pulses) > 3  # cells differ
    # the partial-RESET ramp puts most cells on their level (a sanity check of the physics)
    assert exact.unconverged < N // 4 and exact.level_error_rate() < 0.2, exact.summary()
    # a RESET pulse of I = 100 … 118 µA, 20 ns, dissipates I² R_on t = 0.6 … 0.84 pJ (R_on = 3 kΩ)
    applied = np.asarray(exact.pulses) > 0
    per_pulse = np.asarray(exact.energy)[applied] / np.asarray(exact.pulses)[applied]
    assert np.all((per_pulse > 0.59e-12) & (per_pulse < 0.85e-12))
    gaps = []
    for factor in (1.0, 1e-1, 1e-2, 1e-3, 1e-5):
        smooth = run(pop, schedule, levels, "smooth", SMOOTH.scaled(factor))
        gaps.append(
            (
                np.max(np.abs(np.log(smooth.read / exact.read))),
                np.max(np.abs(smooth.pulses - exact.pulses)),
                np.max(np.abs(smooth.energy / exact.energy - 1)),
            )
        )
        st = run(pop, schedule, levels, "straight_through", SMOOTH.scaled(factor))
        for name in ("read", "pulses", "energy", "time", "converged"):  # forward is the exact mode, bit for bit
            np.testing.assert_array_equal(getattr(st, name), getattr(exact, name))
    gaps = np.array(gaps)
    assert gaps[0, 1] > 0.3  # far from exact at τ_v = 0.05 ...
    assert np.all(np.diff(gaps[:, :2], axis=0) <= 1e-12)  # ... closing in monotonically (to rounding)
    assert gaps[-1, 0] < 1e-9 and gaps[-1, 1] < 1e-9 and gaps[-1, 2] < 1e-9


def test_gradients_match_finite_differences_of_the_smooth_mode(pop, levels, schedule):
    """Every setting: RESET amplitudes and widths at three iterations, the tolerance, and the unused SET arrays
    at one (a RESET-only schedule: their gradient is exactly 0, and so is their finite difference)."""
    kw = dict(
        targets=levels, objective=COST, key=None, verify="smooth", smoothing=SMOOTH, initial="set", fixed_steps=STEPS
    )
    value, grads = value_and_grad(schedule, pop, **kw)

    def objective(s):
        return float(COST(run(pop, s, levels, "smooth", SMOOTH)))

    assert value == pytest.approx(objective(schedule), rel=1e-12)
    checked = 0
    for name, g in grads.items():
        base = np.asarray(getattr(schedule, name))
        unused = name.startswith("set_")
        for idx in [()] if base.ndim == 0 else [(4,)] if unused else [(0,), (4,), (K - 1,)]:

            def f(x, name=name, idx=idx, base=base):
                return objective(with_settings(schedule, **{name: jnp.asarray(base).at[idx].set(x)}))

            fd = central_difference(f, float(base[idx]), rel=1e-5)
            assert float(g[idx]) == pytest.approx(fd, rel=2e-4, abs=1e-9 * abs(value / base[idx])), (name, idx)
            if unused:
                assert float(g[idx]) == 0.0
            checked += 1
    assert checked == 9
    assert np.all(np.asarray(grads["reset_amplitude"]) != 0) and float(grads["tolerance"]) != 0  # not flat


def test_unreachable_targets_are_reported(cell, pop, levels, schedule):
    """Half the cells get a target five times below the conductance of a fully amorphous plug (the lowest any
    RESET can reach): all are reported unconverged after the whole budget. A target above the SET state's
    conductance cannot be reached by RESET either: verify stops such a cell at once, and it is reported."""
    floor = float(jnp.min(jax.vmap(lambda d: d.read(PCMCellState(jnp.ones(()), jnp.ones(()))))(pop)))
    ceiling = float(jnp.max(jax.vmap(lambda d: d.read(d.initial_state("set")))(pop)))
    which = jnp.arange(N) % 4
    targets = jnp.where(which == 0, floor / 5, jnp.where(which == 1, 2 * ceiling, levels[jnp.arange(N) % 8]))
    strong = with_settings(schedule, reset_amplitude=100e-6 + 5e-6 * jnp.arange(K))  # up to 145 µA: a = 1 reached
    rep = run(pop, strong, targets, "exact")
    too_low, too_high = np.flatnonzero(np.asarray(which) == 0), np.flatnonzero(np.asarray(which) == 1)
    assert set(too_low) | set(too_high) <= set(rep.unconverged_cells)
    np.testing.assert_array_equal(rep.pulses[too_low], K)
    assert np.all(rep.error[too_low] > np.log(5) - 1e-9)
    np.testing.assert_array_equal(rep.pulses[too_high], 0)
    assert np.all(rep.error[too_high] < -np.log(2) + 1e-9)
    assert rep.summary()["unconverged_cells"] == rep.unconverged >= N // 2
