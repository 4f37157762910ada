"""``fit`` and ``fit_each``: multi-start least squares of a device's free parameters against experiments."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import optimistix as optx
from jaxtyping import ArrayLike, PRNGKeyArray, PyTree

from .._experiment import Experiment, experiment_from
from ..cards import Card
from ..data import Dataset
from ..device import AbstractDevice, parameter_units, replace
from ._results import BatchFitResult, FitResult, Starts
from ._solve import (
    _descend,
    _evaluate,
    _least_squares_each,
    _Outcome,
    _Problem,
    _screen,
    _screen_each,
    _tiled_data,
)
from ._transforms import Free, _make_transform, _Transform, _transform_at


# -------------------------------------------------------------------------------------------------- fit
def fit(
    device: AbstractDevice,
    experiments: Experiment | Dataset | Sequence[Experiment | Dataset],
    *,
    free: Sequence[str | Free],
    key: PRNGKeyArray,
    starts: int = 8,
    candidates: int = 64,
    spread: float = 2.0,
    solver: optx.AbstractLeastSquaresSolver | optax.GradientTransformation | None = None,
    max_steps: int = 64,
    batch: int = 4,
    card: Card | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit the parameters ``free`` of ``device`` to ``experiments``.

    ``experiments``: one or more :class:`Experiment` (a :class:`~imcphys.data.Dataset` is turned into one by
    :func:`experiment_from`). ``free``: parameter names or :class:`Free` specs (bounds, scale).

    Multi-start: ``key`` draws ``candidates`` points uniformly within a factor ``spread`` of ``device``'s
    values (log-scale parameters; linear ones within ±(spread − 1)·|value|; clipped into any bounds), their
    cost is evaluated (one vmapped forward pass), and the solver starts from ``device`` itself and the
    ``starts − 1`` best candidates. The screening matters: switching models are flat wherever a pulse does
    nothing or everything (e.g. a ReRAM activation energy 40 % off), and a local solver started there cannot
    move.

    ``solver``: an optimistix least-squares solver (default Levenberg–Marquardt, rtol = atol = 1e-5) run for
    at most ``max_steps`` iterations, or an optax optimiser run for exactly ``max_steps`` steps on ½Σr².
    Starts run ``batch`` at a time as one vmapped solve (a progress bar counts them when ``progress``).
    ``card`` (the card ``device`` came from) gives the units of the summary and the template of
    :meth:`FitResult.save_card`.
    """
    t_start = time.perf_counter()
    exps, transform, problem = _setup(
        device, experiments, free, starts=starts, candidates=candidates, batch=batch, spread=spread
    )
    p0 = np.array([float(getattr(device, n)) for n in transform.names])
    thetas = _draw_starts(transform, p0, max(starts, candidates + 1), spread, key=key)
    if candidates and len(thetas) > starts:
        with _progress(len(thetas) - 1, "screening start candidates", progress) as bar:
            cost = np.asarray(_screen(problem, jnp.asarray(thetas[1:])))
            bar.update(len(thetas) - 1)
        order = np.argsort(np.where(np.isfinite(cost), cost, np.inf), kind="stable")
        thetas = np.concatenate([thetas[:1], thetas[1:][order[: starts - 1]]])
    solver = solver if solver is not None else optx.LevenbergMarquardt(rtol=1e-5, atol=1e-5)
    if isinstance(solver, optax.GradientTransformation):
        outcome = _run_optax(problem, thetas, solver, max_steps, progress)
        solver_name = f"optax ({max_steps} steps)"
    elif isinstance(solver, optx.AbstractLeastSquaresSolver):
        outcome = _run_least_squares(problem, thetas, solver, max_steps, batch, progress)
        solver_name = type(solver).__name__
    else:
        raise TypeError(f"solver must be an optimistix least-squares solver or an optax optimiser; got {solver!r}")
    return _result(problem, exps, thetas, outcome, solver_name, time.perf_counter() - t_start, card)


