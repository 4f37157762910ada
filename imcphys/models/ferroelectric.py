r"""Ferroelectric HfO2: nucleation-limited switching (NLS) over a distribution of domains — a capacitor
(:class:`FeCap`, read: polarization) and a transistor (:class:`FeFET`, read: threshold voltage).

Sources: A. K. Tagantsev et al., Phys. Rev. B 66, 214109 (2002) (nucleation-limited switching); W. J. Merz,
Phys. Rev. 95, 690 (1954) (switching time); Y. Ishibashi, Y. Takagi, J. Phys. Soc. Jpn. 31, 506 (1971) (KAI
kinetics); C. Alessandri et al., IEEE TED 66(8), 3527 (2019) (Monte Carlo of polycrystalline HfO2 capacitors,
the "NLS literature fit" of :class:`FeCap`); S. Deng et al., VLSI 2020 (multi-domain FeFET: Gaussian activation
voltages, accumulation, variation; the defaults of :class:`FeFET` are those of the authors' model).

**One domain.** A domain of activation field E_a under a field E of the opposite polarization switches in the
Merz time τ and with the KAI (Weibull) probability

.. math::

    \tau(E) = \tau_0\,\exp\big((E_a/|E|)^\alpha\big),\qquad
    p_{sw} = 1 - \exp(-h^\beta),\qquad h = \sum_k \Delta t_k/\tau(E_k)

The *history* h accumulates over the pulses of one polarity, so that two pulses of t/2 at one field are exactly one
of t (the "accumulative" multi-level write). A pulse of the other polarity starts a new switching episode: h
restarts from 0 and the domains switch back with the same law. (Deng et al.'s per-domain model lets h decay at the
rate 1/τ(|E|) under an aligned field instead of restarting it; the two differ only for minor loops whose reversing
pulse is too short or weak to switch anything, and only the restart keeps the expectation below finite-dimensional.)

**The film.** A distribution f(E_a) of activation fields, either a generalised beta of the second kind (GB2,
``distribution="gb2"``, the NLS fit) or a Gaussian in volts across the film (``"gaussian"``, Deng's model)

.. math::

    f_{GB2}(E) = \frac{(a/b)(E/b)^{ap-1}}{B(p,q)\,(1+(E/b)^a)^{p+q}},\qquad
    E_a = V_a/t_{FE},\; V_a \sim \mathcal N(\mu_V, \sigma_V)

Starting fully down, P = −P_r + 2P_r ∫ f(E_a) p_sw(E_a) dE_a [C/m²]. The expectation (the default device, used
for gradients) evaluates the integral on fixed quadrature nodes in a standardised variable v — for GB2 the log-F
variable v = a·ln(E_a/b) (density ∝ e^{pv}/(1+e^v)^{p+q}), for the Gaussian v = (V_a − μ_V)/σ_V — by the
trapezoidal rule on a sinh-mapped grid covering the distribution to a tail mass of e^{−23} (for GB2: from
m − 23/p to m + 23/q, m and s the mean and standard deviation of v; grid v = m + 1.5·s·sinh(u), u uniform). The
integrand is analytic and decays at both ends, so the rule converges exponentially: with the default 320 nodes the
polarization of the NLS set is within 1e-6 P_r of an adaptive quadrature for pulses of 1 ns to 1 s at 0.5–2.5 V
(tested). The state carries, per node, the up-switched fraction at the start of the episode and the signed history,
so a pulse train composes exactly. A Gaussian activation voltage ≤ 0 (probability Φ(−μ_V/σ_V) = 4e-9 for Deng's set)
switches as E_a = 0.

**Finite-domain devices** (:meth:`AbstractFerroelectric.with_domains`, :func:`sample_domains`): N domains whose
standardised variables v are drawn (keyword-only key); each device's polarization is the mean over its N domains,
which converges to the expectation with the spread of N draws (device-to-device variation). With ``stochastic=True``
each domain is a two-state switch: it flips when p_sw reaches a uniform threshold drawn when its episode starts
(one key per pulse); the N-domain polarization then has σ_P = 2P_r√(p(1−p)/N) about the expectation.

**Field, read and energy.** FeCap: the amplitude is the voltage across the film, E = V/t_FE (the NLS fit's field in
MV/cm is V/0.83 for its 8.3 nm film; the card stores b in MV/cm and t_FE, and E = V/t_FE here). FeFET: the gate
voltage divides over the ferroelectric and the interfacial layer as two series capacitors, V_FE = κ V_G with
κ = C_IL/(C_FE + C_IL), C = ε_0 ε_r/t (depolarization and the silicon surface potential are neglected); its read is
the threshold voltage V_T = V_T0 − k P with the memory window 2k P_r. Energy of a rectangular pulse drawn from the
driver: A·(V_FE ΔP + C_stack V²) — the switching charge times the film voltage, plus the stack's dielectric
charging C V² (half stored and lost at the falling edge, half lost while charging). With ramps the switching charge
is counted at the plateau voltage (an upper bound).

Temperature: neither source gives the temperature dependence of τ_0, α or the E_a distribution; the model is at the
temperature of its fit (room temperature) and has no temperature parameter.
"""

