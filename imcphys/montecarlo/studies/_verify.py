"""What every write-verify study counts over its cells: the pulses used, the cells left outside their band, and the
cells read back nearest to another level than their target."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._study import Output


def verify_outputs(pulses: str = "programming pulses") -> dict[str, Output]:
    """The counted outputs of :func:`verify_counts` (``pulses`` names what a pulse is in the histogram's text)."""
    return {
        "pulse_histogram": Output(("pulses",), "1", f"cells that used this many {pulses}", per_cell=False),
        "unconverged": Output((), "1", "cells outside their verify band after the pulse budget", per_cell=False),
        "level_errors": Output((), "1", "cells read nearest to another level than their target", per_cell=False),
    }


def verify_counts(report, decoded: jax.Array, which: jax.Array, iterations: int) -> dict[str, jax.Array]:
    """Per-cell contributions to :func:`verify_outputs` from a program-and-verify ``report`` (its ``pulses`` and
    ``converged``), the ``decoded`` read-back level and the target level ``which``."""
    return {
        "pulse_histogram": jax.nn.one_hot(report.pulses.astype(int), iterations + 1, dtype=jnp.int32),
        "unconverged": ~report.converged,
        "level_errors": decoded != which,
    }
