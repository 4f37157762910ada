r"""Flash programmed through a charge pump: a Dickson pump, a Fowler–Nordheim floating-gate cell, and the pump
feeding the cell's control gate.

**Dickson charge pump** (Dickson, IEEE JSSC 11(3), 374 (1976); Tanzawa & Tanaka, IEEE JSSC 32(8), 1231 (1997)).
N stages: pump capacitors C [F] whose bottom plates are driven by a two-phase clock of amplitude V_φ [V] and
frequency f [Hz], each top node loaded by a stray capacitance C_s [F]; transfer devices with threshold V_t [V] and
on-resistance R_on [Ω] (current (ΔV − V_t)/R_on when forward biased beyond V_t); clock drivers with output
resistance R_φ [Ω]; an output capacitor C_L [F] with a resistive (conductance G_L [S]) and a constant-current
(I_L [A]) load. With C' = C + C_s and α = C/C' the cycle-mean output is

.. math::

    V_{out} = V_{DD} - V_t + N(\alpha V_{\phi,e} - V_t) - R_{out}\,I_{out},
    \qquad V_{\phi,e} = V_\phi \tanh\frac{1}{4 f R_\phi C}

where V_φ,e is the bottom-plate swing the clock drivers reach in a half period (a square wave through R_φ·C), and
R_out = Σ_k R_k sums the stage resistances of the per-phase analysis (pairs of nodes relaxing through R_on for
half a period, transferred fraction η = 1 − exp(−T/2τ)):

.. math::

    R_1 = \frac{1}{f}\Big(\frac{1}{C'\eta_1} - \frac{1}{2C'}\Big),\quad
    R_{2..N} = \frac{\coth(1/2fR_{on}C')}{fC'},\quad
    R_{N+1} = \frac{1}{f}\Big(\frac{1}{C_{ser}\eta_{N+1}} - \frac{1}{2C'} - \frac{\mu_{N+1}}{2C_L}\Big)

with η_1 = 1 − exp(−1/2fR_onC'), C_ser = C'C_L/(C' + C_L), η_{N+1} = 1 − exp(−1/2fR_onC_ser) and
μ = 1/η − 2fR_onC_ser. In the slow-switching limit (R_on → 0) R_out = N/(fC') + 1/(2fC_L): the Dickson output
resistance N/(fC') plus half the ripple I_out/(fC_L), because Dickson's formula gives the output right after each
transfer (the peak) and V_out is the cycle mean. Ideal pump (V_t = 0, C_s = 0, V_φ = V_DD):
V_peak = (N+1)V_DD − N·I/(fC).

*Averaged model* (fast): one ODE for the output, C_eff·dV/dt = max(V_oc − V, 0)/R_out − G_L·V − I_L − i_load,
with C_eff = C_L + Σ_j C'·(R_1 + … + R_j)/R_out so that its time constant is the Elmore delay of the pump's
stage ladder (internal nodes included). Supply power (charge accounting of the clock lines and the input
device, exact in periodic steady state): P = (V_DD + NαV_φ)·i_pump + NαV_φ·f·C_s·V_φ,e.
*Switched model* (reference, :func:`simulate_switched`): every node voltage and both clock bottom plates resolved
within each half period with diffrax; the clock is gated per cycle by a regulator when one is asked for.

**Fowler–Nordheim tunnelling** (Lenzlinger & Snow, J. Appl. Phys. 40, 278 (1969)):

.. math::

    J = A E^2 e^{-B/E},\quad A = \frac{q^3 m_0}{8\pi h\,\phi_B\,m_{ox}},\quad
    B = \frac{8\pi\sqrt{2 m_{ox}}\,\phi_B^{3/2}}{3 q h}

with CODATA constants (:mod:`imcphys.constants`); Si/SiO2: φ_B ≈ 3.2 eV, m_ox ≈ 0.42 m_0, so
A ≈ 1.15e-6 A/V², B ≈ 2.53e10 V/m.

**Floating-gate cell** (two-capacitor coupling model). State: the threshold shift ΔV_th = −Q_FG/C_CG [V]. Drive:
the control-gate voltage relative to the channel/well, V_CG [V]. With the control-gate coupling ratio α_G and
the tunnel oxide (thickness t_tun, permittivity ε_ox = 3.9 ε_0) as the only other capacitor,

.. math::

    E = \alpha_G (V_{CG} - \Delta V_{th})/t_{tun},\qquad
    \frac{d\Delta V_{th}}{dt} = J(E)\,\frac{A_{tun}}{C_{CG}} = J(E)\,\frac{t_{tun}(1-\alpha_G)}{\varepsilon_{ox}\alpha_G}

(positive V_CG injects electrons and raises V_th; negative V_CG erases, through the erase barrier). At constant
V_CG the ODE has the closed form 1/|E(t)| = ln(exp(B/|E_0|) + B κ t)/B, κ = A(1 − α_G)/ε_ox
(:meth:`FloatingGateCell.constant_voltage_pulse`). A charge-trap (SONOS) cell is the same model with
α_G = t_tun/EOT (the field across the tunnel oxide for charge at the nitride centroid). V_th is read at a defined
read current through an EKV drain current I_D = I_spec·ln²(1 + exp((V_G − V_T)/(2nU_T))), V_T = V_T0 + ΔV_th.

**Pump-fed programming** (:meth:`FloatingGateCell.pulse`): the pump starts from rest, its output is regulated to
the requested control-gate voltage (positive: program the control gate; negative: erase, the pump driving the
well), and feeds the word line (R_wl, C_wl) shared by ``cells_per_wordline`` cells, whose tunnelling current
(α_G·J·A_tun per cell, the displacement current it induces on the control gate) loads it. A regulated pump skips
clock cycles while its output is above the target, so its mean output sits half a regulation ripple above the
target; the averaged model places the regulated level there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, PyTree

from .._checks import check_range, is_concrete, runtime_check
from .._math import safe_exp
from ..constants import EPS_0, H, K_B, M_E, Q
from ..device import AbstractDevice, PulseResult, param

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
    """J = sign(E)·A·E²·exp(−B/|E|) [A/m²] for the oxide field ``field`` [V/m]; 0 at E = 0 with a finite gradient."""
    field = jnp.asarray(field)
    mag = jnp.abs(field)
    on = mag > 0
    safe = jnp.where(on, mag, 1.0)
    return jnp.where(on, jnp.sign(field) * a * safe**2 * safe_exp(-b / safe), 0.0)


# ----------------------------------------------------------------------------------------------- helpers
def _coth(x: Array) -> Array:
    """coth(x) for x > 0, exact to float64 up to x → ∞ (1/tanh)."""
    return 1.0 / jnp.tanh(x)


def _inv_or_big(x: Array, big: float = 1e30) -> Array:
    """1/x, and ``big`` where x = 0 (gradient-safe)."""
    nz = x > 0
    return jnp.where(nz, 1.0 / jnp.where(nz, x, 1.0), big)


def _relu(x: Array) -> Array:
    return jnp.maximum(x, 0.0)


class PumpSteadyState(NamedTuple):
    """Periodic steady state of a Dickson pump under its load (averaged model)."""

    v_out: Array  #: cycle-mean output voltage [V]
    ripple: Array  #: peak-to-peak output ripple [V] (averaged model: I_out/(f·C_L))
    i_out: Array  #: current delivered to the load [A]
    supply_power: Array  #: power drawn from V_DD and the clock supply [W]
    efficiency: Array  #: V_out·I_out / supply power [1]


# ------------------------------------------------------------------------------------------ Dickson pump
class DicksonPump(AbstractDevice):
    """Dickson charge pump (Dickson 1976; Tanzawa & Tanaka 1997) — equations in the module docstring.

    Defaults: the measured SKY130 3-stage pump of Tiny Tapeout 7 (urish/tt07-charge-pump: N = 3, V_DD = 1.8 V,
    25×25 µm² MIM pump capacitors ≈ 1.25 pF, 1.5 pF output capacitor, diode-connected LVT NMOS with V_th ≈ 0.44 V);
    stray capacitance, resistances and load are assumed (see ``devices/dickson_tt07.toml`` for the fitted ones).

    As an :class:`AbstractDevice`: state = output voltage [V]; drive = extra load current drawn from the output
    [A]; ``rhs`` is the averaged ODE, ``power`` the supply power, ``read`` the output voltage.
    """

    supply_voltage: Float[Array, "..."] = param(1.8, "V")  #: V_DD, input of the first transfer device
    clock_amplitude: Float[Array, "..."] = param(1.8, "V")  #: V_φ, clock swing at the drivers
    clock_frequency: Float[Array, "..."] = param(10e6, "Hz")  #: f
    capacitance: Float[Array, "..."] = param(1.25e-12, "F")  #: C, pump capacitor per stage
    stray_capacitance: Float[Array, "..."] = param(0.2e-12, "F")  #: C_s, top-node stray capacitance per stage
    threshold_voltage: Float[Array, "..."] = param(0.44, "V")  #: V_t of the transfer devices
    switch_resistance: Float[Array, "..."] = param(20e3, "ohm")  #: R_on of the transfer devices
    clock_resistance: Float[Array, "..."] = param(1e3, "ohm")  #: R_φ, clock-driver output resistance
    output_capacitance: Float[Array, "..."] = param(1.5e-12, "F")  #: C_L
    load_conductance: Float[Array, "..."] = param(0.0, "S")  #: G_L = 1/R_L, resistive load (0: none)
    load_current: Float[Array, "..."] = param(0.0, "A")  #: I_L, constant-current load
    stages: int = eqx.field(static=True, default=3)  #: N, number of pumping stages

    def __check_init__(self):
        if not isinstance(self.stages, (int, np.integer)) or isinstance(self.stages, bool) or self.stages < 1:
            raise ValueError(f"DicksonPump.stages (N) must be an integer >= 1; got {self.stages!r}")
        for name in ("supply_voltage", "clock_amplitude", "clock_frequency", "capacitance", "output_capacitance",
                     "switch_resistance"):
            check_range(f"DicksonPump.{name}", getattr(self, name), lower=0.0, lower_open=True,
                        unit=_unit(type(self), name))
        for name in ("stray_capacitance", "threshold_voltage", "clock_resistance", "load_conductance",
                     "load_current"):
            check_range(f"DicksonPump.{name}", getattr(self, name), lower=0.0, unit=_unit(type(self), name))

    # ----------------------------------------------------------------- closed forms
    def node_capacitance(self) -> Array:
        """C' = C + C_s [F]."""
        return self.capacitance + self.stray_capacitance

    def coupling(self) -> Array:
        """α = C/(C + C_s) [1], the fraction of the clock swing coupled to a top node."""
        return self.capacitance / self.node_capacitance()

    def clock_swing(self) -> Array:
        """V_φ,e = V_φ·tanh(1/(4 f R_φ C)) [V], the bottom-plate swing reached in a half period."""
        x = _inv_or_big(4.0 * self.clock_frequency * self.clock_resistance * self.capacitance)
        return self.clock_amplitude * jnp.tanh(jnp.minimum(x, 40.0))

    def open_circuit_voltage(self) -> Array:
        """V_oc = V_DD − V_t + N(α V_φ,e − V_t) [V], the no-load output."""
        return (self.supply_voltage - self.threshold_voltage
                + self.stages * (self.coupling() * self.clock_swing() - self.threshold_voltage))

    def stage_resistances(self) -> Float[Array, "... n"]:
        """R_1 … R_{N+1} [Ω] of the averaged stage ladder (module docstring); their sum is R_out."""
        f, r, cp, cl = self.clock_frequency, self.switch_resistance, self.node_capacitance(), self.output_capacitance
        period = 1.0 / f
        x1 = 1.0 / (2.0 * f * r * cp)  # half period over R_on·C' (first device: V_DD is a stiff source)
        eta1 = -jnp.expm1(-x1)
        r1 = period / (cp * eta1)
        r_inner = _coth(x1) / (f * cp)  # a pair of equal nodes relaxes with R_on·C'/2
        # last device: node N and C_L relax through R_on while the load drains C_L (it conducts all half period)
        cser = cp * cl / (cp + cl)
        tau = r * cser
        x = 0.5 * period / tau
        eta = -jnp.expm1(-x)
        c = 0.5 * cser / cl
        mean_offset = (0.5 * period - 0.125 * cser * period / cl - (1.0 - c) * (0.5 * period - tau * eta) / eta) / cl
        rlast = r * cser / cl + period * (1.0 - c) * jnp.exp(-x) / (cser * eta) + mean_offset
        inner = jnp.broadcast_to(r_inner[..., None], (*jnp.shape(r_inner), self.stages - 1))
        return jnp.concatenate([r1[..., None], inner, rlast[..., None]], axis=-1)

    def output_resistance(self) -> Array:
        """R_out [Ω] of the cycle-mean output (N/(fC') + 1/(2fC_L) in the slow-switching limit)."""
        return jnp.sum(self.stage_resistances(), axis=-1)

    def effective_capacitance(self) -> Array:
        """C_eff [F]: the output capacitance of the one-pole averaged model, matched to the Elmore delay of the
        stage ladder (internal node capacitances C' seen through the resistance upstream of them)."""
        rk = self.stage_resistances()
        upstream = jnp.cumsum(rk, axis=-1)[..., :-1]  # R_1 + … + R_j for the internal nodes j = 1..N
        return self.output_capacitance + self.node_capacitance() * jnp.sum(upstream, axis=-1) / jnp.sum(rk, axis=-1)

    def rest_voltage(self) -> Array:
        """Output of the idle pump [V]: V_DD through N + 1 transfer devices, max(V_DD − (N+1)V_t, 0)."""
        return _relu(self.supply_voltage - (self.stages + 1) * self.threshold_voltage)

    def pump_current(self, v_out: ArrayLike) -> Array:
        """Averaged current the running pump pushes into its output at ``v_out`` [V]: max(V_oc − V, 0)/R_out [A]."""
        return _relu(self.open_circuit_voltage() - v_out) / self.output_resistance()

    def _charge_energy(self) -> Array:
        """Energy drawn from the supplies per coulomb delivered, V_DD + NαV_φ [J/C = V]."""
        return self.supply_voltage + self.stages * self.coupling() * self.clock_amplitude

    def _stray_power(self) -> Array:
        """Power spent swinging the stray capacitances while clocked, NαV_φ·f·C_s·V_φ,e [W]."""
        return (self.stages * self.coupling() * self.clock_amplitude * self.clock_frequency * self.stray_capacitance
                * self.clock_swing())

    def supply_power(self, v_out: ArrayLike, enabled: ArrayLike = 1.0) -> Array:
        """Power drawn from V_DD and the clock supply [W] at output ``v_out`` with the clock running a fraction
        ``enabled`` of the cycles."""
        return enabled * (self._charge_energy() * self.pump_current(v_out) + self._stray_power())

    def steady_state(self, extra_load_current: ArrayLike = 0.0) -> PumpSteadyState:
        """Periodic steady state (averaged model) under G_L, I_L and ``extra_load_current`` [A]."""
        r = self.output_resistance()
        v = ((self.open_circuit_voltage() - r * (self.load_current + extra_load_current))
             / (1.0 + r * self.load_conductance))
        i = self.load_conductance * v + self.load_current + extra_load_current
        ripple = i / (self.clock_frequency * self.output_capacitance)
        p = self.supply_power(v)
        return PumpSteadyState(v_out=v, ripple=ripple, i_out=i, supply_power=p, efficiency=v * i / p)

    def regulation_ripple(self, v_target: ArrayLike, extra_capacitance: ArrayLike = 0.0) -> Array:
        """Peak-to-peak ripple [V] of a pump regulated at ``v_target`` by skipping cycles: one cycle's charge
        i_pump(V)/f on C_L (+ ``extra_capacitance`` [F] directly at the output)."""
        return (self.pump_current(v_target) / self.clock_frequency
                / (self.output_capacitance + extra_capacitance))

    def check_reach(self, v_target: ArrayLike, extra_load_current: ArrayLike = 0.0) -> Array:
        """``v_target`` [V], or an error if the pump cannot hold it under its load (+ ``extra_load_current``):
        ``ValueError`` eagerly, an ``eqx.error_if`` runtime error under jit."""
        reach = self.steady_state(extra_load_current).v_out
        bad = jnp.abs(v_target) > reach
        msg = ("requested voltage exceeds what the DicksonPump can hold under its load (steady-state output "
               "V_DD − V_t + N(αV_φ,e − V_t) − R_out·I_out); raise stages, clock_frequency or capacitance, or "
               "lighten the load")
        if is_concrete(bad) and bool(np.any(np.asarray(bad))):
            raise ValueError(f"{msg}: requested |V| = {np.max(np.abs(np.asarray(v_target))):.4g} V, reachable "
                             f"{np.min(np.asarray(reach)):.4g} V (N = {self.stages})")
        return runtime_check(jnp.asarray(v_target), bad, msg)

    # --------------------------------------------------------- device interface
    def rhs(self, t, state, drive):
        """dV_out/dt [V/s] of the averaged model with ``drive`` = extra load current [A]."""
        del t
        i = (self.pump_current(state) - self.load_conductance * state - self.load_current - drive)
        return i / self.effective_capacitance()

    def power(self, state, drive):
        """Supply power [W] of the running pump at output ``state`` [V]."""
        del drive
        return self.supply_power(state)

    def read(self, state):
        """Output voltage [V]."""
        return jnp.asarray(state)

    def initial_state(self, which: str = "rest"):
        """``"rest"``: the idle output max(V_DD − (N+1)V_t, 0) [V]; ``"steady"``: the loaded steady state."""
        if which == "rest":
            return self.rest_voltage()
        if which == "steady":
            return self.steady_state().v_out
        raise ValueError(f"initial_state(which=...) must be 'rest' or 'steady'; got {which!r}")

    def amplitude_range(self):
        """The pump is not programmed; its drive is a load current: (0, short-circuit current) drawn, and the same
        magnitude pushed back [A]."""
        i_sc = float(np.min(np.asarray(self.open_circuit_voltage() / self.output_resistance())))
        return (0.0, i_sc), (-i_sc, 0.0)


