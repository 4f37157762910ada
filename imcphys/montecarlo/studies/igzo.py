"""IGZO 2T0C Monte Carlo studies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...device import check_value
from ...models import Cell2T0C
from .._study import Output, Study

#: 25, 85 and 125 °C: the usual qualification corners [K].
CORNERS = (298.15, 358.15, 398.15)
#: Hold times of the bit-error rate [s]: 1 s to 1 day.
HOLD_TIMES = tuple(float(t) for t in np.geomspace(1.0, 86400.0, 15))


def retention_ber(
    card: Card,
    *,
    temperatures: Sequence[float] = CORNERS,
    hold_times: Sequence[float] = HOLD_TIMES,
    levels: int | None = None,
) -> Study:
    """Device-to-device spread (the card's ``[variability]``: V_T, SS, C_SN, off-current …): every cell stores
    each of its ``levels`` levels (default the card's) at the nominal level voltage, and holds at each ambient
    temperature [K]. A level is in error at hold time t once its retention time (the first exit from its
    ±V_w/(2(M − 1)) margin, exact quadrature of the hold ODE) is below t.

    Outputs per cell and temperature: the minimum retention time over the levels [s]; and the level errors per
    (temperature, hold time), counted over cells, ``levels`` levels read per cell — so
    ``MonteCarloResult.ber()`` is the fraction of stored levels lost by each hold time. The level count stands in
    for the bits (a lost level is at least one wrong bit).
    """
    device = card.device()
    if not isinstance(device, Cell2T0C):
        raise ValueError(f"study igzo_retention_ber needs a Cell2T0C card; {card.path} is {card.family}")
    temps = np.asarray(temperatures, dtype=float)
    times = np.asarray(hold_times, dtype=float)
    for name, arr in (("temperatures", temps), ("hold_times", times)):
        if arr.ndim != 1 or arr.size < 1:
            raise ValueError(f"{name} must be a non-empty list; got {arr.tolist()!r}")
    check_value(device, "temperature", temps, label="temperatures")  # as the card's (operating) temperature
    check_range("hold_times", times, lower=0.0, lower_open=True, unit="s")
    m = device.levels if levels is None else levels
    device.level_voltages(m)  # raises when the level count does not fit the window
    t_arr, h_arr = jnp.asarray(temps), jnp.asarray(times)

    def cell(dev: Cell2T0C) -> dict[str, jax.Array]:
        ret = jax.vmap(lambda temp: dev.at_temperature(temp).level_retention(m))(t_arr)  # (temperature, level)
        errors = jnp.sum(ret[:, None, :] < h_arr[None, :, None], axis=-1)
        return {"min_retention": jnp.min(ret, axis=-1), "level_errors": errors}

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        del keys  # retention is deterministic given the sampled cell
        return eqx.filter_vmap(cell)(population)

    settings = {"temperatures_K": temps.tolist(), "hold_times_s": times.tolist(), "levels": m}
    outputs = {
        "min_retention": Output(("temperature",), "s", "shortest retention time over the cell's levels"),
        "level_errors": Output(
            ("temperature", "time"), "1", "levels whose retention is below the hold time", per_cell=False
        ),
    }
    return Study(
        "igzo_retention_ber",
        device,
        card.variability_specs(),
        run,
        outputs,
        {"temperature": (temps, "K"), "time": (times, "s")},
        settings,
        ber="level_errors",
        bits_per_cell=m,
    )
