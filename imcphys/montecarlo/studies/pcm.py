"""PCM Monte Carlo studies: drift of a quenched PCMCell population under bakes at several temperatures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...models.pcm import PCMCell
from ...population import LogNormal, Normal
from .._study import Output, Study

#: Device-to-device spread used when the card has no ``[variability]`` table (ASSUMED, illustrative): 10 % on the
#: drift exponent ν_a (measured ν of GST spreads by about that much from cell to cell, Le Gallo & Sebastian,
#: J. Phys. D 53, 213002 (2020)), 0.05 eV on the quench barrier and 20 % (log) on the as-quenched conductance.
DEFAULT_SPREAD = {
    "drift_exponent": Normal(std=0.1, relative=True),
    "quench_barrier": Normal(std=0.05),
    "g_amorphous": LogNormal(sigma=0.2),
}
#: 25, 85 and 125 °C bakes [K].
TEMPERATURES = (298.15, 358.15, 398.15)
#: Bake times [s]: 100 s, about 3 h and about 12 days.
TIMES = (1e2, 1e4, 1e6)


def bake(
    card: Card,
    *,
    temperatures: Sequence[float] = TEMPERATURES,
    times: Sequence[float] = TIMES,
    t_first: float = 20.0,
    g_ref: float | None = None,
) -> Study:
    """Every cell is RESET (a full plug of fresh glass), read at ``t_first`` [s] at its ambient temperature, then
    baked at each temperature [K] for each time [s] (closed-form relaxation and crystal growth) and read back at
    the ambient temperature. Spread: the card's ``[variability]``, else :data:`DEFAULT_SPREAD`.

    Outputs per cell: the conductance after each bake [S] (``g``) and the cell's drift exponent at ambient,
    ν = −ln(G(times[-1])/G(times[0]))/ln(times[-1]/times[0]) at the first temperature (``nu``); counted over cells:
    RESET cells read above ``g_ref`` (default: the geometric mean of the SET and the 20-s RESET conductance of the
    nominal cell) after each bake (``bit_errors``).
    """
    device = card.device()
    if not isinstance(device, PCMCell):
        raise ValueError(f"study pcm_bake needs a PCMCell card; {card.path} is {card.family}")
    temps, ts = np.asarray(temperatures, dtype=float), np.asarray(times, dtype=float)
    for name, arr, unit in (("temperatures", temps, "K"), ("times", ts, "s")):
        if arr.ndim != 1 or arr.size < 1:
            raise ValueError(f"{name} must be a non-empty list [{unit}]; got {arr!r}")
    device.check_temperature(temps, "temperatures")  # bakes below the melting point
    check_range("times", ts, lower=0.0, lower_open=True, unit="s")
    if ts.size < 2 or not np.all(np.diff(ts) > 0):
        raise ValueError(f"times must hold at least two increasing bake times [s]; got {times!r}")
    check_range("t_first", t_first, lower=0.0, lower_open=True, unit="s")
    reset = device.initial_state("reset")
    if g_ref is None:
        g_reset = device.read(device.relax(reset, t_first))
        g_ref = float(np.sqrt(float(device.g_crystalline) * float(g_reset)))
    check_range("g_ref", g_ref, lower=0.0, lower_open=True, unit="S")
    specs = card.variability_specs() if card.variability else DEFAULT_SPREAD
    t_arr, time_arr = jnp.asarray(temps), jnp.asarray(ts)

    def cell(dev: PCMCell) -> dict[str, jax.Array]:
        first = dev.relax(dev.initial_state("reset"), t_first)

        def after(temperature, duration):
            return dev.read(dev.relax(first, duration, temperature))

        g = jax.vmap(lambda temp: jax.vmap(lambda d: after(temp, d))(time_arr))(t_arr)
        nu = -jnp.log(g[0, -1] / g[0, 0]) / np.log(ts[-1] / ts[0])
        return {"g": g, "nu": nu, "bit_errors": g > g_ref}

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        del keys  # no cycle-to-cycle noise in PCMCell: the spread is device to device
        return eqx.filter_vmap(cell)(population)

    settings = {
        "temperatures_K": temps.tolist(),
        "times_s": ts.tolist(),
        "t_first_s": t_first,
        "g_ref_S": g_ref,
        "specs": "card" if card.variability else repr(DEFAULT_SPREAD),
    }
    outputs = {
        "g": Output(("temperature", "time"), "S", "read conductance at ambient after the bake"),
        "nu": Output((), "1", "drift exponent at the first bake temperature, between the first and last time"),
        "bit_errors": Output(("temperature", "time"), "1", "RESET cells read above g_ref", per_cell=False),
    }
    return Study(
        "pcm_bake",
        device,
        specs,
        run,
        outputs,
        {"temperature": (temps, "K"), "time": (ts, "s")},
        settings,
        ber="bit_errors",
        bits_per_cell=1,
    )
