r"""**Fowler–Nordheim tunnelling** (Lenzlinger & Snow, J. Appl. Phys. 40, 278 (1969)):

.. math::

    J = A E^2 e^{-B/E},\quad A = \frac{q^3 m_0}{8\pi h\,\phi_B\,m_{ox}},\quad
    B = \frac{8\pi\sqrt{2 m_{ox}}\,\phi_B^{3/2}}{3 q h}

with CODATA constants (:mod:`imcphys.constants`); Si/SiO2: φ_B ≈ 3.2 eV, m_ox ≈ 0.42 m_0, so A ≈ 1.15e-6
A/V², B ≈ 2.53e10 V/m.

**Floating-gate cell** (two-capacitor coupling model). State: the threshold shift ΔV_th = −Q_FG/C_CG [V].
Drive: the control-gate voltage relative to the channel/well, V_CG [V]. With the control-gate coupling
ratio α_G and the tunnel oxide (thickness t_tun, ε_ox = 3.9 ε_0) as the only other capacitor,

.. math::

    E = \alpha_G (V_{CG} - \Delta V_{th})/t_{tun},\qquad
    \frac{d\Delta V_{th}}{dt} = J(E)\frac{A_{tun}}{C_{CG}}
        = J(E)\frac{t_{tun}(1-\alpha_G)}{\varepsilon_{ox}\alpha_G}

(positive V_CG injects electrons and raises V_th; negative V_CG erases, through the erase barrier). At
constant V_CG: 1/|E(t)| = ln(exp(B/|E_0|) + Bκt)/B, κ = A(1 − α_G)/ε_ox
(:meth:`FloatingGateCell.constant_voltage_pulse`). A charge-trap (SONOS) cell is the same model with α_G =
t_tun/EOT (the field across the tunnel oxide for charge at the nitride centroid). V_th is read at a defined
read current through an EKV drain current I_D = I_spec·ln²(1 + exp((V_G − V_T0 − ΔV_th)/(2nU_T))).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..._checks import is_concrete
from ..._experiment import Absolute, Experiment, MeasurementKind, _name, check_column, pulse_response
from ..._math import safe_exp
from ...constants import EPS_0, M_E, H, Q, thermal_voltage
from ...data import Dataset
from ...device import AbstractDevice, PulseResult, check_amplitude, param
from .programming import program_wordline
from .pump import PUMP_PARAMS, DicksonPump

#: Relative permittivity of SiO2.
EPS_R_SIO2 = 3.9
#: Permittivity of SiO2 [F/m].
EPS_OX = EPS_R_SIO2 * EPS_0


# ------------------------------------------------------------------------------------------ Fowler–Nordheim
def fowler_nordheim_coefficients(barrier_height: ArrayLike, mass_ratio: ArrayLike) -> tuple[Array, Array]:
    """FN coefficients (A [A/V²], B [V/m]) for a barrier ``barrier_height`` [eV] and an oxide effective mass
    ``mass_ratio`` = m_ox/m_0 (Lenzlinger & Snow 1969), from CODATA constants."""
    phi = jnp.asarray(barrier_height) * Q  # J
    m_ox = jnp.asarray(mass_ratio) * M_E
    a = Q**3 * M_E / (8.0 * math.pi * H * phi * m_ox)
    b = 8.0 * math.pi * jnp.sqrt(2.0 * m_ox) * phi**1.5 / (3.0 * Q * H)
    return a, b


def fowler_nordheim_current_density(field: ArrayLike, a: ArrayLike, b: ArrayLike) -> Array:
    """J = sign(E)·A·E²·exp(−B/|E|) [A/m²] for the oxide field ``field`` [V/m]; 0 at E = 0 with a finite
    gradient."""
    field = jnp.asarray(field)
    mag = jnp.abs(field)
    # below |E| = B/700, exp(−B/|E|) < 1e-304 is zero in float64: J = 0 there, and the derivative B/E² of the
    # exponent (which overflows as E → 0) is never formed
    on = mag > jnp.asarray(b) / 700.0
    safe = jnp.where(on, mag, jnp.asarray(b) + 1.0)
    return jnp.where(on, jnp.sign(field) * a * safe**2 * safe_exp(-b / safe), 0.0)


class _Tunnel(eqx.Module):
    """A cell's tunnelling constants, computed once (FN coefficients take powers and roots) and reused by
    every step of a pulse."""

    a_p: Array  #: FN A for programming [A/V²]
    b_p: Array  #: FN B for programming [V/m]
    a_e: Array  #: FN A for erase [A/V²]
    b_e: Array  #: FN B for erase [V/m]
    alpha: Array  #: α_G [1]
    thickness: Array  #: t_tun [m]
    area: Array  #: A_tun [m²]

    def field(self, dvth, v_cg):
        return self.alpha * (v_cg - dvth) / self.thickness

    def current_density(self, dvth, v_cg):
        field = self.field(dvth, v_cg)
        return jnp.where(
            field >= 0,
            fowler_nordheim_current_density(field, self.a_p, self.b_p),
            fowler_nordheim_current_density(field, self.a_e, self.b_e),
        )

    def gate_current(self, dvth, v_cg):
        return self.alpha * self.current_density(dvth, v_cg) * self.area

    def step(self, dvth, v_cg, width):
        """Exact ΔV_th after ``width`` at constant ``v_cg`` (:meth:`FloatingGateCell.constant_voltage_pulse`)."""
        field = self.field(dvth, v_cg)
        program = field >= 0
        a, b = jnp.where(program, self.a_p, self.a_e), jnp.where(program, self.b_p, self.b_e)
        on = jnp.abs(field) > 1.0  # below 1 V/m nothing tunnels in any pulse (and B/|E| stays finite)
        mag = jnp.where(on, jnp.abs(field), 1.0)
        kappa = a * (1.0 - self.alpha) / EPS_OX
        inv = jnp.logaddexp(b / mag, jnp.log(b * kappa * width)) / b
        field_end = jnp.where(program, 1.0, -1.0) / inv
        return jnp.where(on, v_cg - field_end * self.thickness / self.alpha, dvth)


def _vth_kind(
    data: Dataset,
    cell: FloatingGateCell,
    *,
    floor: float = 0.0,
    initial: str | None = None,
    source: str = "pump",
    fixed_steps: int = 32,
):
    del floor  # V_th is compared in volts
    if source == "pump":  # through FloatingGateCell.pulse: within the cell's amplitude range
        data.require("amplitude")
        check_column(data, "amplitude", lambda a: check_amplitude(cell, a))
    return cell, vth_pulses(data, source=source, initial=initial, fixed_steps=int(fixed_steps))


class FloatingGateCell(AbstractDevice):
    """Floating-gate (or charge-trap) flash cell programmed by Fowler–Nordheim tunnelling through a charge
    pump — equations in the module docstring.

    State: ΔV_th [V]. Drive of :meth:`rhs` (an ideal source): control-gate voltage relative to the
    channel/well [V]. :meth:`pulse` programs through the pump: amplitude = target control-gate voltage [V]
    (> 0 program, < 0 erase). ``read`` returns V_th [V] at ``read_current``.

    The pump and word-line parameters are fields of the cell (prefixed ``pump_`` and ``wordline_``) because
    cards, populations and fits address parameters by flat name; :attr:`pump` assembles them into a
    :class:`DicksonPump`, and :meth:`with_pump` plugs one in. ``max_amplitude`` (static) bounds the
    amplitudes program-and-verify may ask for and must lie within the pump's reach. Defaults: a generic
    NAND-like floating-gate cell (8 nm tunnel oxide, α_G = 0.6) with a 10-stage 3.3 V pump (assumed values;
    see ``devices/flash_fg.toml``).
    """

    #: The measurements this family is fitted to (:func:`imcphys.fit.measurement`).
    measurement_kinds: ClassVar[dict[str, MeasurementKind]] = {
        "vth": MeasurementKind(
            (("amplitude", "width", "Vth"),),
            _vth_kind,
            options=("source", "fixed_steps"),
            description="amplitude [V], width [s], Vth [V]: V_th after each control-gate pulse, in V "
            "(source=pump: through the cell's pump; source=ideal: a pulse generator)",
            units={"amplitude": "V", "width": "s", "Vth": "V"},
        ),
    }

    tunnel_oxide_thickness: Float[Array, "..."] = param(8e-9, "m", lower=0.0, lower_open=True)  #: t_tun
    #: α_G = C_CG/C_T
    coupling_ratio: Float[Array, "..."] = param(0.6, "1", lower=0.0, upper=1.0, lower_open=True, upper_open=True)
    #: A_tun (sets the tunnelling current, not ΔV_th)
    tunnel_area: Float[Array, "..."] = param(1e-14, "m^2", lower=0.0, lower_open=True)
    #: φ_B for programming (channel → gate)
    barrier_height: Float[Array, "..."] = param(3.2, "eV", lower=0.0, lower_open=True)
    #: φ_B for erase (gate → channel)
    erase_barrier_height: Float[Array, "..."] = param(3.2, "eV", lower=0.0, lower_open=True)
    oxide_mass_ratio: Float[Array, "..."] = param(0.42, "1", lower=0.0, lower_open=True)  #: m_ox/m_0
    neutral_threshold: Float[Array, "..."] = param(0.5, "V")  #: V_T0, EKV threshold of the neutral cell
    slope_factor: Float[Array, "..."] = param(1.3, "1", lower=0.0, lower_open=True)  #: n, EKV slope factor
    #: I_spec, EKV specific current
    specific_current: Float[Array, "..."] = param(0.5e-6, "A", lower=0.0, lower_open=True)
    #: V_th is read where I_D = read_current
    read_current: Float[Array, "..."] = param(0.1e-6, "A", lower=0.0, lower_open=True)
    #: of the read; below the melting point of silicon, 1687 K (1414 °C, CRC Handbook of Chemistry and Physics)
    temperature: Float[Array, "..."] = param(300.0, "K", lower=0.0, lower_open=True, upper=1687.0)
    erased_threshold_shift: Float[Array, "..."] = param(-3.0, "V")  #: ΔV_th of ``initial_state("erased")``
    #: R_wl, pump output to the control gates
    wordline_resistance: Float[Array, "..."] = param(10e3, "ohm", lower=0.0, lower_open=True)
    #: C_wl, word line with its control gates
    wordline_capacitance: Float[Array, "..."] = param(2e-12, "F", lower=0.0, lower_open=True)
    #: cells tunnelling in parallel
    cells_per_wordline: Float[Array, "..."] = param(16384.0, "1", lower=0.0, lower_open=True)
    pump_supply_voltage: Float[Array, "..."] = param(3.3, "V", lower=0.0, lower_open=True)
    pump_clock_amplitude: Float[Array, "..."] = param(3.3, "V", lower=0.0, lower_open=True)
    pump_clock_frequency: Float[Array, "..."] = param(20e6, "Hz", lower=0.0, lower_open=True)
    pump_capacitance: Float[Array, "..."] = param(20e-12, "F", lower=0.0, lower_open=True)
    pump_stray_capacitance: Float[Array, "..."] = param(2e-12, "F", lower=0.0)
    pump_threshold_voltage: Float[Array, "..."] = param(0.7, "V", lower=0.0)
    pump_switch_resistance: Float[Array, "..."] = param(500.0, "ohm", lower=0.0, lower_open=True)
    pump_clock_resistance: Float[Array, "..."] = param(20.0, "ohm", lower=0.0)
    pump_output_capacitance: Float[Array, "..."] = param(100e-12, "F", lower=0.0, lower_open=True)
    pump_load_conductance: Float[Array, "..."] = param(1e-6, "S", lower=0.0)  #: the regulator's sensing divider
    pump_load_current: Float[Array, "..."] = param(0.0, "A", lower=0.0)
    #: averaged regulator's gain band
    pump_regulation_band: Float[Array, "..."] = param(0.02, "V", lower=0.0, lower_open=True)
    pump_stages: int = eqx.field(static=True, default=10)
    #: False: the pump starts every :meth:`pulse` from rest; True: already regulated at the target
    pump_precharged: bool = eqx.field(static=True, default=False)
    #: largest |control-gate voltage| programming may ask for [V]; must be within the pump's reach
    max_amplitude: float = eqx.field(static=True, default=22.0)

    def check_relations(self) -> None:
        if not isinstance(self.pump_stages, (int, np.integer)) or self.pump_stages < 1:
            raise ValueError(f"FloatingGateCell.pump_stages must be an integer >= 1; got {self.pump_stages!r}")
        reach = self.pump.steady_state().v_out  # building the DicksonPump checks the pump_* values
        if is_concrete(reach):
            least = float(np.min(np.asarray(reach)))
            if not least >= self.max_amplitude > 0:
                raise ValueError(
                    f"FloatingGateCell.max_amplitude must be in (0, {least:.4g}] V, the pump's "
                    f"reach under its load; got {self.max_amplitude!r}"
                )

    # ---------------------------------------------------------------- the pump
    @property
    def pump(self) -> DicksonPump:
        """The cell's programming pump as a :class:`DicksonPump` (fields may carry a population axis)."""
        return DicksonPump(**{name: getattr(self, "pump_" + name) for name in PUMP_PARAMS}, stages=self.pump_stages)

    def with_pump(self, pump: DicksonPump, *, max_amplitude: float | None = None) -> FloatingGateCell:
        """A copy of the cell programmed through ``pump`` (e.g. one loaded from a pump card), optionally with
        a new ``max_amplitude`` [V] (it must be within the new pump's reach)."""
        values = {"pump_" + n: getattr(pump, n) for n in PUMP_PARAMS}
        if max_amplitude is not None:
            values["max_amplitude"] = max_amplitude
        return dataclasses.replace(self, **values, pump_stages=pump.stages)

    # ------------------------------------------------------------- tunnelling
    def fn_coefficients(self, erase: bool = False) -> tuple[Array, Array]:
        """(A [A/V²], B [V/m]) for programming (or ``erase``) from the barrier height and the effective mass."""
        return fowler_nordheim_coefficients(
            self.erase_barrier_height if erase else self.barrier_height, self.oxide_mass_ratio
        )

    def tunnel(self) -> _Tunnel:
        """The tunnelling constants of the cell (computed once per pulse by the programming loops)."""
        a_p, b_p = self.fn_coefficients()
        a_e, b_e = self.fn_coefficients(erase=True)
        return _Tunnel(a_p, b_p, a_e, b_e, self.coupling_ratio, self.tunnel_oxide_thickness, self.tunnel_area)

    def tunnel_field(self, dvth: ArrayLike, v_cg: ArrayLike) -> Array:
        """Tunnel-oxide field E = α_G(V_CG − ΔV_th)/t_tun [V/m] (> 0 injects electrons into the gate)."""
        return self.coupling_ratio * (jnp.asarray(v_cg) - jnp.asarray(dvth)) / self.tunnel_oxide_thickness

    def tunnel_current_density(self, dvth: ArrayLike, v_cg: ArrayLike) -> Array:
        """FN current density J [A/m²] through the tunnel oxide (program barrier for E > 0, erase for E < 0)."""
        return self.tunnel().current_density(jnp.asarray(dvth), jnp.asarray(v_cg))

    def _dvth_per_charge(self) -> Array:
        """A_tun/C_CG = t_tun(1 − α_G)/(ε_ox α_G) [V·m²/C]."""
        return self.tunnel_oxide_thickness * (1.0 - self.coupling_ratio) / (EPS_OX * self.coupling_ratio)

    def dvth_rate(self, dvth: ArrayLike, v_cg: ArrayLike) -> Array:
        """dΔV_th/dt = J·A_tun/C_CG [V/s] at control-gate voltage ``v_cg`` [V]."""
        return self.tunnel_current_density(dvth, v_cg) * self._dvth_per_charge()

    def gate_current(self, dvth: ArrayLike, v_cg: ArrayLike) -> Array:
        """Current the control gate draws while the cell tunnels, α_G·J·A_tun [A] (displacement current)."""
        return self.tunnel().gate_current(jnp.asarray(dvth), jnp.asarray(v_cg))

    def constant_voltage_pulse(self, dvth: ArrayLike, v_cg: ArrayLike, width: ArrayLike) -> Array:
        """ΔV_th [V] after ``width`` [s] at constant ``v_cg`` [V], exactly: 1/|E(t)| = ln(e^{B/|E0|} + Bκt)/B
        with κ = A(1 − α_G)/ε_ox, computed as a log-sum-exp so that neither a weak nor a strong field
        overflows."""
        return self._constant_voltage_pulse(jnp.asarray(dvth), jnp.asarray(v_cg), jnp.asarray(width))

    @eqx.filter_jit
    def _constant_voltage_pulse(self, dvth: Array, v_cg: Array, width: Array) -> Array:
        # compiled when called eagerly too: the same bits as under the caller's jit (see PCMStatistical.program)
        return self.tunnel().step(dvth, v_cg, width)

    # ----------------------------------------------------------------- read
    def thermal_voltage(self) -> Array:
        """U_T = kT/q [V] at the read temperature."""
        return thermal_voltage(self.temperature)

    def drain_current(self, dvth: ArrayLike, v_gate: ArrayLike) -> Array:
        """EKV saturation current I_spec·ln²(1 + exp((V_G − V_T0 − ΔV_th)/(2nU_T))) [A] at gate voltage [V]."""
        x = (jnp.asarray(v_gate) - self.neutral_threshold - jnp.asarray(dvth)) / (
            2.0 * self.slope_factor * self.thermal_voltage()
        )
        return self.specific_current * jnp.logaddexp(0.0, x) ** 2

    def read(self, state: ArrayLike) -> Array:
        """V_th [V]: the gate voltage at which the drain current equals ``read_current`` (EKV inverted
        exactly).
        """
        root = jnp.sqrt(self.read_current / self.specific_current)
        return (
            self.neutral_threshold
            + jnp.asarray(state)
            + 2.0 * self.slope_factor * self.thermal_voltage() * jnp.log(jnp.expm1(root))
        )

    def dvth_for_vth(self, vth: ArrayLike) -> Array:
        """The state ΔV_th [V] that reads as ``vth`` [V] (inverse of :meth:`read`)."""
        return jnp.asarray(vth) - self.read(0.0)

    # --------------------------------------------------------- device interface
    def rhs(self, t, state, drive):
        """dΔV_th/dt [V/s] with ``drive`` = control-gate voltage from an ideal source [V]."""
        del t
        return self.dvth_rate(state, drive)

    def power(self, state, drive):
        """V_CG times the control-gate current [W] (the ideal source's share; the pump's is in :meth:`pulse`)."""
        return drive * self.gate_current(state, drive)

    def initial_state(self, which: str = "erased") -> Array:
        """``"erased"``: ΔV_th = ``erased_threshold_shift``; ``"neutral"``: ΔV_th = 0 [V]."""
        states = {
            "erased": self.erased_threshold_shift,
            "neutral": jnp.zeros_like(self.erased_threshold_shift),
        }
        if which not in states:
            raise ValueError(f"initial_state(which=...) must be one of {sorted(states)}; got {which!r}")
        return states[which]

    def reference_pulse(self) -> tuple[float, float]:
        """``max_amplitude`` [V] for 20 µs through the pump (which takes µs to tens of µs to rise): programs an
        erased cell part of the way."""
        return self.max_amplitude, 20e-6

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Control-gate voltages programming may ask for [V]: (0, max_amplitude] to program, [−max_amplitude,
        0) to erase. Static (usable under jit); checked against the pump's reach when the cell is built."""
        return (0.0, self.max_amplitude), (-self.max_amplitude, 0.0)

    def pulse(self, state, amplitude, width, *, rise=0.0, fall=0.0, fixed_steps=None, key=None) -> PulseResult:
        """One programming pulse through the pump: the pump starts from rest (or, with ``pump_precharged``,
        regulated at the target), is regulated to |``amplitude``| [V] and drives the word line (charged
        from 0 V) for ``width`` [s]; ``amplitude`` > 0 programs, < 0 erases.

        Energy: drawn from the pump's supplies [J], per cell (the pulse's share of ``cells_per_wordline``).
        ``fixed_steps=n``: n steps for the cell (exact Fowler–Nordheim update per step) with the pump on a
        two-stage Rosenbrock method; ``None``: one adaptive implicit solve of pump, word line and cell
        together (the reference). The rise and fall are the pump's and the word line's: ``rise`` and
        ``fall`` must be 0. The requested voltage must be within the pump's reach (an error otherwise,
        never clipped).
        """
        del key  # deterministic model
        for name, value in (("rise", rise), ("fall", fall)):
            if is_concrete(value) and float(np.max(np.abs(np.asarray(value)))) != 0.0:
                raise ValueError(
                    f"FloatingGateCell.pulse: {name} must be 0 (the pump and word line set the edges); got {value!r}"
                )
        amplitude = jnp.asarray(amplitude, dtype=float)
        if is_concrete(amplitude):  # eager: an unreachable amplitude raises a ValueError here
            self.pump.check_reach(amplitude)
        # one compiled kernel even when called eagerly: eager and jit give the same bits
        return self._pulse(jnp.asarray(state, dtype=float), amplitude, jnp.asarray(width, dtype=float), fixed_steps)

    @eqx.filter_jit
    def _pulse(self, state, amplitude, width, fixed_steps) -> PulseResult:
        amplitude = self.pump.check_reach(amplitude)
        pump_state = self.pump.regulated_nodes(jnp.abs(amplitude)) if self.pump_precharged else None
        res = program_wordline(self, state, amplitude, width, fixed_steps=fixed_steps, pump_state=pump_state)
        return PulseResult(state=res.dvth, energy=res.energy_per_cell, duration=width)


