r"""The standard measurement of each device family as a fit :class:`~imcphys.fit.Experiment`.

:mod:`imcphys.fit` knows no family; this module does. :func:`measurement` turns a :class:`~imcphys.data.Dataset`
into what :func:`imcphys.fit` needs — the module whose parameters are fitted and the experiment — for a
``kind`` of measurement, which :func:`infer_kind` reads off the column names:

============  ==========================================  ================================================
kind          columns (any units of that dimension)       model, residual
============  ==========================================  ================================================
``dc``        ``t [s], V [V], I [A]``                     :func:`~imcphys.fit.dc_sweep` (adaptive solve),
                                                          log10|I|
``pulse``     ``amplitude [V], width [s], I [A]``         ``device.pulse`` then ``device.read``, log10|I|
``vth``       ``amplitude [V], width [s], Vth [V]``       Flash: V_th after each control-gate pulse,
                                                          through the cell's pump (``source="pump"``) or
                                                          from an ideal pulse generator (``"ideal"``: the
                                                          exact Fowler–Nordheim solution per pulse), in V
``drift``     ``t [s], G [S]``                            PCM conductance vs time since programming at
                                                          constant temperature (closed forms), log10 G
``retention`` ``t [s], T [K], G [S]``                     a trace under the measured temperature (a bake):
                                                          :func:`~imcphys.fit.trace`, adaptive, log10|G|
``retention`` ``t [s], T [K], I_read [A]``                2T0C: read current during a hold at the
                                                          temperature T (one value per file) after
                                                          writing ``v_sn0`` [V] (default: top level),
                                                          log10|I|
``pump``      ``f_clk [Hz], V_out [V]``                   Dickson pump cycle-mean output in steady state
                                                          vs clock frequency, in V
``transfer``  ``V_GS [V], V_DS [V], I_D [A]``             IGZO TFT transfer (and output) curves of the 2T0C
                                                          card's write transistor (``transistor="read"``:
                                                          the read transistor), log10|I_D|
============  ==========================================  ================================================

For :class:`~imcphys.models.pcm.PCMStatistical` a drift trace belongs to one programmed device: the fitted
module is then that device's :class:`~imcphys.models.pcm.PCMState` (g_prog = G at t = 0, and ν), not the card,
whose parameters describe a population. For :class:`~imcphys.models.pcm.PCMCell` the card's parameters are
fitted (the conductance of a full RESET plug drifting as its glass relaxes, ``drift_exponent``,
``g_amorphous``, ``quench_barrier`` …).
"""

from __future__ import annotations

import inspect
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .data import Dataset
from .device import AbstractDevice, replace
from .fit import Absolute, Experiment, LogAbs, _name, dc_sweep, pulse_response, trace
from .models.flash import DicksonPump, FloatingGateCell
from .models.igzo import Cell2T0C
from .models.pcm import PCMCell, PCMState, PCMStatistical

KINDS = ("dc", "pulse", "vth", "drift", "retention", "pump", "transfer")

#: the column sets of each kind, in the order :func:`infer_kind` tries them
COLUMNS = {
    "pump": (("f_clk", "V_out"),),
    "transfer": (("V_GS", "V_DS", "I_D"),),
    "vth": (("amplitude", "width", "Vth"),),
    "pulse": (("amplitude", "width", "I"),),
    "dc": (("t", "V", "I"),),
    "retention": (("t", "T", "G"), ("t", "T", "I_read")),
    "drift": (("t", "G"),),
}


def infer_kind(data: Dataset) -> str:
    """The kind of measurement whose columns ``data`` has (see the module docstring)."""
    for kind, sets in COLUMNS.items():
        if any(all(n in data for n in names) for names in sets):
            return kind
    expected = "; ".join(f"{k}: {' or '.join(', '.join(c) for c in v)}" for k, v in COLUMNS.items())
    raise ValueError(
        f"{data.source}: cannot tell the kind of measurement from the columns {data.names}; "
        f"expected one of — {expected}"
    )


