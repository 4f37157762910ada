r"""**Pump-fed programming** (:meth:`FloatingGateCell.pulse`, :func:`program_wordline`, :func:`ispp`): the pump
is regulated to the requested control-gate voltage (> 0: program; < 0: erase, the pump driving the well)
and feeds the word line (R_wl, C_wl), charged from 0 V, shared by ``cells_per_wordline`` cells whose
tunnelling current (α_G·J·A_tun per cell, the displacement current it induces on the control gate) loads
it. A pump regulated by skipping cycles sits on average half a regulation ripple, i_pump/(f(C_L + C')),
above its target; the averaged model regulates there, which makes the steady ISPP step ΔV_pp·(1 − 1/(2R_out
f (C_L + C'))) through the pump (ΔV_pp exactly from an ideal source, Suh et al., IEEE JSSC 30(11), 1149
(1995)).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..._checks import check_range, is_concrete
from ..._integrate import GRADING
from ..._math import relu
from .pump import PUMP_PARAMS, DicksonPump
from .switched_pump import AbstractPumpLoad, simulate_switched

if TYPE_CHECKING:  # annotations only: the cell imports this module for its pulse
    from .floating_gate import FloatingGateCell, _Tunnel


class WordlinePulse(eqx.Module):
    """Outcome of :func:`program_wordline`."""

    dvth: Array  #: ΔV_th of every cell after the pulse [V]
    energy: Array  #: energy drawn from the pump's supplies during the pulse, whole word line [J]
    energy_per_cell: Array  #: ``energy``/``cells_per_wordline`` [J]
    v_wordline: Array  #: word-line (control-gate) voltage at the end of the pulse [V]
    pump_state: Array  #: averaged pump ladder [m_1 … m_N, V_out] at the end of the pulse [V]
    ts: Array  #: times of the traces below [s] (cell steps; cycle ends when switched; ends when adaptive)
    v_pump_trace: Array  #: pump output at ``ts`` [V]
    v_wordline_trace: Array  #: word-line voltage at ``ts`` [V]


def _shared(x: Array) -> Array:
    """The first element of a (possibly population-wide) parameter: the word line's pump is one pump."""
    x = jnp.asarray(x)
    return x.reshape(-1)[0] if x.ndim else x


_ROS2_GAMMA = 1.0 + 1.0 / math.sqrt(2.0)
_NJ = 1e-9  # energy unit inside the pump integrators


def _ros2_step(field, y, h):
    """One step of the L-stable second-order Rosenbrock method ROS2 (Verwer, Spee, Blom & Hundsdorfer, SIAM J.
    Sci. Comput. 20, 1456 (1999)) for the autonomous system y' = field(y)."""
    jac = jax.jacfwd(field)(y)
    w = jnp.eye(y.shape[0]) - _ROS2_GAMMA * h * jac
    k1 = jnp.linalg.solve(w, field(y))
    k2 = jnp.linalg.solve(w, field(y + h * k1) - 2.0 * k1)
    return y + 1.5 * h * k1 + 0.5 * h * k2


