r"""Program-and-verify: schemes, three verify modes, reports, and optimisation of a scheme by gradient.

Written once against the device abstraction: a scheme sees a family only through ``device.pulse`` (the state after
one pulse of signed amplitude and width, its energy [J] and duration [s]), ``device.read`` (the verified
observable) and ``device.amplitude_range()`` (the allowed amplitudes per polarity), plus ``device.smoothed`` for
the smooth mode. It works for every family.

**The loop.** Every cell of a population runs the same table of ``iterations`` pulses (the pulse budget): at
iteration k the cell is read and compared with its target, e = ln(read/target) (``error_scale="log"``) or
read − target (``"linear"``); a cell whose error is within ``tolerance`` stops for good (verify passed, the cell
is inhibited); otherwise it gets pulse k. Unidirectional schemes pulse one polarity and stop once the read has
reached the target's band from their side; bidirectional schemes choose SET or RESET by the sign of the error.
Convention: the SET/program polarity (the first range of ``amplitude_range()``) *raises* the read value (ReRAM
current, PCM conductance, Flash Vth). Amplitudes in schemes are *magnitudes* [drive unit]; the sign comes from
``amplitude_range()``, and they are clipped to its range. Pulses, energy and time (pulse durations plus one
``verify_time`` per verify read) are counted per cell; a cell still outside its tolerance after the budget is
reported as unconverged, never hidden.

**Three verify modes** (``verify=``):

- ``"exact"`` — hard decisions: the physical algorithm.
- ``"smooth"`` — every hard decision is replaced by its probability with a temperature τ (:class:`Smoothing`):
  verify passes with σ((tol − e)/τ_v)·σ((tol + e)/τ_v), SET is chosen with σ(−e/τ_p), amplitudes are clipped
  with a softplus of width τ_c, and the device is ``device.smoothed(τ_d)`` (e.g. the ReRAM field threshold ramp
  widened to τ_d·F_min). A cell's "still programming" weight m_k = Π(1 − pass) multiplies its pulse:
  state ← state + m_k·(pulse(state) − state). Everything tends to the exact mode as τ → 0.
- ``"straight_through"`` — forward bit-identical to ``"exact"``; backward through the smooth decisions
  (the device itself is not relaxed).

**Optimisation** (:func:`optimize_scheme`): the scheme's settings are positive magnitudes, fitted in log space
with optax on the smooth (or straight-through) objective over a population, the temperatures annealed
geometrically toward exact; the result is always re-run in exact mode on a fresh population. Verify stops,
polarity choices and clipping are step functions, so gradients help most for rich schedules (:class:`Schedule`)
and for refining the best point of a grid search; :func:`random_search` and :func:`grid_search` are here for that
comparison.

Memory: the loop is a ``lax.scan`` whose body is checkpointed (and so is every fixed step of a pulse, in
:mod:`imcphys.simulate`), so a gradient keeps one carry (state, weight, counters) per iteration plus one per step of
the pulse being recomputed, whatever the number of iterations.

Speed: the smooth and straight-through modes run cells in blocks of :data:`EXACT_BLOCK` (``lax.map`` with a batch
size), so that a block's arrays stay in cache through its loop. The exact mode does not run stopped cells at all:
each iteration gathers the active cells and pulses only them, block by block, and the loop ends when no cell is
active (:func:`_exact_loop`), so its cost follows the pulses applied rather than cells × budget. A population
sharded over several devices runs one such loop per shard (``lanes``), without communication.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import inspect
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, PyTree
from tqdm import tqdm

from ._callable import make_callable
from ._checks import check_range, checked_jit
from .device import AbstractDevice
from .population import population_size

_log = logging.getLogger(__name__)

VerifyMode = Literal["exact", "smooth", "straight_through"]
VERIFY_MODES = ("exact", "smooth", "straight_through")
ErrorScale = Literal["log", "linear"]

#: Floor of read/target before the logarithm of the "log" error scale (a zero read is an error of −27.6).
_LOG_FLOOR = 1e-12


def setting(unit: str, **kwargs: Any) -> Any:
    """Declare a scheme setting: a positive magnitude (array) in ``unit``, optimised in log space."""
    return eqx.field(converter=_as_float, metadata={"setting": unit}, kw_only=True, **kwargs)


def _as_float(x: ArrayLike) -> Array:
    return jnp.asarray(x, dtype=float)


def _static(**kwargs: Any) -> Any:
    # keyword-only: equinox orders fields that implement an AbstractVar first, which breaks positional defaults
    return eqx.field(static=True, kw_only=True, **kwargs)


def setting_units(scheme: AbstractScheme) -> dict[str, str]:
    """Map of setting name -> unit for every field of ``scheme`` declared with :func:`setting`."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(scheme) if "setting" in f.metadata}


def settings(scheme: AbstractScheme) -> dict[str, Array]:
    """Map of setting name -> value."""
    return {name: getattr(scheme, name) for name in setting_units(scheme)}


def with_settings(scheme: AbstractScheme, **values: ArrayLike) -> Any:
    """A copy of ``scheme`` with the named settings replaced (traced values allowed; shapes must not change)."""
    names = list(values)
    unknown = set(names) - set(setting_units(scheme))
    if unknown:
        raise ValueError(
            f"{type(scheme).__name__} has no setting(s) {sorted(unknown)}; known: {sorted(setting_units(scheme))}"
        )
    new = [jnp.broadcast_to(jnp.asarray(values[n], dtype=float), jnp.shape(getattr(scheme, n))) for n in names]
    return eqx.tree_at(lambda s: [getattr(s, n) for n in names], scheme, new)


# ------------------------------------------------------------------------------------------------ schemes
class PulseTable(eqx.Module):
    """Per-iteration pulses of a scheme: magnitudes [drive unit] and widths [s], for SET and for RESET; and, for a
    cell behind an access transistor, the word-line voltages [V] passed to ``device.pulse(..., word_line=...)``
    (``None``: the device's own)."""

    set_amplitude: Float[Array, " k"]
    set_width: Float[Array, " k"]
    reset_amplitude: Float[Array, " k"]
    reset_width: Float[Array, " k"]
    direction: Literal["set", "reset", "both"] = eqx.field(static=True)
    set_word_line: Float[Array, " k"] | None = None
    reset_word_line: Float[Array, " k"] | None = None


class AbstractScheme(eqx.Module):
    """A program-and-verify scheme: a pulse table, a verify tolerance and how the error is measured.

    Settings (fields declared with :func:`setting`) are positive magnitudes. Every scheme has ``iterations``,
    the pulse budget (the largest number of pulses a cell can receive): a static field, or for
    :class:`Schedule` the length of its arrays.
    """

    tolerance: eqx.AbstractVar[Float[Array, ""]]
    error_scale: eqx.AbstractVar[ErrorScale]
    verify_time: eqx.AbstractVar[float]

    @abc.abstractmethod
    def table(self) -> PulseTable:
        """The pulses of every iteration (magnitudes before clipping to the device's range)."""

    def _check_common(self) -> None:
        name = type(self).__name__
        _check_iterations(name, self.iterations)
        if getattr(self, "polarity", "set") not in ("set", "reset"):
            raise ValueError(f"{name}.polarity must be 'set' or 'reset'; got {self.polarity!r}")
        check_range(f"{name}.tolerance", self.tolerance, lower=0.0, lower_open=True)
        check_range(f"{name}.verify_time", self.verify_time, lower=0.0, unit="s")
        if self.error_scale not in ("log", "linear"):
            raise ValueError(f"{name}.error_scale must be 'log' or 'linear'; got {self.error_scale!r}")
        if jnp.ndim(self.tolerance) != 0:
            raise ValueError(f"{name}.tolerance must be a scalar; got shape {jnp.shape(self.tolerance)}")