def measurement(
    kind: str | None, data: Dataset, device: AbstractDevice, *, floor: float = 0.0, **options: Any
) -> tuple[eqx.Module, Experiment]:
    """(module to fit, experiment) for ``data`` measured on a device like ``device``.

    ``kind``: one of :data:`KINDS` (None: :func:`infer_kind`). ``floor`` [A or S]: currents or conductances at
    or below it take no part (log residuals). ``options`` go to the builder: ``initial`` (a state name; default
    the family's), ``source`` (``vth``: ``"pump"`` or ``"ideal"``), ``fixed_steps`` (``pulse``/``vth``).
    """
    kind = kind or infer_kind(data)
    if kind not in KINDS:
        raise ValueError(f"unknown kind of measurement {kind!r}; known: {', '.join(KINDS)}")
    sets = COLUMNS[kind]
    if not any(all(n in data for n in names) for names in sets):  # name the missing columns of the likeliest set
        data.require(*sets[-1] if isinstance(device, Cell2T0C) else sets[0])
    family = type(device).__name__
    allowed = {
        "dc": (AbstractDevice,),
        "pulse": (AbstractDevice,),
        "vth": (FloatingGateCell,),
        "drift": (PCMCell, PCMStatistical),
        "retention": (AbstractDevice,),
        "pump": (DicksonPump,),
        "transfer": (Cell2T0C,),
    }[kind]
    if not isinstance(device, allowed):
        raise ValueError(
            f"a {kind!r} measurement needs a {' or '.join(c.__name__ for c in allowed)} card; got {family}"
        )
    unknown = set(options) - {"initial", "source", "fixed_steps", "transistor", "v_sn0"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for a {kind!r} measurement")
    initial = options.get("initial") or _default_initial(device)
    if kind == "dc":
        return device, dc_sweep(data, floor=floor, initial=initial)
    if kind == "pulse":
        return device, pulse_response(
            data, residual=LogAbs(float(floor)), initial=initial, fixed_steps=int(options.get("fixed_steps", 32))
        )
    if kind == "vth":
        return device, vth_pulses(
            data, source=options.get("source", "pump"), initial=initial, fixed_steps=int(options.get("fixed_steps", 32))
        )
    if kind == "drift":
        return drift_trace(data, device, floor=floor, initial=initial)
    if kind == "retention":
        if isinstance(device, Cell2T0C):
            return device, hold_retention(data, v_sn0=options.get("v_sn0"), floor=floor)
        return device, trace(
            data,
            time="t",
            drive="T",
            observed="G",
            residual=LogAbs(float(floor)),
            initial=initial,
            name=_name(data, "retention"),
        )
    if kind == "transfer":
        return device, transfer_curve(data, transistor=options.get("transistor", "write"), floor=floor)
    return device, pump_output(data)


def _default_initial(device: eqx.Module) -> str | None:
    """The name of the state ``device.initial_state()`` starts from by default (``"reset"``, ``"erased"`` …):
    named explicitly, a fit shares its compilation with one that names it."""
    which = inspect.signature(device.initial_state).parameters.get("which")
    return which.default if which is not None and isinstance(which.default, str) else None


# ---------------------------------------------------------------------------------------------------- Flash
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


class _PumpOutput(eqx.Module):
    """Cycle-mean output of the pump in periodic steady state at each clock frequency."""

    def __call__(self, pump: DicksonPump, f_clk: Array) -> Array:
        return replace(pump, clock_frequency=f_clk).steady_state().v_out


def pump_output(
    data: Dataset, *, frequency: str = "f_clk", output: str = "V_out", name: str | None = None
) -> Experiment:
    """Dickson pump output [V] vs clock frequency [Hz] (averaged model in steady state), compared in volts;
    rows with f_clk = 0 (the pump stopped) are not operating points and are left out."""
    data.require(frequency, output)
    f, v = data[frequency], data[output]
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


# ------------------------------------------------------------------------------------------------------ PCM
class _StatisticalDrift(eqx.Module):
    """g_prog·((t + t0)/t0)^−ν of one device (its state is what is fitted); ``inputs``: the model and t."""

    def __call__(self, state: PCMState, inputs: tuple[PCMStatistical, Array]) -> Array:
        model, t = inputs
        return model.drift(state, t)


class _CellDrift(eqx.Module):
    """Conductance of a :class:`PCMCell` a time t after it was left in ``initial`` (the closed form at its
    ambient temperature)."""

    initial: str

    def __call__(self, cell: PCMCell, t: Array) -> Array:
        return cell.conductance(cell.relax(cell.initial_state(self.initial), t))


def drift_trace(
    data: Dataset,
    device: PCMCell | PCMStatistical,
    *,
    time: str = "t",
    conductance: str = "G",
    floor: float = 0.0,
    initial: str | None = None,
    name: str | None = None,
) -> tuple[eqx.Module, Experiment]:
    """A PCM drift trace, conductance [S] vs time since programming [s], compared as log10 G (points at or
    below ``floor`` [S] left out). Returns (module to fit, experiment).

    :class:`PCMStatistical`: the device's own state (g_prog, ν) is fitted; it starts from the first read
    extrapolated back to t = 0 with the mean ν of that level. :class:`PCMCell`: the cell's parameters, from
    ``initial`` (default ``"reset"``: a freshly quenched full plug) at the ambient temperature.
    """
    data.require(time, conductance)
    t, g = data[time], data[conductance]
    if np.any(t < 0):
        k = int(np.flatnonzero(t < 0)[0])
        raise ValueError(f"{data.where(time, k)}: the time since programming must be >= 0 s; got {t[k]!r} s")
    label = name or _name(data, "drift")
    common = {
        "residual": LogAbs(float(floor)),
        "x": t,
        "x_label": data.label(time),
        "y_label": data.label(conductance),
        "name": label,
        "log_x": True,
    }
    if isinstance(device, PCMStatistical):
        g_first = float(np.clip(g[0], 1e-12, float(device.g_max)))
        nu0 = float(device.drift_exponent_stats(g_first)[0])
        g0 = g_first * float((1 + t[0] / device.t0) ** nu0)
        state = PCMState(g_prog=jnp.asarray(g0), nu=jnp.asarray(nu0))
        return state, Experiment(_StatisticalDrift(), (device, jnp.asarray(t)), g, **common)
    return device, Experiment(_CellDrift(initial or "reset"), jnp.asarray(t), g, **common)


# ----------------------------------------------------------------------------------------------------- IGZO
class _Transfer(eqx.Module):
    """I_D(V_GS, V_DS) of one of the 2T0C cell's transistors."""

    transistor: str = eqx.field(static=True)

    def __call__(self, cell: Cell2T0C, inputs: tuple[Array, Array]) -> Array:
        tft = cell.write_transistor() if self.transistor == "write" else cell.read_transistor()
        return tft.drain_current(*inputs)


def transfer_curve(
    data: Dataset, *, transistor: str = "write", floor: float = 0.0, name: str | None = None
) -> Experiment:
    """IGZO TFT curves, I_D [A] at each (V_GS, V_DS) [V] row (transfer curves at one or more V_DS, or output
    curves), of the 2T0C card's ``transistor`` (``"write"`` or ``"read"``: they share n, γ and I_sq, and have
    their own V_T and geometry); compared as log10|I_D|, |I_D| <= ``floor`` [A] (the instrument's) left out."""
    if transistor not in ("write", "read"):
        raise ValueError(f"transistor must be 'write' or 'read'; got {transistor!r}")
    data.require("V_GS", "V_DS", "I_D")
    return Experiment(
        _Transfer(transistor),
        (jnp.asarray(data["V_GS"]), jnp.asarray(data["V_DS"])),
        data["I_D"],
        residual=LogAbs(float(floor)),
        x=data["V_GS"],
        x_label=data.label("V_GS"),
        y_label=data.label("I_D"),
        name=name or _name(data, f"{transistor} TFT"),
    )


class _Hold(eqx.Module):
    """Read current of a 2T0C cell during a hold (word line at ``hold_wordline_voltage``, bit line at
    ``hold_bitline_voltage``) at a fixed temperature, from V_SN(0) = v_sn0: one adaptive solve of the cell's
    hold ODE from t = 0 saved at the sample times, in forward mode (what Levenberg–Marquardt differentiates), as
    :meth:`Cell2T0C.hold_trace` does; a failed solve gives NaN (a large residual), not an error, as fits try
    odd parameters. (One solve with ``SaveAt``: :func:`imcphys.simulate` solves segment by segment, which
    compiled many times slower here.)"""

    def __call__(self, cell: Cell2T0C, inputs: dict[str, Array]) -> Array:
        cell = cell.at_temperature(inputs["temperature"])
        v0 = jnp.asarray(cell.window_high if inputs["v_sn0"] is None else inputs["v_sn0"], dtype=float)
        ts = inputs["t"]
        term = diffrax.ODETerm(lambda t, v, args: cell.rhs(t, v, cell.hold_bitline_voltage))
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            0.0,
            ts[-1],
            ts[0] * 1e-3,
            v0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-9),
            max_steps=4096,
            adjoint=diffrax.ForwardMode(),
            throw=False,
        )
        ok = sol.result == diffrax.RESULTS.successful
        return jnp.where(ok, cell.read_current(jnp.where(ok, sol.ys, v0)), jnp.nan)