class _WordlineSetup(eqx.Module):
    """The pump (shared by the word line), the word line, and the regulator target, for one pulse."""

    pump: DicksonPump
    r_wl: Array
    c_wl: Array
    n_wl: Array
    band: Array
    v_reg: Array
    sign: Array

    def field(self, y: Array, i_cells: Array) -> Array:
        """d/dt of [m_1 … m_N, V_out, V_wl, E/nJ, ∫V_wl dt] with the cells drawing ``i_cells`` [A]."""
        n = self.pump.stages
        x, w = y[: n + 1], y[n + 1]
        enabled = jnp.clip((self.v_reg - x[-1]) / self.band, 0.0, 1.0)
        i_wl = (x[-1] - w) / self.r_wl
        dx = self.pump.ladder_rhs(x, i_wl, enabled)
        dw = (i_wl - i_cells) / self.c_wl
        de = self.pump.supply_power(x, enabled) / _NJ
        return jnp.concatenate([dx, jnp.stack([dw, de, w])])

    def start(self, pump_state: Array | None) -> Array:
        """Initial [ladder, V_wl = 0, E = 0, ∫V_wl = 0]: the pump at ``pump_state`` (None: at rest)."""
        x = self.pump.rest_state() if pump_state is None else jnp.asarray(pump_state, dtype=float)
        return jnp.concatenate([x, jnp.zeros(3)])

    def regulate(self, y: Array) -> Array:
        """Hold an overshooting output at its regulated level V_reg − band·g (g: the clock duty that balances
        the load), as the clock-skipping regulator would not have pumped the excess; its energy is taken
        back. A large fixed step can overshoot where the regulator engages, since the step sees the gate
        closed."""
        n = self.pump.stages
        x, w = y[: n + 1], y[n + 1]
        load = (x[-1] - w) / self.r_wl + self.pump.load_conductance * x[-1] + self.pump.load_current
        i_full = relu(self.pump.open_circuit_voltage() - self.v_reg) / self.pump.output_resistance()
        duty = jnp.clip(load / jnp.maximum(i_full, 1e-30), 0.0, 1.0)
        level = self.v_reg - self.band * duty
        excess = relu(x[-1] - level)
        energy = excess * self.pump.output_capacitance * self.pump.charge_energy() / _NJ
        return y.at[n].add(-excess).at[n + 2].add(-energy)


def _setup(cells: FloatingGateCell, amplitude: Array) -> _WordlineSetup:
    pump = jax.tree_util.tree_map(_shared, cells.pump)
    target = jnp.abs(amplitude)
    # a pump regulated by skipping cycles sits about half a regulation ripple above its target on average
    v_reg = target + 0.5 * pump.regulation_ripple(target)
    return _WordlineSetup(
        pump=pump,
        r_wl=_shared(cells.wordline_resistance),
        c_wl=_shared(cells.wordline_capacitance),
        n_wl=_shared(cells.cells_per_wordline),
        band=_shared(cells.pump_regulation_band),
        v_reg=v_reg,
        sign=jnp.where(amplitude >= 0, 1.0, -1.0),
    )


def _cells_current(tunnel: _Tunnel, setup: _WordlineSetup, dvth: Array, w: Array, weight: Array) -> Array:
    """Current the word line's cells draw from it [A]: cells_per_wordline × the (weighted) mean cell current."""
    i = setup.sign * tunnel.gate_current(dvth, setup.sign * w)
    return setup.n_wl * jnp.sum(weight * i) / jnp.maximum(jnp.sum(jnp.broadcast_to(1.0, weight.shape)), 1.0)