def _check_iterations(name: str, iterations: int) -> None:
    if not isinstance(iterations, (int, np.integer)) or isinstance(iterations, bool) or iterations < 1:
        raise ValueError(f"{name}.iterations (the pulse budget) must be a positive integer; got {iterations!r}")


class IncrementalAmplitude(AbstractScheme):
    """ISPP-like: one polarity, magnitude ``start + k·step`` at iteration k, fixed ``width``.

    The classic 3-setting scheme (start, step, tolerance). A cell stops once its read reaches the target band
    from its side (read ≥ target − tol for SET); one that overshoots cannot come back and is reported.
    """

    iterations: int = _static()  #: pulse budget
    start: Float[Array, ""] = setting("drive")  #: first magnitude [drive unit, e.g. V]
    step: Float[Array, ""] = setting("drive")  #: increment per iteration [drive unit]
    width: Float[Array, ""] = setting("s")  #: pulse width [s]
    tolerance: Float[Array, ""] = setting("error")  #: verify band, in the error scale's unit
    polarity: Literal["set", "reset"] = _static(default="set")
    error_scale: ErrorScale = _static(default="log")
    verify_time: float = _static(default=10e-9)  #: one verify read [s] (assumed)

    def __check_init__(self):
        self._check_common()
        check_range("IncrementalAmplitude.start", self.start, lower=0.0, lower_open=True)
        check_range("IncrementalAmplitude.step", self.step, lower=0.0, lower_open=True)
        check_range("IncrementalAmplitude.width", self.width, lower=0.0, lower_open=True, unit="s")

    def table(self) -> PulseTable:
        amp = self.start + self.step * jnp.arange(self.iterations)
        width = jnp.broadcast_to(self.width, amp.shape)
        return PulseTable(amp, width, amp, width, self.polarity)


class FixedAmplitude(AbstractScheme):
    """Pulse counting: one polarity, the same pulse (``amplitude``, ``width``) until verify passes."""

    iterations: int = _static()  #: pulse budget
    amplitude: Float[Array, ""] = setting("drive")  #: pulse magnitude [drive unit]
    width: Float[Array, ""] = setting("s")  #: pulse width [s]
    tolerance: Float[Array, ""] = setting("error")  #: verify band, in the error scale's unit
    polarity: Literal["set", "reset"] = _static(default="set")
    error_scale: ErrorScale = _static(default="log")
    verify_time: float = _static(default=10e-9)  #: one verify read [s] (assumed)

    def __check_init__(self):
        self._check_common()
        check_range("FixedAmplitude.amplitude", self.amplitude, lower=0.0, lower_open=True)
        check_range("FixedAmplitude.width", self.width, lower=0.0, lower_open=True, unit="s")

    def table(self) -> PulseTable:
        amp = jnp.broadcast_to(self.amplitude, (self.iterations,))
        width = jnp.broadcast_to(self.width, (self.iterations,))
        return PulseTable(amp, width, amp, width, self.polarity)


class Bidirectional(AbstractScheme):
    """SET or RESET by the sign of the error, each polarity with its own incremental magnitude
    (``set_start + k·set_step``, ``reset_start + k·reset_step`` at iteration k) and width."""

    iterations: int = _static()  #: pulse budget
    set_start: Float[Array, ""] = setting("drive")
    set_step: Float[Array, ""] = setting("drive")
    reset_start: Float[Array, ""] = setting("drive")
    reset_step: Float[Array, ""] = setting("drive")
    set_width: Float[Array, ""] = setting("s")
    reset_width: Float[Array, ""] = setting("s")
    tolerance: Float[Array, ""] = setting("error")
    error_scale: ErrorScale = _static(default="log")
    verify_time: float = _static(default=10e-9)  #: one verify read [s] (assumed)

    def __check_init__(self):
        self._check_common()
        for name in ("set_start", "reset_start", "set_width", "reset_width"):
            check_range(f"Bidirectional.{name}", getattr(self, name), lower=0.0, lower_open=True)
        for name in ("set_step", "reset_step"):
            check_range(f"Bidirectional.{name}", getattr(self, name), lower=0.0)

    def table(self) -> PulseTable:
        k = jnp.arange(self.iterations)
        return PulseTable(
            self.set_start + k * self.set_step,
            jnp.broadcast_to(self.set_width, k.shape),
            self.reset_start + k * self.reset_step,
            jnp.broadcast_to(self.reset_width, k.shape),
            "both",
        )


class Schedule(AbstractScheme):
    """A rich schedule: per-iteration SET and RESET magnitudes and widths (4·iterations + 1 settings with the
    tolerance), where grid search is hopeless and gradients pay off.

    ``direction="both"`` (default) is bidirectional (SET or RESET by the sign of the error); ``"set"`` or
    ``"reset"`` pulses one polarity only, like :class:`IncrementalAmplitude` (the other polarity's arrays are
    then unused: leave them out of ``free`` when optimising).
    """

    set_amplitude: Float[Array, " k"] = setting("drive")
    set_width: Float[Array, " k"] = setting("s")
    reset_amplitude: Float[Array, " k"] = setting("drive")
    reset_width: Float[Array, " k"] = setting("s")
    tolerance: Float[Array, ""] = setting("error")
    error_scale: ErrorScale = _static(default="log")
    verify_time: float = _static(default=10e-9)  #: one verify read [s] (assumed)
    direction: Literal["set", "reset", "both"] = _static(default="both")

    def __check_init__(self):
        if self.direction not in ("set", "reset", "both"):
            raise ValueError(f"Schedule.direction must be 'set', 'reset' or 'both'; got {self.direction!r}")
        shapes = {jnp.shape(getattr(self, n)) for n in ("set_amplitude", "set_width", "reset_amplitude", "reset_width")}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1 or next(iter(shapes))[0] < 1:
            raise ValueError(
                f"Schedule: set_amplitude, set_width, reset_amplitude and reset_width must be 1-D "
                f"arrays of one length (the pulse budget); got shapes {sorted(shapes)}"
            )
        self._check_common()
        for name in ("set_amplitude", "set_width", "reset_amplitude", "reset_width"):
            check_range(f"Schedule.{name}", getattr(self, name), lower=0.0, lower_open=True)

    @property
    def iterations(self) -> int:
        return int(jnp.shape(self.set_amplitude)[0])

    def table(self) -> PulseTable:
        return PulseTable(self.set_amplitude, self.set_width, self.reset_amplitude, self.reset_width, self.direction)

    @classmethod
    def from_scheme(cls, scheme: AbstractScheme) -> Schedule:
        """The schedule that runs the same pulses as ``scheme``, in the same direction (a starting point to
        refine)."""
        t = scheme.table()
        return cls(
            set_amplitude=t.set_amplitude,
            set_width=t.set_width,
            reset_amplitude=t.reset_amplitude,
            reset_width=t.reset_width,
            tolerance=scheme.tolerance,
            error_scale=scheme.error_scale,
            verify_time=scheme.verify_time,
            direction=t.direction,
        )