from __future__ import annotations

import abc
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax.scipy.special import digamma, gamma, gammaincc, polygamma
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_range
from .._integrate import PulseResult
from .._math import safe_exp
from ..constants import EPS_0
from ..device import AbstractDevice, param
from ..population import Spec, sample

Distribution = Literal["gb2", "gaussian"]

#: Tail mass left out of the quadrature range: e^{-23} = 1e-10 of each tail (GB2: rate p below, q above).
TAIL = 23.0
#: Width of the sinh map of the quadrature grid, in standard deviations of the standardised variable.
GRID_SPREAD = 1.5
#: Floor of E_a/|E| (a domain with E_a <= 0 switches as E_a = 0; keeps the gradients of x^α finite).
_X_FLOOR = 1e-12


class FerroelectricState(eqx.Module):
    """Per quadrature node (expectation) or per domain (finite device): the switching episode so far.

    ``start``: up-switched fraction at the start of the current episode [1] (0 or 1 for a stochastic domain).
    ``history``: signed accumulated history Σ Δt/τ(E) of the episode [1]; > 0 while switching up, < 0 down.
    ``threshold``: stochastic domains only, the p_sw at which each domain flips in this episode (uniform in (0, 1);
    negative: not drawn yet); ``None`` for deterministic devices.
    """

    start: Float[Array, " n"]
    history: Float[Array, " n"]
    threshold: Float[Array, " n"] | None = None


def _kai(h: Array, beta: Array) -> Array:
    """p_sw = 1 − exp(−h^β) for h >= 0 (h^β through its logarithm: finite value and gradient at 0 and at huge h)."""
    pos = h > 0
    hb = jnp.where(pos, safe_exp(beta * jnp.log(jnp.where(pos, h, 1.0))), 0.0)
    return -jnp.expm1(-hb)


def _kai_density(h: Array, beta: Array) -> Array:
    """dp_sw/dh = β h^{β−1} exp(−h^β) for h >= 0 (0 at h = 0, as for β > 1)."""
    pos = h > 0
    hs = jnp.where(pos, h, 1.0)
    hb = safe_exp(beta * jnp.log(hs))
    return jnp.where(pos, beta * hb / hs * jnp.exp(-hb), 0.0)


