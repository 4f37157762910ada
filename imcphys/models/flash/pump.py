r"""**Dickson charge pump** (Dickson, IEEE JSSC 11(3), 374 (1976); Tanzawa & Tanaka, IEEE JSSC 32(8), 1231
(1997)). N stages: pump capacitors C [F] whose bottom plates follow a two-phase clock of amplitude V_φ [V]
and frequency f [Hz] through the drivers' resistance R_φ [Ω]; top nodes with stray capacitance C_s [F];
transfer devices that conduct (ΔV − V_t)/R_on [A] beyond their threshold V_t [V]; an output capacitor C_L
[F] with a resistive (G_L [S]) and a constant-current (I_L [A]) load. With C' = C + C_s, α = C/C' and T =
1/f, the cycle-mean output in periodic steady state is

.. math::

    V_{out} = V_{DD} - V_t + N(\alpha V_{\phi,e} - V_t) - R_{out} I_{out},\qquad
    V_{\phi,e} = V_\phi \tanh\frac{T}{4 R_\phi C}

V_φ,e is the bottom-plate swing reached in a half period (a square wave through R_φ·C). R_out = Σ R_k comes
from a per-phase analysis in which the node pairs that conduct in a half period relax through R_on (η = 1 −
e^{−T/2τ} of the charge moves): R_1 = T/(C'η_1) (η_1 with τ = R_onC'), R_{2..N} = coth(T/(4R_onC'))/(fC')
(τ = R_onC'/2), and for the last device — which conducts all its half period because the load keeps
draining C_L — R_{N+1} = R_onC_ser/C_L + T(1 − c)e^{−x}/(C_serη) + (mean offset of the output sawtooth)/I,
with C_ser = C'C_L/(C' + C_L), c = C_ser/2C_L, x = T/(2R_onC_ser). In the slow-switching limit (R_on → 0)
R_out = N/(fC') + C'/(8fC_L(C' + C_L)): Dickson's formula, whose output is the one at the end of the last
transfer, is the cycle mean to within that tiny term; the ideal pump (V_t = C_s = 0, V_φ = V_DD) gives
(N+1)V_DD − N·I/(fC). Ripple ≈ I_out/(fC_L).

*Averaged model* (fast; the state of :class:`DicksonPump` as a device): the ladder of cycle means [m_1 …
m_N, V_out]: device k carries i_k = max(E_k + m_{k−1} − m_k − V_t, 0)/R_k with E = αV_φ,e/2 for the first
and the last and αV_φ,e for the inner ones; R_1 and R_{N+1} are moved by ∓T/(2C') (the mean of a node sits
half a step q/C' from its levels). C' dm_k/dt = i_k − i_{k+1}, C_L dV_out/dt = i_{N+1} − G_L V_out − I_L −
i_load. Its steady state is the formula above exactly; its 10–90 % rise agrees with the switched model to a
few %. Supply power (charge drawn by each clock line in its high phase; exact in periodic steady state): P
= V_DD i_1 + V_φ α Σ_k (i_{k+1} + f C_s V_φ,e).

Known limit: when R_φC and R_onC are both comparable to T/2 (the TT07 pump above ~20 MHz), the transfer
devices stay off through the first part of each slow clock edge, which the averaged model does not capture;
there it droops less than the switched model (by 45 mV at 20 MHz and 0.27 V at 62 MHz at the fitted TT07
values).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..._checks import is_concrete, runtime_check
from ..._experiment import Absolute, Experiment, MeasurementKind, _name
from ..._math import relu, safe_div
from ...data import Dataset
from ...device import AbstractDevice, param, parameter_units, with_values


def _coth(x: Array) -> Array:
    """coth(x) for x > 0, exact to float64 up to x → ∞ (1/tanh)."""
    return 1.0 / jnp.tanh(x)


def _inv_or_big(x: Array, big: float = 1e30) -> Array:
    """1/x, and ``big`` where x = 0 (gradient-safe)."""
    nz = x > 0
    return jnp.where(nz, 1.0 / jnp.where(nz, x, 1.0), big)


class PumpSteadyState(NamedTuple):
    """Periodic steady state of a Dickson pump under its load (averaged model)."""

    v_out: Array  #: cycle-mean output voltage [V]
    ripple: Array  #: peak-to-peak output ripple [V] (averaged model: I_out/(f·C_L))
    i_out: Array  #: current delivered to the load [A]
    supply_power: Array  #: power drawn from V_DD and the clock supply [W]
    efficiency: Array  #: V_out·I_out / supply power [1]


# ------------------------------------------------------------------------------------------ Dickson pump
def _pump_kind(data: Dataset, pump: DicksonPump, *, floor: float = 0.0, initial: str | None = None):
    del floor, initial  # output voltages in volts, from the steady state
    return pump, pump_output(data)


class DicksonPump(AbstractDevice):
    """Dickson charge pump (Dickson 1976; Tanzawa & Tanaka 1997) — equations in the module docstring.

    Defaults: the measured SKY130 3-stage pump of Tiny Tapeout 7 (urish/tt07-charge-pump: N = 3, V_DD = 1.8
    V, 25×25 µm² MIM pump capacitors ≈ 1.25 pF, 1.5 pF output capacitor, diode-connected LVT NMOS with V_th
    ≈ 0.44 V); stray capacitance and resistances are assumed, and there is no load
    (``devices/dickson_tt07.toml`` holds the values fitted to the silicon).

    As an :class:`AbstractDevice`: state = the averaged ladder [m_1 … m_N, V_out] [V] (cycle means of the
    top nodes and the output); drive = extra load current drawn from the output [A]; ``rhs`` is the
    averaged ODE, ``power`` the supply power [W], ``read`` the output voltage [V].
    """

    amplitude_unit: ClassVar[str] = "A"  #: the drive is a load current
    drive_unit: ClassVar[str] = "A"

    #: The measurements this family is fitted to (:func:`imcphys.fit.measurement`).
    measurement_kinds: ClassVar[dict[str, MeasurementKind]] = {
        "pump": MeasurementKind(
            (("f_clk", "V_out"),),
            _pump_kind,
            description="f_clk [Hz], V_out [V]: cycle-mean output in steady state",
            units={"f_clk": "Hz", "V_out": "V"},
        ),
    }

    #: V_DD, input of the first transfer device
    supply_voltage: Float[Array, "..."] = param(1.8, "V", lower=0.0, lower_open=True)
    #: V_φ, clock swing at the drivers
    clock_amplitude: Float[Array, "..."] = param(1.8, "V", lower=0.0, lower_open=True)
    clock_frequency: Float[Array, "..."] = param(10e6, "Hz", lower=0.0, lower_open=True)  #: f
    capacitance: Float[Array, "..."] = param(1.25e-12, "F", lower=0.0, lower_open=True)  #: C, pump capacitor per stage
    #: C_s, top-node stray capacitance per stage
    stray_capacitance: Float[Array, "..."] = param(0.2e-12, "F", lower=0.0)
    threshold_voltage: Float[Array, "..."] = param(0.44, "V", lower=0.0)  #: V_t of the transfer devices
    #: R_on of the transfer devices
    switch_resistance: Float[Array, "..."] = param(20e3, "ohm", lower=0.0, lower_open=True)
    clock_resistance: Float[Array, "..."] = param(1e3, "ohm", lower=0.0)  #: R_φ, clock-driver output resistance
    output_capacitance: Float[Array, "..."] = param(1.5e-12, "F", lower=0.0, lower_open=True)  #: C_L
    load_conductance: Float[Array, "..."] = param(0.0, "S", lower=0.0)  #: G_L = 1/R_L, resistive load (0: none)
    load_current: Float[Array, "..."] = param(0.0, "A", lower=0.0)  #: I_L, constant-current load
    stages: int = eqx.field(static=True, default=3)  #: N, number of pumping stages

    def check_relations(self) -> None:
        if not isinstance(self.stages, (int, np.integer)) or isinstance(self.stages, bool) or self.stages < 1:
            raise ValueError(f"DicksonPump.stages (N) must be an integer >= 1; got {self.stages!r}")

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
        return (
            self.supply_voltage
            - self.threshold_voltage
            + self.stages * (self.coupling() * self.clock_swing() - self.threshold_voltage)
        )

    def stage_emfs(self) -> Float[Array, "... n"]:
        """Clock boost seen by each transfer device between node means [V]: αV_φ,e/2 for the first and the
        last, αV_φ,e for the N − 1 inner ones (the top nodes swing ±αV_φ,e/2 about their means)."""
        boost = self.coupling() * self.clock_swing()
        k = jnp.arange(self.stages + 1)
        return boost[..., None] * jnp.where((k == 0) | (k == self.stages), 0.5, 1.0)

    def stage_resistances(self) -> Float[Array, "... n"]:
        """R_1 … R_{N+1} [Ω] of the averaged ladder between node means (module docstring); their sum is R_out."""
        f, r, cp, cl = (
            self.clock_frequency,
            self.switch_resistance,
            self.node_capacitance(),
            self.output_capacitance,
        )
        period = 1.0 / f
        x1 = 1.0 / (2.0 * f * r * cp)  # half period over R_on·C' (first device: V_DD is a stiff source)
        eta1 = -jnp.expm1(-x1)
        r_first = period / (cp * eta1)
        r_inner = _coth(x1) / (f * cp)  # a pair of equal nodes relaxes with R_on·C'/2
        # last device: node N and C_L relax through R_on while the load drains C_L (it conducts all half
        # period)
        cser = cp * cl / (cp + cl)
        tau = r * cser
        x = 0.5 * period / tau
        eta = -jnp.expm1(-x)
        c = 0.5 * cser / cl
        mean_offset = (0.5 * period - 0.125 * cser * period / cl - (1.0 - c) * (0.5 * period - tau * eta) / eta) / cl
        r_last = r * cser / cl + period * (1.0 - c) * jnp.exp(-x) / (cser * eta) + mean_offset
        # between node *means* the first and the last device each carry half a node's step q/C'
        half_step = 0.5 * period / cp
        inner = jnp.broadcast_to(r_inner[..., None], (*jnp.shape(r_inner), self.stages - 1))
        return jnp.concatenate([(r_first - half_step)[..., None], inner, (r_last + half_step)[..., None]], axis=-1)

    def output_resistance(self) -> Array:
        """R_out [Ω] of the cycle-mean output: N/(fC') in the slow-switching limit (plus ≈
        C'/(8fC_L(C'+C_L))).
        """
        return jnp.sum(self.stage_resistances(), axis=-1)

    def rest_state(self) -> Float[Array, "... n"]:
        """The idle pump [V]: each node charged from V_DD through the transfer devices, max(V_DD − kV_t, 0)."""
        k = jnp.arange(1, self.stages + 2)
        return relu(self.supply_voltage[..., None] - k * self.threshold_voltage[..., None])

    def ladder_currents(self, x: Float[ArrayLike, "... n"], enabled: ArrayLike = 1.0) -> Float[Array, "... n"]:
        """Cycle-averaged currents through the N + 1 transfer devices [A] for node means ``x`` [V], the clock
        running a fraction ``enabled`` of the cycles (devices only conduct forward)."""
        x = jnp.asarray(x)
        upstream = jnp.concatenate(
            [jnp.broadcast_to(self.supply_voltage, x.shape[:-1])[..., None], x[..., :-1]], axis=-1
        )
        drive = self.stage_emfs() + upstream - x - self.threshold_voltage[..., None]
        return jnp.asarray(enabled)[..., None] * relu(drive) / self.stage_resistances()

    def ladder_rhs(
        self, x: Float[ArrayLike, "... n"], i_extra: ArrayLike = 0.0, enabled: ArrayLike = 1.0
    ) -> Float[Array, "... n"]:
        """d/dt of the node means and the output [V/s] with an extra output load ``i_extra`` [A]."""
        x = jnp.asarray(x)
        i = self.ladder_currents(x, enabled)
        load = self.load_conductance * x[..., -1] + self.load_current + i_extra
        out = jnp.concatenate([i[..., 1:], load[..., None]], axis=-1)
        caps = jnp.concatenate(
            [
                jnp.broadcast_to(self.node_capacitance()[..., None], (*x.shape[:-1], self.stages)),
                jnp.broadcast_to(self.output_capacitance, x.shape[:-1])[..., None],
            ],
            axis=-1,
        )
        return (i - out) / caps

    def charge_energy(self) -> Array:
        """Energy drawn from the supplies per coulomb delivered to the output, V_DD + NαV_φ [J/C]."""
        return self.supply_voltage + self.stages * self.coupling() * self.clock_amplitude

    def supply_power(self, x: Float[ArrayLike, "... n"], enabled: ArrayLike = 1.0) -> Array:
        """Power drawn from V_DD and the clock supply [W]: V_DD·i_1 + V_φ·α·Σ_k (i_{k+1} + f·C_s·V_φ,e) while
        the clock runs (charge drawn by each clock line in its high phase; exact in periodic steady state).
        """
        i = self.ladder_currents(x, enabled)
        stray = self.clock_frequency * self.stray_capacitance * self.clock_swing()
        return self.supply_voltage * i[..., 0] + self.clock_amplitude * self.coupling() * (
            jnp.sum(i[..., 1:], axis=-1) + enabled * self.stages * stray
        )

    def steady_state(self, extra_load_current: ArrayLike = 0.0) -> PumpSteadyState:
        """Periodic steady state (averaged model) under G_L, I_L and ``extra_load_current`` [A]."""
        r = self.output_resistance()
        # the transfer devices conduct only forward: a pump whose loaded output would be negative (V_oc too low,
        # or more load current than it can give) does not pump, and its output sits at 0 V
        v = relu(
            (self.open_circuit_voltage() - r * (self.load_current + extra_load_current))
            / (1.0 + r * self.load_conductance)
        )
        i = self.load_conductance * v + self.load_current + extra_load_current
        p = self.charge_energy() * i + (
            self.stages
            * self.coupling()
            * self.clock_amplitude
            * self.clock_frequency
            * self.stray_capacitance
            * self.clock_swing()
        )
        return PumpSteadyState(
            v_out=v,
            ripple=i / (self.clock_frequency * self.output_capacitance),
            i_out=i,
            supply_power=p,
            efficiency=safe_div(v * i, p),  # 0 for an unloaded pump without stray losses (0/0)
        )

    def steady_nodes(self, extra_load_current: ArrayLike = 0.0) -> Float[Array, "... n"]:
        """Node means and output of the averaged ladder in steady state [V]."""
        i = self.steady_state(extra_load_current).i_out
        steps = self.stage_emfs() - self.threshold_voltage[..., None] - self.stage_resistances() * i[..., None]
        return self.supply_voltage[..., None] + jnp.cumsum(steps, axis=-1)

    def regulated_nodes(self, v_out: ArrayLike) -> Float[Array, "... n"]:
        """Node means and output [V] of the pump held at ``v_out`` [V] by a clock-skipping regulator: the
        running cycles carry the full current (V_oc − V_out)/R_out, whatever the load (which only sets the
        duty)."""
        i_full = (self.open_circuit_voltage() - jnp.asarray(v_out)) / self.output_resistance()
        steps = self.stage_emfs() - self.threshold_voltage[..., None] - self.stage_resistances() * i_full[..., None]
        return self.supply_voltage[..., None] + jnp.cumsum(steps, axis=-1)

    def regulation_ripple(self, v_target: ArrayLike) -> Array:
        """Peak-to-peak ripple [V] of a pump regulated at ``v_target`` [V] by skipping clock cycles: the
        charge of one running cycle, i_pump/f, on C_L in parallel with the last node C' (the last device
        conducts for the whole half period)."""
        i_full = relu(self.open_circuit_voltage() - v_target) / self.output_resistance()
        return i_full / (self.clock_frequency * (self.output_capacitance + self.node_capacitance()))

    def check_reach(self, v_target: ArrayLike, extra_load_current: ArrayLike = 0.0) -> Array:
        """``v_target`` [V], or an error if the pump cannot hold |v_target| under its load (+
        ``extra_load_current`` [A]): ``ValueError`` eagerly, an ``eqx.error_if`` runtime error under jit.
        Never clipped silently."""
        reach = self.steady_state(extra_load_current).v_out
        bad = jnp.abs(v_target) > reach
        msg = (
            "requested voltage exceeds what the DicksonPump can hold under its load (steady-state output "
            "V_DD − V_t + N(αV_φ,e − V_t) − R_out·I_out); raise stages, clock_frequency or capacitance, or "
            "lighten the load"
        )
        if is_concrete(bad) and bool(np.any(np.asarray(bad))):
            raise ValueError(
                f"{msg}: requested |V| = {np.max(np.abs(np.asarray(v_target))):.4g} V, reachable "
                f"{np.min(np.asarray(reach)):.4g} V (N = {self.stages})"
            )
        return runtime_check(jnp.asarray(v_target), bad, msg)

    # --------------------------------------------------------- device interface
    def rhs(self, t, state, drive):
        """d/dt of the averaged ladder [V/s] with ``drive`` = extra load current [A]."""
        del t
        return self.ladder_rhs(state, drive)

    def power(self, state, drive):
        """Supply power [W] of the running pump."""
        del drive
        return self.supply_power(state)

    def read(self, state):
        """Output voltage [V] (the last component of the ladder state)."""
        return jnp.asarray(state)[..., -1]

    def initial_state(self, which: str = "rest"):
        """``"rest"``: the idle pump (:meth:`rest_state`); ``"steady"``: the loaded steady state."""
        if which == "rest":
            return self.rest_state()
        if which == "steady":
            return self.steady_nodes()
        raise ValueError(f"initial_state(which=...) must be 'rest' or 'steady'; got {which!r}")

    def amplitude_range(self):
        """The pump is not programmed; its drive is a load current [A]: from 0 to the short-circuit current
        V_oc/R_out drawn, and the same magnitude pushed back (the smallest over a population; arrays, traceable)."""
        i_sc = jnp.min(self.open_circuit_voltage() / self.output_resistance())
        return (0.0, i_sc), (-i_sc, 0.0)

    def default_solver(self):
        # The ladder's inner modes (≈ 1/(4f)) are faster than its rise (≈ N²/(2f) + R_out·C_L), but only by ~2N²:
        # mildly stiff. The implicit Kvaerno5 stalled on the diodes' conduction kinks (max(·, 0)) once the ladder
        # settled: the TT07 card under 1 µA at 10 and 30 MHz ran out of steps over 40 µs, where Tsit5 took < 1000
        # steps; on the 10-stage flash_fg pump Tsit5 took 2825 steps against Kvaerno5's 326 but compiled and ran
        # about 5x faster.
        return diffrax.Tsit5()


#: The parameters of a :class:`DicksonPump` (a Flash cell carries them prefixed ``pump_``).
PUMP_PARAMS = tuple(parameter_units(DicksonPump))


# ------------------------------------------------------------------------------------- measurement kinds
class _PumpOutput(eqx.Module):
    """Cycle-mean output of the pump in periodic steady state at each clock frequency."""

    def __call__(self, pump: DicksonPump, f_clk: Array) -> Array:
        # f_clk > 0 was checked when the experiment was built; the fitted parameters stay in range by the fit's
        # transforms: no runtime checks inside the fit's solver
        return with_values(pump, clock_frequency=f_clk).steady_state().v_out


def pump_output(
    data: Dataset, *, frequency: str = "f_clk", output: str = "V_out", name: str | None = None
) -> Experiment:
    """Dickson pump output [V] vs clock frequency [Hz] (averaged model in steady state), compared in volts;
    rows with f_clk = 0 (the pump stopped) are not operating points and are left out."""
    data.require(frequency, output)
    f, v = data[frequency], data[output]
    if np.any(f < 0):
        k = int(np.flatnonzero(f < 0)[0])
        raise ValueError(f"{data.where(frequency, k)}: clock frequency must be >= 0 Hz; got {f[k]!r} Hz")
    on = f > 0
    if not on.any():
        raise ValueError(f"{data.source}: no row with a clock frequency > 0 Hz")
    return Experiment(
        _PumpOutput(),
        jnp.asarray(f[on]),
        v[on],
        residual=Absolute("V"),
        x=f[on],
        x_label=data.label(frequency),
        y_label=data.label(output),
        name=name or _name(data, "pump output"),
        log_x=True,
    )