class WordLineSchedule(AbstractScheme):
    """Programming through the gate of an access transistor (a 1T1R cell): per-iteration word-line voltages
    ``word_line`` [V] — the compliance knob, as in the multi-level SET of SkyWater's ReRAM — with a fixed line
    ``amplitude`` [drive unit] and ``width`` [s], one polarity. Needs a device whose ``pulse`` takes
    ``word_line=`` (:class:`imcphys.models.OneTransistorOneResistor`). Its ``word_line`` array is a setting, so
    :func:`optimize_scheme` fits word-line schedules (``free=["word_line"]``)."""

    word_line: Float[Array, " k"] = setting("V")  #: word-line voltage of each iteration [V]
    amplitude: Float[Array, ""] = setting("drive")  #: line pulse magnitude [drive unit]
    width: Float[Array, ""] = setting("s")  #: pulse width [s]
    tolerance: Float[Array, ""] = setting("error")
    polarity: Literal["set", "reset"] = _static(default="set")
    error_scale: ErrorScale = _static(default="log")
    verify_time: float = _static(default=10e-9)  #: one verify read [s] (assumed)

    def __check_init__(self):
        if jnp.ndim(self.word_line) != 1 or jnp.shape(self.word_line)[0] < 1:
            raise ValueError(
                f"WordLineSchedule.word_line must be a 1-D array (one voltage per iteration); "
                f"got shape {jnp.shape(self.word_line)}"
            )
        self._check_common()
        check_range("WordLineSchedule.word_line", self.word_line, lower=0.0, lower_open=True, unit="V")
        check_range("WordLineSchedule.amplitude", self.amplitude, lower=0.0, lower_open=True)
        check_range("WordLineSchedule.width", self.width, lower=0.0, lower_open=True, unit="s")

    @property
    def iterations(self) -> int:
        return int(jnp.shape(self.word_line)[0])

    @classmethod
    def incremental(cls, *, start: float, step: float, iterations: int, **kwargs: Any) -> WordLineSchedule:
        """Word line ``start + k·step`` [V] at iteration k (ISPP on the word line)."""
        _check_iterations("WordLineSchedule", iterations)
        return cls(word_line=start + step * np.arange(iterations), **kwargs)

    def table(self) -> PulseTable:
        amp = jnp.broadcast_to(self.amplitude, self.word_line.shape)
        width = jnp.broadcast_to(self.width, self.word_line.shape)
        return PulseTable(amp, width, amp, width, self.polarity, self.word_line, self.word_line)


# ------------------------------------------------------------------------------------------- smoothing
class Smoothing(eqx.Module):
    """Temperatures of the smooth relaxations (all > 0; the device one may be 0). Exact as they tend to 0."""

    verify: Float[Array, ""]  #: τ_v of the verify stop [error unit]
    polarity: Float[Array, ""]  #: τ_p of the SET/RESET choice [error unit]
    clip: Float[Array, ""]  #: τ_c of the amplitude clipping [drive unit]
    device: Float[Array, ""]  #: passed to ``device.smoothed`` (dimensionless relative width)

    def __init__(self, *, verify: ArrayLike, polarity: ArrayLike, clip: ArrayLike, device: ArrayLike):
        self.verify, self.polarity, self.clip, self.device = (
            jnp.asarray(x, dtype=float) for x in (verify, polarity, clip, device)
        )

    def __check_init__(self):
        for name in ("verify", "polarity", "clip"):
            check_range(f"Smoothing.{name}", getattr(self, name), lower=0.0, lower_open=True)
        check_range("Smoothing.device", self.device, lower=0.0)

    def scaled(self, factor: Float[ArrayLike, ""]) -> Smoothing:
        """Every temperature multiplied by ``factor`` (annealing toward exact as factor → 0)."""
        return jax.tree_util.tree_map(lambda t: t * factor, self)


def _probability(mode: str, x: Array, tau: Array) -> Array:
    """P(x > 0): a hard step (exact), σ(x/τ) (smooth), or the step with the sigmoid's gradient (straight-through)."""
    hard = (x > 0).astype(x.dtype)
    if mode == "exact":
        return hard
    soft = jax.nn.sigmoid(x / tau)
    if mode == "smooth":
        return soft
    return hard + (soft - jax.lax.stop_gradient(soft))  # exactly `hard` forward


def _verify(mode: str, direction: str, e: Array, tolerance: Array, tau: Array | None) -> Array:
    """Probability that the verify passes (the cell stops) at error ``e``: a SET-only scheme stops once the
    read is above target − tolerance, a RESET-only one once below target + tolerance, a bidirectional one
    inside the band."""
    if direction == "set":
        return _probability(mode, e + tolerance, tau)
    if direction == "reset":
        return _probability(mode, tolerance - e, tau)
    return _probability(mode, tolerance - e, tau) * _probability(mode, tolerance + e, tau)


def _blend(mode: str, weight: Array, when_true: PyTree, when_false: PyTree) -> PyTree:
    """weight·true + (1 − weight)·false; for hard weights (exact, straight-through) the forward value is
    exactly one of the two, and straight-through adds the soft weight's gradient."""

    def one(t, f):
        if mode == "smooth":
            return f + weight * (t - f)
        hard = jnp.where(jax.lax.stop_gradient(weight) > 0.5, t, f)
        if mode == "exact":
            return hard
        return hard + (t - f) * (weight - jax.lax.stop_gradient(weight))

    return jax.tree_util.tree_map(one, when_true, when_false)


def _clip(mode: str, x: Array, lo: float, hi: float, tau: Array) -> Array:
    """x clipped to [lo, hi]: hard, softplus-smoothed with width τ, or hard with the smooth gradient."""
    hard = jnp.clip(x, lo, hi)
    if mode == "exact":
        return hard
    # within [lo, hi] exactly: far beyond a bound the difference of softplus terms rounds past it (by ~1e-10 V in
    # float64 at 1e6 V, by percents in float32), and devices refuse amplitudes outside their range
    soft = jnp.clip(lo + tau * (jax.nn.softplus((x - lo) / tau) - jax.nn.softplus((x - hi) / tau)), lo, hi)
    if mode == "smooth":
        return soft
    return hard + (soft - jax.lax.stop_gradient(soft))  # exactly `hard` forward