def program_wordline(
    cells: FloatingGateCell,
    dvth: ArrayLike,
    amplitude: ArrayLike,
    width: ArrayLike,
    *,
    fixed_steps: int | None = 32,
    pump_substeps: int = 4,
    weight: ArrayLike | None = None,
    pump_state: ArrayLike | None = None,
) -> WordlinePulse:
    """One pump-fed pulse on a word line: ``cells`` (one cell, or a population sharing one pump: its pump and
    word-line parameters are taken from the first cell) starting at ``dvth`` [V], target control-gate
    voltage ``amplitude`` [V] (> 0 program, < 0 erase) for ``width`` [s].

    The word line carries ``cells_per_wordline`` cells, each drawing the mean current of ``cells`` weighted
    by ``weight`` (1 for a cell being programmed, 0 for an inhibited one; default all 1).
    ``fixed_steps=n``: n graded steps for the cells, each an exact constant-voltage Fowler–Nordheim update
    at the step's mean word-line voltage, and ``pump_substeps`` ROS2 steps of the averaged pump and word
    line per cell step (the cells' current held over the step); ``None``: one adaptive Kvaerno5 solve of
    everything together (the reference). The pump starts at ``pump_state`` (its averaged ladder, e.g. the
    ``pump_state`` a previous pulse left; ``None``: at rest) and the word line at 0 V. No reach check here
    (see :meth:`DicksonPump.check_reach`): a pump that cannot reach droops.
    """
    dvth = jnp.asarray(dvth, dtype=float)
    amplitude = jnp.asarray(amplitude, dtype=float)
    width = jnp.asarray(width, dtype=float)
    weight = jnp.ones_like(dvth) if weight is None else jnp.broadcast_to(jnp.asarray(weight, dtype=float), dvth.shape)
    setup = _setup(cells, amplitude)
    n = setup.pump.stages
    if fixed_steps is None:
        return _program_wordline_adaptive(cells, setup, dvth, width, weight, pump_state)
    if not isinstance(fixed_steps, int) or fixed_steps < 1:
        raise ValueError(f"fixed_steps must be a positive integer or None; got {fixed_steps!r}")

    mesh = width * (jnp.arange(fixed_steps + 1) / fixed_steps) ** GRADING
    tunnel = cells.tunnel()

    def step(carry, ab):
        y, d = carry
        h = ab[1] - ab[0]
        i_cells = _cells_current(tunnel, setup, d, y[n + 1], weight)

        def field(z):
            return setup.field(z, i_cells)

        integral0 = y[n + 3]

        def sub(z, _):
            return setup.regulate(_ros2_step(field, z, h / pump_substeps)), None

        y, _ = jax.lax.scan(sub, y, None, length=pump_substeps)
        w_mean = (y[n + 3] - integral0) / jnp.where(h > 0, h, 1.0)
        d = jnp.where(h > 0, tunnel.step(d, setup.sign * w_mean, jnp.where(h > 0, h, 1.0)), d)
        return (y, d), y[n : n + 2]

    y0 = setup.start(pump_state)
    (y, d), trace = jax.lax.scan(step, (y0, dvth), jnp.stack([mesh[:-1], mesh[1:]], axis=1))
    trace = jnp.concatenate([y0[None, n : n + 2], trace])
    energy = y[n + 2] * _NJ
    return WordlinePulse(
        dvth=d,
        energy=energy,
        energy_per_cell=energy / setup.n_wl,
        v_wordline=y[n + 1],
        pump_state=y[: n + 1],
        ts=mesh,
        v_pump_trace=trace[:, 0],
        v_wordline_trace=trace[:, 1],
    )


def _program_wordline_adaptive(cells, setup, dvth, width, weight, pump_state):
    n = setup.pump.stages
    shape = dvth.shape

    def field(t, y, args):
        del t, args
        d = y[n + 4 :].reshape(shape)
        w = y[n + 1]
        i_cells = _cells_current(cells.tunnel(), setup, d, w, weight)
        dd = weight * cells.dvth_rate(d, setup.sign * w)
        return jnp.concatenate([setup.field(y[: n + 4], i_cells), dd.reshape(-1)])

    y0 = jnp.concatenate([setup.start(pump_state), dvth.reshape(-1)])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Kvaerno5(),
        0.0,
        width,
        width * 1e-6,
        y0,
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-9),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=100_000,
    )
    y = sol.ys[-1]
    energy = y[n + 2] * _NJ
    return WordlinePulse(
        dvth=y[n + 4 :].reshape(shape),
        energy=energy,
        energy_per_cell=energy / setup.n_wl,
        v_wordline=y[n + 1],
        pump_state=y[: n + 1],
        ts=jnp.stack([0.0 * width, width]),
        v_pump_trace=jnp.stack([y0[n], y[n]]),
        v_wordline_trace=jnp.stack([y0[n + 1], y[n + 1]]),
    )


class _WordlineLoad(AbstractPumpLoad):
    """A word line (R_wl, C_wl) with its tunnelling cells, hung on the switched pump's output; extra = [V_wl,
    ΔV_th…]."""

    cells: FloatingGateCell
    setup: _WordlineSetup

    def __call__(self, v_out, extra):
        w, d = extra[0], extra[1:]
        i_wl = (v_out - w) / self.setup.r_wl
        i_cells = _cells_current(self.cells.tunnel(), self.setup, d, w, jnp.ones_like(d))
        dd = self.cells.dvth_rate(d, self.setup.sign * w)
        return jnp.concatenate([((i_wl - i_cells) / self.setup.c_wl)[None], dd]), i_wl


