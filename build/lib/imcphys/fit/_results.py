"""Fit results: values with standard errors, correlations, residuals, summary table, JSON report, card, plot."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from .._experiment import Experiment, LogAbs
from ..cards import Card, save_card as _save_card
from ..device import AbstractDevice
from ..units import convert


# ------------------------------------------------------------------------------------------------- results
@dataclasses.dataclass
class Starts:
    """What the multi-start did: per start, its start and final values, final cost ½Σr², whether the solver
    reported success, its steps, and whether it reached the best optimum (within the joint 1-σ region:
    2Δcost/s² < 1)."""

    initial: np.ndarray  #: start parameter values [SI], one row per start
    final: np.ndarray  #: parameter values reached [SI]
    cost: np.ndarray
    success: np.ndarray
    steps: np.ndarray
    reached_best: np.ndarray


@dataclasses.dataclass
class FitSummary:
    """The summary table of a fit; ``str()`` / ``repr()`` give it as text."""

    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


@dataclasses.dataclass
class FitResult:
    """A finished fit: the fitted device, values with standard errors, correlations, residuals, and a report.

    ``values``/``std_errors`` are SI (``units``); ``status`` per parameter is ``"ok"``, ``"unconstrained"``,
    ``"at lower bound"`` or ``"at upper bound"``.
    """

    device: AbstractDevice
    initial_device: AbstractDevice
    names: tuple[str, ...]
    units: tuple[str, ...]
    values: np.ndarray
    std_errors: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    status: tuple[str, ...]
    experiments: tuple[Experiment, ...]
    predictions: tuple[np.ndarray, ...]
    residuals: tuple[np.ndarray, ...]  #: per experiment, in the residual unit (NaN where masked)
    rms: tuple[float, ...]  #: rms residual per experiment, in its residual unit
    cost: float  #: ½Σ(r/σ)² at the optimum
    dof: int  #: points − free parameters (not pinned)
    noise: float  #: s = sqrt(Σ(r/σ)²/dof), the residual scale the standard errors are based on
    starts: Starts
    solver: str
    seconds: float
    card: Card | None = None

    # ---------------------------------------------------------------- display units
    def _display(self, i: int, template: Card | None = None) -> tuple[float, float, str]:
        """Value, standard error and unit of parameter i in the unit of ``template`` (default: the fit's card;
        SI without one)."""
        name, si = self.names[i], self.units[i]
        template = template or self.card
        unit = template.provenance.get(name, {}).get("unit", si) if template is not None else si
        value = float(convert(self.values[i], si, unit, name=name))
        se = float(self.std_errors[i])
        if np.isfinite(se):  # a difference, so that offset units (degC) convert correctly
            se = float(convert(self.values[i] + se, si, unit, name=name)) - value
        return value, se, unit

    @property
    def relative_errors(self) -> np.ndarray:
        """std error / |value|."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.std_errors / np.abs(self.values)

    def summary(self) -> FitSummary:
        """Table: value ± standard error, unit, relative error, status; correlations; rms residuals."""
        rows = [("parameter", "value", "± std error", "unit", "rel. err", "status")]
        for i, name in enumerate(self.names):
            value, se, unit = self._display(i)
            rel = self.relative_errors[i]
            rows.append(
                (
                    name,
                    f"{value:.6g}",
                    f"± {se:.3g}" if np.isfinite(se) else "± n/a",
                    unit,
                    f"{100 * rel:.2g} %" if np.isfinite(rel) else "n/a",
                    self.status[i],
                )
            )
        widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        if len(self.names) > 1:
            lines += ["", "correlations:"]
            w = max(len(n) for n in self.names)
            lines.append(" " * (w + 2) + " ".join(f"{k:>6d}" for k in range(len(self.names))))
            for i, n in enumerate(self.names):
                cells = " ".join(f"{c:+6.2f}" if np.isfinite(c) else "   n/a" for c in self.correlation[i])
                lines.append(f"{n:<{w}} {i:d} {cells}")
        lines.append("")
        for e, rms in zip(self.experiments, self.rms):
            lines.append(f"rms residual {_fmt_residual(rms, e.residual.unit)}  ({e.name}, {e.points} points)")
        st = self.starts
        lines.append(
            f"multi-start: {int(st.reached_best.sum())}/{len(st.cost)} starts reached the best optimum; "
            f"solver {self.solver}; {self.seconds:.1f} s"
        )
        return FitSummary("\n".join(lines))

    def report(self) -> dict[str, Any]:
        """The fit as a JSON-ready dictionary (parameters in display units and SI, correlations, rms, starts)."""
        params = []
        for i, name in enumerate(self.names):
            value, se, unit = self._display(i)
            params.append(
                {
                    "name": name,
                    "value": value,
                    "std_error": _finite_or_none(se),
                    "unit": unit,
                    "value_si": float(self.values[i]),
                    "std_error_si": _finite_or_none(self.std_errors[i]),
                    "unit_si": self.units[i],
                    "relative_error": _finite_or_none(self.relative_errors[i]),
                    "status": self.status[i],
                    "start_si": float(getattr(self.initial_device, name)),
                }
            )
        return {
            "parameters": params,
            "correlation": [[_finite_or_none(c) for c in row] for row in self.correlation],
            "experiments": [
                {"name": e.name, "points": e.points, "rms_residual": rms, "residual_unit": e.residual.unit}
                for e, rms in zip(self.experiments, self.rms)
            ],
            "cost": self.cost,
            "dof": self.dof,
            "residual_scale": self.noise,
            "solver": self.solver,
            "seconds": self.seconds,
            "starts": {
                "count": len(self.starts.cost),
                "reached_best": int(self.starts.reached_best.sum()),
                "solver_success": int(self.starts.success.sum()),
                "cost": [_finite_or_none(c) for c in self.starts.cost],
                "steps": [int(s) for s in self.starts.steps],
            },
        }

    def save_report(self, path: str | Path) -> Path:
        """Write :meth:`report` as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.report(), indent=2, allow_nan=False))
        return path

    def save_card(self, path: str | Path, *, template: Card | None = None) -> Path:
        """Write the fitted device as a parameter card: the free parameters get ``status = "fitted"``, their
        ``std_error`` (card unit) and ``fit_status``; the others keep the template's provenance."""
        template = template or self.card
        sources = ", ".join(e.name for e in self.experiments)
        extra = {}
        for i, name in enumerate(self.names):
            _, se, _ = self._display(i, template)
            extra[name] = {
                "std_error": float(f"{se:.4g}") if np.isfinite(se) else "n/a",
                "fit_status": self.status[i],
                "source": f"fitted by imcphys.fit to {sources}",
            }
        return _save_card(self.device, path, template=template, status={n: "fitted" for n in self.names}, extra=extra)

    def plot(self, path: str | Path | None = None):
        """Data and model for every experiment, residuals underneath; saved as PNG at ``path`` if given.
        Returns the matplotlib figure."""
        from .. import plot as P

        n = len(self.experiments)
        fig, axes = P.subplots(2, n, size=(5.0, 2.6), sharex="col", gridspec_kw={"height_ratios": [2.2, 1.0]})
        for j, (e, pred, res) in enumerate(zip(self.experiments, self.predictions, self.residuals)):
            top, bottom = axes[0, j], axes[1, j]
            x, obs = np.asarray(e.x), np.asarray(e.observed)
            mask = np.asarray(e.mask)
            log_y = isinstance(e.residual, LogAbs)
            yd, ym = (np.abs(obs), np.abs(pred)) if log_y else (obs, pred)
            top.plot(x[mask], yd[mask], ".", ms=4, color="0.35", label="data")
            top.plot(*_broken_at_jumps(x, ym), "-", lw=1.2, color="C3", label="model")
            if log_y:
                top.set_yscale("log")
            P.label(top, "", f"|{e.y_label.split(' [')[0]}| [{_unit_of(e.y_label)}]" if log_y else e.y_label, e.name)
            top.legend(fontsize=8)
            scale, unit = (100.0, "%") if e.residual.unit == "1" else (1.0, e.residual.unit)
            bottom.axhline(0.0, color="0.6", lw=0.8)
            bottom.plot(x[mask], scale * res[mask], ".", ms=3, color="C0")
            P.label(bottom, e.x_label, f"residual [{unit}]")
            if e.log_x:
                bottom.set_xscale("log")
        if path is not None:
            fig.savefig(Path(path), dpi=110)
        return fig


