"""The integrators behind :func:`imcphys.simulate` and the generic :meth:`AbstractDevice.pulse
<imcphys.device.AbstractDevice.pulse>` (private: use those).

Two paths, one physics:

- **adaptive** (:func:`simulate`, and :func:`apply_pulse` without ``fixed_steps``): diffrax with the device's
  ``default_solver()`` (Tsit5 unless the family says otherwise) and a PID step-size controller. This is the
  reference, and the path for single traces. (Measured on the ReRAM SET runaway — a positive eigenvalue, explosive
  rather than stiff — Kvaerno5's Newton iterations diverged and it ran out of steps, while Tsit5 took 60.)
- **fixed-step** (``fixed_steps=n``): n steps of Heun's method (2nd order) with the state projected onto its
  physical range after every step. For a pulse the steps are graded, t_k = T·(k/n)^1.5, denser at the start
  where a RESET transient is fastest. Every cell of a vmapped population takes the same steps (no lockstep
  stall behind the stiffest cell), which is what Monte Carlo needs; its error against the adaptive solve is
  tested. Cycle-to-cycle noise (``key=...``) is added on this path by Euler–Maruyama; the normals of a pulse
  come from its key's two words by a fused Threefry counter (:func:`imcphys._random.normals_at`; not
  ``jax.random.normal``'s stream, same distribution). A rectangular pulse without noise is a constant drive: a
  family whose ODE then has a better fixed-cost solution than time steps returns it from
  :meth:`AbstractDevice.plateau <imcphys.device.AbstractDevice.plateau>` (the ReRAM gap: time as a quadrature over
  the gap), and that replaces the Heun steps.

How the adaptive path keeps states in range without a stiff wall in the vector field: stimuli are piecewise linear
between their ``breakpoints``, and the solve is split into segments at every breakpoint, every zero crossing of the
drive and every output time. Within a segment the drive is linear and keeps its sign; the device's ``rhs`` is
evaluated at ``project(state)``, so a state pushed past a bound just runs on (harmlessly) and is projected back at
the segment's end. This is exact for families whose rate keeps its sign while the drive does (the ReRAM gap);
a family whose state could leave its range and return within one segment keeps its ``project`` the identity.
Each segment is solved in scaled time τ ∈ [0, 1], so that the tolerances of the implicit solver's Newton
iteration (which act on dstate/dτ) are in state units, and the state in units of ``device.state_scale()``.
The energy drawn, ∫ power dt [J], is integrated alongside the state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from . import _random
from .stimulus import AbstractStimulus, Pulse

if TYPE_CHECKING:  # annotations only: device.py imports this module for its generic pulse
    from .device import AbstractDevice

#: Exponent of the graded fixed-step mesh of a pulse, t_k = T (k/n)^GRADING.
GRADING = 1.5


class PulseResult(eqx.Module):
    """Outcome of one programming pulse."""

    state: PyTree  #: device state after the pulse
    energy: Float[Array, "..."]  #: electrical energy drawn by the cell during the pulse [J]
    duration: Float[Array, "..."]  #: pulse duration including rise and fall [s]


def _tmap(f: Callable[..., Any], *trees: Any) -> Any:
    return jax.tree_util.tree_map(f, *trees)


#: Unit of the energy accumulator inside solvers [J]: small enough that the relative tolerance governs it.
ENERGY_UNIT = 1e-15


class _Scaled(eqx.Module):
    """The device in scaled state units z = state/scale, with the energy accumulator in ENERGY_UNIT:
    y = (z, E/ENERGY_UNIT)."""

    device: AbstractDevice
    scale: PyTree

    def to_state(self, z):
        return _tmap(jnp.multiply, z, self.scale)

    def to_z(self, state):
        return _tmap(jnp.divide, state, self.scale)

    def project(self, y):
        return self.to_z(self.device.project(self.to_state(y[0]))), y[1]

    def field(self, t, y, drive):
        state = self.device.project(self.to_state(y[0]))
        return self.to_z(self.device.rhs(t, state, drive)), self.device.power(state, drive) / ENERGY_UNIT

    def sigma(self, y, drive):
        return self.to_z(self.device.diffusion(self.to_state(y[0]), drive))


def _scaled(device: AbstractDevice) -> _Scaled:
    return _Scaled(device, device.state_scale())


# ------------------------------------------------------------------------------------------- adaptive path
def _segment(
    sys: _Scaled,
    drive_fn,
    y0,
    a,
    b,
    *,
    solver,
    rtol,
    atol,
    max_steps,
    throw,
    adjoint=None,
    controller=None,
    first_step=None,
):
    """Solve from time a to b [s] in scaled time τ ∈ [0, 1], with the drive linear on [a, b]."""
    length = b - a
    # Sample the drive strictly inside the segment and extend linearly: exact for piecewise-linear stimuli, and
    # blind to which side a step at a or b is assigned to.
    q1, q3 = drive_fn(a + 0.25 * length), drive_fn(a + 0.75 * length)

    def f(tau, y, args):
        del args
        drive = q1 + (tau - 0.25) * 2.0 * (q3 - q1)
        return _tmap(lambda d: length * d, sys.field(a + length * tau, y, drive))

    controller = controller if controller is not None else diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f),
        solver,
        0.0,
        1.0,
        first_step,
        y0,
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=throw,
        adjoint=adjoint if adjoint is not None else diffrax.RecursiveCheckpointAdjoint(),
    )
    return _tmap(lambda x: x[-1], sol.ys), sol.result, sol.stats["num_steps"]


def _crossings(stimulus: AbstractStimulus) -> Array:
    """Times where a (piecewise-linear) drive component changes sign between breakpoints; the left corner
    elsewhere. Vector-valued drives give one candidate per component and interval."""
    tb = stimulus.breakpoints
    vb = jax.vmap(stimulus)(tb).reshape(tb.shape[0], -1)
    v0, v1 = vb[:-1], vb[1:]
    t0, t1 = tb[:-1, None], tb[1:, None]
    flips = (v0 * v1 < 0) & (t1 > t0)
    frac = jnp.where(flips, v0 / jnp.where(flips, v0 - v1, 1.0), 0.0)
    return (t0 + frac * (t1 - t0)).ravel()


def _adaptive(sys: _Scaled, stimulus: AbstractStimulus, y0, ts, **kw):
    """Segment-wise adaptive solve; returns y at ``ts``, the worst result and the total step count."""
    inside = lambda t: jnp.clip(t, ts[0], ts[-1])  # noqa: E731
    cuts = jnp.sort(jnp.concatenate([ts, inside(stimulus.breakpoints), inside(_crossings(stimulus))]))

    def body(carry, ab):
        y, result, steps = carry
        y, res, n = _segment(sys, stimulus, sys.project(y), ab[0], ab[1], **kw)
        result = diffrax.RESULTS.where(result == diffrax.RESULTS.successful, res, result)
        return (y, result, steps + n), y

    init = (y0, diffrax.RESULTS.successful, jnp.zeros((), dtype=int))
    (_, result, steps), ys = jax.lax.scan(body, init, jnp.stack([cuts[:-1], cuts[1:]], axis=1))
    ys = _tmap(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
    return _tmap(lambda y: y[jnp.searchsorted(cuts, ts)], ys), result, steps


# ---------------------------------------------------------------------------------------- fixed-step path
def _heun(sys: _Scaled, drive_fn, y0, mesh, key):
    """Heun steps over ``mesh`` [s] with projection after each; Euler–Maruyama noise when ``key`` is given."""
    n = mesh.shape[0] - 1
    dws = None
    if key is not None:
        # Every step's normals from the pulse key's two words by a fused, unrolled Threefry with counter
        # (step and element, state leaf): no key split and no rolled hash loop per pulse, which under vmap
        # dominated the cost of noisy fixed-step pulses (jax.random's stream before; same distribution).
        leaves0 = jax.tree_util.tree_leaves(y0[0])
        k0, k1 = _random.key_words(key)
        dws = [_random.normals_at(k0, k1, (n, *jnp.shape(x)), i, jnp.result_type(x)) for i, x in enumerate(leaves0)]

    def step(y, inp):
        t0, t1, dw = inp
        h = t1 - t0
        d0, d1 = drive_fn(t0), drive_fn(t1)
        k1 = sys.field(t0, y, d0)
        k2 = sys.field(t1, sys.project(_tmap(lambda a, b: a + h * b, y, k1)), d1)
        y = sys.project(_tmap(lambda a, b, c: a + 0.5 * h * (b + c), y, k1, k2))
        if dw is not None:
            leaves, tree = jax.tree_util.tree_flatten(sys.sigma(y, d1))
            noise = jax.tree_util.tree_unflatten(tree, [x * w * jnp.sqrt(h) for x, w in zip(leaves, dw)])
            y = sys.project((_tmap(jnp.add, y[0], noise), y[1]))
        return y, None

    # Checkpointed steps: reverse mode keeps one carry per step and recomputes the step's internals, instead of
    # storing every intermediate of the rate equations (for ReRAM about 8x less memory and 1.5x less time).
    y, _ = jax.lax.scan(jax.checkpoint(step), y0, (mesh[:-1], mesh[1:], dws))
    return y


def _noise_key(device: AbstractDevice, stimulus, state, key):
    """``key`` if the device has noise, else None (a deterministic run)."""
    if key is None or device.diffusion(state, stimulus(0.0)) is None:
        return None
    return key


def _check_fixed_steps(fixed_steps: int | None) -> None:
    if fixed_steps is not None and (not isinstance(fixed_steps, int) or fixed_steps < 1):
        raise ValueError(f"fixed_steps must be a positive integer or None; got {fixed_steps!r}")


def _no_noise_on_adaptive(key) -> None:
    if key is not None:
        raise ValueError("cycle-to-cycle noise (key=...) needs the fixed-step path: pass fixed_steps=n")


def solve_pulse(
    device: AbstractDevice,
    state: PyTree,
    amplitude: Float[ArrayLike, ""],
    width: Float[ArrayLike, ""],
    *,
    rise: Float[ArrayLike, ""] = 0.0,
    fall: Float[ArrayLike, ""] = 0.0,
    fixed_steps: int | None = None,
    key: PRNGKeyArray | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 4096,
    solver: diffrax.AbstractSolver | None = None,
) -> PulseResult:
    """Drive ``device.rhs`` with one trapezoidal pulse: the state after it, its energy [J] and duration [s].

    The generic implementation behind :meth:`AbstractDevice.pulse` (only right for a family whose ``pulse`` is
    this one: call ``device.pulse``, never this, from generic code); see the module docstring for the two paths.
    The input checks run here (eagerly, raising ``ValueError``); the solve is one compiled kernel even when called
    eagerly (as diffrax's ``diffeqsolve`` is), so an eager call and one under ``jax.jit`` give the same bits.
    """
    _check_fixed_steps(fixed_steps)
    if fixed_steps is None:
        _no_noise_on_adaptive(key)
    Pulse(amplitude, width, rise=rise, fall=fall)  # its checks raise here for concrete values
    # A rectangular pulse (rise and fall statically 0) drives exactly its amplitude at every mesh point (the
    # plateau is closed at both ends): a constant drive, so that XLA hoists whatever the device computes from the
    # drive alone (e.g. the ReRAM sinh(V/V_0)) out of the step loop.
    rectangular = all(isinstance(x, (int, float)) and x == 0 for x in (rise, fall))
    edges = None if rectangular else (jnp.asarray(rise, dtype=float), jnp.asarray(fall, dtype=float))
    state = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), state)
    return _solve_pulse(
        device,
        state,
        jnp.asarray(amplitude, dtype=float),
        jnp.asarray(width, dtype=float),
        edges,
        fixed_steps,
        key,
        rtol,
        atol,
        max_steps,
        solver,
    )


@eqx.filter_jit
def _solve_pulse(device, state, amplitude, width, edges, fixed_steps, key, rtol, atol, max_steps, solver):
    rise, fall = edges if edges is not None else (0.0, 0.0)
    stim = Pulse(amplitude, width, rise=rise, fall=fall)
    sys = _scaled(device)
    y0 = (sys.to_z(state), jnp.zeros(()))
    if fixed_steps is None:
        ts = jnp.stack([stim.duration * 0, stim.duration])
        ys, _, _ = _adaptive(
            sys,
            stim,
            y0,
            ts,
            solver=solver or device.default_solver(),
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            throw=True,
        )
        y = _tmap(lambda x: x[-1], ys)
    else:
        noise = _noise_key(device, stim, state, key)
        plateau = (
            device.plateau(state, stim.amplitude, stim.width, fixed_steps) if edges is None and noise is None else None
        )
        if plateau is not None:
            return PulseResult(state=device.project(plateau[0]), energy=plateau[1], duration=stim.duration)
        mesh = stim.duration * (jnp.arange(fixed_steps + 1) / fixed_steps) ** GRADING
        drive = (lambda t: stim.amplitude) if edges is None else stim  # noqa: E731
        y = _heun(sys, drive, y0, mesh, noise)
    # project in physical units: a bound is then returned exactly, not bound/scale*scale
    state = device.project(sys.to_state(y[0]))
    return PulseResult(state=state, energy=y[1] * ENERGY_UNIT, duration=stim.duration)
