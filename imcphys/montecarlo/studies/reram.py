"""ReRAM Monte Carlo studies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...device import check_value, replace
from ...models import StanfordReRAM
from ...population import pulse_keys
from ...simulate import apply_pulse
from .._study import Output, Study

#: 25, 85 and 125 °C: the usual qualification corners [K].
CORNERS = (298.15, 358.15, 398.15)


def pulse_read(
    card: Card,
    *,
    temperatures: Sequence[float] = CORNERS,
    set_amplitude: float = 1.8,
    reset_amplitude: float = -1.3,
    width: float = 100e-9,
    fixed_steps: int = 32,
    g_ref: float | None = None,
) -> Study:
    """Device-to-device spread (the card's ``[variability]``) and cycle-to-cycle noise: at each ambient
    temperature [K], every cell starts RESET (gap_max), takes a SET pulse of ``set_amplitude`` [V] and ``width``
    [s], is read, takes a RESET pulse of ``reset_amplitude`` [V], and is read again (fixed-step path,
    ``fixed_steps`` Heun steps per pulse).

    Outputs per cell and temperature: the read conductance I(V_read)/V_read [S] after SET and after RESET; and
    the bit errors, counted over cells: a SET cell read below ``g_ref`` or a RESET cell read above it (default:
    the geometric mean of the nominal cell's conductance at gap_min and gap_max). Two bits per cell and
    temperature; ``MonteCarloResult.ber()`` gives the BER per temperature.
    """
    device = card.device()
    if not isinstance(device, StanfordReRAM):
        raise ValueError(f"study reram_pulse_read needs a StanfordReRAM card; {card.path} is {card.family}")
    temps = np.asarray(temperatures, dtype=float)
    if temps.ndim != 1 or temps.size < 1:
        raise ValueError(f"temperatures must be a non-empty list of ambient temperatures [K]; got {temperatures!r}")
    check_value(device, "ambient_temperature", temps, label="temperatures")  # as the card's ambient_temperature
    check_range("set_amplitude", set_amplitude, lower=0.0, upper=device.max_amplitude, lower_open=True, unit="V")
    check_range("reset_amplitude", reset_amplitude, lower=-device.max_amplitude, upper=0.0, upper_open=True, unit="V")
    check_range("width", width, lower=0.0, lower_open=True, unit="s")
    if isinstance(fixed_steps, bool) or not isinstance(fixed_steps, int) or fixed_steps < 1:
        raise ValueError(f"fixed_steps must be a positive integer; got {fixed_steps!r}")
    if g_ref is None:
        g_ref = float(np.sqrt(device.read(device.gap_min) * device.read(device.gap_max))) / float(device.read_voltage)
    check_range("g_ref", g_ref, lower=0.0, lower_open=True, unit="S")
    t_arr = jnp.asarray(temps)

    def cell(dev: StanfordReRAM, keys: jax.Array) -> dict[str, jax.Array]:
        def at(temperature, j):
            d = replace(dev, ambient_temperature=temperature)
            g_set = apply_pulse(d, d.gap_max, set_amplitude, width, fixed_steps=fixed_steps, key=keys[2 * j])
            g_reset = apply_pulse(d, g_set, reset_amplitude, width, fixed_steps=fixed_steps, key=keys[2 * j + 1])
            return d.read(g_set) / d.read_voltage, d.read(g_reset) / d.read_voltage

        g_on, g_off = jax.vmap(at)(t_arr, jnp.arange(t_arr.shape[0]))
        return {"g_set": g_on, "g_reset": g_off, "bit_errors": (g_on < g_ref).astype(int) + (g_off > g_ref)}

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        return eqx.filter_vmap(cell)(population, pulse_keys(keys, 2 * temps.size))

    settings = {
        "temperatures_K": temps.tolist(),
        "set_amplitude_V": set_amplitude,
        "reset_amplitude_V": reset_amplitude,
        "width_s": width,
        "fixed_steps": fixed_steps,
        "g_ref_S": g_ref,
    }
    outputs = {
        "g_set": Output(("temperature",), "S", "read conductance after the SET pulse"),
        "g_reset": Output(("temperature",), "S", "read conductance after the RESET pulse"),
        "bit_errors": Output(("temperature",), "1", "cells misread (SET below g_ref, RESET above it)", per_cell=False),
    }
    return Study(
        "reram_pulse_read",
        device,
        card.variability_specs(),
        run,
        outputs,
        {"temperature": (temps, "K")},
        settings,
        ber="bit_errors",
        bits_per_cell=2,
    )