def _setup(
    device: AbstractDevice, experiments, free: Sequence[str | Free], **counts
) -> tuple[tuple[Experiment, ...], _Transform, _Problem]:
    """Experiments as a tuple, the transform of the free parameters and the problem; checks the settings."""
    exps = tuple(
        experiment_from(e) if isinstance(e, Dataset) else e
        for e in ((experiments,) if isinstance(experiments, (Experiment, Dataset)) else experiments)
    )
    if not exps or not all(isinstance(e, Experiment) for e in exps):
        raise TypeError("experiments must be one or more imcphys.fit.Experiment (or Dataset)")
    spread = counts.pop("spread")
    for label, value in counts.items():
        least = 0 if label == "candidates" else 1
        if not (isinstance(value, int) and value >= least):
            raise ValueError(f"{label} must be an integer >= {least}; got {value!r}")
    if not spread > 1:
        raise ValueError(f"spread must be > 1; got {spread!r}")
    transform = _make_transform(device, free)
    # strong dtypes throughout: a weakly typed leaf (a parameter set from a Python float) would otherwise make
    # the same problem compile again
    problem = jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, dtype=jnp.result_type(x)) if eqx.is_array(x) else x,
        _Problem(device, tuple(e.core() for e in exps), transform),
    )
    return exps, transform, problem


def _draw_starts(transform: _Transform, p0: np.ndarray, starts: int, spread: float, *, key: PRNGKeyArray) -> np.ndarray:
    """θ of the starts: p0 first, then draws within a factor ``spread`` (log) or ±(spread − 1)·|p0| (linear)."""
    z = np.asarray(jr.uniform(key, (starts - 1, len(p0)), minval=-1.0, maxval=1.0))
    return _spread_starts(transform, p0, z, spread)


def _spread_starts(transform: _Transform, p0: np.ndarray, z: np.ndarray, spread: float) -> np.ndarray:
    """θ of p0 followed by the points p0 moved by ``z`` ∈ [−1, 1]ⁿ (one row per point) times the spread."""
    width = np.where(transform.log, np.log(spread), spread - 1.0)
    u0 = np.where(transform.log, np.log(np.abs(p0)), p0 / np.asarray(transform.scale))
    u = u0 + z * width
    lo, hi = np.asarray(transform.lower), np.asarray(transform.upper)
    # keep draws strictly inside bounds: 1e-3 of the range (or of one unit of u) from each edge
    margin = np.where(np.isfinite(hi - lo), 1e-3 * (hi - lo), 1e-3)
    u = np.clip(u, lo + margin, hi - margin)
    p = np.where(transform.log, np.exp(u), u * np.asarray(transform.scale))
    return np.stack([transform.theta(p0)] + [transform.theta(row) for row in p])


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="start" if "start" in desc else "step",
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
    )


def _run_least_squares(problem, thetas, solver, max_steps, batch, progress) -> _Outcome:
    n = thetas.shape[0]
    size = min(batch, n)
    chunks = []
    with _progress(n, "multi-start (Levenberg-Marquardt)", progress) as bar:
        for k in range(0, n, size):
            chunk = thetas[k : k + size]
            # pad the last chunk with its first start so that every chunk has one shape (one compilation)
            padded = np.concatenate([chunk, np.repeat(chunk[:1], size - len(chunk), axis=0)])
            out = _least_squares_each(problem, *_tiled_data(problem, size), jnp.asarray(padded), solver, max_steps)
            chunks.append(jax.tree_util.tree_map(lambda x: np.asarray(x)[: len(chunk)], out))
            bar.update(len(chunk))
            bar.set_postfix(best_cost=f"{min(_cost(c.residuals).min() for c in chunks):.4g}")
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *chunks)


