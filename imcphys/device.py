"""The one device abstraction every memory-cell family implements.

A device is a final ``eqx.Module`` subclass of :class:`AbstractDevice`. Its array fields are the physical
parameters of **one cell** in SI units (declared with :func:`param`, which records the unit); a population is the
same module with a leading cell axis on its fields, mapped with ``eqx.filter_vmap``. Structural choices are static
fields.

What generic code (``simulate``, ``apply_pulse``, program-and-verify, fitting, Monte Carlo) sees of a family:

- ``rhs(t, state, drive)`` — d(state)/dt under the drive value ``drive`` (e.g. the cell voltage in V) at time t;
- ``read(state)`` — the verified observable (a read current, a conductance, a threshold voltage);
- ``observe(state, drive)`` — what a trace shows while driven (default: ``read``);
- ``power(state, drive)`` — electrical power drawn [W], integrated into pulse energies;
- ``diffusion(state, drive)`` — noise intensity for cycle-to-cycle variation (``None``: deterministic);
- ``project(state)`` — the physical range of the state (e.g. a clipped filament gap);
- ``pulse(state, amplitude, width, ...)`` — one programming pulse, returning the state and its energy;
- ``amplitude_range()`` — the allowed programming amplitudes per polarity;
- ``smoothed(temperature)`` — a copy whose hard thresholds are smoothed, for gradient-based optimisation.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree


def param(default: float, unit: str, **kwargs: Any) -> Any:
    """Declare a physical parameter field: converted to a JAX array, with its SI ``unit`` recorded.

    The unit is read by cards (unit conversion), fits and reports; write it as pint understands it
    (``"m"``, ``"V"``, ``"A"``, ``"K/W"``, ``"eV"``, ``"1"`` for dimensionless).
    """
    return eqx.field(default=default, converter=jnp.asarray, metadata={"unit": unit}, **kwargs)


def parameter_units(device: eqx.Module) -> dict[str, str]:
    """Map of parameter name -> unit for every field declared with :func:`param`."""
    return {f.name: f.metadata["unit"] for f in dataclasses.fields(device) if "unit" in f.metadata}


def parameters(device: eqx.Module) -> dict[str, Array]:
    """Map of parameter name -> value (SI) for every field declared with :func:`param`."""
    return {name: getattr(device, name) for name in parameter_units(device)}


def replace(device: eqx.Module, **values: ArrayLike) -> Any:
    """A copy of ``device`` with the named parameters replaced (values in SI; traced values allowed)."""
    names = list(values)
    unknown = set(names) - set(parameter_units(device))
    if unknown:
        raise ValueError(
            f"{type(device).__name__} has no parameter(s) {sorted(unknown)}; known: {sorted(parameter_units(device))}"
        )
    return eqx.tree_at(lambda d: [getattr(d, n) for n in names], device, [jnp.asarray(values[n]) for n in names])


class PulseResult(eqx.Module):
    """Outcome of one programming pulse."""

    state: PyTree  #: device state after the pulse
    energy: Float[Array, "..."]  #: electrical energy drawn by the cell during the pulse [J]
    duration: Float[Array, "..."]  #: pulse duration including rise and fall [s]


class AbstractDevice(eqx.Module):
    """One memory cell: physical parameters (fields, SI units) and its state dynamics.

    Subclasses are final and implement :meth:`rhs`, :meth:`read`, :meth:`initial_state` and
    :meth:`amplitude_range`; the other methods have sensible defaults.
    """

    @abc.abstractmethod
    def rhs(self, t: Float[ArrayLike, ""], state: PyTree, drive: PyTree) -> PyTree:
        """d(state)/dt at time ``t`` [s] under the drive value ``drive``. Pure; usable by ``diffrax.ODETerm``."""

    @abc.abstractmethod
    def read(self, state: PyTree) -> Float[Array, "..."]:
        """The verified observable of ``state`` (family-specific unit, see the subclass)."""

    @abc.abstractmethod
    def initial_state(self, which: str = "reset") -> PyTree:
        """A named initial state of one cell (e.g. ``"set"``, ``"reset"``)."""

    @abc.abstractmethod
    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((min, max) SET/program amplitudes, (min, max) RESET/erase amplitudes), signed, in the drive unit."""

    def observe(self, state: PyTree, drive: PyTree) -> Float[Array, "..."]:
        """What a trace records while driven with ``drive`` (default: :meth:`read`)."""
        del drive
        return self.read(state)

    def power(self, state: PyTree, drive: PyTree) -> Float[Array, "..."]:
        """Electrical power drawn by the cell [W] (default: none)."""
        del drive
        return jnp.zeros(jnp.shape(jax.tree_util.tree_leaves(state)[0]))

    def diffusion(self, state: PyTree, drive: PyTree) -> PyTree | None:
        """Noise intensity σ (state units per √s) of d(state) = rhs dt + σ dW, or ``None`` when deterministic."""
        del state, drive
        return None

    def project(self, state: PyTree) -> PyTree:
        """Map a state onto its physical range (default: unchanged)."""
        return state

    def default_solver(self) -> diffrax.AbstractSolver:
        """The diffrax solver of the adaptive path (default Tsit5; a stiff family returns e.g. Kvaerno5)."""
        return diffrax.Tsit5()

    def state_scale(self) -> PyTree:
        """Typical magnitude of each state component, used to scale solver tolerances (default: 1)."""
        return jax.tree_util.tree_map(lambda _: 1.0, self.initial_state())

    def smoothed(self, temperature: Float[ArrayLike, ""]) -> AbstractDevice:
        """A copy of the device whose hard thresholds (e.g. a field threshold) are smoothed over a relative width
        ``temperature`` (dimensionless, >= 0), for gradients through programming. ``smoothed(0)`` is the device
        itself. Default: no threshold to smooth, returns ``self``.
        """
        del temperature
        return self

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
    ) -> PulseResult:
        """Apply one programming pulse of signed ``amplitude`` (drive unit) and plateau ``width`` [s].

        The default drives :meth:`rhs` with a trapezoidal pulse; a family whose programming needs more (the
        word-line kickback of a gain cell, the charge pump of a flash array) overrides this method.
        """
        from .simulate import solve_pulse

        return solve_pulse(self, state, amplitude, width, rise=rise, fall=fall, fixed_steps=fixed_steps, key=key)