class AbstractFerroelectric(AbstractDevice):
    """NLS switching of a ferroelectric film over a distribution of activation fields (module docstring).

    The two final families, :class:`FeCap` and :class:`FeFET`, declare the parameters (each with its own
    published defaults) and say how the amplitude reaches the film (:meth:`film_voltage`), the stack's
    capacitance and what is read.
    """

    remanent_polarization: eqx.AbstractVar[Float[Array, "..."]]
    tau0: eqx.AbstractVar[Float[Array, "..."]]
    alpha: eqx.AbstractVar[Float[Array, "..."]]
    beta: eqx.AbstractVar[Float[Array, "..."]]
    film_thickness: eqx.AbstractVar[Float[Array, "..."]]
    permittivity: eqx.AbstractVar[Float[Array, "..."]]
    area: eqx.AbstractVar[Float[Array, "..."]]
    gb2_a: eqx.AbstractVar[Float[Array, "..."]]
    gb2_b: eqx.AbstractVar[Float[Array, "..."]]
    gb2_p: eqx.AbstractVar[Float[Array, "..."]]
    gb2_q: eqx.AbstractVar[Float[Array, "..."]]
    activation_voltage_mean: eqx.AbstractVar[Float[Array, "..."]]
    activation_voltage_std: eqx.AbstractVar[Float[Array, "..."]]
    domain_variates: eqx.AbstractVar[Float[Array, "... n"]]
    distribution: eqx.AbstractVar[Distribution]
    nodes: eqx.AbstractVar[int]
    domains: eqx.AbstractVar[int]
    stochastic: eqx.AbstractVar[bool]
    max_amplitude: eqx.AbstractVar[float]

    # ------------------------------------------------------------------------------------ family specifics
    @abc.abstractmethod
    def film_voltage(self, amplitude: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Voltage across the ferroelectric film [V] for the programming amplitude [V]."""

    @abc.abstractmethod
    def stack_capacitance(self) -> Float[Array, ""]:
        """Small-signal capacitance per area of what the driver charges [F/m²] (dielectric part of the energy)."""

    def _check_structure(self) -> None:
        name = type(self).__name__
        if self.distribution not in ("gb2", "gaussian"):
            raise ValueError(f"{name}.distribution must be 'gb2' or 'gaussian'; got {self.distribution!r}")
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 16:
            raise ValueError(f"{name}.nodes (quadrature nodes over E_a) must be an integer >= 16; got {self.nodes!r}")
        if isinstance(self.domains, bool) or not isinstance(self.domains, int) or self.domains < 0:
            raise ValueError(f"{name}.domains must be an integer >= 0 (0: not set); got {self.domains!r}")
        if jnp.ndim(self.domain_variates) < 1:
            raise ValueError(f"{name}.domain_variates must be an array of one value per domain (empty: expectation)")
        if not isinstance(self.stochastic, bool):
            raise ValueError(f"{name}.stochastic must be True or False; got {self.stochastic!r}")
        check_range(f"{name}.max_amplitude", self.max_amplitude, lower=0.0, lower_open=True, unit="V")

    # ------------------------------------------------------------------------------------- distribution
    @property
    def finite(self) -> bool:
        """True for a finite-domain device (its ``domain_variates`` are drawn), False for the expectation."""
        return jnp.shape(self.domain_variates)[-1] > 0

    @property
    def size(self) -> int:
        """Number of quadrature nodes or of domains: the length of a state's arrays."""
        return int(jnp.shape(self.domain_variates)[-1]) if self.finite else self.nodes

    def _standard(self) -> tuple[Array, Array, Array, Array]:
        """(mean, standard deviation, lower and upper end of the quadrature range) of the standardised v."""
        if self.distribution == "gb2":
            p, q = self.gb2_p, self.gb2_q
            m = digamma(p) - digamma(q)
            s = jnp.sqrt(polygamma(1, p) + polygamma(1, q))
            return m, s, m - TAIL / p, m + TAIL / q
        half = jnp.sqrt(2.0 * TAIL)
        one = jnp.ones_like(self.activation_voltage_mean)
        return 0.0 * one, one, -half * one, half * one

    def _log_density(self, v: Array) -> Array:
        """Log-density of v up to a constant."""
        if self.distribution == "gb2":
            return self.gb2_p * v - (self.gb2_p + self.gb2_q) * jax.nn.softplus(v)
        return -0.5 * v * v

    def _field_of(self, v: Array) -> Array:
        """Activation field E_a [V/m] of standardised variables v."""
        if self.distribution == "gb2":
            return self.gb2_b * jnp.exp(v / self.gb2_a)
        volts = self.activation_voltage_mean + self.activation_voltage_std * v
        return jnp.maximum(volts, 0.0) / self.film_thickness

    def activation_fields(self) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
        """(E_a [V/m], weight [1]) of every quadrature node — or of every domain of a finite device (weights 1/N).

        The weights sum to 1; Σ w g(E_a) approximates ∫ f(E_a) g(E_a) dE_a (module docstring).
        """
        if self.finite:
            v = self.domain_variates
            return self._field_of(v), jnp.full(v.shape, 1.0 / v.shape[-1])
        m, s, lo, hi = self._standard()
        c = GRID_SPREAD * s
        u = jnp.linspace(jnp.arcsinh((lo - m) / c), jnp.arcsinh((hi - m) / c), self.nodes)
        v = m + c * jnp.sinh(u)
        log_w = self._log_density(v) + jnp.log(jnp.cosh(u))
        w = jnp.exp(log_w - jnp.max(log_w))
        w = w.at[jnp.array([0, -1])].multiply(0.5)  # trapezoidal end weights
        return self._field_of(v), w / jnp.sum(w)

    def sample_variates(self, domains: int, *, key: PRNGKeyArray) -> Float[Array, " domains"]:
        """Standardised variables v of ``domains`` domains drawn from the device's distribution: for GB2
        v = ln G_p − ln G_q with G_x ~ Gamma(x) (a log-F(p, q) variable), for the Gaussian standard normals."""
        if self.distribution == "gb2":
            k1, k2 = jr.split(key)
            p, q = self.gb2_p, self.gb2_q
            return jr.loggamma(k1, p, (domains,), dtype=jnp.result_type(p)) - jr.loggamma(
                k2, q, (domains,), dtype=jnp.result_type(q)
            )
        return jr.normal(key, (domains,), dtype=jnp.result_type(self.activation_voltage_mean))

    def with_domains(self, *, key: PRNGKeyArray, domains: int | None = None) -> AbstractFerroelectric:
        """A finite-domain device: ``domains`` (default: the device's ``domains``) activation fields drawn with
        ``key``. vmap it over keys for a population (or use :func:`sample_domains`)."""
        n = self.domains if domains is None else domains
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(
                f"{type(self).__name__}.with_domains: the number of domains must be a positive integer (pass "
                f"domains=N, or set the device's domains); got {n!r}"
            )
        return eqx.tree_at(lambda d: d.domain_variates, self, self.sample_variates(n, key=key))

    # ----------------------------------------------------------------------------------------- kinetics
    def field(self, amplitude: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Field in the ferroelectric E = V_FE/t_FE [V/m] for the programming amplitude [V]."""
        return self.film_voltage(amplitude) / self.film_thickness

    def switching_time(
        self, field: Float[ArrayLike, "..."], activation_field: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """Merz switching time τ = τ_0 exp((E_a/|E|)^α) [s] of a domain of ``activation_field`` E_a [V/m] under
        ``field`` E [V/m] (inf at E = 0)."""
        x = jnp.asarray(activation_field) / jnp.abs(jnp.asarray(field))
        return self.tau0 * jnp.exp(x**self.alpha)

    def _ratio(self, e_abs: Array, e_a: Array) -> tuple[Array, Array]:
        """(E_a/|E| floored, mask |E| > 0), with a safe denominator where E = 0."""
        on = e_abs > 0
        return jnp.maximum(e_a / jnp.where(on, e_abs, 1.0), _X_FLOOR), on

    def rate(self, field: Float[ArrayLike, ""], activation_field: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """dh/dt = 1/τ(E) [1/s] (0 at E = 0), finite with finite gradients at any field."""
        x, on = self._ratio(jnp.abs(jnp.asarray(field)), jnp.asarray(activation_field))
        c = safe_exp(self.alpha * jnp.log(x))
        return jnp.where(on, jnp.exp(-c) / self.tau0, 0.0)

    def ramp_rate(self, field: Float[ArrayLike, ""], activation_field: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        r"""History of a linear ramp from 0 to ``field`` per unit ramp time [1/s]: (1/T)∫_0^T dt/τ(E t/T) =
        (e^{−c} − x Γ(1 − 1/α) Q(1 − 1/α, c))/τ_0 with x = E_a/|E|, c = x^α (Q: regularised upper incomplete
        gamma; needs α > 1)."""
        x, on = self._ratio(jnp.abs(jnp.asarray(field)), jnp.asarray(activation_field))
        c = safe_exp(self.alpha * jnp.log(x))
        a = 1.0 - 1.0 / self.alpha
        r = (jnp.exp(-c) - x * gamma(a) * gammaincc(a, c)) / self.tau0
        return jnp.where(on, jnp.maximum(r, 0.0), 0.0)

    # ------------------------------------------------------------------------------------------- state
    def _up(self, state: FerroelectricState) -> Array:
        """Up-switched fraction of every node/domain [1]."""
        h = state.history
        p_sw = _kai(jnp.abs(h), self.beta)
        if state.threshold is not None:  # a stochastic domain flips once p_sw reaches its threshold (if drawn)
            p_sw = ((p_sw >= state.threshold) & (state.threshold > 0)).astype(h.dtype)
        return jnp.where(h >= 0, state.start + (1.0 - state.start) * p_sw, state.start * (1.0 - p_sw))

    def switched_fraction(self, state: FerroelectricState) -> Float[Array, ""]:
        """Fraction of the film polarized up, Σ w_i p_i ∈ [0, 1]."""
        _, w = self.activation_fields()
        return jnp.sum(w * self._up(state))

    def polarization(self, state: FerroelectricState) -> Float[Array, ""]:
        """Remanent polarization P = P_r (2 Σ w_i p_i − 1) [C/m²] (−P_r fully down, +P_r fully up)."""
        return self.remanent_polarization * (2.0 * self.switched_fraction(state) - 1.0)

    def initial_state(self, which: str = "down") -> FerroelectricState:
        """``"down"`` (P = −P_r, the erased state; the default) or ``"up"`` (P = +P_r), with no history."""
        states = {"down": 0.0, "up": 1.0}
        if which not in states:
            raise ValueError(f"initial_state(which=...) must be one of {sorted(states)}; got {which!r}")
        dtype = jnp.result_type(self.remanent_polarization, float)
        n = self.size
        threshold = -jnp.ones(n, dtype) if (self.stochastic and self.finite) else None
        return FerroelectricState(jnp.full(n, states[which], dtype), jnp.zeros(n, dtype), threshold)

    # ------------------------------------------------------------------------------------ device interface
    def rhs(self, t, state, drive):
        """d(state)/dt within one switching episode: dh/dt = sign(V)/τ(E), the start fractions constant.

        The ODE view holds for a drive of one polarity (e.g. :func:`imcphys.simulate` of a unipolar waveform, or
        the generic trapezoid it is tested against). A pulse that opposes a running episode restarts it — a jump
        of the state that a vector field cannot make (integrated through this rhs, the history would run back
        through zero instead): apply bipolar trains with :meth:`pulse`, which is exact for any train.
        """
        del t
        e_a, _ = self.activation_fields()
        drive = jnp.asarray(drive)
        dh = jnp.sign(drive) * self.rate(self.field(drive), e_a)
        threshold = None if state.threshold is None else jnp.zeros_like(state.threshold)
        return FerroelectricState(jnp.zeros_like(state.start), dh, threshold)

    def power(self, state, drive):
        """Switching power A·V_FE·dP/dt [W] (the dielectric charging is counted by :meth:`pulse`)."""
        e_a, w = self.activation_fields()
        drive = jnp.asarray(drive)
        r = self.rate(self.field(drive), e_a)
        dens = _kai_density(jnp.abs(state.history), self.beta)
        dp = jnp.where(drive >= 0, 1.0 - state.start, -state.start) * dens * r
        dpol = 2.0 * self.remanent_polarization * jnp.sum(w * dp)
        return self.area * self.film_voltage(drive) * dpol

    def pulse(
        self,
        state: FerroelectricState,
        amplitude: Float[ArrayLike, ""],
        width: Float[ArrayLike, ""],
        *,
        rise: Float[ArrayLike, ""] = 0.0,
        fall: Float[ArrayLike, ""] = 0.0,
        fixed_steps: int | None = None,
        key: PRNGKeyArray | None = None,
    ) -> PulseResult:
        """One trapezoidal pulse of ``amplitude`` [V] and plateau ``width`` [s], in closed form (exact; fixed_steps
        is unused): h += sign(V)·(width/τ(E) + (rise + fall)·ramp_rate), after restarting the episode of every
        node the pulse opposes (start ← current fraction, h ← 0). ``key``: thresholds of stochastic domains whose
        episode starts (required for a stochastic finite device, unused otherwise). Energy: module docstring."""
        del fixed_steps
        name = type(self).__name__
        check_range(f"{name}.pulse amplitude", amplitude, lower=-self.max_amplitude, upper=self.max_amplitude, unit="V")
        for label, x in (("width", width), ("rise", rise), ("fall", fall)):
            check_range(f"{name}.pulse {label}", x, lower=0.0, unit="s")
        if self.stochastic and self.finite and key is None:
            raise ValueError(f"{name}: a stochastic finite-domain device needs key= for every pulse")
        ramps = not all(isinstance(x, (int, float)) and x == 0 for x in (rise, fall))
        edges = (jnp.asarray(rise, dtype=float), jnp.asarray(fall, dtype=float)) if ramps else None
        # one compiled kernel even when called eagerly: eager and jit give the same bits
        return self._pulse(state, jnp.asarray(amplitude, dtype=float), jnp.asarray(width, dtype=float), edges, key)

    def reference_pulse(self) -> tuple[float, float]:
        """Half the largest amplitude of the polarity that raises P (up-switching), for 1 µs: switches part of
        the film from ``initial_state()`` (down)."""
        return 0.5 * self.max_amplitude, 1e-6

    @eqx.filter_jit
    def _pulse(self, state, amplitude, width, edges, key) -> PulseResult:
        draws = self.stochastic and self.finite
        e_a, w = self.activation_fields()
        field = self.field(amplitude)
        inc = width * self.rate(field, e_a)
        rise, fall = edges if edges is not None else (0.0, 0.0)
        if edges is not None:
            inc = inc + (rise + fall) * self.ramp_rate(field, e_a)
        h = state.history
        restart = amplitude * h < 0
        start = jnp.where(restart, self._up(state), state.start)
        threshold = state.threshold
        if draws:
            fresh = restart | (threshold < 0)
            threshold = jnp.where(fresh, jr.uniform(key, h.shape, dtype=h.dtype, minval=1e-300), threshold)
        new = FerroelectricState(start, jnp.where(restart, 0.0, h) + jnp.sign(amplitude) * inc, threshold)
        p_before, p_after = self.polarization(state), self.polarization(new)
        v_fe = self.film_voltage(amplitude)
        energy = self.area * (v_fe * (p_after - p_before) + self.stack_capacitance() * amplitude**2)
        return PulseResult(state=new, energy=energy, duration=width + rise + fall)

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((0, +max), (−max, 0)) V: positive pulses switch up (raise P)."""
        return (0.0, self.max_amplitude), (-self.max_amplitude, 0.0)

    def state_scale(self):
        return FerroelectricState(1.0, 1.0, None if not (self.stochastic and self.finite) else 1.0)


class FeCap(AbstractFerroelectric):
    """Ferroelectric HfO2 capacitor (metal–ferroelectric–metal). Defaults: the "NLS literature fit" (GB2
    activation fields, 8.3 nm film; Alessandri et al. 2019). Amplitude: voltage across the film [V]. ``read``:
    polarization P [C/m²]. See the module docstring for the equations."""

    remanent_polarization: Float[Array, "..."] = param(0.227186, "C/m^2", lower=0.0, lower_open=True, upper=2.0)  #: P_r
    tau0: Float[Array, "..."] = param(446.33e-9, "s", lower=0.0, lower_open=True, upper=1.0)  #: τ_0 (Merz)
    alpha: Float[Array, "..."] = param(4.2408, "1", lower=1.0, lower_open=True, upper=20.0)  #: α (Merz)
    beta: Float[Array, "..."] = param(1.9134, "1", lower=0.5, upper=10.0)  #: β (KAI)
    film_thickness: Float[Array, "..."] = param(8.3e-9, "m", lower=0.0, lower_open=True, upper=1e-6)  #: t_FE
    permittivity: Float[Array, "..."] = param(30.0, "1", lower=1.0, upper=1000.0)  #: ε_FE (relative)
    area: Float[Array, "..."] = param(1e-14, "m^2", lower=0.0, lower_open=True)  #: capacitor area
    gb2_a: Float[Array, "..."] = param(6.7582, "1", lower=0.0, lower_open=True, upper=100.0)  #: GB2 a
    gb2_b: Float[Array, "..."] = param(1.6686e8, "V/m", lower=0.0, lower_open=True, upper=1e10)  #: GB2 b (scale)
    gb2_p: Float[Array, "..."] = param(2.0998, "1", lower=0.05, upper=100.0)  #: GB2 p
    gb2_q: Float[Array, "..."] = param(1.3641, "1", lower=0.05, upper=100.0)  #: GB2 q
    #: μ_V of the Gaussian activation voltage (distribution="gaussian")
    activation_voltage_mean: Float[Array, "..."] = param(2.3, "V", lower=0.0, lower_open=True, upper=100.0)
    #: σ_V of the Gaussian activation voltage
    activation_voltage_std: Float[Array, "..."] = param(0.4, "V", lower=0.0, lower_open=True, upper=100.0)
    #: standardised variables v of the domains of a finite device (empty: the expectation)
    domain_variates: Float[Array, "... n"] = param((), "1")
    distribution: Distribution = eqx.field(static=True, default="gb2")
    nodes: int = eqx.field(static=True, default=320)  #: quadrature nodes over E_a
    domains: int = eqx.field(static=True, default=0)  #: domains of one device for with_domains (0: not set)
    stochastic: bool = eqx.field(static=True, default=False)  #: two-state stochastic domains (finite devices)
    max_amplitude: float = eqx.field(static=True, default=4.0)  #: largest |pulse| across the film [V]

    def check_relations(self) -> None:
        self._check_structure()

    def film_voltage(self, amplitude):
        """The amplitude is the voltage across the film [V]."""
        return jnp.asarray(amplitude)

    def stack_capacitance(self):
        """ε_0 ε_FE/t_FE [F/m²]."""
        return EPS_0 * self.permittivity / self.film_thickness

    def read(self, state: FerroelectricState) -> Float[Array, ""]:
        """Polarization P [C/m²]."""
        return self.polarization(state)


class FeFET(AbstractFerroelectric):
    """Ferroelectric HfO2 FET: the film on an interfacial layer over the channel. Defaults: Deng et al.'s
    multi-domain FeFET (Gaussian activation voltages N(2.3 V, 0.4 V) across the film, 20 domains per device).
    Amplitude: gate voltage [V] (V_FE = κ V_G). ``read``: threshold voltage V_T = V_T0 − k P [V], so positive
    (program) pulses lower V_T and negative (erase) pulses raise it: ``amplitude_range()`` lists the erase
    polarity first (the generic program-and-verify's convention: the first range raises the read)."""

    remanent_polarization: Float[Array, "..."] = param(0.25, "C/m^2", lower=0.0, lower_open=True, upper=2.0)  #: P_r
    tau0: Float[Array, "..."] = param(19e-9, "s", lower=0.0, lower_open=True, upper=1.0)  #: τ_0 (Merz)
    alpha: Float[Array, "..."] = param(3.0, "1", lower=1.0, lower_open=True, upper=20.0)  #: α (Merz)
    beta: Float[Array, "..."] = param(2.0, "1", lower=0.5, upper=10.0)  #: β (KAI)
    film_thickness: Float[Array, "..."] = param(8e-9, "m", lower=0.0, lower_open=True, upper=1e-6)  #: t_FE
    permittivity: Float[Array, "..."] = param(28.0, "1", lower=1.0, upper=1000.0)  #: ε_FE (relative)
    area: Float[Array, "..."] = param(1e-14, "m^2", lower=0.0, lower_open=True)  #: gate area W·L
    gb2_a: Float[Array, "..."] = param(6.7582, "1", lower=0.0, lower_open=True, upper=100.0)  #: GB2 a
    gb2_b: Float[Array, "..."] = param(1.6686e8, "V/m", lower=0.0, lower_open=True, upper=1e10)  #: GB2 b
    gb2_p: Float[Array, "..."] = param(2.0998, "1", lower=0.05, upper=100.0)  #: GB2 p
    gb2_q: Float[Array, "..."] = param(1.3641, "1", lower=0.05, upper=100.0)  #: GB2 q
    #: μ_V of the Gaussian activation voltage across the film
    activation_voltage_mean: Float[Array, "..."] = param(2.3, "V", lower=0.0, lower_open=True, upper=100.0)
    #: σ_V of the Gaussian activation voltage
    activation_voltage_std: Float[Array, "..."] = param(0.4, "V", lower=0.0, lower_open=True, upper=100.0)
    il_thickness: Float[Array, "..."] = param(1e-9, "m", lower=0.0, lower_open=True, upper=1e-6)  #: t_IL
    il_permittivity: Float[Array, "..."] = param(3.9, "1", lower=1.0, upper=1000.0)  #: ε_IL (SiO2)
    vt0: Float[Array, "..."] = param(1.0, "V", lower=-10.0, upper=10.0)  #: V_T at P = 0
    memory_window: Float[Array, "..."] = param(1.0, "V", lower=0.0, lower_open=True, upper=10.0)  #: 2 k P_r
    domain_variates: Float[Array, "... n"] = param((), "1")  #: standardised v per domain (empty: expectation)
    distribution: Distribution = eqx.field(static=True, default="gaussian")
    nodes: int = eqx.field(static=True, default=320)  #: quadrature nodes over E_a
    domains: int = eqx.field(static=True, default=20)  #: domains of one device (Deng et al.: 20)
    stochastic: bool = eqx.field(static=True, default=False)  #: two-state stochastic domains (finite devices)
    max_amplitude: float = eqx.field(static=True, default=6.0)  #: largest |gate pulse| [V]

    def check_relations(self) -> None:
        self._check_structure()

    def coupling(self) -> Float[Array, ""]:
        """κ = C_IL/(C_FE + C_IL) = V_FE/V_G [1] (series capacitors per area)."""
        c_fe = self.permittivity / self.film_thickness
        c_il = self.il_permittivity / self.il_thickness
        return c_il / (c_fe + c_il)

    def film_voltage(self, amplitude):
        """V_FE = κ V_G [V]."""
        return self.coupling() * jnp.asarray(amplitude)

    def stack_capacitance(self):
        """Series C_FE C_IL/(C_FE + C_IL) [F/m²]."""
        c_fe = EPS_0 * self.permittivity / self.film_thickness
        c_il = EPS_0 * self.il_permittivity / self.il_thickness
        return c_fe * c_il / (c_fe + c_il)

    def threshold_voltage(self, state: FerroelectricState) -> Float[Array, ""]:
        """V_T = V_T0 − (window/2P_r)·P [V]: V_T0 + window/2 fully down (erased), V_T0 − window/2 fully up."""
        return self.vt0 - 0.5 * self.memory_window / self.remanent_polarization * self.polarization(state)

    def read(self, state: FerroelectricState) -> Float[Array, ""]:
        """Threshold voltage V_T [V]."""
        return self.threshold_voltage(state)

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((−max, 0), (0, +max)) V: erase (negative gate, raises V_T) first, program (positive, lowers V_T)."""
        return (-self.max_amplitude, 0.0), (0.0, self.max_amplitude)


def sample_domains(
    device: AbstractFerroelectric,
    cells: int,
    *,
    key: PRNGKeyArray,
    domains: int | None = None,
    specs: Spec | None = None,
) -> AbstractFerroelectric:
    """A population of ``cells`` finite-domain devices, each with ``domains`` (default: ``device.domains``)
    activation fields drawn from its own distribution; ``specs``: device-to-device spread of the other parameters
    (:func:`imcphys.population.sample`). Cell i depends only on (key, i), whatever the population size."""
    k_params, k_domains = jr.split(key)
    population = sample(device, specs or {}, cells, key=k_params)
    keys = jax.vmap(lambda i: jr.fold_in(k_domains, i))(jnp.arange(cells))
    variates = eqx.filter_vmap(lambda d, k: d.with_domains(key=k, domains=domains).domain_variates)(population, keys)
    return eqx.tree_at(lambda d: d.domain_variates, population, variates)