# ---------------------------------------------------------------------------------------------- report
class ProgramReport(eqx.Module):
    """Outcome of :func:`program` for every cell: final read values, errors, pulses, energy [J], time [s].

    In smooth mode ``pulses``, ``energy`` and ``time`` are expectations (fractional); ``converged`` is always
    the hard test |error| < tolerance on the final read.
    """

    read: Float[Array, " n"]  #: final read value per cell (the device's read unit, e.g. A)
    target: Float[Array, " n"]  #: target read value per cell
    error: Float[Array, " n"]  #: final error in the scheme's error scale (ln(read/target) or read − target)
    pulses: Float[Array, " n"]  #: programming pulses applied per cell
    energy: Float[Array, " n"]  #: programming energy per cell [J] (pulses only; verify reads not counted)
    time: Float[Array, " n"]  #: programming time per cell [s]: pulse durations + verify reads
    converged: Bool[Array, " n"]  #: |error| < tolerance after the budget
    state: PyTree  #: final device state per cell
    tolerance: Float[Array, ""]
    iterations: int = eqx.field(static=True)  #: the pulse budget
    error_scale: ErrorScale = eqx.field(static=True)
    verify: VerifyMode = eqx.field(static=True)

    @property
    def cells(self) -> int:
        return int(self.read.shape[0])

    @property
    def unconverged(self) -> int:
        """Number of cells that did not reach their target within the pulse budget."""
        return int(np.sum(~np.asarray(self.converged)))

    @property
    def unconverged_cells(self) -> np.ndarray:
        """Indices of the cells that did not reach their target within the pulse budget."""
        return np.flatnonzero(~np.asarray(self.converged))

    @property
    def latency(self) -> float:
        """Time to program the whole population in parallel (every cell pulsed at once, until the last one
        stops) [s]: the largest per-cell time."""
        return float(np.max(np.asarray(self.time)))

    def levels(self) -> np.ndarray:
        """The distinct target values, ascending (the levels of a multi-level target set)."""
        return np.unique(np.asarray(self.target))

    def _scale(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.log(np.maximum(x, _LOG_FLOOR * np.max(np.abs(x)))) if self.error_scale == "log" else x

    def decoded_level(self, levels: ArrayLike | None = None) -> np.ndarray:
        """Index of the level nearest to each cell's read (in the error scale: geometric midpoints for "log")."""
        lv = self.levels() if levels is None else np.sort(np.asarray(levels, dtype=float))
        s = self._scale(lv)
        edges = 0.5 * (s[1:] + s[:-1])
        return np.searchsorted(edges, self._scale(self.read))

    def target_level(self, levels: ArrayLike | None = None) -> np.ndarray:
        """Index of each cell's target among ``levels`` (default: the distinct targets)."""
        lv = self.levels() if levels is None else np.sort(np.asarray(levels, dtype=float))
        return np.argmin(np.abs(self._scale(self.target)[:, None] - self._scale(lv)[None, :]), axis=1)

    def level_error_rate(self, levels: ArrayLike | None = None) -> float:
        """Fraction of cells read back as another level than their target."""
        return float(np.mean(self.decoded_level(levels) != self.target_level(levels)))

    def ber(self, levels: ArrayLike | None = None) -> float:
        """Bit-error rate with Gray-coded levels (neighbouring levels differ by one bit), bits = ceil(log2 L)."""
        lv = self.levels() if levels is None else np.asarray(levels)
        bits = max(1, math.ceil(math.log2(len(lv))))
        decoded, target = self.decoded_level(levels), self.target_level(levels)
        wrong = (decoded ^ (decoded >> 1)) ^ (target ^ (target >> 1))  # Gray codes of the two levels
        flips = np.array([int(w).bit_count() for w in range(1 << bits)])[wrong]
        return float(np.sum(flips) / (bits * self.cells))

    def histogram(self, levels: ArrayLike | None = None, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of the final read per target level: (bin edges [read unit], counts [levels, bins]);
        log-spaced bins for the "log" error scale."""
        lv = self.levels() if levels is None else np.sort(np.asarray(levels, dtype=float))
        read = np.asarray(self.read)
        if self.error_scale == "log":
            pos = read[read > 0]
            edges = np.geomspace(pos.min(), pos.max(), bins + 1)
        else:
            edges = np.linspace(read.min(), read.max(), bins + 1)
        which = self.target_level(lv)
        counts = np.stack([np.histogram(read[which == i], edges)[0] for i in range(len(lv))])
        return edges, counts

    def summary(self) -> dict[str, Any]:
        """The report's numbers as plain Python (JSON-ready)."""
        return {
            "cells": self.cells,
            "verify": self.verify,
            "pulse_budget": self.iterations,
            "unconverged_cells": self.unconverged,
            "mean_pulses": float(np.mean(self.pulses)),
            "max_pulses": float(np.max(self.pulses)),
            "rms_error": float(np.sqrt(np.mean(self.error**2))),
            "mean_energy_J": float(np.mean(self.energy)),
            "mean_time_s": float(np.mean(self.time)),
            "latency_s": self.latency,
            "level_error_rate": self.level_error_rate(),
            "ber": self.ber(),
        }


# ------------------------------------------------------------------------------------------------ engine
def _error(scale: str, read: Array, target: Array) -> Array:
    if scale == "log":
        return jnp.log(jnp.maximum(read / target, _LOG_FLOOR))
    return read - target


def _magnitude_ranges(device: AbstractDevice) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(sign, smallest, largest magnitude) of the SET and of the RESET amplitude ranges."""
    out = []
    for lo, hi in device.amplitude_range():
        sign = 1.0 if lo + hi > 0 else -1.0
        a, b = sorted((abs(float(lo)), abs(float(hi))))
        out.append((sign, a, b))
    return out[0], out[1]


def _program_cell(
    device: AbstractDevice,
    table: PulseTable,
    target: Array,
    state0: PyTree,
    key: PRNGKeyArray | None,
    tolerance: Array,
    smoothing: Smoothing | None,
    *,
    mode: str,
    error_scale: str,
    verify_time: float,
    fixed_steps: int,
    signs: tuple[float, float],
):
    dev = device.smoothed(smoothing.device) if mode == "smooth" else device
    tau_v = None if smoothing is None else smoothing.verify
    tau_p = None if smoothing is None else smoothing.polarity
    direction = table.direction

    def iteration(carry, xs):
        state, active, pulses, energy, time, reads = carry
        a_set, w_set, a_reset, w_reset, wl_set, wl_reset, k = xs
        e = _error(error_scale, dev.read(state), target)
        reads = reads + active
        active = _blend(mode, _verify(mode, direction, e, tolerance, tau_v), jnp.zeros_like(active), active)
        if direction == "both":
            q = _probability(mode, -e, tau_p)  # SET raises the read
            amp = _blend(mode, q, signs[0] * a_set, signs[1] * a_reset)
            width = _blend(mode, q, w_set, w_reset)
            wl = None if wl_set is None else _blend(mode, q, wl_set, wl_reset)
        elif direction == "set":
            amp, width, wl = signs[0] * a_set, w_set, wl_set
        else:
            amp, width, wl = signs[1] * a_reset, w_reset, wl_reset
        gate = {} if wl is None else {"word_line": wl}
        res = dev.pulse(
            state, amp, width, fixed_steps=fixed_steps, key=None if key is None else jr.fold_in(key, k), **gate
        )
        state = _blend(mode, active, res.state, state)
        carry = (state, active, pulses + active, energy + active * res.energy, time + active * res.duration, reads)
        return carry, None

    zero = jnp.zeros(())
    init = (state0, jnp.ones(()), zero, zero, zero, zero)
    xs = (
        table.set_amplitude,
        table.set_width,
        table.reset_amplitude,
        table.reset_width,
        table.set_word_line,
        table.reset_word_line,
        jnp.arange(table.set_amplitude.shape[0]),
    )
    (state, active, pulses, energy, time, reads), _ = jax.lax.scan(jax.checkpoint(iteration), init, xs)
    read = device.read(state)
    e = _error(error_scale, read, target)
    reads = reads + active  # the final verify of the cells still programming after the last pulse
    return state, read, e, pulses, energy, time + reads * verify_time, jnp.abs(e) < tolerance


#: Cells per block: pulsed together in the exact mode's compacted loop (:func:`_exact_loop`), vmapped together in
#: the smooth and straight-through modes (measured best at 512–1024 on CPU: a block's arrays stay in cache).
EXACT_BLOCK = 1024


def _exact_loop(
    population: AbstractDevice,
    targets: Array,
    state0: PyTree,
    keys: PRNGKeyArray | None,
    *,
    table: PulseTable,
    tolerance: Array,
    error_scale: str,
    verify_time: float,
    fixed_steps: int,
    signs: tuple[float, float],
    block: int = EXACT_BLOCK,
):
    """Exact mode over a whole population: per iteration, only the cells still programming are pulsed.

    The same algorithm as :func:`_program_cell` in exact mode (and the same numbers, up to rounding of the
    fused code: ~1e-16 relative), but instead of running every cell's pulse masked, each iteration gathers the
    indices of the active cells to the front (``jnp.nonzero``), pulses them in blocks of ``block`` cells (a
    loop whose trip count is the number of active blocks) and scatters the results back; the iteration loop
    itself stops as soon as no cell is active. The work is then proportional to the pulses applied, not to
    cells × budget (ReRAM benchmark: about half). A cell's pulse depends only on its own parameters, state,
    amplitude and key (``fold_in(key, k)``), so results do not depend on where it lands in a block.
    """
    n = targets.shape[0]
    blocks = -(-n // block)
    width_b = min(block, n)
    direction = table.direction
    read_all = eqx.filter_vmap(lambda d, s: d.read(s))
    gated = table.set_word_line is not None

    def one_pulse(d, s, a, w, g, k):
        return d.pulse(s, a, w, fixed_steps=fixed_steps, key=k, **({"word_line": g} if gated else {}))

    pulse_all = eqx.filter_vmap(one_pulse)
    pulse_nokey = eqx.filter_vmap(lambda d, s, a, w, g: one_pulse(d, s, a, w, g, None))
    arrays, static = eqx.partition(population, eqx.is_array)

    def take(tree, ids):
        return jax.tree_util.tree_map(lambda x: jnp.take(x, ids, axis=0, mode="clip"), tree)

    def cond(carry):
        k, _, active, *_ = carry
        return (k < table.set_amplitude.shape[0]) & jnp.any(active)

    def body(carry):
        k, state, active, pulses, energy, time, reads = carry
        e = _error(error_scale, read_all(population, state), targets)
        reads = reads + active
        active = jnp.where(_verify("exact", direction, e, tolerance, None) > 0, 0.0, active)
        wl_set = table.set_word_line[k] if gated else jnp.zeros(())
        wl_reset = table.reset_word_line[k] if gated else jnp.zeros(())
        if direction == "both":
            use_set = -e > 0  # SET raises the read
            amp = jnp.where(use_set, signs[0] * table.set_amplitude[k], signs[1] * table.reset_amplitude[k])
            width = jnp.where(use_set, table.set_width[k], table.reset_width[k])
            wl = jnp.where(use_set, wl_set, wl_reset)
        elif direction == "set":
            amp, width = jnp.full(n, signs[0] * table.set_amplitude[k]), jnp.full(n, table.set_width[k])
            wl = jnp.full(n, wl_set)
        else:
            amp, width = jnp.full(n, signs[1] * table.reset_amplitude[k]), jnp.full(n, table.reset_width[k])
            wl = jnp.full(n, wl_reset)
        on = active > 0
        count = jnp.sum(on)
        order = jnp.nonzero(on, size=blocks * width_b, fill_value=n)[0]  # active cells first, then n (dropped)

        def pulse_block(b, out):
            ids = jax.lax.dynamic_slice(order, (b * width_b,), (width_b,))
            dev = eqx.combine(take(arrays, ids), static)
            args = (dev, take(state, ids), amp[ids.clip(0, n - 1)], width[ids.clip(0, n - 1)], wl[ids.clip(0, n - 1)])
            if keys is not None:
                args = (*args, jax.vmap(lambda kk: jr.fold_in(kk, k))(take(keys, ids)))
            # materialise the gathered block: otherwise XLA fuses the gathers into every step of the pulse
            args = jax.lax.optimization_barrier(args)
            res = pulse_nokey(*args) if keys is None else pulse_all(*args)
            # into a per-block buffer (updated in place), not scattered into the cell arrays block by block:
            # XLA copied a whole cell array per scatter, which made the loop quadratic in the number of cells
            return jax.tree_util.tree_map(
                lambda buf, r: jax.lax.dynamic_update_index_in_dim(buf, r, b, 0),
                out,
                (res.state, res.energy, res.duration),
            )

        buffers = jax.tree_util.tree_map(
            lambda x: jnp.zeros((blocks, width_b, *x.shape[1:]), x.dtype), (state, energy, time)
        )
        new_state, pulse_energy, duration = jax.tree_util.tree_map(
            lambda x: x.reshape(blocks * width_b, *x.shape[2:]),
            jax.lax.fori_loop(0, (count + width_b - 1) // width_b, pulse_block, buffers),
        )
        # one scatter per iteration; the slots past the active cells hold index n and are dropped
        state = jax.tree_util.tree_map(lambda x, y: x.at[order].set(y, mode="drop"), state, new_state)
        energy = energy.at[order].add(pulse_energy, mode="drop")
        time = time.at[order].add(duration, mode="drop")
        return k + 1, state, active, pulses + active, energy, time, reads

    zeros = jnp.zeros(n)
    init = (jnp.zeros((), dtype=int), state0, jnp.ones(n), zeros, zeros, zeros, zeros)
    _, state, active, pulses, energy, time, reads = jax.lax.while_loop(cond, body, init)
    read = read_all(population, state)
    e = _error(error_scale, read, targets)
    reads = reads + active  # the final verify of the cells still programming after the last pulse
    return state, read, e, pulses, energy, time + reads * verify_time, jnp.abs(e) < tolerance


def _over_lanes(fn: Callable, lanes: int, *args: PyTree) -> Any:
    """``fn(*args)`` (arrays with a leading cell axis), or with ``lanes`` > 1 vmapped over ``lanes`` equal slices of
    the cell axis: one independent loop per device holding a shard of the cells, which XLA partitions without
    communication (a loop over the whole sharded axis would not be)."""
    n = jax.tree_util.tree_leaves(args)[0].shape[0]
    if lanes <= 1 or n % lanes:
        return fn(*args)
    split = lambda x: x.reshape(lanes, n // lanes, *x.shape[1:])  # noqa: E731
    out = eqx.filter_vmap(fn)(*jax.tree_util.tree_map(split, args))
    return jax.tree_util.tree_map(lambda x: x.reshape(n, *x.shape[2:]), out)


def _clipped_table(mode: str, table: PulseTable, ranges, smoothing: Smoothing | None) -> PulseTable:
    tau = None if smoothing is None else smoothing.clip
    (_, s_lo, s_hi), (_, r_lo, r_hi) = ranges
    return PulseTable(
        _clip(mode, table.set_amplitude, s_lo, s_hi, tau),
        table.set_width,
        _clip(mode, table.reset_amplitude, r_lo, r_hi, tau),
        table.reset_width,
        table.direction,
        table.set_word_line,
        table.reset_word_line,
    )


def _run(
    population: AbstractDevice,
    scheme: AbstractScheme,
    targets: Array,
    state0: PyTree | None,
    keys: PRNGKeyArray | None,
    smoothing: Smoothing | None,
    *,
    mode: str,
    fixed_steps: int,
    initial: str | None,
    lanes: int = 1,
) -> ProgramReport:
    """The traceable core of :func:`program` (no input checks): vmapped over cells."""
    ranges = _magnitude_ranges(population)
    table = _clipped_table(mode, scheme.table(), ranges, smoothing)

    def cell(device, target, s0, key):
        if s0 is None:
            s0 = device.initial_state() if initial is None else device.initial_state(initial)
        return _program_cell(
            device,
            table,
            target,
            s0,
            key,
            scheme.tolerance,
            smoothing,
            mode=mode,
            error_scale=scheme.error_scale,
            verify_time=scheme.verify_time,
            fixed_steps=fixed_steps,
            signs=(ranges[0][0], ranges[1][0]),
        )

    if mode == "exact":
        if state0 is None:
            state0 = eqx.filter_vmap(lambda d: d.initial_state() if initial is None else d.initial_state(initial))(
                population
            )
        loop = functools.partial(
            _exact_loop,
            table=table,
            tolerance=scheme.tolerance,
            error_scale=scheme.error_scale,
            verify_time=scheme.verify_time,
            fixed_steps=fixed_steps,
            signs=(ranges[0][0], ranges[1][0]),
        )
        state, read, e, pulses, energy, time, converged = _over_lanes(loop, lanes, population, targets, state0, keys)
    else:
        # vmapped over blocks of cells and scanned over the blocks (lax.map with batch_size): the working set of
        # a block stays in cache through the loop, forward and backward (at 1e5 cells the whole-population
        # arrays did not, and both passes were memory-bound)
        arrays, static = eqx.partition(population, eqx.is_array)

        def cells(p, t, s0, k):
            m = t.shape[0]
            return jax.lax.map(
                lambda a: cell(eqx.combine(a[0], static), *a[1:]), (p, t, s0, k), batch_size=min(EXACT_BLOCK, m)
            )

        state, read, e, pulses, energy, time, converged = _over_lanes(cells, lanes, arrays, targets, state0, keys)
    return ProgramReport(
        read=read,
        target=targets,
        error=e,
        pulses=pulses,
        energy=energy,
        time=time,
        converged=converged,
        state=state,
        tolerance=scheme.tolerance,
        iterations=scheme.iterations,
        error_scale=scheme.error_scale,
        verify=mode,
    )


# Its checks come back as data (no host callback), so JAX's persistent compilation cache can keep it. Except over
# several lanes (a population sharded over devices): checkify cannot carry a check out of a vmapped while loop, so
# that kernel keeps equinox's checks (host callbacks) and is compiled again in every process.
_run_checked = checked_jit(_run)
_run_callbacks = eqx.filter_jit(_run)


def _run_jit(*args: Any, lanes: int, **kwargs: Any) -> ProgramReport:
    return (_run_checked if lanes == 1 else _run_callbacks)(*args, lanes=lanes, **kwargs)


def _lanes(population: AbstractDevice) -> int:
    """Number of shards of the population's cell axis (1 unless its arrays are split over several devices)."""
    per_cell = [x for x in jax.tree_util.tree_leaves(eqx.filter(population, eqx.is_array)) if x.ndim]
    if not per_cell:
        return 1
    x = per_cell[0]  # a scalar (unvaried) parameter says nothing about how the cell axis is split
    sharding = getattr(x, "sharding", None)
    if sharding is None or len(sharding.device_set) <= 1:
        return 1
    shard = sharding.shard_shape(x.shape)[0]
    return x.shape[0] // shard if x.shape[0] % shard == 0 else 1


def cell_targets(targets: ArrayLike, cells: int) -> Array:
    """Per-cell targets: ``targets`` itself if it has one value per cell, else its values assigned to the cells
    in turn (cell i gets level i mod L, so L levels are equally represented)."""
    t = jnp.asarray(targets, dtype=float)
    if t.ndim != 1 or t.shape[0] < 1:
        raise ValueError(f"targets must be a 1-D array (one per cell, or a list of levels); got shape {t.shape}")
    if t.shape[0] == cells:
        return t
    return t[jnp.arange(cells) % t.shape[0]]


def _checked_inputs(population, scheme, targets, verify, smoothing, fixed_steps, key):
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}; got {verify!r}")
    if verify != "exact" and smoothing is None:
        raise ValueError(f"verify={verify!r} needs smoothing=Smoothing(...) temperatures")
    if not isinstance(scheme, AbstractScheme):
        raise TypeError(f"scheme must be a program-and-verify scheme (AbstractScheme); got {type(scheme).__name__}")
    if not isinstance(fixed_steps, int) or fixed_steps < 1:
        raise ValueError(f"fixed_steps must be a positive integer; got {fixed_steps!r}")
    if scheme.table().set_word_line is not None and "word_line" not in inspect.signature(population.pulse).parameters:
        raise ValueError(
            f"{type(scheme).__name__} sets word-line voltages: it needs a cell behind an access transistor "
            f"(a pulse(..., word_line=...)); {type(population).__name__} has none"
        )
    try:
        n = population_size(population)
    except (IndexError, StopIteration):
        raise ValueError(
            "population must be a device population with a leading cell axis on its parameters "
            "(imcphys.population.sample or stack)"
        ) from None
    t = cell_targets(targets, n)
    check_range(
        "targets", t, lower=0.0 if scheme.error_scale == "log" else None, lower_open=scheme.error_scale == "log"
    )
    keys = None if key is None else jr.split(key, n)
    return t, keys


def program(
    population: AbstractDevice,
    scheme: AbstractScheme,
    *,
    targets: Float[ArrayLike, " n_or_levels"],
    key: PRNGKeyArray | None,
    verify: VerifyMode,
    smoothing: Smoothing | None = None,
    initial: str | PyTree | None = None,
    fixed_steps: int = 16,
) -> ProgramReport:
    """Program every cell of ``population`` toward its target with ``scheme`` and report the outcome.

    ``targets``: one read value per cell, or a list of L levels assigned to the cells in turn (see
    :func:`cell_targets`). ``key``: cycle-to-cycle noise of every pulse (``None``: no noise — pass it
    explicitly). ``verify``: ``"exact"``, ``"smooth"`` or ``"straight_through"`` (the last two need
    ``smoothing``). ``initial``: a state name for ``device.initial_state`` (default: the family's default,
    e.g. ReRAM "reset"), or per-cell states. ``fixed_steps``: Heun steps per pulse on the fast path.
    """
    t, keys = _checked_inputs(population, scheme, targets, verify, smoothing, fixed_steps, key)
    name, state0 = (initial, None) if initial is None or isinstance(initial, str) else (None, initial)
    return _run_jit(
        population,
        scheme,
        t,
        state0,
        keys,
        smoothing,
        mode=verify,
        fixed_steps=fixed_steps,
        initial=name,
        lanes=_lanes(population),
    )


# ------------------------------------------------------------------------------------------- objectives
class WriteCost(eqx.Module):
    r"""Cost of a write, averaged over the cells:

    .. math::

        C = \overline{e^2} + w_p\,\overline{n_p} + w_E\,\overline{E} + w_t\,\overline{t}
            + w_m\,\overline{\sigma\big((|e| - m)/\tau_m\big)}

    with e the final error (scheme's error scale), n_p the pulses, E the energy [J], t the time [s] and σ the
    logistic function. The last term counts, smoothly, the cells whose error exceeds the read margin m (half the
    spacing of adjacent levels in the error scale: beyond it a cell reads as another level); with
    ``miss_weight`` = 0 (the default) it is absent. The squared error alone weighs a few cells far off more than
    many cells just outside their level, so a scheme optimised on it can trade level errors for pulses; the
    miss term makes the objective count what the bit-error rate counts.
    """

    pulse_weight: float
    energy_weight: float  #: per joule
    time_weight: float = 0.0  #: per second
    miss_weight: float = 0.0  #: w_m, per cell read as another level
    miss_margin: float = 1.0  #: m, read margin [error unit] (ln units for the "log" scale)
    miss_width: float = 0.05  #: τ_m, width of the smooth count [error unit]
    #: c: the squared error is counted as c² tanh(e²/c²), so one cell far off costs at most c² (None: e²)
    error_cap: float | None = None

    def __check_init__(self):
        for name in ("pulse_weight", "energy_weight", "time_weight", "miss_weight"):
            check_range(f"WriteCost.{name}", getattr(self, name), lower=0.0)
        for name in ("miss_margin", "miss_width"):
            check_range(f"WriteCost.{name}", getattr(self, name), lower=0.0, lower_open=True)
        if self.error_cap is not None:
            check_range("WriteCost.error_cap", self.error_cap, lower=0.0, lower_open=True)

    def __call__(self, report: ProgramReport) -> Float[Array, ""]:
        squared = report.error**2
        if self.error_cap is not None:
            squared = self.error_cap**2 * jnp.tanh(squared / self.error_cap**2)
        cost = (
            jnp.mean(squared)
            + self.pulse_weight * jnp.mean(report.pulses)
            + self.energy_weight * jnp.mean(report.energy)
            + self.time_weight * jnp.mean(report.time)
        )
        if self.miss_weight:
            misses = jax.nn.sigmoid((jnp.abs(report.error) - self.miss_margin) / self.miss_width)
            cost = cost + self.miss_weight * jnp.mean(misses)
        return cost


Objective = Callable[[ProgramReport], Float[Array, ""]]


# ---------------------------------------------------------------------------------------- optimisation
class Optimized(eqx.Module):
    """Result of :func:`optimize_scheme`.

    ``scheme`` is the selected scheme; ``report`` and ``objective`` are its exact-mode re-run on the fresh
    validation population (the numbers to quote); ``history`` the training objective per step (in the training
    mode, e.g. smooth); ``evaluations`` the population simulations spent (one per gradient step plus the
    exact-mode checks used for selection).
    """

    scheme: AbstractScheme
    report: ProgramReport
    objective: float
    objective_start: float  #: exact objective of the starting scheme on the same validation population
    history: np.ndarray
    checks: np.ndarray  #: (step, exact objective on the selection population) of every selection check
    evaluations: int
    settings_count: int  #: number of scalar settings optimised
    #: the result beats the start on the validation population (``objective < objective_start``)
    improved: bool
    start_kept: bool  #: no checked step beat the start on the selection population: ``scheme`` is the start


class NotImprovedWarning(UserWarning):
    """:func:`optimize_scheme` returned a scheme no better than its start on the validation population."""


def _log_params(scheme: AbstractScheme, free: Sequence[str]) -> dict[str, Array]:
    params = {}
    for name in free:
        value = np.asarray(getattr(scheme, name))
        if np.any(value <= 0):
            raise ValueError(f"setting {name!r} must be > 0 to be optimised in log space; got {value}")
        params[name] = jnp.log(jnp.asarray(value, dtype=float))
    return params


def _free_names(scheme: AbstractScheme, free: Sequence[str] | None) -> list[str]:
    names = list(setting_units(scheme)) if free is None else list(free)
    unknown = set(names) - set(setting_units(scheme))
    if unknown or not names:
        raise ValueError(
            f"free must name settings of {type(scheme).__name__}: {sorted(setting_units(scheme))}; got {names}"
        )
    return names


def evaluate(
    schemes: Sequence[AbstractScheme],
    population: AbstractDevice,
    *,
    targets: Float[ArrayLike, " n_or_levels"],
    objective: Objective,
    key: PRNGKeyArray | None,
    initial: str | None = None,
    fixed_steps: int = 16,
) -> np.ndarray:
    """Exact-mode objective of each scheme on ``population`` (one compile for schemes of one shape; the same
    noise key for every scheme, so they are compared on common random numbers)."""
    if not schemes:
        raise ValueError("schemes must not be empty")
    t, keys = _checked_inputs(population, schemes[0], targets, "exact", None, fixed_steps, key)
    # the objective runs eagerly on the report: one compiled program serves program(), evaluate() and searches
    lanes = _lanes(population)
    return np.array(
        [
            float(
                objective(
                    _run_jit(
                        population,
                        s,
                        t,
                        None,
                        keys,
                        None,
                        mode="exact",
                        fixed_steps=fixed_steps,
                        initial=initial,
                        lanes=lanes,
                    )
                )
            )
            for s in schemes
        ]
    )


@functools.cache
def _adam(learning_rate: float, steps: int) -> optax.GradientTransformation:
    # Cosine decay to 10 %: late steps, at low temperature where the landscape is jagged, move little.
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.1))


