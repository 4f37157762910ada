r"""ReRAM: the Stanford RRAM compact model, v1.0.0.

Sources: X. Guan, S. Yu, H.-S. P. Wong, IEEE Electron Device Lett. 33(10), 1405 (2012);
Z. Jiang et al., "A compact model for metal–oxide resistive random access memory with experiment verification",
IEEE Trans. Electron Devices 63(5), 1884 (2016); official Verilog-A ``rram_v_1_0_0.va``, nanoHUB,
doi:10.4231/D37H1DN48 (the defaults below are that file's).

State: the tunnelling gap g [m] between the conductive-filament tip and the electrode, in [g_min, g_max].
Drive: the cell voltage V [V] (top minus bottom electrode); V > 0 sets (g shrinks), V < 0 resets.

.. math::

    I &= I_0\,e^{-g/g_0}\,\sinh(V/V_0) \\
    \frac{dg}{dt} &= -v_0\,e^{-E_a/k T}\,\sinh\!\Big(\gamma\,\frac{a_0}{t_{ox}}\,\frac{qV}{kT}\Big),
        \qquad \gamma = \gamma_0 - \beta\,(g/1\,\mathrm{nm})^3 \\
    T &= T_0 + |V I|\,R_{th}

The gap does not move while the field γ|V|/t_ox is below F_min (field threshold). The Verilog-A threshold is a hard
step; during a RESET sweep the gap then *slides* along the threshold (γ falls as g grows), and a step in the vector
field makes adaptive solvers chatter there. imcphys ramps the gate from 0 at F_min to 1 at F_min +
``field_threshold_width`` (default 0.1 % of F_min) with a C¹ smoothstep; ``field_threshold_width = 0`` restores the
hard step, and a wider ramp is the smooth relaxation used for gradient-based optimisation. Self-heating is
algebraic (no thermal capacitance); as I does not depend on T, T follows from the *same* instant's current (the
Verilog-A takes I from the previous time step). The Verilog-A clips only the *output* of its ``idt()`` integral, so
the integral runs on past a bound and the next pulse of opposite polarity first has to undo that overshoot (a known
artefact); imcphys clips the state itself (:meth:`StanfordReRAM.project`). For V < 0 the Verilog-A uses γ_0 = 16
whatever ``gamma0`` is; here that value is the separate parameter ``gamma0_reset``.

Cycle-to-cycle variation: the Verilog-A adds χ·δg_0/(1 + exp((T_crit − T)/T_smth)) to dg/dt at every time step,
χ ~ N(0, 1), with its step bounded to 1 ns. That is a Wiener process whose size depends on the simulator's step;
imcphys writes it step-independently as dg = (dg/dt) dt + σ dW with σ = δg_0·√τ·s(T), τ = ``noise_time_step``
(1 ns, the Verilog-A bound), so that it matches the Verilog-A run at its own time step. Unlike the Verilog-A
(which lets the gap random-walk even at 0 V) the noise acts only while the field threshold is exceeded, so a cell
at rest keeps its state.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_less
from .._math import safe_exp, safe_sinh
from ..constants import K_B, K_B_EV, Q
from ..device import AbstractDevice, param

_NM = 1e-9


class StanfordReRAM(AbstractDevice):
    """Stanford RRAM compact model v1.0.0 (Guan 2012; Jiang 2016) — see the module docstring for the equations.

    ``StanfordReRAM()`` has the official Verilog-A defaults, in SI units. State: gap [m]. Drive: cell voltage
    [V]. ``read`` returns the read current [A] at ``read_voltage``.
    """

    #: g_0, current decay length of the gap
    gap_decay_length: Float[Array, "..."] = param(0.25e-9, "m", lower=0.0, lower_open=True, upper=2e-9)
    v0: Float[Array, "..."] = param(0.25, "V", lower=0.0, lower_open=True, upper=10.0)  #: V_0, I–V nonlinearity
    i0: Float[Array, "..."] = param(1e-3, "A", lower=0.0, lower_open=True, upper=1e-2)  #: I_0, current prefactor
    #: v_0 (Vel0), gap velocity prefactor
    gap_velocity: Float[Array, "..."] = param(10.0, "m/s", lower=0.0)
    beta: Float[Array, "..."] = param(0.8, "1")  #: β, gap dependence of the field enhancement
    gamma0: Float[Array, "..."] = param(16.0, "1", lower=0.0, lower_open=True)  #: γ_0, field enhancement for V >= 0
    #: γ_0 used for V < 0 (Verilog-A: fixed 16)
    gamma0_reset: Float[Array, "..."] = param(16.0, "1", lower=0.0, lower_open=True)
    #: E_a, vacancy generation/migration
    activation_energy: Float[Array, "..."] = param(0.6, "eV", lower=0.0, lower_open=True)
    atom_spacing: Float[Array, "..."] = param(0.25e-9, "m", lower=0.0, lower_open=True)  #: a_0
    oxide_thickness: Float[Array, "..."] = param(12e-9, "m", lower=0.0, lower_open=True)  #: t_ox
    min_field: Float[Array, "..."] = param(1.4e9, "V/m", lower=0.0)  #: F_min, field threshold for gap motion
    gap_min: Float[Array, "..."] = param(0.2e-9, "m", lower=0.0, lower_open=True)  #: smallest gap (fully SET)
    gap_max: Float[Array, "..."] = param(1.7e-9, "m", lower=0.0, lower_open=True)  #: largest gap (fully RESET)
    #: T_0 (Verilog-A T_ini = 273 + 25); below the melting point of HfO2, 3031 K (2758 °C, CRC Handbook of
    #: Chemistry and Physics), the oxide the filament lives in
    ambient_temperature: Float[Array, "..."] = param(298.0, "K", lower=0.0, lower_open=True, upper=3031.0)
    thermal_resistance: Float[Array, "..."] = param(2.1e3, "K/W", lower=0.0)  #: R_th
    gap_noise: Float[Array, "..."] = param(0.02, "m/s", lower=0.0)  #: δg_0 (deltaGap0), cycle-to-cycle noise amplitude
    #: τ, step at which δg_0 was defined
    noise_time_step: Float[Array, "..."] = param(1e-9, "s", lower=0.0, lower_open=True)
    noise_t_crit: Float[Array, "..."] = param(450.0, "K", lower=0.0)  #: T_crit, temperature where noise turns on
    #: T_smth, width of that turn-on
    noise_t_smooth: Float[Array, "..."] = param(500.0, "K", lower=0.0, lower_open=True)
    #: voltage at which ``read`` measures the current
    read_voltage: Float[Array, "..."] = param(0.1, "V", lower=0.0, lower_open=True)
    field_threshold_width: Float[Array, "..."] = param(1.4e6, "V/m", lower=0.0)  #: F_min ramp width (0: hard step)
    max_amplitude: float = eqx.field(static=True, default=3.0)  #: largest |pulse amplitude| allowed [V]

    def check_relations(self) -> None:
        check_less("StanfordReRAM.gap_min", self.gap_min, "StanfordReRAM.gap_max", self.gap_max, "m")
        check_less("StanfordReRAM.gap_max", self.gap_max, "StanfordReRAM.oxide_thickness", self.oxide_thickness, "m")

    # ----------------------------------------------------------------- physics
    def current(self, gap: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Cell current I = I_0 exp(−g/g_0) sinh(V/V_0) [A] for ``gap`` [m] and ``voltage`` [V] (broadcasts)."""
        gap, voltage = jnp.asarray(gap), jnp.asarray(voltage)
        return self.i0 * safe_exp(-gap / self.gap_decay_length) * safe_sinh(voltage / self.v0)

    def temperature(self, gap: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Filament temperature T = T_0 + |V I| R_th [K] (algebraic self-heating)."""
        return self.ambient_temperature + jnp.abs(voltage * self.current(gap, voltage)) * self.thermal_resistance

    def _field_on(self, gamma: Array, voltage: Array) -> Array:
        """0 below the field threshold F_min, 1 above F_min + w, linear in between (w = 0: a hard step)."""
        excess = gamma * jnp.abs(voltage) / self.oxide_thickness - self.min_field
        w = self.field_threshold_width
        x = jnp.clip(excess / jnp.where(w > 0, w, 1.0), 0.0, 1.0)
        return jnp.where(w > 0, x * x * (3.0 - 2.0 * x), (excess >= 0).astype(excess.dtype))

    def _gamma(self, gap: Array, voltage: Array) -> Array:
        g0 = jnp.where(voltage < 0, self.gamma0_reset, self.gamma0)
        return g0 - self.beta * (gap / _NM) ** 3

    def gap_rate(self, gap: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """dg/dt [m/s] at ``gap`` [m] (clipped to [g_min, g_max]) and ``voltage`` [V], deterministic part.

        Zero below the field threshold. Its sign is −sign(V) whatever the gap, so the bounds are enforced by
        :meth:`project` (see :mod:`imcphys.simulate`), not by a stiff wall in the vector field.
        """
        gap, voltage = jnp.asarray(gap), jnp.asarray(voltage)
        g = jnp.clip(gap, self.gap_min, self.gap_max)
        temp = self.temperature(g, voltage)
        gamma = self._gamma(g, voltage)
        inv_temp = 1.0 / temp  # one division: exp(−E_a/kT)·sinh(γ (a_0/t_ox) qV/kT)
        rate = (
            -self.gap_velocity
            * jnp.exp(-self.activation_energy / K_B_EV * inv_temp)
            * safe_sinh(gamma * self.atom_spacing / self.oxide_thickness * voltage * (Q / K_B) * inv_temp)
        )
        rate = rate * self._field_on(gamma, voltage)
        return rate

    # ------------------------------------------------------- device interface
    def rhs(self, t, state, drive):
        del t
        return self.gap_rate(state, drive)

    def read(self, state: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Read current [A] at ``read_voltage`` for gap ``state`` [m]."""
        return self.current(state, self.read_voltage)

    def observe(self, state, drive):
        """Cell current [A] under the applied voltage ``drive`` [V]."""
        return self.current(state, drive)

    def power(self, state, drive):
        """V·I [W] (at the gap clipped to its range, as in :meth:`gap_rate`, which then shares the current)."""
        return drive * self.current(jnp.clip(state, self.gap_min, self.gap_max), drive)

    def diffusion(self, state, drive):
        """σ = δg_0 √τ / (1 + exp((T_crit − T)/T_smth)) [m/√s] while the field threshold is exceeded."""
        g = jnp.clip(state, self.gap_min, self.gap_max)
        temp = self.temperature(g, drive)
        on = self._field_on(self._gamma(g, drive), drive)
        return (
            self.gap_noise
            * jnp.sqrt(self.noise_time_step)
            * on
            / (1.0 + jnp.exp((self.noise_t_crit - temp) / self.noise_t_smooth))
        )

    def project(self, state):
        """Clip the gap to [g_min, g_max] [m]."""
        return jnp.clip(state, self.gap_min, self.gap_max)

    def state_scale(self):
        return 1e-9

    def initial_state(self, which: str = "reset") -> Float[Array, ""]:
        """``"reset"``: gap_max (high resistance); ``"set"``: gap_min (low resistance) [m]."""
        states = {"reset": self.gap_max, "set": self.gap_min}
        if which not in states:
            raise ValueError(f"initial_state(which=...) must be one of {sorted(states)}; got {which!r}")
        return states[which]

    def smoothed(self, temperature: Float[ArrayLike, ""]) -> StanfordReRAM:
        """A copy whose F_min ramp is at least ``temperature``·F_min wide (``temperature`` dimensionless, >= 0):
        the smooth relaxation of the field threshold for gradient-based optimisation; 0 gives the device itself."""
        width = jnp.maximum(self.field_threshold_width, jnp.asarray(temperature) * self.min_field)
        return eqx.tree_at(lambda d: d.field_threshold_width, self, width)

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """SET pulses (0, +max_amplitude] V, RESET pulses [−max_amplitude, 0) V."""
        return (0.0, self.max_amplitude), (-self.max_amplitude, 0.0)

    def resistance(self, gap: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."] = 0.1) -> Float[Array, "..."]:
        """Chord resistance V/I [Ω] at ``voltage`` [V] (default 0.1 V) for ``gap`` [m]."""
        return jnp.asarray(voltage) / self.current(gap, voltage)
