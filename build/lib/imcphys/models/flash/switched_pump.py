r"""Switched (reference) model of the Dickson pump.

*Switched model* (reference, :func:`simulate_switched`, :func:`switched_steady_state`): every top node and
the output resolved in time with diffrax, the bottom plates as the known RC forcing of each half period (an
instantaneous edge when R_φC < 1e-4·T/2), the clock gated per cycle by a bang-bang regulator when asked.
"""

from __future__ import annotations

import abc

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PyTree

from ..._math import relu
from .pump import DicksonPump, PumpSteadyState


class SwitchedSolution(eqx.Module):
    """Result of :func:`simulate_switched`, sampled ``samples`` times per half period."""

    ts: Float[Array, "cycles 2 samples"]  #: sample times [s]
    v_out: Float[Array, "cycles 2 samples"]  #: output voltage [V]
    nodes: Float[Array, "cycles n"]  #: top-node voltages V_1 … V_N at the end of each cycle [V]
    energy: Float[Array, " cycles"]  #: supply energy drawn since t = 0, at the end of each cycle [J]
    enabled: Bool[Array, " cycles"]  #: whether the regulator let the clock run in that cycle
    extra: PyTree  #: states of the attached load at the end of each cycle (leading axis: cycles)
    final: Float[Array, " m"]  #: full final state [V_1…V_N, V_out, b_odd, b_even, E/pJ, extra…]

    def cycle_mean(self) -> Float[Array, " cycles"]:
        """Mean output voltage over each cycle [V] (trapezoid over the samples)."""
        v = self.v_out.reshape(self.v_out.shape[0], -1)
        return _trapz_mean(v, self.ts.reshape(v.shape))


def _trapz_mean(v: Array, t: Array) -> Array:
    dt = jnp.diff(t, axis=-1)
    return jnp.sum(0.5 * (v[..., 1:] + v[..., :-1]) * dt, axis=-1) / jnp.sum(dt, axis=-1)


class AbstractPumpLoad(eqx.Module):
    """Something attached to the pump output in the switched model (e.g. a word line and its cells)."""

    @abc.abstractmethod
    def __call__(self, v_out: Array, extra: PyTree) -> tuple[PyTree, Array]:
        """(d extra/dt, current drawn from the output [A]) at output voltage ``v_out`` [V]."""


_PJ = 1e-12  # energy unit of the switched state (keeps the solver's tolerances meaningful)


def _clock_levels(pump: DicksonPump, phase: int, enabled: Array) -> Array:
    """Driver levels of the (odd, even) clock lines: phase 0 odd low, even high; phase 1 the reverse. A
    disabled cycle holds the phase-1 levels."""
    vphi = pump.clock_amplitude
    low_high, high_low = jnp.stack([0.0 * vphi, vphi]), jnp.stack([vphi, 0.0 * vphi])
    if phase == 1:
        return high_low
    return jnp.where(enabled, low_high, high_low)


def _switched_field(pump: DicksonPump, load: AbstractPumpLoad | None, clk: Array, b0: Array, smooth: Array):
    """Vector field within one half period with the clock lines driven to ``clk`` from bottom-plate levels
    ``b0`` through R_φ·C: db/dt = (clk − b0)·exp(−t/τ_φ)/τ_φ is a known forcing, not a (stiff) state.
    ``smooth`` = 0 when the edge is instantaneous (applied as a jump before the solve)."""
    n = pump.stages
    cp = pump.node_capacitance()
    tau_phi = jnp.where(smooth > 0, pump.clock_resistance * pump.capacitance, 1.0)
    odd = (jnp.arange(1, n + 1) % 2) == 1  # node k is on the odd clock line
    high = jnp.where(odd, clk[0], clk[1]) > 0

    def field(t, y, args):
        del args
        v, vout, extra = y[:n], y[n], y[n + 4 :]
        db = smooth * (clk - b0) * jnp.exp(-t / tau_phi) / tau_phi
        db_node = jnp.where(odd, db[0], db[1])
        upstream = jnp.concatenate([pump.supply_voltage[None], v])
        downstream = jnp.concatenate([v, vout[None]])
        i = relu(upstream - downstream - pump.threshold_voltage) / pump.switch_resistance
        dv = (pump.capacitance * db_node + i[:-1] - i[1:]) / cp
        if load is None:
            d_extra, i_x = extra, jnp.zeros(())
        else:
            d_extra, i_x = load(vout, extra)
        dvout = (i[-1] - pump.load_conductance * vout - pump.load_current - i_x) / pump.output_capacitance
        i_cap = pump.capacitance * (db_node - dv)  # current into each bottom plate, from its clock driver
        p = pump.supply_voltage * i[0] + pump.clock_amplitude * jnp.sum(jnp.where(high, i_cap, 0.0))
        return jnp.concatenate([dv, dvout[None], jnp.zeros(2), (p / _PJ)[None], jnp.atleast_1d(d_extra)])

    return field


