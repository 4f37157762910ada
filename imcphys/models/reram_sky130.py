r"""ReRAM: the SkyWater SKY130 ReRAM compact model (``sky130_fd_pr_reram__reram_cell``), a two-state model.

Source: the SkyWater open PDK, repository google/skywater-pdk-libs-sky130_fd_pr_reram (Apache-2.0),
``cells/reram_cell/sky130_fd_pr_reram__reram_cell.va`` (commit 31cefa6) and its calibrated defaults; the device is
SkyWater's 130 nm HfO2 1T1R ReRAM (E. R. Hsieh et al., IEDM 2019, doi:10.1109/IEDM19573.2019.8993514). The
equations below are written from the model's description (not copied from its Verilog-A).

State: the filament thickness T_f [m] in [T_f,min, T_f,max] (the tunnelling gap is t_ox − T_f) and the cell
temperature T [K]. Drive: the cell voltage V = V(TE, BE) [V]; V > 0 grows the filament (SET), V < 0 dissolves it.

.. math::

    \gamma &= \gamma_{k0} + \gamma_{k1}\,\big((t_{ox} - T_f)/1\,\mathrm{nm}\big)^3 \\
    \frac{dT_f}{dt} &= v_{k1}\Big[e^{-E_{gen}/\varphi}\,e^{\gamma a_0 V/(t_{ox}\varphi)}
        - e^{-E_{rec}/\varphi}\,e^{-\gamma a_0 V/(t_{ox}\varphi)}\Big], \qquad \varphi = kT/q \\
    I &= I_{k1}\,e^{-(t_{ox} - T_f)/(t_{ox} - T_{f,ref})}\,\sinh(V/V_{ref}) \\
    \frac{dT}{dt} &= \frac{|V I|}{C_{th}} - \frac{T - T_0}{\tau_{th}}

with a_0 = 0.25 nm. There is no field threshold: at V = 0 the filament dissolves (E_gen > E_rec), negligibly at
room temperature. The temperature relaxes towards T_0 + |V I| τ_th/C_th in τ_th = 0.23 ns, far faster than any
programming pulse: the thermal equation is *stiff*. The Verilog-A integrates it with a first-order implicit step
and a time step bounded to 1 ns. Here the adaptive reference is an explicit solver (see
:meth:`SkyWaterReRAM.default_solver`), whose steps the relaxation bounds to about 3τ_th; the fixed-step path of a
pulse integrates in the filament thickness instead of in time, the temperature at its steady state
(:mod:`imcphys._quadrature`): a SET runs away in picoseconds, which no fixed time step follows. (The fixed-step
path of :func:`imcphys.simulate`, Heun in time, is unstable on the thermal equation for steps above 2τ_th: simulate
this family adaptively.) The Verilog-A clips T_f after each time step; here :meth:`SkyWaterReRAM.project` clips it
(see :mod:`imcphys._integrate` for how the solvers use it). ``read`` returns the conductance I(V_read)/V_read [S] at
V_read = 0.1 V.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_less, is_concrete
from .._integrate import _check_fixed_steps, solve_pulse
from .._math import safe_exp, safe_sinh
from .._quadrature import pulse_in_state
from ..constants import K_B, Q
from ..device import AbstractDevice, PulseResult, param

_NM = 1e-9


class SkyWaterState(eqx.Module):
    """State of one :class:`SkyWaterReRAM` cell (fields may carry a leading cell axis in a population)."""

    filament: Float[Array, "..."]  #: T_f, conductive-filament thickness [m]
    temperature: Float[Array, "..."]  #: T, cell temperature [K]


class SkyWaterReRAM(AbstractDevice):
    """SkyWater SKY130 ReRAM compact model (module docstring): filament thickness and temperature.

    ``SkyWaterReRAM()`` has the PDK's calibrated defaults in SI units (energies in eV). Drive: cell voltage
    V(TE, BE) [V]. ``read`` returns the conductance [S] at ``read_voltage``.
    """

    oxide_thickness: Float[Array, "..."] = param(5.0e-9, "m", lower=0.0, lower_open=True)  #: t_ox (Tox)
    #: T_f,max (Tfilament_max), thickest filament (lowest resistance)
    filament_max: Float[Array, "..."] = param(4.9e-9, "m", lower=0.0, lower_open=True)
    #: T_f,min (Tfilament_min), thinnest filament (highest resistance)
    filament_min: Float[Array, "..."] = param(3.3e-9, "m", lower=0.0, lower_open=True)
    #: T_f,0 (Tfilament_0), filament of a fresh cell: ``initial_state("initial")``
    filament_initial: Float[Array, "..."] = param(3.3e-9, "m", lower=0.0, lower_open=True)
    #: E_gen (Eact_generation), activation energy of vacancy generation
    generation_energy: Float[Array, "..."] = param(1.501, "eV", lower=0.0, lower_open=True)
    #: E_rec (Eact_recombination), activation energy of vacancy recombination
    recombination_energy: Float[Array, "..."] = param(1.500, "eV", lower=0.0, lower_open=True)
    current_prefactor: Float[Array, "..."] = param(6.140e-5, "A", lower=0.0, lower_open=True)  #: I_k1
    #: T_f,ref (Tfilament_ref), sets the current's decay length t_ox − T_f,ref
    filament_reference: Float[Array, "..."] = param(4.7249e-9, "m", lower=0.0, lower_open=True)
    voltage_reference: Float[Array, "..."] = param(0.430, "V", lower=0.0, lower_open=True)  #: V_ref
    velocity: Float[Array, "..."] = param(150.0, "m/s", lower=0.0, lower_open=True)  #: v_k1 (velocity_k1)
    gamma0: Float[Array, "..."] = param(16.5, "1", lower=0.0, lower_open=True)  #: γ_k0 (gamma_k0)
    gamma1: Float[Array, "..."] = param(-1.25, "1")  #: γ_k1 (gamma_k1)
    atom_spacing: Float[Array, "..."] = param(0.25e-9, "m", lower=0.0, lower_open=True)  #: a_0 (fixed in the PDK)
    #: T_0 (Temperature_0), ambient temperature
    ambient_temperature: Float[Array, "..."] = param(300.0, "K", lower=0.0, lower_open=True)
    #: C_th (C_thermal), effective thermal capacitance
    thermal_capacitance: Float[Array, "..."] = param(3.1825e-16, "J/K", lower=0.0, lower_open=True)
    #: τ_th (tau_thermal), thermal time constant
    thermal_time_constant: Float[Array, "..."] = param(0.23e-9, "s", lower=0.0, lower_open=True)
    area: Float[Array, "..."] = param(0.1024e-12, "m^2", lower=0.0, lower_open=True)  #: area_ox (not in the equations)
    read_voltage: Float[Array, "..."] = param(0.1, "V", lower=0.0, lower_open=True)  #: V_read of ``read``
    max_amplitude: float = eqx.field(static=True, default=3.0)  #: largest |pulse amplitude| allowed [V]

    def check_relations(self) -> None:
        name = "SkyWaterReRAM"
        check_less(f"{name}.filament_min", self.filament_min, f"{name}.filament_max", self.filament_max, "m")
        check_less(f"{name}.filament_max", self.filament_max, f"{name}.oxide_thickness", self.oxide_thickness, "m")
        check_less(
            f"{name}.filament_reference", self.filament_reference, f"{name}.oxide_thickness", self.oxide_thickness, "m"
        )
        if is_concrete((self.filament_initial, self.filament_min, self.filament_max)):
            init, lo, hi = (
                np.asarray(x, dtype=float) for x in (self.filament_initial, self.filament_min, self.filament_max)
            )
            if not np.all((lo <= init) & (init <= hi)):
                raise ValueError(
                    f"{name}.filament_initial must be in [filament_min, filament_max]; got {init.ravel()[0]:g} m "
                    f"outside [{lo.ravel()[0]:g}, {hi.ravel()[0]:g}] m"
                )

    # ----------------------------------------------------------------- physics
    def current(self, filament: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """I = I_k1 exp(−(t_ox − T_f)/(t_ox − T_f,ref)) sinh(V/V_ref) [A] for ``filament`` [m], ``voltage`` [V]."""
        gap = self.oxide_thickness - jnp.asarray(filament)
        decay = self.oxide_thickness - self.filament_reference
        return (
            self.current_prefactor * safe_exp(-gap / decay) * safe_sinh(jnp.asarray(voltage) / self.voltage_reference)
        )

    def field_enhancement(self, filament: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """γ = γ_k0 + γ_k1 ((t_ox − T_f)/1 nm)³ [1]."""
        return self.gamma0 + self.gamma1 * ((self.oxide_thickness - jnp.asarray(filament)) / _NM) ** 3

    def filament_rate(
        self,
        filament: Float[ArrayLike, "..."],
        voltage: Float[ArrayLike, "..."],
        temperature: Float[ArrayLike, "..."],
    ) -> Float[Array, "..."]:
        """dT_f/dt [m/s] at ``filament`` [m], ``voltage`` [V] and ``temperature`` [K] (generation − recombination).

        Each term is one exponential of (±γ a_0 V/t_ox − E)/φ, so that neither the Boltzmann factor
        (e^−58 at 300 K) nor the field factor over- or underflows on its own.
        """
        phi = K_B * jnp.asarray(temperature) / Q  # kT/q [V]: energies in eV divide by it directly
        field = self.field_enhancement(filament) * self.atom_spacing / self.oxide_thickness * jnp.asarray(voltage)
        generation = safe_exp((field - self.generation_energy) / phi)
        recombination = safe_exp((-field - self.recombination_energy) / phi)
        return self.velocity * (generation - recombination)

    def heating_power(self, filament: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Joule power |V I| [W] dissipated in the cell."""
        return jnp.abs(jnp.asarray(voltage) * self.current(filament, voltage))

    def temperature_rate(self, state: SkyWaterState, voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """dT/dt = |V I|/C_th − (T − T_0)/τ_th [K/s]."""
        return (
            self.heating_power(state.filament, voltage) / self.thermal_capacitance
            - (state.temperature - self.ambient_temperature) / self.thermal_time_constant
        )

    def steady_temperature(
        self, filament: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """The fixed point of the thermal equation, T_0 + |V I| τ_th/C_th [K]."""
        return self.ambient_temperature + self.heating_power(filament, voltage) * (
            self.thermal_time_constant / self.thermal_capacitance
        )

    # ------------------------------------------------------- device interface
    def rhs(self, t, state: SkyWaterState, drive) -> SkyWaterState:
        """(dT_f/dt [m/s], dT/dt [K/s]) at the cell voltage ``drive`` [V]."""
        del t
        return SkyWaterState(
            filament=self.filament_rate(state.filament, drive, state.temperature),
            temperature=self.temperature_rate(state, drive),
        )

    def read(self, state: SkyWaterState) -> Float[Array, "..."]:
        """Conductance I(V_read)/V_read [S] of ``state`` at ``read_voltage``."""
        return self.current(state.filament, self.read_voltage) / self.read_voltage

    def observe(self, state: SkyWaterState, drive) -> Float[Array, "..."]:
        """Cell current [A] under the applied voltage ``drive`` [V]."""
        return self.current(state.filament, drive)

    def power(self, state: SkyWaterState, drive) -> Float[Array, "..."]:
        """V·I [W]."""
        return drive * self.current(state.filament, drive)

    def project(self, state: SkyWaterState) -> SkyWaterState:
        """Clip the filament to [T_f,min, T_f,max] [m] (the PDK clips after every time step)."""
        return SkyWaterState(jnp.clip(state.filament, self.filament_min, self.filament_max), state.temperature)

    def state_scale(self) -> SkyWaterState:
        return SkyWaterState(jnp.asarray(1e-9), jnp.asarray(100.0))

    def default_solver(self) -> diffrax.AbstractSolver:
        """Tsit5 (explicit). A SET is an explosive runaway — as the gap closes γ grows and the generation rate
        reaches 10⁴ m/s, so the filament crosses its last nanometre in picoseconds — on which the Newton
        iterations of implicit solvers diverge (measured on a 1T1R SET: Kvaerno5 rejected 1170 of 2000 steps and
        stalled in a 25-ns segment); Tsit5 resolves it, and is then held by the thermal relaxation to steps of
        about 3τ_th (about 1700 steps per µs of pulse)."""
        return diffrax.Tsit5()

    def initial_state(self, which: str = "reset") -> SkyWaterState:
        """``"reset"``: T_f,min; ``"set"``: T_f,max; ``"initial"``: T_f,0 (Tfilament_0); all at T_0."""
        filaments = {"reset": self.filament_min, "set": self.filament_max, "initial": self.filament_initial}
        if which not in filaments:
            raise ValueError(f"initial_state(which=...) must be one of {sorted(filaments)}; got {which!r}")
        filament = jnp.asarray(filaments[which])
        return SkyWaterState(filament, jnp.broadcast_to(self.ambient_temperature, jnp.shape(filament)))

    def reference_pulse(self) -> tuple[float, float]:
        """2.15 V for 100 ns: sets a fresh (reset) cell part of the way; the SET is abrupt (2.0 V barely moves
        it, 2.2 V sets it fully)."""
        return 2.15, 100e-9

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """SET pulses (0, +max_amplitude] V, RESET pulses [−max_amplitude, 0) V."""
        return (0.0, self.max_amplitude), (-self.max_amplitude, 0.0)

    def coordinate_rate(self, voltage: Float[ArrayLike, ""]):
        """The rate function of the fixed-step path (:mod:`imcphys._quadrature`) at a constant ``voltage`` [V]:
        filament thickness x [m] -> (dT_f/dt [m/s] at the steady temperature, power V·I [W], 0 noise)."""

        def rate(x):
            temperature = self.steady_temperature(x, voltage)
            return self.filament_rate(x, voltage, temperature), voltage * self.current(x, voltage), jnp.zeros_like(x)

        return rate

    def pulse(
        self,
        state: SkyWaterState,
        amplitude: Float[ArrayLike, ""],
        width: Float[ArrayLike, ""],
        *,
        rise: Float[ArrayLike, ""] = 0.0,
        fall: Float[ArrayLike, ""] = 0.0,
        fixed_steps: int | None = None,
        key: PRNGKeyArray | None = None,
    ) -> PulseResult:
        """One voltage pulse of ``amplitude`` [V] and plateau ``width`` [s]: adaptive (Tsit5), or with
        ``fixed_steps=n`` integrated in the filament on n intervals, the temperature at its steady state
        (:mod:`imcphys._quadrature`). The state after the pulse has the temperature of its last drive level (the
        plateau when ``fall`` is 0). The model has no cycle-to-cycle noise: ``key`` is accepted for the common
        interface and unused."""
        del key
        _check_fixed_steps(fixed_steps)
        if fixed_steps is None:
            return solve_pulse(self, state, amplitude, width, rise=rise, fall=fall)
        amplitude = jnp.asarray(amplitude, dtype=float)
        start = self.project(state).filament
        x, energy = pulse_in_state(
            self.coordinate_rate,
            start,
            self.filament_min,
            self.filament_max,
            amplitude,
            width,
            rise=rise,
            fall=fall,
            nodes=fixed_steps,
            key=None,
        )
        v_end = amplitude if isinstance(fall, (int, float)) and fall == 0 else jnp.zeros_like(amplitude)
        end = SkyWaterState(x, self.steady_temperature(x, v_end))
        return PulseResult(state=end, energy=energy, duration=jnp.asarray(width) + jnp.asarray(rise) + fall)
