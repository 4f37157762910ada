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

Fixed-cost plateau (``pulse(..., fixed_steps=n)`` for a rectangular pulse without noise,
:meth:`StanfordReRAM.plateau`). Under a constant V the gap ODE is autonomous and g moves monotonically toward one
bound, so time and energy are integrals over the gap instead of over time:

.. math::

    t(g) = \int_{g_0}^{g} \frac{dg'}{|\dot g(g')|}, \qquad E(g) = \int_{g_0}^{g} \frac{V I(g')}{|\dot g(g')|}\,dg',

and the gap after a pulse of width T solves t(g) = T (or is the bound, reached earlier; the cell then rests there,
drawing V·I(bound)). Along the path the field F = γ(g)|V|/t_ox is monotonic, so the path splits into a segment where
the gate is open (F >= F_min + w; n/3 equal Gauss–Legendre panels, three nodes each) and one inside the threshold
ramp, where the ramp position x = (F − F_min)/w maps to g through the cubic γ(g) and the gate s(x) = x²(3 − 2x) is
divided out exactly: dt = q(x) dx/s(x) with q = |dg/dx|/|ġ_open|, integrated in v = 1/x (max(1, n/32) geometric
panels, then a tail with q linear in x in closed form, T(v) = q_0 v/3 + (2q_0/9 + q_1/3) ln(3v − 2); a RESET whose
field falls toward F_min stalls there and never reaches it). The panel where the pulse ends is found from the
cumulative times; the position in it by Newton iterations on a model of the panel (ln dt/dg quadratic through its
three nodes), then two Newton steps on the panel's own quadrature, the last one differentiated (it carries the
gradients). The cost is the same for every amplitude (about n + 20 rate evaluations), unlike a fixed time mesh,
which misses a SET runaway that ends inside the pulse (measured on 4000 SET amplitudes 1.45–1.75 V from g_max,
100 ns, 32 graded Heun steps: 4.8 % of the cells more than 1 % off the adaptive solve in read current, the worst by
85 %; the plateau: none, worst 0.23 %).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
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

    def _ramp_position(self, gamma: Array, voltage: Array) -> Array:
        """x = (F − F_min)/w clipped to [0, 1]: where the field F = γ|V|/t_ox stands in the F_min ramp
        (w = 0: a step, 0 below F_min and 1 from it on)."""
        excess = gamma * jnp.abs(voltage) / self.oxide_thickness - self.min_field
        w = self.field_threshold_width
        return jnp.where(
            w > 0, jnp.clip(excess / jnp.where(w > 0, w, 1.0), 0.0, 1.0), (excess >= 0).astype(excess.dtype)
        )

    def _field_on(self, gamma: Array, voltage: Array) -> Array:
        """The gate s(x) = x²(3 − 2x) of the gap motion: 0 below the field threshold F_min, 1 above F_min + w
        (w = 0: a hard step)."""
        x = self._ramp_position(gamma, voltage)
        return x * x * (3.0 - 2.0 * x)

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
        rate, _ = self._ungated_rate_power(g, voltage)
        return rate * self._field_on(self._gamma(g, voltage), voltage)

    def _ungated_rate_power(self, g: Array, voltage: Array) -> tuple[Array, Array]:
        """dg/dt [m/s] without the field-threshold gate, and the power V·I [W], at a gap ``g`` inside its range."""
        current = self.current(g, voltage)
        power = voltage * current
        temp = self.ambient_temperature + jnp.abs(power) * self.thermal_resistance
        inv_temp = 1.0 / temp  # one division: exp(−E_a/kT)·sinh(γ (a_0/t_ox) qV/kT)
        rate = (
            -self.gap_velocity
            * jnp.exp(-self.activation_energy / K_B_EV * inv_temp)
            * safe_sinh(
                self._gamma(g, voltage) * self.atom_spacing / self.oxide_thickness * voltage * (Q / K_B) * inv_temp
            )
        )
        return rate, power

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

    def plateau(
        self, state: Float[ArrayLike, ""], drive: Float[ArrayLike, ""], duration: Float[ArrayLike, ""], resolution: int
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """Gap [m] after holding the cell voltage ``drive`` [V] for ``duration`` [s], and the energy drawn [J]:
        time as a quadrature over the gap (module docstring), ``resolution`` Gauss–Legendre panels along it."""
        return _plateau(self, jnp.asarray(state), jnp.asarray(drive), jnp.asarray(duration), resolution)


# ------------------------------------------------------------------------------- constant-voltage plateau
#: Three-point Gauss–Legendre rule on [−1, 1] (exact for polynomials of degree 5), as Python floats: the nodes are
#: unrolled, because (cells, 3) arrays under vmap ran about 4x slower on CPU than three (cells,) vectors.
_GL = tuple(zip(*(a.tolist() for a in np.polynomial.legendre.leggauss(3))))
_GL4 = tuple(zip(*(a.tolist() for a in np.polynomial.legendre.leggauss(4))))
#: Newton iterations on the model of the last panel (cheap, no device evaluation), then one with the panel's own
#: quadrature (undifferentiated), before the final, differentiated step. That final step carries the gradient of the
#: implicit solution only up to the error of its starting point: from the model's root alone the gradients were
#: 1e-4 to 1e-3 off central differences (the values were not visibly affected).
_MODEL_NEWTON = 4
#: The stand-in of a cell that does not move: the nominal cell (its array parameters) and its SET amplitude [V].
_NOMINAL_LEAVES = tuple(jax.tree.leaves(StanfordReRAM()))
_NOMINAL_SET = 3.0


def _cbrt(y: Array) -> Array:
    """y^(1/3) for y > 0: exp(ln(y)/3) and one Newton step, to a few ulp (XLA's cbrt is a scalar library call on CPU,
    which keeps the fused loops of a population from vectorising)."""
    r = jnp.exp(jnp.log(y) / 3.0)
    return (2.0 * r + y / (r * r)) / 3.0


def _plateau(dev: StanfordReRAM, gap: Array, v: Array, width: Array, resolution: int) -> tuple[Array, Array]:
    """The gap after the constant voltage ``v`` held for ``width``, and its energy (module docstring)."""
    sg = jax.lax.stop_gradient
    n_main, n_ramp = max(1, resolution // 3), max(1, resolution // 32)
    lo, hi = lo_in, hi_in = dev.gap_min, dev.gap_max
    floor = jnp.sqrt(jnp.finfo(v.dtype).tiny)  # slowest speed kept [m/s]: 1/speed stays finite
    g_in = jnp.clip(gap, lo, hi)
    rate_in, power_in = dev._ungated_rate_power(g_in, v)
    moving = (
        (dev._ramp_position(dev._gamma(g_in, v), v) > 0)
        & (g_in != jnp.where(v > 0, lo, hi))
        & (jnp.abs(rate_in) > floor)
    )
    # a cell that does not move keeps its gap and draws P·width; the computation below then runs on a stand-in (the
    # nominal cell's full SET pulse from its g_max, parameters swapped in leaf by leaf: the cell's own parameters
    # may stall any pulse), so that none of its intermediates is inf or NaN: one would poison the gradients
    leaves, treedef = jax.tree.flatten(dev)
    dev = jax.tree.unflatten(treedef, [jnp.where(moving, a, b) for a, b in zip(leaves, _NOMINAL_LEAVES, strict=True)])
    lo, hi = dev.gap_min, dev.gap_max
    v = jnp.where(moving, v, _NOMINAL_SET)
    g0 = jnp.where(moving, g_in, hi)
    setting = v > 0
    g_end = jnp.where(setting, lo, hi)  # the bound the gap moves toward
    d = jnp.where(setting, -1.0, 1.0)  # sign of dg/dt
    absv = jnp.abs(v)
    has_ramp = dev.field_threshold_width > 0
    # F = γ(g)|V|/t_ox is monotonic along the path: rising (a cell starting inside the F_min ramp leaves it),
    # falling (the cell enters the ramp and stalls as F tends to F_min) or, for β = 0, constant
    rising, falling = -d * dev.beta > 0, -d * dev.beta < 0

    def gap_at(device, x):
        """The gap where the ramp position is x = (F − F_min)/w (inverse of the cubic γ(g))."""
        beta = jnp.where(device.beta != 0, device.beta, 1.0)
        gamma0 = jnp.where(v < 0, device.gamma0_reset, device.gamma0)
        field = device.min_field + x * device.field_threshold_width
        cube = (gamma0 - field * device.oxide_thickness / absv) / beta
        return jnp.clip(_NM * _cbrt(jnp.maximum(cube, 1e-30)), device.gap_min, device.gap_max)

    x0, xe = (dev._ramp_position(dev._gamma(g, v), v) for g in (g0, g_end))
    full0 = x0 >= 1
    # the gate on the main segment: open (F >= F_min + w there), or s(x0) all along when F is constant
    gate_main = jnp.where(rising | falling, 1.0, x0 * x0 * (3.0 - 2.0 * x0))

    # main segment [gm0, gm1] (F >= F_min + w), n_main panels of the path coordinate ℓ
    main_empty = jnp.where(rising, xe < 1, falling & ~full0)
    gm0 = jnp.where(rising & ~full0, gap_at(dev, 1.0), g0)
    gm1 = jnp.where(falling & (xe < 1), gap_at(dev, 1.0), g_end)
    gm0 = jnp.where(main_empty, jnp.where(rising, g_end, g0), gm0)
    gm1 = jnp.where(main_empty, gm0, gm1)
    h = jnp.abs(gm1 - gm0) / n_main
    # ramp segment in v = 1/x, from its open end v_big = 1/x_big toward the threshold v_small = 1/x_small:
    # n_ramp geometric panels over [v_big, v_cut], then a tail [v_cut, v_small] in closed form
    x_big = jnp.where(rising, jnp.minimum(xe, 1.0), jnp.where(falling, jnp.minimum(x0, 1.0), 1.0))
    x_small = jnp.where(has_ramp, jnp.where(rising, jnp.minimum(x0, 1.0), jnp.where(falling, xe, 1.0)), x_big)
    x_big = jnp.where(x_big > 0, x_big, 1.0)
    stall = falling & has_ramp & (x_small <= 0)  # F tends to F_min and never reaches it
    v_big = 1.0 / x_big
    # (for a stall, x_small = 0, a finite stand-in beyond v_cut: the tail is then endless, flagged by `stall`)
    v_small = jnp.where(x_small > 0, 1.0 / jnp.where(x_small > 0, x_small, 1.0), v_big * 2.0 ** (n_ramp + 1))
    v_cut = jnp.minimum(v_small, v_big * 2.0**n_ramp)
    v_nodes = v_big * (v_cut / v_big) ** (jnp.arange(n_ramp + 1) / n_ramp)
    # where the cell rests once it has run its course: its bound, or F = F_min under a hard threshold (w = 0)
    g_rest = jnp.where(falling & (xe < 1) & ~has_ramp, gap_at(dev, 1.0), g_end)

    def slowness(device, g, rate):
        """q = |dg/dx| / |ġ_full| [s]: on the ramp, dt = q dx/(x²(3 − 2x)) (the gate divided out exactly)."""
        beta = jnp.where(device.beta != 0, device.beta, 1.0)
        dg_dx = _NM**3 * device.field_threshold_width * device.oxide_thickness / (3.0 * g * g * absv * jnp.abs(beta))
        return dg_dx / jnp.maximum(jnp.abs(rate), floor)

    def ramp_q(device, x):
        """(q [s], P·q [J]) at ramp position x."""
        g = gap_at(device, x)
        rate, power = device._ungated_rate_power(g, v)
        q = slowness(device, g, rate)
        return q, power * q

    def per_unit(device, ramp, p):
        """(dt/dp, dE/dp) per unit of the panel coordinate p: ℓ [m] on the main segment (dt/dℓ = 1/|ġ|), or
        v = 1/x on the ramp (dt/dv = q/(3 − 2x))."""
        x = 1.0 / jnp.where(ramp, p, 1.0)
        g = jnp.where(ramp, gap_at(device, x), jnp.clip(gm0 + d * jnp.where(ramp, 0.0, p), lo, hi))
        rate, power = device._ungated_rate_power(g, v)
        on_main = 1.0 / jnp.maximum(jnp.abs(rate) * gate_main, floor)
        dt_dp = jnp.where(ramp, slowness(device, g, rate) / (3.0 - 2.0 * x), on_main)
        return dt_dp, power * dt_dp

    def integrate(ramp, device, start, delta):
        """∫ (dt, dE) from p = start to start + delta (three-point Gauss–Legendre), and dt/dp at the nodes."""
        t = e = 0.0
        nodes = []
        for node, weight in _GL:
            dt_dp, de_dp = per_unit(device, ramp, start + 0.5 * (1.0 + node) * delta)
            t, e = t + weight * dt_dp, e + weight * de_dp
            nodes.append(dt_dp)
        half = 0.5 * jnp.abs(delta)
        return half * t, half * e, *nodes

    # the tail: q and P·q linear in x between x_cut and x_small; with x = 1/v, dt/dv = (q0 v + q1)/(3v − 2),
    # whose integral is T(v) = q0 v/3 + (2 q0/9 + q1/3) ln(3v − 2)
    has_tail = v_small > v_cut
    x_cut = 1.0 / v_cut
    x_tail = jnp.where(has_tail, x_small, 0.5 * x_cut)  # a stand-in without a tail keeps the line defined
    (q_cut, pq_cut), (q_tail, pq_tail) = ramp_q(dev, x_cut), ramp_q(dev, x_tail)

    def line(y_cut, y_tail):
        slope = (y_cut - y_tail) / (x_cut - x_tail)
        return y_tail - slope * x_tail, slope

    cq, cp = line(q_cut, q_tail), line(pq_cut, pq_tail)

    def primitive(c, v_):
        return c[0] * v_ / 3.0 + (2.0 * c[0] / 9.0 + c[1] / 3.0) * jnp.log(3.0 * v_ - 2.0)

    v_far = jnp.where(stall | ~has_tail, v_cut, v_small)  # a finite stand-in where the tail is endless or empty
    t_tail = jnp.where(has_tail, primitive(cq, v_far) - primitive(cq, v_cut), 0.0)
    e_tail = jnp.where(has_tail, primitive(cp, v_far) - primitive(cp, v_cut), 0.0)

    # --- the ramp panels (geometric in v, from the open end), then the main panels with the panel where the pulse
    # ends found on the way; time order: tail, ramp (decreasing v), main when rising, else main, ramp, tail
    _, (dt_ramp, de_ramp, *nodes_ramp) = jax.lax.scan(
        lambda _, vs: (None, integrate(True, dev, vs[0], vs[1] - vs[0])), None, (v_nodes[:-1], v_nodes[1:])
    )
    t_ramp, e_ramp = jnp.sum(dt_ramp), jnp.sum(de_ramp)
    main_offset = jnp.where(rising, t_tail + t_ramp, 0.0)

    def main_panel(carry, i):
        t, e, found, record = carry
        dt, de, *nodes = integrate(False, dev, i * h, h)
        hit = ~found & sg(main_offset + t + dt > width)
        record = tuple(jnp.where(hit, new, old) for new, old in zip((i * h, t, e, *nodes), record))
        return (t + dt, e + de, found | hit, record), None

    zero = jnp.zeros_like(width)
    (t_main, e_main, in_main, main_record), _ = jax.lax.scan(
        main_panel, (zero, zero, jnp.zeros((), bool), (zero,) * 6), jnp.arange(n_main)
    )
    in_main = in_main & sg(width >= main_offset)
    # the ramp panels in time order (few: arrays of n_ramp per cell are cheap here)
    ramp_offset = jnp.where(rising, t_tail, t_main)
    dts, des, *nodes_ramp = (jnp.where(rising, x[::-1], x) for x in (dt_ramp, de_ramp, *nodes_ramp))
    t_cum, e_cum = jnp.cumsum(dts), jnp.cumsum(des)
    k = jnp.sum(sg(ramp_offset + t_cum) <= sg(width))
    in_ramp = (k < n_ramp) & sg(width >= ramp_offset)
    pick = jnp.arange(n_ramp) == jnp.minimum(k, n_ramp - 1)
    ramp_starts = jnp.where(rising, v_nodes[1:][::-1], v_nodes[:-1])
    ramp_deltas = jnp.where(rising, -(v_nodes[1:] - v_nodes[:-1])[::-1], v_nodes[1:] - v_nodes[:-1])
    r_start, r_delta, *r_nodes = (jnp.sum(jnp.where(pick, x, 0.0)) for x in (ramp_starts, ramp_deltas, *nodes_ramp))
    r_t, r_e = (jnp.sum(jnp.where(pick, x - y, 0.0)) for x, y in ((t_cum, dts), (e_cum, des)))
    # the panel where the pulse ends: (ramp?, start, signed length, time and energy before it, dt/dp at its Gauss
    # nodes)
    ramp = in_ramp & ~in_main
    start = jnp.where(ramp, r_start, main_record[0])
    delta = jnp.where(ramp, r_delta, h)
    t_before = jnp.where(ramp, ramp_offset + r_t, main_offset + main_record[1])
    e_before = jnp.where(
        ramp, jnp.where(rising, e_tail, e_main) + r_e, jnp.where(rising, e_tail + e_ramp, 0.0) + main_record[2]
    )
    node_rates = [jnp.where(ramp, a, b) for a, b in zip(r_nodes, main_record[3:])]
    in_panels = in_main | in_ramp
    t_panels, e_panels = t_main + t_ramp, e_main + e_ramp

    # end inside a panel: Newton on the fraction u of it, with the exact u-derivative of the panel's quadrature
    # (so that the last step, differentiated, gives the gradients of the discrete map)
    def local(u_):
        return integrate(ramp, sg(dev), start, u_ * delta)[:2]

    def newton(u_):
        (t_u, _), (dt_du, de_du) = jax.jvp(local, (u_,), (jnp.ones_like(u_),))
        return (width - t_before - t_u) / dt_du, dt_du, de_du

    # first guess: the root of a model, ln(dt/dp) quadratic in u through the three Gauss nodes (dt/dp is nearly
    # exponential along the path), integrated by four-point Gauss–Legendre: cheap, no device evaluation
    ln1, ln2, ln3 = (jnp.log(jnp.maximum(sg(r), floor)) for r in node_rates)
    half_gap = 0.5 * (_GL[2][0] - _GL[1][0])  # Gauss nodes at u = 1/2 ∓ half_gap
    slope, curve = (ln3 - ln1) / (2.0 * half_gap), (ln3 + ln1 - 2.0 * ln2) / (2.0 * half_gap**2)

    def model_rate(u_):
        return jnp.abs(sg(delta)) * jnp.exp(ln2 + (u_ - 0.5) * (slope + curve * (u_ - 0.5)))

    def model_time(u_):
        return 0.5 * u_ * sum(w * model_rate(0.5 * u_ * (1.0 + x)) for x, w in _GL4)

    to_go = sg(width - t_before)
    u = jnp.clip(to_go / jnp.maximum(model_time(jnp.ones_like(to_go)), floor), 0.0, 1.0)
    for _ in range(_MODEL_NEWTON):
        u = jnp.clip(u - (model_time(u) - to_go) / jnp.maximum(model_rate(u), floor), 0.0, 1.0)
    u = jnp.clip(sg(u + newton(u)[0]), 0.0, 1.0)
    _, dt_du, de_du = sg(newton(u))
    t_u, e_u = integrate(ramp, dev, start, u * delta)[:2]
    step = jnp.where(in_panels, (width - t_before - t_u) / dt_du, 0.0)  # elsewhere: u stays in [0, 1], finite
    u, e_u = u + step, e_u + step * de_du
    p_end = start + u * delta
    g_panel = jnp.where(
        ramp, gap_at(dev, 1.0 / jnp.where(ramp, p_end, 1.0)), jnp.clip(gm0 + d * jnp.where(ramp, 0.0, p_end), lo, hi)
    )
    e_panel = e_before + e_u

    # end inside the tail: Newton on v (the tail's time is nearly linear in v)
    in_tail = sg(jnp.where(rising, width < t_tail, ~in_panels & has_tail & (stall | (width - t_panels < t_tail))))
    elapsed = jnp.where(rising, width, width - t_panels)  # time spent in the tail by the end of the pulse
    target = jnp.where(rising, primitive(cq, v_far) - elapsed, primitive(cq, v_cut) + elapsed)
    v_lo, v_hi = sg(v_cut), sg(jnp.where(stall, jnp.finfo(v.dtype).max, v_far))

    def newton_tail(c, v_):
        slope = (c[0] * v_ + c[1]) / (3.0 * v_ - 2.0)
        return v_ - (primitive(c, v_) - target) / jnp.where(slope > 0, slope, 1.0)

    guess = jnp.where(rising, v_far - 3.0 * elapsed / q_tail, v_cut + 3.0 * elapsed / q_cut)
    v_t = jnp.clip(sg(guess), v_lo, v_hi)
    for _ in range(4):
        v_t = jnp.clip(sg(newton_tail(sg(cq), v_t)), v_lo, v_hi)
    v_t = jnp.where(in_tail, newton_tail(cq, v_t), v_t)  # elsewhere: v_t stays in range, finite
    g_tail = gap_at(dev, 1.0 / v_t)
    e_tail_end = jnp.where(
        rising,
        primitive(cp, v_far) - primitive(cp, v_t),
        e_panels + primitive(cp, v_t) - primitive(cp, v_cut),
    )

    # --- assemble (every branch finite, so that gradients through jnp.where stay finite)
    _, power_rest = dev._ungated_rate_power(g_rest, v)
    e_rest = e_tail + e_panels + power_rest * (width - t_tail - t_panels)
    g_out = jnp.where(in_tail, g_tail, jnp.where(in_panels, g_panel, g_rest))
    e_out = jnp.where(in_tail, e_tail_end, jnp.where(in_panels, e_panel, e_rest))
    return jnp.clip(jnp.where(moving, g_out, g_in), lo_in, hi_in), jnp.where(moving, e_out, power_in * width)
