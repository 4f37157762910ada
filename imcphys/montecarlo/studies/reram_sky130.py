"""SKY130 ReRAM 1T1R Monte Carlo: multi-level SET through the gate, with verify, over the cell's spread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...models import OneTransistorOneResistor
from ...program import WordLineSchedule, _run
from .._study import Output, Study
from ._verify import verify_counts, verify_outputs

#: Default levels [S]: four conductances a 1T1R SKY130 cell reaches by its word line (about 0.8–1.3 V).
LEVELS = (4e-6, 1e-5, 2.5e-5, 6e-5)


def wordline_levels(
    card: Card,
    *,
    levels: Sequence[float] = LEVELS,
    iterations: int = 24,
    word_line_start: float = 0.7,
    word_line_step: float = 0.025,
    amplitude: float = 2.4,
    width: float = 1e-6,
    tolerance: float = 0.15,
    fixed_steps: int = 32,
) -> Study:
    """Every cell starts RESET and is programmed to one of ``levels`` (read conductances [S]) by SET pulses of
    ``amplitude`` [V] on the bit line and ``width`` [s], the word line rising ``word_line_start + k·word_line_step``
    [V] at iteration k (up to ``iterations`` pulses), each followed by a verify read; a cell stops once its
    conductance is above target·exp(−``tolerance``). The device-to-device spread is the cell card's
    ``[variability]`` (the ``cell`` part of a 1T1R card); pulses take the fixed-step path with ``fixed_steps``
    intervals. A cell's level is drawn from its own key (uniform over the levels).

    Outputs: the final conductance per cell [S], and counts over cells: pulses used, cells outside their band after
    the budget (``unconverged``), and cells read back nearest to another level than their target.
    """
    device = card.device()
    if not isinstance(device, OneTransistorOneResistor) or "cell" not in card.parts:
        raise ValueError(f"study reram_1t1r_wordline_levels needs a 1T1R card with a [parts] cell; {card.path} is not")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer; got {iterations!r}")
    lv = np.sort(np.asarray(levels, dtype=float))
    check_range("levels", lv, lower=0.0, lower_open=True, unit="S")
    check_range("word_line_start", word_line_start, lower=0.0, lower_open=True, unit="V")
    check_range("word_line_step", word_line_step, lower=0.0, unit="V")
    check_range("amplitude", amplitude, lower=0.0, upper=device.max_line_voltage, lower_open=True, unit="V")
    scheme = WordLineSchedule.incremental(
        start=word_line_start,
        step=word_line_step,
        iterations=iterations,
        amplitude=amplitude,
        width=width,
        tolerance=tolerance,
    )
    log_lv = np.log(lv)
    edges = jnp.asarray(0.5 * (log_lv[1:] + log_lv[:-1]))
    level_values = jnp.asarray(lv)

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        cells = device.populate(population)
        which = jax.vmap(lambda k: jr.randint(jr.fold_in(k, 2**31 - 1), (), 0, lv.size))(keys)
        rep = _run(
            cells, scheme, level_values[which], None, None, None, mode="exact", fixed_steps=fixed_steps, initial=None
        )
        decoded = jnp.searchsorted(edges, jnp.log(jnp.maximum(rep.read, 1e-300)))
        return {"g_final": rep.read, "energy": rep.energy, **verify_counts(rep, decoded, which, iterations)}

    settings = {
        "levels_S": lv.tolist(),
        "iterations": iterations,
        "word_line_start_V": word_line_start,
        "word_line_step_V": word_line_step,
        "amplitude_V": amplitude,
        "width_s": width,
        "tolerance": tolerance,
        "fixed_steps": fixed_steps,
    }
    outputs = {
        "g_final": Output((), "S", "read conductance after programming"),
        "energy": Output((), "J", "programming energy drawn from the lines"),
        **verify_outputs(),
    }
    return Study(
        "reram_1t1r_wordline_levels",
        device.cell,
        card.parts["cell"].variability_specs(),
        run,
        outputs,
        {"pulses": (np.arange(iterations + 1), "1")},
        settings,
    )