# ------------------------------------------------------------------------------------- measurement kinds
class _IdealVth(eqx.Module):
    """V_th after each rectangular control-gate pulse from an ideal source: the exact Fowler–Nordheim update
    (:meth:`FloatingGateCell.constant_voltage_pulse`) pulse after pulse."""

    initial: str | None

    def __call__(self, cell: FloatingGateCell, inputs: dict[str, Array]) -> Array:
        dvth0 = cell.initial_state(self.initial) if self.initial else cell.initial_state()
        tunnel = cell.tunnel()

        def step(dvth, pulse):
            amplitude, width = pulse
            dvth = tunnel.step(dvth, amplitude, width)
            return dvth, cell.read(dvth)

        return jax.lax.scan(step, dvth0, (inputs["amplitude"], inputs["width"]))[1]


def vth_pulses(
    data: Dataset,
    *,
    source: str = "pump",
    amplitude: str = "amplitude",
    width: str = "width",
    vth: str = "Vth",
    initial: str | None = None,
    fixed_steps: int = 32,
    name: str | None = None,
) -> Experiment:
    """Flash V_th [V] read after each control-gate pulse (row k: pulse k's ``amplitude`` [V] and ``width``
    [s], and V_th after it), compared in volts, from ``initial`` (default: erased).

    ``source="pump"``: each pulse through the cell's own pump and word line (``FloatingGateCell.pulse`` on the
    fixed-step path, ``fixed_steps`` steps) — a cell measured on its chip. ``"ideal"``: a pulse generator on
    the control gate (rectangular pulses, the exact constant-voltage solution) — a test cell on a probe
    station; it compiles and runs far faster.
    """
    if source == "pump":
        return pulse_response(
            data,
            amplitude=amplitude,
            width=width,
            read=vth,
            initial=initial,
            residual=Absolute("V"),
            fixed_steps=fixed_steps,
            name=name or _name(data, "V_th"),
        )
    if source != "ideal":
        raise ValueError(f"source must be 'pump' or 'ideal'; got {source!r}")
    data.require(amplitude, width, vth)
    w = data[width]
    if np.any(w <= 0):
        k = int(np.flatnonzero(w <= 0)[0])
        raise ValueError(f"{data.where(width, k)}: pulse width must be > 0 s; got {w[k]!r} s")
    inputs = {"amplitude": jnp.asarray(data[amplitude]), "width": jnp.asarray(w)}
    return Experiment(
        _IdealVth(initial),
        inputs,
        data[vth],
        residual=Absolute("V"),
        x=np.arange(1, len(w) + 1),
        x_label="pulse number [1]",
        y_label=data.label(vth),
        name=name or _name(data, "V_th (ideal source)"),
    )
