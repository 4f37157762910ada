r"""A cell in its circuit: a two-terminal resistive element behind an NMOS access transistor (1T1R).

Topology (as in the SkyWater SKY130 ReRAM 1T1R cell, Hsieh et al., IEDM 2019): the element's top electrode is on
the bit line (BL), its bottom electrode on the internal node n, which is the drain of the access NMOS; the
transistor's gate is the word line (WL), its other terminal the source line (SL), its bulk at 0 V::

    BL ──[ element ]── n ──[ NMOS, gate WL ]── SL

Drive of :meth:`OneTransistorOneResistor.rhs`: the three line voltages (V_WL, V_BL, V_SL) [V]. The internal node
voltage V_n is the root of Kirchhoff's current law at n,

.. math::

    I_{cell}(V_{BL} - V_n;\ \text{state}) = I_D(V_G = V_{WL},\ V_D = V_n,\ V_S = V_{SL}),

solved inside the vector field at every evaluation: ``bisection_steps`` (10) bisections of [min(V_BL, V_SL),
max(V_BL, V_SL)] (the residual is strictly monotone in V_n, so the root is unique and bracketed) give the first
guess, then ``optimistix.Newton`` converges it (iterates clipped to the bracket) on the residual
asinh(I_cell/I_ref) − asinh(I_D/I_ref), I_ref = 1e-18 A, i.e. on the relative current mismatch for any current above
an attoampere. The unknown is the node's offset from the nearer line (V_n = V_BL + u or V_SL + u), so that
the smaller of the two drops — across the cell or across the transistor — keeps all its digits (measured: KCL holds
to 2e-14 over lines of ±3.3 V, word lines of 0–5 V and the whole state range, including a transistor that is off).
Gradients flow through the root by implicit differentiation (``optimistix.ImplicitAdjoint``): no backpropagation
through the iterations. The element then evolves under its own voltage V_cell = V_BL − V_n.

A SET pulse raises the bit line with SL at 0 V: the transistor's source is grounded and its gate sets the
compliance current (at most :meth:`~imcphys.models.mosfet.EKVTransistor.saturation_current`). A RESET pulse raises
the source line with BL at 0 V: the node is then the transistor's *source*, which follows the word line (a source
follower), so V_cell can never exceed the pinch-off voltage V_P(V_WL) in magnitude: RESET needs a high word line.
(With the SKY130 card, V_P(2.5 V) = 1.34 V: the PDK's RESET point WL 2.5 V / SL 2.6 V does not reset the compact
SkyWater model, which needs about 1.4 V for 1 µs; the PDK's high-yield RESET, WL 3 V / SL 3 V, does.)

Pulses (:meth:`OneTransistorOneResistor.pulse`): adaptive, or on the fixed-step path integrated in the element's
coordinate (the filament or gap) rather than in time (:mod:`imcphys._quadrature`): behind a transistor a SET runs
away and then stalls at the compliance within picoseconds, which no fixed time step follows. Populations: the
generic population code maps over every array of the module, so a population of 1T1R cells is built from a
population of elements with :meth:`OneTransistorOneResistor.populate` (the card's ``[variability]`` lives on the
element's card).

Elements: any voltage-driven two-terminal family whose drive is the cell voltage and whose ``observe(state, V)`` is
its current [A] (:class:`~imcphys.models.reram.StanfordReRAM`, :class:`~imcphys.models.reram_sky130.SkyWaterReRAM`);
and :class:`~imcphys.models.pcm.PCMCell`, which is programmed by its current: while programmed the threshold-switched
cell conducts at R_on (``on_resistance``), so a pulse solves the node once for the plateau current I and hands I to
``PCMCell.pulse`` (SET anneal for I > 0, melt-quench RESET for I < 0; with rise/fall the current is taken to follow
the line's trapezoid, exact for rectangular pulses).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._integrate import _check_fixed_steps, _crossings, solve_pulse
from .._quadrature import pulse_in_state
from ..device import AbstractDevice, AbstractModel, PulseResult, param
from ..stimulus import AbstractStimulus
from .mosfet import EKVTransistor
from .pcm import PCMCell, _HeatedCell
from .reram import StanfordReRAM
from .reram_sky130 import SkyWaterReRAM, SkyWaterState

#: I_ref of the asinh-scaled KCL residual [A] (about six electrons per second): below it the residual is absolute,
#: above it relative.
_I_REF = 1e-18


def _kcl_tolerance(dtype) -> float:
    # on the asinh residual (≈ the relative current mismatch) and on V_n [V]: 1e-12 in float64, ~1e-5 in float32
    return max(1e-12, 100.0 * float(jnp.finfo(dtype).eps))


def line_drive(word_line: Float[ArrayLike, "..."], line: Float[ArrayLike, "..."]) -> Float[Array, "... 3"]:
    """(V_WL, V_BL, V_SL) [V] for a signed line voltage ``line``: > 0 on the bit line with SL at 0 V, < 0 on the
    source line (|line|) with BL at 0 V."""
    line = jnp.asarray(line, dtype=float)
    wl = jnp.broadcast_to(jnp.asarray(word_line, dtype=line.dtype), line.shape)
    return jnp.stack([wl, jnp.maximum(line, 0.0), jnp.maximum(-line, 0.0)], axis=-1)


def _coordinate(cell: AbstractDevice):
    """(get, put, lower, upper) of the element's moving coordinate for the fixed-step path: ``get(state)`` the
    coordinate (or that leaf of a state-shaped tree), ``put(state, x, v)`` the state at coordinate x with its
    faster parts at their steady state under the cell voltage v, and the coordinate's range."""
    if isinstance(cell, SkyWaterReRAM):
        return (
            lambda s: s.filament,
            lambda s, x, v: SkyWaterState(x, cell.steady_temperature(x, v)),
            cell.filament_min,
            cell.filament_max,
        )
    if isinstance(cell, StanfordReRAM):
        return (lambda s: s, lambda s, x, v: x, cell.gap_min, cell.gap_max)
    raise ValueError(
        f"the fixed-step 1T1R pulse needs an element with one moving coordinate (StanfordReRAM, SkyWaterReRAM); "
        f"got {type(cell).__name__}: use the adaptive path (fixed_steps=None)"
    )