def _run_optax(problem, thetas, optimizer, steps, progress) -> _Outcome:
    theta = jnp.asarray(thetas)
    state = jax.vmap(optimizer.init)(theta)
    best = (theta, jnp.full(theta.shape[0], jnp.inf))
    chunk = max(1, steps // 20)
    done = 0
    with _progress(steps, "optax", progress) as bar:
        while done < steps:
            k = min(chunk, steps - done)
            theta, state, *best = _descend(problem, theta, state, tuple(best), optimizer, k)
            done += k
            bar.update(k)
            bar.set_postfix(best_cost=f"{float(jnp.min(best[1])):.4g}")
    (f, predictions), (jac, _) = _evaluate(problem, best[0])
    return jax.tree_util.tree_map(
        np.asarray, _Outcome(best[0], f, jac, predictions, jnp.full(theta.shape[0], steps), jnp.isfinite(best[1]))
    )


def _cost(residuals: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # a start far off may overflow: its cost is inf, ranked last
        return 0.5 * np.sum(np.asarray(residuals) ** 2, axis=-1)


class _Uncertainty(NamedTuple):
    values: np.ndarray
    std_errors: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    status: tuple[str, ...]
    dof: int
    s2: float


def _uncertainty(tr: _Transform, theta: np.ndarray, jac: np.ndarray, f: np.ndarray, points: int) -> _Uncertainty:
    """Values, standard errors, covariance, correlations and flags at the optimum θ (module docstring)."""
    pinned = tr.pinned(theta, jac, f)
    active = np.array([p is None for p in pinned])
    dof = points - int(active.sum())
    if dof <= 0:
        raise ValueError(f"{points} data points cannot determine {int(active.sum())} free parameters")
    s2 = float(np.sum(f**2)) / dof
    n = len(theta)
    cov_theta = np.full((n, n), np.nan)
    unconstrained = np.zeros(n, dtype=bool)
    if active.any():
        ja = jac[:, active]
        # scale columns so that the conditioning test compares directions, not parameter units
        norms = np.linalg.norm(ja, axis=0)
        safe = np.where(norms > 0, norms, 1.0)
        u, sv, vt = np.linalg.svd(ja / safe, full_matrices=False)
        null = sv <= 1e-10 * sv.max() if sv.size and sv.max() > 0 else np.ones_like(sv, dtype=bool)
        inv = np.where(null, 0.0, 1.0 / np.where(null, 1.0, sv) ** 2)
        cov_a = (vt.T * inv) @ vt / np.outer(safe, safe) * s2
        # a parameter with a component along a null direction (or a zero column) is not determined at all
        undetermined = (np.abs(vt[null]).max(axis=0) > 1e-6 if null.any() else np.zeros(len(safe), bool)) | (norms == 0)
        cov_a[undetermined, :] = np.nan
        cov_a[:, undetermined] = np.nan
        idx = np.flatnonzero(active)
        cov_theta[np.ix_(idx, idx)] = cov_a
        unconstrained[idx[undetermined]] = True
    values, slope = (np.asarray(x) for x in _transform_at(tr, jnp.asarray(theta))[:2])
    cov = cov_theta * np.outer(slope, slope)
    se = np.sqrt(np.diag(cov))
    se = np.where(unconstrained, np.inf, se)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov_theta / np.sqrt(np.outer(np.diag(cov_theta), np.diag(cov_theta)))
        rel = se / np.abs(values)
    status = tuple(
        "at lower bound"
        if p == "lower"
        else "at upper bound"
        if p == "upper"
        else "unconstrained"
        if (unconstrained[i] or not rel[i] <= 1.0)
        else "ok"
        for i, p in enumerate(pinned)
    )
    return _Uncertainty(values, se, cov, corr, status, dof, s2)


def _result(
    problem: _Problem,
    experiments: tuple[Experiment, ...],
    thetas: np.ndarray,
    out: _Outcome,
    solver: str,
    seconds: float,
    card: Card | None,
) -> FitResult:
    tr = problem.transform
    cost = _cost(out.residuals)
    cost = np.where(np.isfinite(cost), cost, np.inf)
    best = int(np.argmin(cost))
    theta, f, jac = np.asarray(out.theta[best]), np.asarray(out.residuals[best]), np.asarray(out.jacobian[best])
    unc = _uncertainty(tr, theta, jac, f, sum(e.points for e in experiments))
    values, se, cov, corr, status, dof, s2 = unc
    device = replace(problem.device, **{n: values[i] for i, n in enumerate(tr.names)})
    predictions, residuals, rms = [], [], []
    for e, pred in zip(experiments, out.predictions):
        pred = np.asarray(pred[best])
        r = np.asarray(e.residual(jnp.asarray(pred), e.observed))
        mask = np.asarray(e.mask)
        predictions.append(pred)
        residuals.append(np.where(mask, r, np.nan))
        rms.append(float(np.sqrt(np.mean(r[mask] ** 2))))
    with np.errstate(invalid="ignore"):
        reached = 2.0 * (cost - cost[best]) / s2 < 1.0 if s2 > 0 else cost <= cost[best]
    p_start = np.stack([np.asarray(_transform_at(tr, jnp.asarray(t))[0]) for t in thetas])
    p_final = np.stack([np.asarray(_transform_at(tr, jnp.asarray(t))[0]) for t in out.theta])
    starts = Starts(p_start, p_final, cost, np.asarray(out.success), np.asarray(out.steps), reached)
    units = parameter_units(problem.device)
    return FitResult(
        device=device,
        initial_device=problem.device,
        names=tr.names,
        units=tuple(units[n] for n in tr.names),
        values=values,
        std_errors=se,
        covariance=cov,
        correlation=corr,
        status=status,
        experiments=experiments,
        predictions=tuple(predictions),
        residuals=tuple(residuals),
        rms=tuple(rms),
        cost=float(cost[best]),
        dof=dof,
        noise=float(np.sqrt(s2)),
        starts=starts,
        solver=solver,
        seconds=seconds,
        card=card,
    )


def _chunked(fn: Callable[..., PyTree], size: int, *arrays: np.ndarray) -> PyTree:
    """``fn`` over the rows of ``arrays`` in chunks of ``size`` rows (the last one padded with copies of its
    first row, so that every chunk has one shape: one compilation), outputs concatenated as numpy."""
    total = len(arrays[0])
    size = min(size, total)
    outs = []
    for k in range(0, total, size):
        rows = [a[k : k + size] for a in arrays]
        pad = size - len(rows[0])
        rows = [np.concatenate([r, np.repeat(r[:1], pad, axis=0)]) if pad else r for r in rows]
        outs.append(jax.tree_util.tree_map(lambda x: np.asarray(x)[: size - pad], fn(*rows)))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)


def fit_each(
    device: AbstractDevice,
    experiments: Experiment | Sequence[Experiment],
    observed: ArrayLike | Sequence[ArrayLike],
    *,
    free: Sequence[str | Free],
    key: PRNGKeyArray,
    initial: ArrayLike | None = None,
    starts: int = 1,
    candidates: int = 0,
    spread: float = 2.0,
    solver: optx.AbstractLeastSquaresSolver | None = None,
    max_steps: int = 64,
    batch: int | None = None,
    progress: bool = True,
) -> BatchFitResult:
    """Fit the same model to many measurements of the same shape — the cells of a wafer, the devices of an
    array, noise realisations of one measurement — as one vmapped solve (one compilation for all of them).

    ``experiments`` are the template (model, inputs, residual scale); ``observed`` gives, per experiment, the
    measured values with a leading axis over the measurements (shape (m, *experiment.observed.shape)).
    ``initial``: start values [SI] of the free parameters, shape (m, n) or (n,) (default: ``device``'s). Per
    measurement, multi-start as in :func:`fit`: ``candidates`` random points around its start are screened by
    cost and the solver runs from the start and the ``starts − 1`` best; the best optimum is kept. ``batch``
    measurements per vmapped chunk (default: all at once); each fit gets standard errors as in :func:`fit`.
    """
    t_start = time.perf_counter()
    exps, tr, problem = _setup(
        device, experiments, free, starts=starts, candidates=candidates, batch=batch or 1, spread=spread
    )
    obs_list = [observed] if len(exps) == 1 and not isinstance(observed, (list, tuple)) else list(observed)
    if len(obs_list) != len(exps):
        raise ValueError(f"observed must hold one array per experiment ({len(exps)}); got {len(obs_list)}")
    obs = []
    for e, o in zip(exps, obs_list):
        o = np.asarray(o, dtype=float)
        if o.shape[1:] != e.observed.shape:
            raise ValueError(f"{e.name}: observed must have shape (measurements, *{e.observed.shape}); got {o.shape}")
        if not np.all(np.isfinite(o)):
            k = np.argwhere(~np.isfinite(o))[0]
            raise ValueError(
                f"{e.name}: observed values must be finite; measurement {k[0]}, element "
                f"{tuple(int(x) for x in k[1:])} is {o[tuple(k)]!r}"
            )
        obs.append(o)
    m = obs[0].shape[0]
    if any(o.shape[0] != m for o in obs) or m < 1:
        raise ValueError(
            f"every experiment needs the same number (>= 1) of measurements; got {[o.shape[0] for o in obs]}"
        )
    masks = [np.broadcast_to(e.residual.valid(o), o.shape) for e, o in zip(exps, obs)]
    points = sum(mk.reshape(m, -1).sum(axis=1) for mk in masks)
    n = len(tr.names)
    p_start = np.broadcast_to(
        np.asarray(initial if initial is not None else [float(getattr(device, nm)) for nm in tr.names], dtype=float),
        (m, n),
    )
    lo, hi = np.asarray(tr.p_lower), np.asarray(tr.p_upper)
    outside = (p_start <= lo) | (p_start >= hi)
    if np.any(outside):
        i, j = (int(x) for x in np.argwhere(outside)[0])
        raise ValueError(
            f"initial: the start value {p_start[i, j]:g} of {tr.names[j]} (measurement {i}) is outside its allowed "
            f"range ({lo[j]:g}, {hi[j]:g}) {parameter_units(device)[tr.names[j]]}"
        )
    count = max(starts, candidates + 1)
    z = np.asarray(jr.uniform(key, (m, count - 1, n), minval=-1.0, maxval=1.0))
    thetas = np.stack([_spread_starts(tr, p_start[i], z[i], spread) for i in range(m)])  # (m, count, n)
    per_chunk = batch or m
    data_rows = (*obs, *masks)
    k_exp = len(exps)

    def run(fn, *rows):
        data, th = rows[:-1], jnp.asarray(rows[-1])
        return fn(tuple(jnp.asarray(r) for r in data[:k_exp]), tuple(jnp.asarray(r) for r in data[k_exp:]), th)

    if candidates and count > starts:
        with _progress(m * (count - 1), "screening start candidates", progress) as bar:
            cost = _chunked(
                lambda *r: run(lambda o, mk, th: _screen_each(problem, o, mk, th), *r),
                per_chunk,
                *data_rows,
                thetas[:, 1:],
            )
            bar.update(m * (count - 1))
        order = np.argsort(np.where(np.isfinite(cost), cost, np.inf), axis=1, kind="stable")[:, : starts - 1]
        thetas = np.concatenate([thetas[:, :1], np.take_along_axis(thetas[:, 1:], order[..., None], axis=1)], axis=1)
    else:
        thetas = thetas[:, :starts]
    solver = solver if solver is not None else optx.LevenbergMarquardt(rtol=1e-5, atol=1e-5)
    if not isinstance(solver, optx.AbstractLeastSquaresSolver):
        raise TypeError(f"solver must be an optimistix least-squares solver; got {solver!r}")
    # one solve per (measurement, start)
    flat = [np.repeat(r, starts, axis=0) for r in data_rows] + [thetas.reshape(m * starts, n)]
    with _progress(m * starts, "multi-start (Levenberg-Marquardt)", progress) as bar:
        out = _chunked(
            lambda *r: run(lambda o, mk, th: _least_squares_each(problem, o, mk, th, solver, max_steps), *r),
            per_chunk * starts,
            *flat,
        )
        bar.update(m * starts)
    cost = _cost(out.residuals).reshape(m, starts)
    cost = np.where(np.isfinite(cost), cost, np.inf)
    best = np.argmin(cost, axis=1)
    pick = np.arange(m) * starts + best
    rows = [
        _uncertainty(tr, out.theta[i], out.jacobian[i], out.residuals[i], int(points[j])) for j, i in enumerate(pick)
    ]
    s2 = np.array([r.s2 for r in rows])
    with np.errstate(invalid="ignore"):
        reached = (2.0 * (cost - cost[np.arange(m), best][:, None]) / s2[:, None] < 1.0).sum(axis=1)
    units = parameter_units(problem.device)
    return BatchFitResult(
        names=tr.names,
        units=tuple(units[nm] for nm in tr.names),
        values=np.stack([r.values for r in rows]),
        std_errors=np.stack([r.std_errors for r in rows]),
        correlation=np.stack([r.correlation for r in rows]),
        status=tuple(r.status for r in rows),
        initial=np.array(p_start),
        cost=cost[np.arange(m), best],
        noise=np.sqrt(s2),
        dof=np.array([r.dof for r in rows]),
        reached_best=reached,
        starts=starts,
        predictions=tuple(np.asarray(pr)[pick] for pr in out.predictions),
        seconds=time.perf_counter() - t_start,
    )