def hold_retention(
    data: Dataset, *, v_sn0: float | None = None, floor: float = 0.0, name: str | None = None
) -> Experiment:
    """A 2T0C retention trace: the read current I_read [A] at times t [s] (> 0, increasing) of a hold at the
    temperature T [K] of the file (one value), after writing V_SN = ``v_sn0`` [V] (default the top level,
    ``window_high``); compared as log10|I|. Fitting traces at two or more temperatures together determines
    the off-state leakage and its activation energy."""
    data.require("t", "T", "I_read")
    t, temp = data["t"], data["T"]
    if np.any(temp != temp[0]):
        k = int(np.flatnonzero(temp != temp[0])[0])
        raise ValueError(
            f"{data.where('T', k)}: a retention trace is at one temperature; got {temp[k]!r} K "
            f"after {temp[0]!r} K (give one file per temperature)"
        )
    if t[0] <= 0:
        raise ValueError(f"{data.where('t', 0)}: hold times must be > 0 s (t = 0 is the end of the write)")
    inputs = {
        "t": jnp.asarray(t),
        "temperature": jnp.asarray(float(temp[0])),
        "v_sn0": None if v_sn0 is None else jnp.asarray(float(v_sn0)),
    }
    return Experiment(
        _Hold(),
        inputs,
        data["I_read"],
        residual=LogAbs(float(floor)),
        x=t,
        x_label=data.label("t"),
        y_label=data.label("I_read"),
        log_x=True,
        name=name or _name(data, f"retention at {float(temp[0]):.5g} K"),
    )


__all__ = [
    "COLUMNS",
    "KINDS",
    "drift_trace",
    "hold_retention",
    "infer_kind",
    "measurement",
    "pump_output",
    "transfer_curve",
    "vth_pulses",
]