def _unit(cls: type, name: str) -> str:
    return cls.__dataclass_fields__[name].metadata["unit"]


# -------------------------------------------------------------------------------- switched (reference) model
class SwitchedSolution(eqx.Module):
    """Result of :func:`simulate_switched`, sampled ``samples`` times per half period."""

    ts: Float[Array, "cycles 2 samples"]  #: sample times [s]
    v_out: Float[Array, "cycles 2 samples"]  #: output voltage [V]
    nodes: Float[Array, "cycles n"]  #: top-node voltages V_1 … V_N at the end of each cycle [V]
    energy: Float[Array, " cycles"]  #: energy drawn from the supplies since t = 0, at the end of each cycle [J]
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

    def __call__(self, v_out: Array, extra: PyTree) -> tuple[PyTree, Array]:
        """(d extra/dt, current drawn from the output [A]) at output voltage ``v_out`` [V]."""
        raise NotImplementedError


_PJ = 1e-12  # energy unit of the switched state (keeps the solver's tolerances meaningful)


def _switched_field(pump: DicksonPump, load: AbstractPumpLoad | None, enabled: Array):
    """Vector field of one clock cycle [0, T]: phase 0 (t < T/2) odd clock line low, even high; phase 1 the
    reverse. A disabled cycle holds the lines at their phase-1 levels."""
    n = pump.stages
    cp = pump.node_capacitance()
    tau_phi = pump.clock_resistance * pump.capacitance
    half = 0.5 / pump.clock_frequency
    vphi = pump.clock_amplitude
    odd = (jnp.arange(1, n + 1) % 2) == 1  # node k is on the odd clock line

    def field(t, y, args):
        del args
        phase0 = (t < half) & enabled
        clk = jnp.where(phase0, jnp.stack([0.0 * vphi, vphi]), jnp.stack([vphi, 0.0 * vphi]))
        v, vout, b, extra = y[:n], y[n], y[n + 1:n + 3], y[n + 4:]
        upstream = jnp.concatenate([pump.supply_voltage[None], v])
        downstream = jnp.concatenate([v, vout[None]])
        i = _relu(upstream - downstream - pump.threshold_voltage) / pump.switch_resistance
        db = jnp.where(tau_phi > 0, (clk - b) / jnp.where(tau_phi > 0, tau_phi, 1.0), 0.0)
        db_node = jnp.where(odd, db[0], db[1])
        dv = (pump.capacitance * db_node + i[:-1] - i[1:]) / cp
        if load is None:
            d_extra, i_x = extra, jnp.zeros(())
        else:
            d_extra, i_x = load(vout, extra)
        dvout = (i[-1] - pump.load_conductance * vout - pump.load_current - i_x) / pump.output_capacitance
        i_cap = pump.capacitance * (db_node - dv)  # current into each bottom plate, from its clock driver
        high = jnp.where(odd, clk[0], clk[1]) > 0
        p = pump.supply_voltage * i[0] + vphi * jnp.sum(jnp.where(high, i_cap, 0.0))
        return jnp.concatenate([dv, dvout[None], db, (p / _PJ)[None], jnp.atleast_1d(d_extra)])

    return field