def _switched_rest_state(pump: DicksonPump, extra0: Array) -> Array:
    return jnp.concatenate([pump.rest_state(), jnp.zeros(3), jnp.atleast_1d(extra0)])


def _switched_cycle(pump, load, y, enabled, samples, rtol, atol, adjoint):
    """One clock cycle (two half periods) from state ``y``: the state at its end and V_out at ``samples``
    times per half period."""
    n = pump.stages
    half = 0.5 / pump.clock_frequency
    tau_phi = pump.clock_resistance * pump.capacitance
    smooth = (tau_phi > 1e-4 * half).astype(y.dtype)  # else the edge is a jump (its transient is unresolvable)
    odd = (jnp.arange(1, n + 1) % 2) == 1
    outs = []
    for phase in (0, 1):
        clk = _clock_levels(pump, phase, enabled)
        b0 = y[n + 1 : n + 3]
        # an instantaneous edge: every top node jumps by α·Δb while no charge moves; the driver supplies C(1 −
        # α)Δb
        jump = (1.0 - smooth) * (clk - b0)
        jump_node = jnp.where(odd, jump[0], jump[1])
        going_high = jnp.where(odd, clk[0], clk[1]) > 0
        e_jump = pump.clock_amplitude * jnp.sum(
            jnp.where(going_high, pump.capacitance * (1.0 - pump.coupling()) * jump_node, 0.0)
        )
        y = y.at[:n].add(pump.coupling() * jump_node).at[n + 3].add(e_jump / _PJ)
        ts = half * jnp.linspace(0.0, 1.0, samples)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_switched_field(pump, load, clk, b0, smooth)),
            diffrax.Tsit5(),
            0.0,
            half,
            half / 50,
            y,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=100_000,
            adjoint=adjoint,
        )
        # explicit: the transfer devices park at their threshold kink, where implicit solvers' Newton
        # iterations
        # stall (measured: Kvaerno5 ran out of steps where Tsit5 took ~10³ per cycle)
        b_end = clk + (b0 - clk) * jnp.exp(-half / jnp.where(smooth > 0, tau_phi, half))
        y = sol.ys[-1].at[n + 1 : n + 3].set(jnp.where(smooth > 0, b_end, clk))
        outs.append(sol.ys[:, n])
    return y, jnp.stack(outs)


def simulate_switched(
    pump: DicksonPump,
    cycles: int,
    *,
    v_target: ArrayLike | None = None,
    load: AbstractPumpLoad | None = None,
    extra0: ArrayLike = (),
    y0: ArrayLike | None = None,
    samples: int = 9,
    rtol: float = 1e-7,
    atol: float = 1e-10,
) -> SwitchedSolution:
    """The switched (per-phase) Dickson pump: every top node, the output and both clock bottom plates resolved
    in time over ``cycles`` clock cycles from rest (or from ``y0``), with diffrax (Tsit5) in each cycle.

    Transfer devices conduct (ΔV − V_t)/R_on when forward biased beyond V_t; bottom plates follow the clock
    through R_φ·C. With ``v_target`` [V] a regulator lets the clock run only in the cycles that start with
    the output below the target. ``load`` attaches extra states (a word line with its cells) to the output.
    """
    if not isinstance(cycles, int) or cycles < 1:
        raise ValueError(f"cycles must be a positive integer; got {cycles!r}")
    extra0 = jnp.asarray(extra0, dtype=float)
    y = _switched_rest_state(pump, extra0) if y0 is None else jnp.asarray(y0, dtype=float)
    target = jnp.asarray(jnp.inf if v_target is None else v_target, dtype=float)
    return _simulate_switched(pump, load, y, target, cycles=cycles, samples=samples, rtol=rtol, atol=atol)