def _build(scheme: AbstractScheme, params: dict[str, Array]) -> Any:
    return with_settings(scheme, **{k: jnp.exp(v) for k, v in params.items()})


def _log_value_and_grad(
    params, scheme, population, targets, keys, smoothing, objective, mode, fixed_steps, initial, lanes=1
):
    """Objective and its gradient with respect to the log of the settings in ``params`` (as :func:`_run_jit`:
    checks as data on one lane, equinox's callbacks over several)."""
    fn = _log_value_and_grad_checked if lanes == 1 else _log_value_and_grad_callbacks
    return fn(params, scheme, population, targets, keys, smoothing, objective, mode, fixed_steps, initial, lanes)


def _log_value_and_grad_impl(
    params, scheme, population, targets, keys, smoothing, objective, mode, fixed_steps, initial, lanes=1
):
    """What :func:`_log_value_and_grad` compiles."""

    def loss(p):
        return objective(
            _run(
                population,
                _build(scheme, p),
                targets,
                None,
                keys,
                smoothing,
                mode=mode,
                fixed_steps=fixed_steps,
                initial=initial,
                lanes=lanes,
            )
        )

    return jax.value_and_grad(loss)(params)


_log_value_and_grad_checked = checked_jit(_log_value_and_grad_impl)
_log_value_and_grad_callbacks = eqx.filter_jit(_log_value_and_grad_impl)