def program_wordline_switched(
    cells: FloatingGateCell, dvth: ArrayLike, amplitude: ArrayLike, width: float
) -> WordlinePulse:
    """Reference for :func:`program_wordline`: the same pulse with the switched pump (every node resolved
    within each clock phase; the regulator lets a cycle run only when it starts with the output below
    |amplitude|). ``width`` is rounded to whole clock cycles; ``dvth`` is a 1-D array of cells."""
    dvth = jnp.atleast_1d(jnp.asarray(dvth, dtype=float))
    setup = _setup(cells, jnp.asarray(amplitude, dtype=float))
    cycles = max(1, round(float(width) * float(setup.pump.clock_frequency)))
    sol = simulate_switched(
        setup.pump,
        cycles,
        v_target=jnp.abs(amplitude),
        load=_WordlineLoad(cells, setup),
        extra0=jnp.concatenate([jnp.zeros(1), dvth]),
        samples=2,
    )
    n = setup.pump.stages
    energy = sol.energy[-1]
    return WordlinePulse(
        dvth=sol.final[n + 5 :],
        energy=energy,
        energy_per_cell=energy / setup.n_wl,
        v_wordline=sol.final[n + 4],
        pump_state=sol.final[: n + 1],
        ts=sol.ts[:, 1, -1],
        v_pump_trace=sol.v_out[:, 1, -1],
        v_wordline_trace=sol.extra[:, 0],
    )


# --------------------------------------------------------------------------------------------------- ISPP
class IsppResult(eqx.Module):
    """Outcome of :func:`ispp` on a word line of cells."""

    vth: Float[Array, "pulses_plus_1 cells"]  #: V_th before each pulse and after the last [V]
    pulses: Float[Array, " cells"]  #: pulses each cell received (verify-inhibited afterwards)
    verified: Float[Array, " cells"]  #: 1 where the final V_th passed verify
    v_cg: Float[Array, " pulses"]  #: requested control-gate voltage of each pulse [V]
    pulse_energy: Float[Array, " pulses"]  #: supply energy of each pulse, whole word line [J]
    energy_per_cell: Float[Array, ""]  #: supply energy of the pulses the word line received, per cell [J]

    @property
    def final_vth(self) -> Array:
        """V_th after programming [V]."""
        return self.vth[-1]