def _broken_at_jumps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with NaN inserted where x jumps by more than 5× its typical step both on a linear and on a log
    scale: curves stacked in one experiment (two sweeps, two temperatures) are drawn apart, while a sweep that
    turns back (a hysteresis loop) or a log-spaced time grid stays whole."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.size < 3:
        return x, y

    def jumps(u):
        du = np.abs(np.diff(u))
        return du > 5 * np.median(du[du > 0]) if np.any(du > 0) else np.zeros(du.shape, bool)

    breaks = np.nonzero(jumps(x) & jumps(np.log10(np.abs(x) + 1e-300)))[0] + 1
    return np.insert(x, breaks, np.nan), np.insert(y, breaks, np.nan)


def _unit_of(label: str) -> str:
    return label.split("[", 1)[1].rstrip("]") if "[" in label else "1"


def _fmt_residual(rms: float, unit: str) -> str:
    return f"{100 * rms:.3g} %" if unit == "1" else f"{rms:.3g} {unit}"


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


# ------------------------------------------------------------------------------- many measurements at once
@dataclasses.dataclass
class BatchFitResult:
    """Fits of one model to many measurements of the same shape (:func:`fit_each`): row i of every array is
    measurement i. Values and standard errors are SI (``units``); ``status[i]`` as in :class:`FitResult`."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    values: np.ndarray  #: (measurements, parameters) [SI]
    std_errors: np.ndarray  #: (measurements, parameters) [SI]
    correlation: np.ndarray  #: (measurements, parameters, parameters)
    status: tuple[tuple[str, ...], ...]
    initial: np.ndarray  #: start values of each measurement's fit [SI]
    cost: np.ndarray  #: ½Σ(r/σ)² at each optimum
    noise: np.ndarray  #: residual scale s of each fit
    dof: np.ndarray
    reached_best: np.ndarray  #: per measurement, how many starts reached its best optimum (2Δcost/s² < 1)
    starts: int  #: solver starts per measurement
    predictions: tuple[np.ndarray, ...]  #: per experiment, (measurements, *observed shape)
    seconds: float

    def __len__(self) -> int:
        return len(self.values)

    @property
    def relative_errors(self) -> np.ndarray:
        """std error / |value|, (measurements, parameters)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.std_errors / np.abs(self.values)

    @property
    def ok(self) -> np.ndarray:
        """Measurements whose every parameter has status ``"ok"``."""
        return np.array([all(st == "ok" for st in row) for row in self.status])

    def population(self) -> dict[str, dict[str, float]]:
        """Per parameter, over the fits whose status is ok: ``mean``, ``std`` (of the fitted values, ddof 1),
        ``mean_std_error`` (rms of the reported standard errors) and ``intrinsic_std`` = sqrt(max(std² −
        mean se², 0)), the spread of the devices themselves once the fitting error is taken out (the fitted
        values scatter by both)."""
        v, se = self.values[self.ok], self.std_errors[self.ok]
        out = {}
        for j, name in enumerate(self.names):
            std = float(np.std(v[:, j], ddof=1)) if len(v) > 1 else float("nan")
            mse = float(np.sqrt(np.mean(se[:, j] ** 2))) if len(v) else float("nan")
            out[name] = {
                "mean": float(np.mean(v[:, j])) if len(v) else float("nan"),
                "std": std,
                "mean_std_error": mse,
                "intrinsic_std": float(np.sqrt(max(std**2 - mse**2, 0.0))),
                "fits": int(len(v)),
            }
        return out

    def summary(self) -> FitSummary:
        """Table over the measurements: mean, spread, mean standard error and intrinsic spread per parameter."""
        rows = [("parameter", "mean", "std", "rms std error", "intrinsic std", "unit")]
        for name, unit in zip(self.names, self.units):
            st = self.population()[name]
            rows.append((name, *(f"{st[k]:.4g}" for k in ("mean", "std", "mean_std_error", "intrinsic_std")), unit))
        widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(
            f"{int(self.ok.sum())}/{len(self)} fits ok; {int((self.reached_best >= 1).sum())} reached their "
            f"best optimum from {self.starts} start(s) each; {self.seconds:.1f} s"
        )
        return FitSummary("\n".join(lines))

    def report(self) -> dict[str, Any]:
        """JSON-ready: every fit's values, standard errors and status, and the population statistics."""
        return {
            "names": list(self.names),
            "units": list(self.units),
            "values": [[float(x) for x in row] for row in self.values],
            "std_errors": [[_finite_or_none(x) for x in row] for row in self.std_errors],
            "status": [list(row) for row in self.status],
            "residual_scale": [float(x) for x in self.noise],
            "population": {
                n: {k: _finite_or_none(v) if k != "fits" else v for k, v in st.items()}
                for n, st in self.population().items()
            },
            "seconds": self.seconds,
        }

    def save_report(self, path: str | Path) -> Path:
        """Write :meth:`report` as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.report(), indent=2, allow_nan=False))
        return path
