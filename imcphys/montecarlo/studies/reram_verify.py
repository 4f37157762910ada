"""ReRAM program-and-verify Monte Carlo: multi-level programming of every cell with a bidirectional scheme."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...models import StanfordReRAM
from ...program import Bidirectional, _run
from .._study import Study
from ._verify import verify_counts, verify_outputs


def write_verify(
    card: Card,
    *,
    iterations: int = 20,
    levels: Sequence[float] | None = None,
    tolerance: float = 0.2,
    set_start: float = 1.15,
    set_step: float = 0.01,
    reset_start: float = 1.05,
    reset_step: float = 0.03,
    width: float = 20e-9,
    fixed_steps: int = 8,
) -> Study:
    """Every cell starts SET (gap_min) and is programmed to one of ``levels`` (read currents [A]; default 8 levels
    of the nominal cell, gaps 1.5 → 0.4 nm) by a bidirectional incremental scheme with up to ``iterations`` verify
    iterations (SET ``set_start + k·set_step`` V, RESET ``reset_start + k·reset_step`` V, ``width`` s, verify band
    |ln(I/I_target)| < ``tolerance``), with the card's device-to-device spread and cycle-to-cycle noise
    (fixed-step path, ``fixed_steps`` Heun steps per pulse). A cell's level is drawn from its own key (uniform
    over the levels), so results do not depend on chunking.

    Counts over cells: the histogram of pulses used, the cells left outside their band after the budget
    (``unconverged``), and the cells read back nearest to another level than their target (``level_errors``).
    """
    device = card.device()
    if not isinstance(device, StanfordReRAM):
        raise ValueError(f"study reram_write_verify needs a StanfordReRAM card; {card.path} is {card.family}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer; got {iterations!r}")
    lv = (
        np.asarray(device.read(jnp.linspace(1.5e-9, 0.4e-9, 8)))
        if levels is None
        else np.sort(np.asarray(levels, dtype=float))
    )
    check_range("levels", lv, lower=0.0, lower_open=True, unit="A")
    scheme = Bidirectional(
        iterations=iterations,
        set_start=set_start,
        set_step=set_step,
        reset_start=reset_start,
        reset_step=reset_step,
        set_width=width,
        reset_width=width,
        tolerance=tolerance,
    )
    log_lv = np.log(lv)
    edges = jnp.asarray(0.5 * (log_lv[1:] + log_lv[:-1]))
    level_values = jnp.asarray(lv)

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        which = jax.vmap(lambda k: jr.randint(jr.fold_in(k, 2**31 - 1), (), 0, lv.size))(keys)
        rep = _run(
            population,
            scheme,
            level_values[which],
            None,
            keys,
            None,
            mode="exact",
            fixed_steps=fixed_steps,
            initial="set",
        )
        decoded = jnp.searchsorted(edges, jnp.log(jnp.maximum(rep.read, 1e-300)))
        return verify_counts(rep, decoded, which, iterations)

    settings = {
        "iterations": iterations,
        "levels_A": lv.tolist(),
        "tolerance": tolerance,
        "set_start_V": set_start,
        "set_step_V": set_step,
        "reset_start_V": reset_start,
        "reset_step_V": reset_step,
        "width_s": width,
        "fixed_steps": fixed_steps,
    }
    outputs = verify_outputs()
    return Study(
        "reram_write_verify",
        device,
        card.variability_specs(),
        run,
        outputs,
        {"pulses": (np.arange(iterations + 1), "1")},
        settings,
    )
