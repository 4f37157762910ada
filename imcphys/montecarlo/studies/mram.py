"""STT-MRAM Monte Carlo studies: write-error rate from the thermal SDE, and the reference-cell read."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...models import STTMRAM
from ...models.mram import STEPS_PER_TD, first_switching_time
from ...population import pulse_keys
from .._study import Output, Study


def _device(card: Card, study: str) -> STTMRAM:
    device = card.device()
    if not isinstance(device, STTMRAM):
        raise ValueError(f"study {study} needs an STTMRAM card; {card.path} is {card.family}")
    return device


def write_error_rate(
    card: Card,
    *,
    current_ratios: Sequence[float] = (1.5, 2.0, 3.0, 4.0),
    widths: Sequence[float] | None = None,
    dt: float | None = None,
    direction: str = "set",
) -> Study:
    """Write-error rate versus pulse amplitude and width from the thermal SDE (device-to-device spread from the
    card's ``[variability]``). Every cell takes, for each current ``current_ratios`` × I_c0 of the *nominal*
    card (the driver supplies an absolute current; each cell has its own I_c0), one rectangular pulse from its
    Boltzmann state — AP for ``direction="set"`` (AP → P, I > 0), P for ``"reset"`` — run for the longest of
    ``widths`` [s] (default 1–30 ns, 30 points) by the fixed-step kernel (steps of ``dt`` [s], default
    t_D/100 of the nominal card, rotating frame).

    Outputs: each cell's first-switching time per current [s] (inf: not within the longest width), and the
    count of write errors per (current, width): cells not switched by the end of a pulse of that width.
    ``MonteCarloResult.ber()`` is then the WER per (current, width).
    """
    device = _device(card, "mram_wer")
    ratios = np.asarray(current_ratios, dtype=float)
    if ratios.ndim != 1 or ratios.size < 1:
        raise ValueError(f"current_ratios must be a non-empty list of multiples of I_c0; got {current_ratios!r}")
    check_range("current_ratios", ratios, lower=0.0, lower_open=True)
    if direction not in ("set", "reset"):
        raise ValueError(f"direction must be 'set' (AP -> P) or 'reset' (P -> AP); got {direction!r}")
    w = np.linspace(1e-9, 30e-9, 30) if widths is None else np.asarray(widths, dtype=float)
    if w.ndim != 1 or w.size < 1:
        raise ValueError(f"widths must be a non-empty list of pulse widths [s]; got {widths!r}")
    check_range("widths", w, lower=0.0, lower_open=True, unit="s")
    i_c0 = float(device.critical_current())
    currents = (1.0 if direction == "set" else -1.0) * ratios * i_c0
    check_range("currents", np.abs(currents), upper=device.max_current, unit="A")
    h = float(device.dynamic_time()) / STEPS_PER_TD if dt is None else float(dt)
    check_range("dt", h, lower=0.0, lower_open=True, unit="s")
    steps = max(1, math.ceil(float(w.max()) / h))
    h = float(w.max()) / steps
    w_arr, i_arr = jnp.asarray(w), jnp.asarray(currents)

    def cell(dev: STTMRAM, keys: jax.Array) -> dict[str, jax.Array]:
        times = jax.vmap(lambda i, k: first_switching_time(dev, i, key=k, steps=steps, dt=h))(i_arr, keys)
        return {"switching_time": times, "write_errors": (times[:, None] > w_arr[None, :]).astype(int)}

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        return eqx.filter_vmap(cell)(population, pulse_keys(keys, currents.size))

    settings = {
        "currents_A": currents.tolist(),
        "current_ratios_nominal_Ic0": ratios.tolist(),
        "nominal_Ic0_A": i_c0,
        "widths_s": w.tolist(),
        "dt_s": h,
        "steps": steps,
        "direction": direction,
    }
    outputs = {
        "switching_time": Output(("current",), "s", "first crossing of the equator (inf: not switched)"),
        "write_errors": Output(("current", "width"), "1", "cells not switched by the end of the pulse", per_cell=False),
    }
    coords = {"current": (currents, "A"), "width": (w, "s")}
    return Study("mram_wer", device, card.variability_specs(), run, outputs, coords, settings, ber="write_errors")


def read(card: Card, *, offset_std: float = 0.0, read_time: float = 10e-9) -> Study:
    """Reference-cell read of every cell (device-to-device spread from the card's ``[variability]``) in P and in
    AP at its ``read_voltage``, against I_ref = (I_P + I_AP)/2 of the nominal card's junction pair, through a
    sense amplifier with a Gaussian input offset of ``offset_std`` [A] drawn per read; and the read disturb: the
    probability that a read of ``read_time`` [s] switches the cell in AP (thermal regime, closed form).

    Outputs: read currents per cell and state [A]; read errors counted per state (``ber()``: the read-error
    rate per state); disturb probability per cell [1].
    """
    device = _device(card, "mram_read")
    check_range("offset_std", offset_std, lower=0.0, unit="A")
    check_range("read_time", read_time, lower=0.0, lower_open=True, unit="s")
    poles = jnp.array([1.0, -1.0])
    i_ref = 0.5 * float(device.current(1.0, device.read_voltage) + device.current(-1.0, device.read_voltage))

    def cell(dev: STTMRAM, key: jax.Array) -> dict[str, jax.Array]:
        currents = dev.current(poles, dev.read_voltage)
        sensed = currents + offset_std * jr.normal(key, (2,), dtype=currents.dtype)
        wrong = jnp.stack([sensed[0] <= i_ref, sensed[1] >= i_ref]).astype(int)
        return {
            "read_current": currents,
            "read_errors": wrong,
            "disturb_probability": dev.read_disturb_probability(read_time),
        }

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        return eqx.filter_vmap(cell)(population, keys)

    settings = {"offset_std_A": offset_std, "read_time_s": read_time, "reference_current_A": i_ref}
    outputs = {
        "read_current": Output(("state",), "A", "read current at read_voltage"),
        "read_errors": Output(("state",), "1", "reads on the wrong side of the reference", per_cell=False),
        "disturb_probability": Output((), "1", "probability that one read pulse switches the AP cell"),
    }
    coords = {"state": (np.array([1.0, -1.0]), "1")}
    return Study("mram_read", device, card.variability_specs(), run, outputs, coords, settings, ber="read_errors")
