"""Ferroelectric HfO2 Monte Carlo studies: 8-level FeFET write-verify over finite-domain devices, and the spread of
a pulse's polarization against the number of domains per device."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..._checks import check_range
from ...cards import Card
from ...models.ferroelectric import AbstractFerroelectric, FeFET
from ...program import Bidirectional, _run
from .._study import Output, Study
from ._verify import verify_counts, verify_outputs

# Purposes of a cell's key: its domains, its target level, its switching thresholds (independent streams: a key
# reused for two purposes would correlate them).
_DOMAINS, _LEVEL, _NOISE = 1, 2, 3


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _with_domains(population: Any, keys: jax.Array, domains: int) -> Any:
    """Each cell of ``population`` with ``domains`` activation fields drawn from its own key."""
    return eqx.filter_vmap(lambda d, k: d.with_domains(key=jr.fold_in(k, _DOMAINS), domains=domains))(population, keys)


@eqx.filter_jit
def _expected_polarization(device: AbstractFerroelectric, amplitude: jax.Array, width: jax.Array) -> jax.Array:
    return device.polarization(device.pulse(device.initial_state(), amplitude, width).state)


@eqx.filter_jit
def _half_switching_amplitude(device: AbstractFerroelectric, width: jax.Array) -> jax.Array:
    """The amplitude [V] whose pulse of ``width`` switches half the film (expectation; bisection to 2^-50)."""

    def step(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = _expected_polarization(device, mid, width) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 50, step, (jnp.zeros(()), jnp.asarray(device.max_amplitude, dtype=float)))
    return 0.5 * (lo + hi)


def write_verify(
    card: Card,
    *,
    levels: Sequence[float] | None = None,
    domains: int | None = None,
    stochastic: bool = False,
    iterations: int = 24,
    tolerance: float = 0.03,
    program_start: float = 2.4,
    program_step: float = 0.05,
    erase_start: float = 2.0,
    erase_step: float = 0.05,
    width: float = 100e-9,
) -> Study:
    """Every cell is a FeFET of ``domains`` (default: the card's) domains drawn from its key, erased (P = −P_r),
    and written to one of ``levels`` (V_T [V]; default 8 levels from the erased V_T down to 90 % of the window)
    drawn from its key, by a bidirectional incremental scheme of up to ``iterations`` verify iterations (program:
    positive gate ``program_start + k·program_step`` V, erase: negative ``erase_start + k·erase_step`` V, ``width``
    s, verify band |V_T − target| < ``tolerance`` V). ``stochastic``: two-state domains that flip at random
    thresholds (fresh for every switching episode).

    Outputs per cell: the final V_T [V] and the target level; counts over cells: the histogram of pulses used,
    the cells left outside their band (``unconverged``) and the cells read nearest to another level
    (``level_errors``).
    """
    device = card.device()
    if not isinstance(device, FeFET):
        raise ValueError(f"study fefet_write_verify needs a FeFET card; {card.path} is {card.family}")
    n_domains = device.domains if domains is None else domains
    _positive_int("domains", n_domains)
    _positive_int("iterations", iterations)
    if not isinstance(stochastic, bool):
        raise ValueError(f"stochastic must be true or false; got {stochastic!r}")
    device = dataclasses.replace(device, stochastic=stochastic)
    erased = float(device.vt0 + 0.5 * device.memory_window)
    lv = (
        np.linspace(erased, erased - 0.9 * float(device.memory_window), 8)
        if levels is None
        else np.sort(np.asarray(levels, dtype=float))[::-1]
    )
    check_range("levels", lv, lower=-10.0, upper=10.0, unit="V")
    check_range("tolerance", tolerance, lower=0.0, lower_open=True, unit="V")
    for name, value in (("program_start", program_start), ("erase_start", erase_start), ("width", width)):
        check_range(name, value, lower=0.0, lower_open=True, unit="s" if name == "width" else "V")
    scheme = Bidirectional(
        iterations=iterations,
        set_start=erase_start,
        set_step=erase_step,
        reset_start=program_start,
        reset_step=program_step,
        set_width=width,
        reset_width=width,
        tolerance=tolerance,
        error_scale="linear",
    )
    ascending = np.sort(lv)
    edges = jnp.asarray(0.5 * (ascending[1:] + ascending[:-1]))
    level_values = jnp.asarray(lv)

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        cells = _with_domains(population, keys, n_domains)
        which = jax.vmap(lambda k: jr.randint(jr.fold_in(k, _LEVEL), (), 0, lv.size))(keys)
        noise = jax.vmap(lambda k: jr.fold_in(k, _NOISE))(keys)
        rep = _run(cells, scheme, level_values[which], None, noise, None, mode="exact", fixed_steps=1, initial="down")
        decoded = lv.size - 1 - jnp.searchsorted(edges, rep.read)  # levels are listed from the highest V_T down
        return {"vt": rep.read, "level": which, **verify_counts(rep, decoded, which, iterations)}

    settings = {
        "levels_V": lv.tolist(),
        "domains": n_domains,
        "stochastic": stochastic,
        "iterations": iterations,
        "tolerance_V": tolerance,
        "program_start_V": program_start,
        "program_step_V": program_step,
        "erase_start_V": erase_start,
        "erase_step_V": erase_step,
        "width_s": width,
    }
    outputs = {
        "vt": Output((), "V", "threshold voltage after write-verify"),
        "level": Output((), "1", "index of the target level (0: the highest V_T)"),
        **verify_outputs("pulses"),
    }
    return Study(
        "fefet_write_verify",
        device,
        card.variability_specs(),
        run,
        outputs,
        {"pulses": (np.arange(iterations + 1), "1")},
        settings,
    )


def domain_spread(
    card: Card,
    *,
    domains: Sequence[int] = (5, 10, 20, 50, 100, 200),
    amplitude: float | None = None,
    width: float = 1e-6,
    stochastic: bool = False,
) -> Study:
    """Every cell draws its activation fields from its key (a smaller domain count in ``domains`` takes the first
    domains of the largest), is erased, and gets one pulse of ``amplitude`` [V] (default: the amplitude that
    switches half the film in ``width``, by the expectation) and ``width`` [s]. Output per cell and domain count:
    the polarization P [C/m²]. Over cells its mean is the expectation and its spread falls as 1/√N: binomial
    σ_P = 2P_r√(p(1−p)/N) for ``stochastic`` two-state domains, 2P_r√(Var[p_sw(E_a)]/N) for deterministic ones.
    """
    device = card.device()
    if not isinstance(device, AbstractFerroelectric):
        raise ValueError(f"study ferroelectric_domain_spread needs a FeCap or FeFET card; {card.path} is {card.family}")
    counts = [int(n) for n in domains]
    if not counts:
        raise ValueError("domains must list at least one domain count")
    for n in counts:
        _positive_int("every domain count", n)
    if not isinstance(stochastic, bool):
        raise ValueError(f"stochastic must be true or false; got {stochastic!r}")
    device = dataclasses.replace(device, stochastic=stochastic)
    check_range("width", width, lower=0.0, lower_open=True, unit="s")
    if amplitude is None:
        amplitude = float(_half_switching_amplitude(device, jnp.asarray(width)))
        if abs(float(_expected_polarization(device, jnp.asarray(amplitude), jnp.asarray(width)))) > 1e-6:
            raise ValueError(
                f"no amplitude up to {device.max_amplitude} V switches half the film in {width} s "
                f"(the NLS switching time is at least tau0 = {float(device.tau0):.3g} s); pass a longer width"
            )
    check_range("amplitude", amplitude, lower=-device.max_amplitude, upper=device.max_amplitude, unit="V")
    largest = max(counts)

    def run(population: Any, keys: jax.Array) -> dict[str, jax.Array]:
        # one draw of the largest count per cell; a smaller count takes the first n domains (one sampler to
        # compile, and nested devices: the spread against N is not blurred by independent redraws)
        full = _with_domains(population, keys, largest)
        noise = jax.vmap(lambda k: jr.fold_in(k, _NOISE))(keys)
        out = []
        for n in counts:  # one static shape per domain count
            cells = eqx.tree_at(lambda d: d.domain_variates, full, full.domain_variates[:, :n])
            pulse = lambda d, k: d.polarization(d.pulse(d.initial_state(), amplitude, width, key=k).state)  # noqa: E731
            out.append(eqx.filter_vmap(pulse)(cells, noise))
        return {"polarization": jnp.stack(out, axis=1)}

    expected = float(_expected_polarization(device, jnp.asarray(amplitude), jnp.asarray(width)))
    settings = {
        "domains": counts,
        "amplitude_V": amplitude,
        "width_s": width,
        "stochastic": stochastic,
        "expected_polarization_C_m2": expected,
    }
    outputs = {"polarization": Output(("domains",), "C/m^2", "polarization after the pulse")}
    return Study(
        "ferroelectric_domain_spread",
        device,
        card.variability_specs(),
        run,
        outputs,
        {"domains": (np.asarray(counts), "1")},
        settings,
    )