class LineDrive(AbstractStimulus):
    """The line voltages (V_WL, V_BL, V_SL) [V] of a 1T1R cell driven by a signed stimulus ``line`` (bit line
    when > 0, source line when < 0, :func:`line_drive`) with the word line held at ``word_line`` [V].

    Its breakpoints include the zero crossings of ``line``, where the drive moves from one line to the other.
    """

    line: AbstractStimulus
    word_line: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    def __call__(self, t: Float[ArrayLike, "..."]) -> Float[Array, "... 3"]:
        return line_drive(self.word_line, self.line(t))

    @property
    def t_end(self) -> Float[Array, ""]:
        return self.line.t_end

    @property
    def breakpoints(self) -> Float[Array, " n"]:
        return jnp.sort(jnp.concatenate([self.line.breakpoints, _crossings(self.line)]))


class OneTransistorOneResistor(AbstractDevice):
    """A resistive element (``cell``) behind an NMOS access transistor (``transistor``) — module docstring.

    Drive of :meth:`rhs`: (V_WL, V_BL, V_SL) [V]. :meth:`pulse` takes a signed line amplitude [V] (> 0: bit-line
    SET pulse with SL at 0 V; < 0: source-line RESET pulse with BL at 0 V) and the word line ``word_line`` [V]
    (default ``set_word_line`` or ``reset_word_line`` by the sign). :meth:`read` is the element's conductance [S]
    at ``read_voltage``. The state is the element's.
    """

    cell: AbstractDevice  #: the resistive element
    transistor: EKVTransistor  #: the access transistor
    #: V_WL of a SET pulse when none is given (SkyWater PDK ReRAM docs, 1T1R #5 SET: WL 1.7 V)
    set_word_line: Float[Array, "..."] = param(1.7, "V", lower=0.0)
    #: V_WL of a RESET pulse when none is given (SkyWater PDK ReRAM docs, high-yield RESET: WL 3 V)
    reset_word_line: Float[Array, "..."] = param(3.0, "V", lower=0.0)
    read_voltage: Float[Array, "..."] = param(0.1, "V", lower=0.0, lower_open=True)  #: V_read of ``read``
    max_line_voltage: float = eqx.field(static=True, default=3.3)  #: largest |pulse amplitude| allowed [V]
    bisection_steps: int = eqx.field(static=True, default=10)  #: bisections before Newton in the node solve

    def check_relations(self) -> None:
        if not isinstance(self.cell, AbstractDevice) or isinstance(self.cell, OneTransistorOneResistor):
            raise ValueError(
                f"OneTransistorOneResistor.cell must be a two-terminal device family; got {type(self.cell).__name__}"
            )
        if not isinstance(self.transistor, AbstractModel) or not hasattr(self.transistor, "channel_current"):
            raise ValueError(
                f"OneTransistorOneResistor.transistor must be a transistor model; got {type(self.transistor).__name__}"
            )
        if not self.max_line_voltage > 0:
            raise ValueError(f"OneTransistorOneResistor.max_line_voltage must be > 0 V; got {self.max_line_voltage}")
        if not isinstance(self.bisection_steps, int) or self.bisection_steps < 0:
            raise ValueError(
                f"OneTransistorOneResistor.bisection_steps must be an integer >= 0; got {self.bisection_steps!r}"
            )

    # ------------------------------------------------------------------- element
    @property
    def _current_programmed(self) -> bool:
        return isinstance(self.cell, PCMCell)

    def cell_current(self, state: PyTree, voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Current [A] through the element at its voltage ``voltage`` [V] (PCM: while programmed, at R_on)."""
        if self._current_programmed:
            return jnp.asarray(voltage) / self.cell.on_resistance
        return self.cell.observe(self.cell.project(state), voltage)

    # ------------------------------------------------------------------- circuit
    def _residual(self, u, args):
        """asinh(I_cell/I_ref) − asinh(I_D/I_ref) at V_n = base + u (base: V_BL or V_SL, whichever is nearer the
        root, so that the smaller of the two drops, V_cell or V_DS, keeps all its digits)."""
        state, drive, base = args
        wl, bl, sl = drive[0], drive[1], drive[2]
        i_cell = self.cell_current(state, (bl - base) - u)
        i_tr = self.transistor.channel_current(wl, sl, (base - sl) + u)
        return jnp.arcsinh(i_cell / _I_REF) - jnp.arcsinh(i_tr / _I_REF)

    def _solve_node(self, state, drive):
        """(base, u) with the node at V_n = base + u (see :meth:`_residual`)."""
        drive = jnp.asarray(drive, dtype=float)
        lo, hi = jnp.minimum(drive[1], drive[2]), jnp.maximum(drive[1], drive[2])

        def bisect(_, bracket):
            a, b = bracket
            m = 0.5 * (a + b)
            above = self._residual(m, (state, drive, lo)) > 0  # the residual falls with V_n: root above lo + m
            return jnp.where(above, m, a), jnp.where(above, b, m)

        a, b = jax.lax.fori_loop(0, self.bisection_steps, bisect, (jnp.zeros_like(lo), hi - lo))
        guess = jax.lax.stop_gradient(lo + 0.5 * (a + b))
        base = jnp.where(guess - lo <= hi - guess, lo, hi)
        tol = _kcl_tolerance(guess.dtype)
        sol = optx.root_find(
            self._residual,
            optx.Newton(rtol=tol, atol=tol),
            jax.lax.stop_gradient(guess - base),
            (state, drive, base),
            options={"lower": lo - base, "upper": hi - base},
            max_steps=64,
            adjoint=optx.ImplicitAdjoint(),
        )
        return base, sol.value

    def node_voltage(self, state: PyTree, drive: Float[ArrayLike, " 3"]) -> Float[Array, ""]:
        """V_n [V] at the element/transistor node for ``drive`` = (V_WL, V_BL, V_SL) [V] (module docstring)."""
        base, u = self._solve_node(state, drive)
        return base + u

    def cell_voltage(self, state: PyTree, drive: Float[ArrayLike, " 3"]) -> Float[Array, ""]:
        """V_cell = V_BL − V_n [V] across the element."""
        base, u = self._solve_node(state, drive)
        return (jnp.asarray(drive, dtype=float)[1] - base) - u

    def kcl_residual(self, state: PyTree, drive: Float[ArrayLike, " 3"]) -> Float[Array, ""]:
        """(I_cell − I_D)/max(|I_cell|, |I_D|, I_ref) [1] at the solved node: Kirchhoff's current law, relative."""
        drive = jnp.asarray(drive, dtype=float)
        base, u = self._solve_node(state, drive)
        i_cell = self.cell_current(state, (drive[1] - base) - u)
        i_tr = self.transistor.channel_current(drive[0], drive[2], (base - drive[2]) + u)
        return (i_cell - i_tr) / jnp.maximum(jnp.maximum(jnp.abs(i_cell), jnp.abs(i_tr)), _I_REF)

    def saturation_current(self, word_line: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The transistor's saturation current [A] with its source at 0 V: the SET compliance at ``word_line``."""
        return self.transistor.saturation_current(word_line, 0.0)

    # ------------------------------------------------------------------- device interface
    def rhs(self, t, state, drive):
        """d(state)/dt of the element under the line voltages ``drive`` = (V_WL, V_BL, V_SL) [V]."""
        drive = jnp.asarray(drive, dtype=float)
        v_cell = self.cell_voltage(state, drive)
        if self._current_programmed:
            return _HeatedCell(self.cell).rhs(t, state, self.cell_current(state, v_cell))
        return self.cell.rhs(t, state, v_cell)

    def read(self, state: PyTree) -> Float[Array, "..."]:
        """Conductance [S] of the element at ``read_voltage`` (PCM: its conductance at ambient temperature)."""
        if self._current_programmed:
            return self.cell.conductance(state)
        return self.cell.observe(state, self.read_voltage) / self.read_voltage

    def observe(self, state, drive) -> Float[Array, "..."]:
        """Current [A] through the cell (BL to SL) under the line voltages ``drive`` [V]."""
        drive = jnp.asarray(drive, dtype=float)
        return self.cell_current(state, self.cell_voltage(state, drive))

    def power(self, state, drive) -> Float[Array, "..."]:
        """Power drawn from the lines, I·(V_BL − V_SL) [W]: element and transistor."""
        drive = jnp.asarray(drive, dtype=float)
        return self.observe(state, drive) * (drive[1] - drive[2])

    def diffusion(self, state, drive):
        """The element's cycle-to-cycle noise at its own voltage (``None`` when it has none)."""
        if self._current_programmed:
            return None
        noise = self.cell.diffusion(state, jnp.zeros(()))
        if noise is None:
            return None
        return self.cell.diffusion(state, self.cell_voltage(state, drive))

    def project(self, state):
        return self.cell.project(state)

    def state_scale(self):
        return self.cell.state_scale()

    def default_solver(self) -> diffrax.AbstractSolver:
        return self.cell.default_solver()

    def initial_state(self, which: str = "reset"):
        """The element's named initial state."""
        return self.cell.initial_state(which)

    def reference_pulse(self) -> tuple[float, float]:
        """The PDK's SET operating point: a 2.4 V bit-line pulse for 1 µs at ``set_word_line`` (1.7 V on the
        SkyWater card), clipped to ``max_line_voltage``; the transistor limits the current."""
        return min(2.4, self.max_line_voltage), 1e-6

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Bit-line SET pulses (0, max_line_voltage] V, source-line RESET pulses [−max_line_voltage, 0) V."""
        return (0.0, self.max_line_voltage), (-self.max_line_voltage, 0.0)

    def smoothed(self, temperature: Float[ArrayLike, ""]) -> OneTransistorOneResistor:
        """The element's smooth relaxation (e.g. the ReRAM field-threshold ramp), transistor unchanged."""
        return eqx.tree_at(lambda d: d.cell, self, self.cell.smoothed(temperature))

    def populate(self, cells: AbstractDevice, transistors: EKVTransistor | None = None) -> OneTransistorOneResistor:
        """A population of 1T1R cells from a population of elements ``cells`` (e.g. from
        :func:`imcphys.population.sample` on the element's card) and optionally of ``transistors``: every other
        parameter is broadcast to the cell axis, so that generic population code (``program``,
        ``eqx.filter_vmap``) maps over all of them."""
        n = jax.tree_util.tree_leaves(eqx.filter(cells, eqx.is_array))[0].shape[0]
        spread = lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x)))  # noqa: E731
        base = jax.tree_util.tree_map(spread, eqx.filter(self, eqx.is_array))
        base = eqx.combine(base, eqx.filter(self, eqx.is_array, inverse=True))
        base = eqx.tree_at(lambda d: d.cell, base, cells)
        if transistors is not None:
            base = eqx.tree_at(lambda d: d.transistor, base, transistors)
        return base

    def pulse(
        self,
        state: PyTree,
        amplitude: Float[ArrayLike, ""],
        width: Float[ArrayLike, ""],
        *,
        rise: Float[ArrayLike, ""] = 0.0,
        fall: Float[ArrayLike, ""] = 0.0,
        fixed_steps: int | None = None,
        key: PRNGKeyArray | None = None,
        word_line: Float[ArrayLike, ""] | None = None,
    ) -> PulseResult:
        """One programming pulse: the signed line ``amplitude`` [V] (> 0 bit line, < 0 source line; the other
        line at 0 V) ramps with ``rise``/``fall`` [s] around a plateau of ``width`` [s] while the word line is
        held at ``word_line`` [V] (default: ``set_word_line`` for amplitude >= 0, else ``reset_word_line``).

        Adaptive by default (the element's ``default_solver`` on the 1T1R vector field); ``fixed_steps=n``
        integrates in the element's coordinate on n intervals instead (:mod:`imcphys._quadrature`: the
        compliance-limited SET stalls within picoseconds of an explosive runaway, which no fixed time step
        follows); ``key`` adds the element's cycle-to-cycle noise there. ``energy`` is drawn from the lines [J]
        (element and transistor).
        """
        _check_fixed_steps(fixed_steps)
        amplitude = jnp.asarray(amplitude, dtype=float)
        if word_line is None:
            word_line = jnp.where(amplitude >= 0, self.set_word_line, self.reset_word_line)
        word_line = jnp.asarray(word_line, dtype=float)
        if self._current_programmed:
            return self._current_pulse(state, amplitude, width, rise, fall, fixed_steps, key, word_line)
        if fixed_steps is None:
            if key is not None:
                raise ValueError("cycle-to-cycle noise (key=...) needs the fixed-step path: pass fixed_steps=n")
            return solve_pulse(_LinePulse(self, word_line), state, amplitude, width, rise=rise, fall=fall)
        get, put, lower, upper = _coordinate(self.cell)
        noisy = key is not None and self.cell.diffusion(state, jnp.zeros(())) is not None

        def rate_at(line):
            drive = line_drive(word_line, line)

            def rate(x):
                s = put(state, x, 0.0)  # the element's current does not depend on its fast states
                v = self.cell_voltage(s, drive)
                s = put(state, x, v)
                i = self.cell_current(s, v)
                sigma = self.cell.diffusion(s, v) if noisy else None
                s2 = jnp.zeros_like(x) if sigma is None else get(sigma) ** 2
                return get(self.cell.rhs(0.0, s, v)), i * (drive[1] - drive[2]), s2

            return rate

        x, energy = pulse_in_state(
            rate_at,
            get(self.cell.project(state)),
            lower,
            upper,
            amplitude,
            width,
            rise=rise,
            fall=fall,
            nodes=fixed_steps,
            key=key if noisy else None,
        )
        end_line = amplitude if isinstance(fall, (int, float)) and fall == 0 else jnp.zeros_like(amplitude)
        end_state = put(state, x, self.cell_voltage(put(state, x, 0.0), line_drive(word_line, end_line)))
        return PulseResult(state=end_state, energy=energy, duration=jnp.asarray(width) + jnp.asarray(rise) + fall)

    def _current_pulse(self, state, amplitude, width, rise, fall, fixed_steps, key, word_line) -> PulseResult:
        """PCM: the plateau current through R_on and the transistor, handed to ``PCMCell.pulse``."""
        drive = line_drive(word_line, amplitude)
        v_cell = self.cell_voltage(state, drive)
        current = self.cell_current(state, v_cell)
        res = self.cell.pulse(state, current, width, rise=rise, fall=fall, fixed_steps=fixed_steps, key=key)
        # the cell's energy I² R_on t_eff, drawn from the lines at |V_line| instead of |V_cell|
        safe_v = jnp.where(v_cell == 0, 1.0, v_cell)
        energy = jnp.where(v_cell == 0, 0.0, res.energy * jnp.abs(amplitude / safe_v))
        return PulseResult(state=res.state, energy=energy, duration=res.duration)


class _LinePulse(AbstractDevice):
    """A 1T1R cell whose drive is the signed line voltage [V] at a fixed word line: the vector field of a pulse."""

    device: OneTransistorOneResistor
    word_line: Float[Array, ""]

    def _drive(self, line):
        return line_drive(self.word_line, line)

    def rhs(self, t, state, drive):
        return self.device.rhs(t, state, self._drive(drive))

    def read(self, state):
        return self.device.read(state)

    def observe(self, state, drive):
        return self.device.observe(state, self._drive(drive))

    def power(self, state, drive):
        return self.device.power(state, self._drive(drive))

    def diffusion(self, state, drive):
        return self.device.diffusion(state, self._drive(drive))

    def project(self, state):
        return self.device.project(state)

    def state_scale(self):
        return self.device.state_scale()

    def default_solver(self) -> diffrax.AbstractSolver:
        return self.device.default_solver()

    def initial_state(self, which: str = "reset"):
        return self.device.initial_state(which)

    def amplitude_range(self):
        return self.device.amplitude_range()