@eqx.filter_jit
def _simulate_switched(pump, load, y, target, *, cycles, samples, rtol, atol):
    n = pump.stages

    def body(y, k):
        del k
        enabled = y[n] < target
        y, vs = _switched_cycle(pump, load, y, enabled, samples, rtol, atol, diffrax.RecursiveCheckpointAdjoint())
        return y, (vs, y[:n], y[n + 3] * _PJ, enabled, y[n + 4 :])

    y_end, (vs, nodes, energy, enabled, extra) = jax.lax.scan(body, y, jnp.arange(cycles))
    period = 1.0 / pump.clock_frequency
    local = 0.5 * period * jnp.linspace(0.0, 1.0, samples)
    ts = (
        jnp.arange(cycles)[:, None, None] * period
        + jnp.array([0.0, 0.5])[None, :, None] * period
        + local[None, None, :]
    )
    return SwitchedSolution(ts=ts, v_out=vs, nodes=nodes, energy=energy, enabled=enabled, extra=extra, final=y_end)


def switched_steady_state(pump: DicksonPump, *, samples: int = 65) -> PumpSteadyState:
    """Periodic steady state of the switched model, found by Newton's method on the one-cycle map (shooting),
    then one cycle sampled densely: its mean and peak-to-peak output, and its supply power."""
    return _switched_steady_state(pump, samples=samples)


@eqx.filter_jit
def _switched_steady_state(pump: DicksonPump, *, samples: int) -> PumpSteadyState:
    n = pump.stages
    rtol, atol = 1e-10, 1e-13

    def cycle_map(x, args):
        del args
        y = jnp.concatenate([x, jnp.zeros(1)])
        y, _ = _switched_cycle(pump, None, y, jnp.asarray(True), 2, rtol, atol, diffrax.ForwardMode())
        return y[: n + 3] - x

    x0 = _switched_rest_state(pump, jnp.zeros(0))[: n + 3]
    x0 = x0.at[: n + 1].set(pump.steady_nodes())  # any start converges; the averaged steady state is close

    def newton(x, _):
        # least squares: without a load the fixed points form a continuum (every node just below conduction)
        jac = jax.jacfwd(cycle_map)(x, None)
        return x + jnp.linalg.lstsq(jac, -cycle_map(x, None))[0], None

    # a fixed count: the residual stalls at the adaptive solver's noise (~1e-8 V) after about six iterations
    root, _ = jax.lax.scan(newton, x0, None, length=12)
    y = jnp.concatenate([root, jnp.zeros(1)])
    y_end, vs = _switched_cycle(
        pump, None, y, jnp.asarray(True), samples, rtol, atol, diffrax.RecursiveCheckpointAdjoint()
    )
    period = 1.0 / pump.clock_frequency
    t = jnp.concatenate(
        [
            0.5 * period * jnp.linspace(0.0, 1.0, samples),
            0.5 * period * (1.0 + jnp.linspace(0.0, 1.0, samples)),
        ]
    )
    v = vs.reshape(-1)
    v_mean = _trapz_mean(v, t)
    i_out = pump.load_conductance * v_mean + pump.load_current
    p = y_end[n + 3] * _PJ / period
    return PumpSteadyState(
        v_out=v_mean,
        ripple=jnp.max(v) - jnp.min(v),
        i_out=i_out,
        supply_power=p,
        efficiency=v_mean * i_out / p,
    )