def value_and_grad(
    scheme: AbstractScheme,
    population: AbstractDevice,
    *,
    targets: Float[ArrayLike, " n_or_levels"],
    objective: Objective,
    key: PRNGKeyArray | None,
    verify: VerifyMode,
    smoothing: Smoothing | None,
    free: Sequence[str] | None = None,
    initial: str | None = None,
    fixed_steps: int = 16,
) -> tuple[float, dict[str, Array]]:
    """``objective`` of programming ``population`` with ``scheme`` (in mode ``verify``) and its gradient with
    respect to the settings ``free`` (default: all), each in its own unit (e.g. per V, per s)."""
    names = _free_names(scheme, free)
    t, keys = _checked_inputs(population, scheme, targets, verify, smoothing, fixed_steps, key)
    params = _log_params(scheme, names)
    value, grads = _log_value_and_grad(
        params, scheme, population, t, keys, smoothing, objective, verify, fixed_steps, initial, _lanes(population)
    )
    return float(value), {k: grads[k] / jnp.exp(params[k]) for k in names}


def optimize_scheme(
    scheme: AbstractScheme,
    population: AbstractDevice,
    *,
    targets: Float[ArrayLike, " n_or_levels"],
    objective: Objective,
    steps: int,
    key: PRNGKeyArray,
    validation: AbstractDevice,
    smoothing: Smoothing,
    free: Sequence[str] | None = None,
    anneal: float = 0.1,
    learning_rate: float = 0.015,
    verify: Literal["smooth", "straight_through"] = "smooth",
    check_every: int = 0,
    selection: AbstractDevice | None = None,
    optimizer: optax.GradientTransformation | None = None,
    initial: str | None = None,
    fixed_steps: int = 16,
    progress: bool = True,
) -> Optimized:
    """Fit the settings ``free`` (default: all) of ``scheme`` by Adam in log space on ``objective`` over
    ``population``, then re-run the result in exact mode on the fresh ``validation`` population.

    Each step programs the population once in ``verify`` mode with fresh cycle-to-cycle noise (``key`` folded
    with the step) and temperatures ``smoothing`` × a factor annealed geometrically from 1 to ``anneal``.
    With ``check_every = c > 0`` the exact-mode objective on the ``selection`` population (default: the
    training population) is measured at the start and every c steps, with one noise draw common to every check,
    and the best checked scheme is kept — the starting scheme itself if no step beats it (each check counts as an
    evaluation); otherwise the last one is. A held-out ``selection`` population (drawn independently of both the
    training and the validation populations) keeps the choice from rewarding iterates that merely fit the
    training draw: refining an already good scheme, the gains are of the order of that overfitting.
    ``validation`` must be a population drawn independently of ``population``. ``optimizer`` replaces the
    default, Adam at ``learning_rate`` with a cosine decay to 10 % over the steps.

    Every step is reported: a progress bar (``progress``) shows the training objective, the temperature factor
    and the best exact check so far, and the logger ``imcphys.program`` logs each step and check at INFO level.
    If the result is no better than the start on the validation population — in particular when no checked
    step beat the start and the start itself is returned — a :class:`NotImprovedWarning` says so, and the
    result's ``improved`` is False (``start_kept`` True when the start was returned).

    Recipe for multi-level writes judged by their bit-error rate: optimise a scheme whose every setting acts on
    every iteration (a ramp, e.g. :class:`Bidirectional`'s start and step per polarity) rather than a
    per-iteration :class:`Schedule`, whose late iterations see few active cells and so get weak, noisy gradients
    (its optimum leaves more cells unconverged); use a :class:`WriteCost` that counts level misses and caps the
    squared error (plain mean e² ranks a few cells far off above many cells just outside their level); check
    in exact mode on a held-out ``selection`` population, since late, colder steps can move away from the best.
    """
    if validation is population:
        raise ValueError("validation must be a fresh population, not the training population")
    if selection is not None and (selection is validation or selection is population):
        raise ValueError("selection must be a held-out population, neither the training nor the validation one")
    if verify not in ("smooth", "straight_through"):
        raise ValueError(f"verify must be 'smooth' or 'straight_through' for optimisation; got {verify!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    check_range("anneal", anneal, lower=0.0, upper=1.0, lower_open=True)
    check_range("learning_rate", learning_rate, lower=0.0, lower_open=True)
    names = _free_names(scheme, free)
    t, _ = _checked_inputs(population, scheme, targets, verify, smoothing, fixed_steps, key)
    k_train, k_check, k_valid = jr.split(key, 3)
    n = population_size(population)
    optimizer = _adam(float(learning_rate), steps) if optimizer is None else optimizer
    params = _log_params(scheme, names)
    opt_state = optimizer.init(params)
    lanes = _lanes(population)

    def exact_on(pop, p, k):
        return evaluate(
            [_build(scheme, p)],
            pop,
            targets=targets,
            objective=objective,
            key=k,
            initial=initial,
            fixed_steps=fixed_steps,
        )[0]

    checked = population if selection is None else selection
    start_params = params
    history, checks = [], []
    best = (np.inf, params)
    bar = tqdm(total=steps, desc="optimize_scheme", unit="step", disable=not progress, leave=False, dynamic_ncols=True)

    def check(i):
        nonlocal best
        value = exact_on(checked, params, k_check)
        checks.append((i, value))
        best = min(best, (value, params), key=lambda b: b[0])
        _log.info("optimize_scheme step %d/%d: exact objective %.6g on the selection population", i, steps, value)

    for i in range(steps):
        if check_every and i % check_every == 0:
            check(i)
        factor = anneal ** (i / max(steps - 1, 1))
        keys = jr.split(jr.fold_in(k_train, i), n)
        value, grads = _log_value_and_grad(
            params,
            scheme,
            population,
            t,
            keys,
            smoothing.scaled(factor),
            objective,
            verify,
            fixed_steps,
            initial,
            lanes,
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        history.append(float(value))
        _log.info(
            "optimize_scheme step %d/%d: %s objective %.6g (temperature factor %.3g)", i, steps, verify, value, factor
        )
        bar.update(1)
        bar.set_postfix(
            {
                verify: f"{history[-1]:.4g}",
                "tau": f"{factor:.3g}",
                **({"best_exact": f"{best[0]:.4g}"} if checks else {}),
            }
        )
        if not np.isfinite(history[-1]):
            bar.close()
            raise FloatingPointError(f"optimize_scheme: the {verify} objective became {history[-1]} at step {i}")
    bar.close()
    start_kept = False
    if check_every:
        check(steps)
        start_kept = best[1] is start_params
        params = best[1]
    # the start itself, not exp(log(settings)), which differs in the last bits
    chosen = scheme if start_kept else _build(scheme, params)
    report = program(
        validation, chosen, targets=targets, key=k_valid, verify="exact", initial=initial, fixed_steps=fixed_steps
    )
    start = evaluate(
        [scheme],
        validation,
        targets=targets,
        objective=objective,
        key=k_valid,
        initial=initial,
        fixed_steps=fixed_steps,
    )[0]
    final = float(objective(report))
    improved = final < start and not start_kept
    if not improved:
        why = (
            "no checked step beat the start on the selection population, so the start is returned"
            if start_kept
            else f"the {'best checked' if check_every else 'last'} iterate is no better than the start"
        )
        warnings.warn(
            f"optimize_scheme did not improve on the starting scheme: {why} (exact objective on the validation "
            f"population {final:.6g}, start {start:.6g})",
            NotImprovedWarning,
            stacklevel=2,
        )
    return Optimized(
        scheme=chosen,
        report=report,
        objective=final,
        objective_start=start,
        history=np.asarray(history),
        checks=np.asarray(checks).reshape(-1, 2),
        evaluations=steps + len(checks),
        settings_count=sum(int(np.size(v)) for v in params.values()),
        improved=improved,
        start_kept=start_kept,
    )


class SearchResult(eqx.Module):
    """Result of :func:`random_search` / :func:`grid_search`: the best scheme on the training population and
    every candidate's exact objective there (``objectives``, in the order tried)."""

    scheme: AbstractScheme
    objective: float  #: best exact objective on the training population
    objectives: np.ndarray
    evaluations: int


def _best(candidates: list[AbstractScheme], population, **kwargs) -> SearchResult:
    values = evaluate(candidates, population, **kwargs)
    finite = np.where(np.isfinite(values), values, np.inf)
    i = int(np.argmin(finite))
    return SearchResult(
        scheme=candidates[i], objective=float(values[i]), objectives=values, evaluations=len(candidates)
    )


def random_search(
    scheme: AbstractScheme,
    population: AbstractDevice,
    *,
    targets: Float[ArrayLike, " n_or_levels"],
    objective: Objective,
    bounds: Mapping[str, tuple[float, float]],
    evaluations: int,
    key: PRNGKeyArray,
    initial: str | None = None,
    fixed_steps: int = 16,
) -> SearchResult:
    """Best of ``evaluations`` schemes whose settings ``bounds`` (name -> (low, high), every element of an
    array setting drawn independently) are drawn log-uniformly, measured in exact mode on ``population``;
    other settings keep ``scheme``'s values."""
    if not isinstance(evaluations, int) or evaluations < 1:
        raise ValueError(f"evaluations must be a positive integer; got {evaluations!r}")
    _free_names(scheme, list(bounds))
    for name, (lo, hi) in bounds.items():
        if not 0 < lo < hi:
            raise ValueError(f"bounds[{name!r}] must satisfy 0 < low < high; got ({lo}, {hi})")
    k_draw, k_noise = jr.split(key)
    candidates = []
    for i in range(evaluations):
        values = {}
        for j, (name, (lo, hi)) in enumerate(bounds.items()):
            u = jr.uniform(jr.fold_in(jr.fold_in(k_draw, i), j), jnp.shape(getattr(scheme, name)))
            values[name] = jnp.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        candidates.append(with_settings(scheme, **values))
    return _best(
        candidates,
        population,
        targets=targets,
        objective=objective,
        key=k_noise,
        initial=initial,
        fixed_steps=fixed_steps,
    )


def grid_search(
    scheme: AbstractScheme,
    population: AbstractDevice,
    *,
    targets: Float[ArrayLike, " n_or_levels"],
    objective: Objective,
    grid: Mapping[str, Sequence[float]],
    key: PRNGKeyArray | None,
    initial: str | None = None,
    fixed_steps: int = 16,
) -> SearchResult:
    """Best point of the full grid ``grid`` (name -> values of a scalar setting), in exact mode on
    ``population``; other settings keep ``scheme``'s values."""
    _free_names(scheme, list(grid))
    axes = [np.asarray(v, dtype=float) for v in grid.values()]
    if any(a.ndim != 1 or a.size < 1 for a in axes):
        raise ValueError("every grid entry must be a non-empty 1-D list of values")
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    candidates = [with_settings(scheme, **dict(zip(grid, p))) for p in points]
    return _best(
        candidates, population, targets=targets, objective=objective, key=key, initial=initial, fixed_steps=fixed_steps
    )


make_callable(__name__)