def ispp(
    cells: FloatingGateCell,
    dvth0: ArrayLike,
    *,
    v_start: ArrayLike,
    v_step: ArrayLike,
    width: ArrayLike,
    verify_level: ArrayLike,
    max_pulses: int,
    fixed_steps: int = 16,
    pump_substeps: int = 4,
    sharpness: float | None = None,
    source: str = "pump",
) -> IsppResult:
    """Incremental step pulse programming with verify (Suh et al., IEEE JSSC 30(11), 1149 (1995)) of the cells
    of one word line through their shared pump: pulse k asks the pump for V_CG = ``v_start`` + k·``v_step``
    [V] for ``width`` [s]. The pump starts from rest and keeps running (regulated) from pulse to pulse,
    while the word line is discharged for each verify: every pulse sees the word line charge from 0 V
    through R_wl, the pump droop as it shares its charge, and the step up of its regulation target. Before
    each pulse every cell is read, and a cell whose V_th ≥ ``verify_level`` [V] is inhibited (no more
    tunnelling, no more load on the word line). ``max_pulses`` pulses at most.

    ``cells`` is one cell or a population whose pump and word-line parameters are the same in every cell
    (the word line's pump; checked when concrete). ``sharpness`` [V] replaces the hard verify by a logistic
    of that width (a smooth relaxation for optimisation); ``None`` is the exact algorithm, whose gradients
    (piecewise smooth: pulse counts are locally constant) exist almost everywhere. The requested voltages
    must be within the pump's reach (an error otherwise). ``source="ideal"`` applies the same steps from an
    ideal voltage source (exact constant-voltage pulses; no pump, no energy) — the textbook ISPP, for
    comparison.
    """
    if source not in ("pump", "ideal"):
        raise ValueError(f"ispp source must be 'pump' or 'ideal'; got {source!r}")
    if not isinstance(max_pulses, int) or max_pulses < 1:
        raise ValueError(f"max_pulses must be a positive integer; got {max_pulses!r}")
    check_range("ispp width", width, lower=0.0, lower_open=True, unit="s")
    check_range("ispp v_step", v_step, lower=0.0, unit="V")
    if sharpness is not None:
        check_range("ispp sharpness", sharpness, lower=0.0, lower_open=True, unit="V")
    for name in (
        "wordline_resistance",
        "wordline_capacitance",
        "cells_per_wordline",
        "pump_regulation_band",
        *("pump_" + n for n in PUMP_PARAMS),
    ):
        value = getattr(cells, name)
        if is_concrete(value) and np.ptp(np.asarray(value)) != 0:
            raise ValueError(f"ispp: all cells of a word line share one pump and word line; {name} varies")
    pump = jax.tree_util.tree_map(_shared, cells.pump)
    v_last = jnp.asarray(v_start) + (max_pulses - 1) * jnp.asarray(v_step)
    if source == "pump":
        v_last = pump.check_reach(jnp.maximum(jnp.abs(v_start), jnp.abs(v_last)))
    return _ispp(
        cells,
        jnp.asarray(dvth0, dtype=float),
        jnp.asarray(v_start, dtype=float),
        jnp.asarray(v_step, dtype=float) + 0.0 * v_last,
        jnp.asarray(width, dtype=float),
        jnp.asarray(verify_level, dtype=float),
        max_pulses=max_pulses,
        fixed_steps=fixed_steps,
        pump_substeps=pump_substeps,
        sharpness=sharpness,
        source=source,
    )


@eqx.filter_jit
def _ispp(
    cells,
    dvth0,
    v_start,
    v_step,
    width,
    verify_level,
    *,
    max_pulses,
    fixed_steps,
    pump_substeps,
    sharpness,
    source,
):
    def passed(vth):
        if sharpness is None:
            return (vth >= verify_level).astype(vth.dtype)
        return jax.nn.sigmoid((vth - verify_level) / sharpness)

    def body(carry, k):
        d, active, pulses, energy, pump_state = carry
        vth = cells.read(d)
        active = active * (1.0 - passed(vth))
        v_cg = v_start + k * v_step
        if source == "ideal":
            ends = jnp.stack([v_cg, v_cg])
            res = WordlinePulse(
                dvth=cells.constant_voltage_pulse(d, v_cg, width),
                energy=jnp.zeros(()),
                energy_per_cell=jnp.zeros(()),
                v_wordline=v_cg,
                pump_state=pump_state,
                ts=jnp.stack([0.0, width]),
                v_pump_trace=ends,
                v_wordline_trace=ends,
            )
        else:
            res = program_wordline(
                cells,
                d,
                v_cg,
                width,
                fixed_steps=fixed_steps,
                pump_substeps=pump_substeps,
                weight=active,
                pump_state=pump_state,
            )
        d = d + active * (res.dvth - d)
        running = jnp.max(active)  # the word line is pulsed while any of its cells still programs
        carry = (d, active, pulses + active, energy + running * res.energy_per_cell, res.pump_state)
        return carry, (vth, v_cg, res.energy)

    pump = jax.tree_util.tree_map(_shared, cells.pump)
    init = (dvth0, jnp.ones_like(dvth0), jnp.zeros_like(dvth0), jnp.zeros(()), pump.rest_state())
    (d, _, pulses, energy, _), (vth, v_cg, pulse_energy) = jax.lax.scan(body, init, jnp.arange(max_pulses))
    final = cells.read(d)
    return IsppResult(
        vth=jnp.concatenate([vth, final[None]]),
        pulses=pulses,
        verified=(final >= verify_level).astype(final.dtype),
        v_cg=v_cg,
        pulse_energy=pulse_energy,
        energy_per_cell=energy,
    )
