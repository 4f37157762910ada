"""Flash Monte Carlo studies: ISPP of a floating-gate cell population with oxide-thickness and coupling spread."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...models.flash import FloatingGateCell, ispp
from ...population import Normal
from .._study import Output, Study

#: Device-to-device spread used when the card has no ``[variability]`` table (ASSUMED, illustrative): 2 % on the
#: tunnel-oxide thickness and ±0.02 on the coupling ratio.
DEFAULT_SPREAD = {"tunnel_oxide_thickness": Normal(std=0.02, relative=True), "coupling_ratio": Normal(std=0.02)}


def flash_ispp_population(
    card: Card,
    *,
    v_start: float = 14.0,
    v_step: float = 0.5,
    width: float = 10e-6,
    verify_level: float = 2.0,
    max_pulses: int = 16,
) -> Study:
    """Every cell starts erased and is programmed by incremental step pulse programming (Suh et al., IEEE JSSC
    30(11), 1149 (1995)): pulse k at ``v_start + k·v_step`` [V] for ``width`` [s] from an ideal source (exact
    constant-voltage Fowler–Nordheim steps), verify at ``verify_level`` [V] before each pulse, at most
    ``max_pulses`` pulses. Spread: the card's ``[variability]``, else :data:`DEFAULT_SPREAD`. (Each cell is
    programmed on its own: the pump-fed ISPP couples the cells of a word line through their shared pump, which a
    cell-independent Monte Carlo cannot.)

    Outputs per cell: the final V_th [V] and the pulses used; counted over cells: the pulse histogram and the
    cells that never passed verify.
    """
    device = card.device()
    if not isinstance(device, FloatingGateCell):
        raise ValueError(f"study flash_ispp_population needs a FloatingGateCell card; {card.path} is {card.family}")
    if isinstance(max_pulses, bool) or not isinstance(max_pulses, int) or max_pulses < 1:
        raise ValueError(f"max_pulses must be a positive integer; got {max_pulses!r}")
    check_range("width", width, lower=0.0, lower_open=True, unit="s")
    check_range("v_step", v_step, lower=0.0, unit="V")
    specs = card.variability_specs() if card.variability else DEFAULT_SPREAD

    def cell(dev: FloatingGateCell) -> dict[str, jax.Array]:
        res = ispp(
            dev,
            dev.initial_state("erased")[None],
            v_start=v_start,
            v_step=v_step,
            width=width,
            verify_level=verify_level,
            max_pulses=max_pulses,
            source="ideal",
        )
        pulses = res.pulses[0]
        return {
            "vth": res.final_vth[0],
            "pulses": pulses,
            "pulse_histogram": jax.nn.one_hot(pulses.astype(int), max_pulses + 1, dtype=jnp.int32),
            "unverified": res.verified[0] < 1,
        }

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        del keys  # deterministic programming: the spread is device to device
        return eqx.filter_vmap(cell)(population)

    settings = {
        "v_start_V": v_start,
        "v_step_V": v_step,
        "width_s": width,
        "verify_level_V": verify_level,
        "max_pulses": max_pulses,
        "specs": "card" if card.variability else repr(DEFAULT_SPREAD),
    }
    outputs = {
        "vth": Output((), "V", "threshold voltage after ISPP"),
        "pulses": Output((), "1", "programming pulses used"),
        "pulse_histogram": Output(("pulses_used",), "1", "cells that used this many pulses", per_cell=False),
        "unverified": Output((), "1", "cells that never passed verify", per_cell=False),
    }
    return Study(
        "flash_ispp_population",
        device,
        specs,
        run,
        outputs,
        {"pulses_used": (np.arange(max_pulses + 1), "1")},
        settings,
    )
