"""Simulation of one device (or a vmapped population) under a stimulus.

``imcphys.simulate(device, state0, stimulus, ts)`` (this module is callable: it calls :func:`simulate`) solves a
device under a drive waveform; :func:`apply_pulse` applies one programming pulse through the family's own
``device.pulse``. Two paths, one physics — adaptive (diffrax, the reference) and fixed-step (Heun on a graded mesh,
for populations); how they work is described in :mod:`imcphys._integrate`.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

from ._callable import make_callable
from ._checks import check_finite, runtime_check
from ._integrate import (
    ENERGY_UNIT,
    _adaptive,
    _check_fixed_steps,
    _heun,
    _no_noise_on_adaptive,
    _noise_key,
    _scaled,
    _tmap,
)
from .device import AbstractDevice, check_drive
from .stimulus import AbstractStimulus


class Solution(eqx.Module):
    """Result of :func:`simulate`: everything at the requested times ``ts``."""

    ts: Float[Array, " n"]  #: output times [s]
    states: PyTree  #: device state at ``ts`` (leading axis n)
    drive: Float[Array, " n"]  #: stimulus value at ``ts`` [drive unit]
    observed: Float[Array, " n"]  #: ``device.observe(state, drive)`` at ``ts`` (e.g. the cell current [A])
    energy: Float[Array, " n"]  #: energy drawn since ``ts[0]`` [J]
    result: diffrax.RESULTS  #: solver outcome (``diffrax.RESULTS.successful`` when all went well)
    num_steps: Int[Array, ""]  #: solver steps taken, accepted and rejected


def apply_pulse(
    device: AbstractDevice,
    state: PyTree,
    amplitude: Float[ArrayLike, ""],
    width: Float[ArrayLike, ""],
    *,
    fixed_steps: int | None = None,
    key: PRNGKeyArray | None = None,
    rise: Float[ArrayLike, ""] = 0.0,
    fall: Float[ArrayLike, ""] = 0.0,
) -> PyTree:
    """The state after one pulse of ``amplitude`` (drive unit, e.g. V) and plateau ``width`` [s].

    Adaptive by default; ``fixed_steps=n`` takes the fast fixed-step path; ``key`` adds the device's
    cycle-to-cycle noise (fixed-step path only). Works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.
    For ``StanfordReRAM`` the state is the filament gap [m].
    """
    return device.pulse(state, amplitude, width, rise=rise, fall=fall, fixed_steps=fixed_steps, key=key).state


def simulate(
    device: AbstractDevice,
    state0: PyTree,
    stimulus: AbstractStimulus,
    ts: Float[ArrayLike, " n"],
    *,
    fixed_steps: int | None = None,
    key: PRNGKeyArray | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 4096,
    throw: bool = True,
    adjoint: diffrax.AbstractAdjoint | None = None,
    controller: diffrax.AbstractStepSizeController | None = None,
    first_step: float | None = None,
) -> Solution:
    """Solve the device under ``stimulus`` from ``ts[0]`` and return states and observables at ``ts`` [s].

    A stimulus outside the family's ``drive_range()`` (e.g. a :class:`~imcphys.PCMCell` bake at or above its
    melting temperature) raises a ``ValueError`` (the runtime error of ``eqx.error_if`` under jit/vmap).

    Adaptive (``device.default_solver()`` + PID, segment by segment; ``max_steps`` per segment) unless
    ``fixed_steps=n``, which takes n Heun steps per interval of ``ts``. With ``throw=False`` a solver failure (e.g.
    ``max_steps`` reached) is reported in ``Solution.result`` instead of raised; the states are then not to be trusted.
    ``adjoint`` is diffrax's differentiation method for the adaptive path (default
    ``diffrax.RecursiveCheckpointAdjoint()``, reverse mode); ``diffrax.ForwardMode()`` allows ``jax.jvp`` and
    ``jax.jacfwd``, which Levenberg–Marquardt fits need. ``controller`` replaces the adaptive path's step-size
    controller (default ``diffrax.PIDController(rtol=rtol, atol=atol)``; its tolerances act on the scaled state),
    and ``first_step`` is the first step tried in each segment as a fraction of it (default: diffrax's estimate;
    1.0 tries the whole segment, which is one step where the device does nothing).
    """
    _check_fixed_steps(fixed_steps)
    ts = jnp.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D array of at least 2 increasing times [s]; got shape {ts.shape}")
    check_finite("ts", ts)
    for leaf in jax.tree_util.tree_leaves(state0):
        check_finite("state0", leaf)
    ts = runtime_check(ts, jnp.any(jnp.diff(ts) <= 0), "ts must be strictly increasing [s]")
    # piecewise linear between its breakpoints, the stimulus takes its extremes there
    ts = check_drive(device, jax.vmap(stimulus)(stimulus.breakpoints), name="stimulus", attach=ts)
    if fixed_steps is None:
        _no_noise_on_adaptive(key)
    else:
        key = _noise_key(device, stimulus, state0, key)
    return _solve(
        device,
        state0,
        stimulus,
        ts,
        fixed_steps=fixed_steps,
        key=key,
        solver=solver or device.default_solver() if fixed_steps is None else None,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        throw=throw,
        adjoint=adjoint,
        controller=controller,
        first_step=first_step,
    )


@eqx.filter_jit
def _solve(
    device: AbstractDevice,
    state0: PyTree,
    stimulus: AbstractStimulus,
    ts: Array,
    *,
    fixed_steps: int | None,
    key: PRNGKeyArray | None,
    solver: diffrax.AbstractSolver | None,
    rtol: float,
    atol: float,
    max_steps: int,
    throw: bool,
    adjoint: diffrax.AbstractAdjoint | None,
    controller: diffrax.AbstractStepSizeController | None,
    first_step: float | None,
) -> Solution:
    """:func:`simulate` after its checks, as one compiled function (called eagerly, the solve and the observables
    around it would otherwise compile operation by operation)."""
    sys = _scaled(device)
    y0 = (sys.to_z(state0), jnp.zeros(()))

    if fixed_steps is None:
        ys, result, num_steps = _adaptive(
            sys,
            stimulus,
            y0,
            ts,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            throw=throw,
            adjoint=adjoint,
            controller=controller,
            first_step=first_step,
        )
    else:
        frac = jnp.arange(fixed_steps + 1) / fixed_steps
        meshes = ts[:-1, None] + (ts[1:] - ts[:-1])[:, None] * frac
        keys = jr.split(key, ts.shape[0] - 1) if key is not None else None

        def interval(y, inp):
            mesh, k = inp
            y = _heun(sys, stimulus, y, mesh, k)
            return y, y

        _, ys = jax.lax.scan(interval, y0, (meshes, keys))
        ys = _tmap(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
        result, num_steps = diffrax.RESULTS.successful, jnp.asarray(fixed_steps * (ts.shape[0] - 1))
    zs, energy = ys
    states = jax.vmap(device.project)(sys.to_state(zs))
    drive = jax.vmap(stimulus)(ts)
    observed = jax.vmap(device.observe)(states, drive)
    return Solution(
        ts=ts,
        states=states,
        drive=drive,
        observed=observed,
        energy=energy * ENERGY_UNIT,
        result=result,
        num_steps=num_steps,
    )


make_callable(__name__)