def _switched_rest_state(pump: DicksonPump, extra0: Array) -> Array:
    k = jnp.arange(1, pump.stages + 1)
    v = _relu(pump.supply_voltage - k * pump.threshold_voltage)
    return jnp.concatenate([v, pump.rest_voltage()[None], jnp.zeros(3), jnp.atleast_1d(extra0)])


def _switched_cycle(pump, load, y, enabled, samples, rtol, atol, adjoint):
    """One clock cycle from state ``y``: the state at its end and V_out at ``samples`` times per half period."""
    half = 0.5 / pump.clock_frequency
    local = jnp.linspace(0.0, 1.0, samples)
    ts = half * jnp.concatenate([local, 1.0 + local])
    controller = diffrax.PIDController(rtol=rtol, atol=atol, jump_ts=jnp.stack([half]))
    sol = diffrax.diffeqsolve(diffrax.ODETerm(_switched_field(pump, load, enabled)), diffrax.Tsit5(), 0.0,
                              2.0 * half, half / 20, y, saveat=diffrax.SaveAt(ts=ts),
                              stepsize_controller=controller, max_steps=100_000, adjoint=adjoint)
    return sol.ys[-1], sol.ys[:, pump.stages].reshape(2, samples)


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
    """The switched (per-phase) Dickson pump: every top node, the output and both clock bottom plates resolved in
    time over ``cycles`` clock cycles from rest (or from ``y0``), with diffrax (Tsit5) in each half period.

    Transfer devices conduct (ΔV − V_t)/R_on when forward biased beyond V_t; bottom plates follow the clock
    through R_φ·C. With ``v_target`` [V] a regulator lets the clock run only in the cycles that start with the
    output below the target. ``load`` attaches extra states (a word line with its cells) to the output.
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
        return y, (vs, y[:n], y[n + 3] * _PJ, enabled, y[n + 4:])

    y_end, (vs, nodes, energy, enabled, extra) = jax.lax.scan(body, y, jnp.arange(cycles))
    period = 1.0 / pump.clock_frequency
    local = 0.5 * period * jnp.linspace(0.0, 1.0, samples)
    ts = (jnp.arange(cycles)[:, None, None] * period + jnp.array([0.0, 0.5])[None, :, None] * period
          + local[None, None, :])
    return SwitchedSolution(ts=ts, v_out=vs, nodes=nodes, energy=energy, enabled=enabled, extra=extra,
                            final=y_end)


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
    x0 = x0.at[n].set(pump.steady_state().v_out)  # any start converges; this one is close

    def newton(x, _):
        # least squares: without a load the fixed points form a continuum (every node just below conduction)
        jac = jax.jacfwd(cycle_map)(x, None)
        return x + jnp.linalg.lstsq(jac, -cycle_map(x, None))[0], None

    # a fixed count: the residual stalls at the adaptive solver's noise (~1e-8 V) after about six iterations
    root, _ = jax.lax.scan(newton, x0, None, length=12)
    y = jnp.concatenate([root, jnp.zeros(1)])
    y_end, vs = _switched_cycle(pump, None, y, jnp.asarray(True), samples, rtol, atol,
                                diffrax.RecursiveCheckpointAdjoint())
    period = 1.0 / pump.clock_frequency
    t = jnp.concatenate([0.5 * period * jnp.linspace(0.0, 1.0, samples),
                         0.5 * period * (1.0 + jnp.linspace(0.0, 1.0, samples))])
    v = vs.reshape(-1)
    v_mean = _trapz_mean(v, t)
    i_out = pump.load_conductance * v_mean + pump.load_current
    p = y_end[n + 3] * _PJ / period
    return PumpSteadyState(v_out=v_mean, ripple=jnp.max(v) - jnp.min(v), i_out=i_out, supply_power=p,
                           efficiency=v_mean * i_out / p)
