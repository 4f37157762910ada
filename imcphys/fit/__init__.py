r"""Fitting device parameters to measured data, with uncertainties and a report.

``imcphys.fit(device, experiments, free=[...], key=...)`` (this module is callable: it calls :func:`fit`) fits
one device; :func:`fit_each` fits many measurements of one shape at once (one cell per file, a wafer's dies).

A fit is a device, the names of its free parameters, and one or more :class:`Experiment`\ s. An experiment is
*a model function* ``(device, inputs) -> predictions`` together with the measured values and a
:class:`AbstractResidual` that says on which scale to compare them. Nothing here knows a device family:

- :func:`dc_sweep` — a DC I–V sweep: :func:`imcphys.simulate` under the measured voltage waveform (for a
  triangle sweep, the triangle), currents compared as log10|I| (they span decades);
- :func:`trace` — the same for any drive waveform and observable (a constant-voltage stress, a retention
  trace under a hold bias): ``device.observe(state, drive)`` along the trace;
- :func:`pulse_response` — programming pulses one after another (``device.pulse``), ``device.read`` after each;
- ``Experiment(model=my_function, ...)`` — anything else (a closed form, a transfer curve, a pump's output
  versus frequency);
- :func:`measurement` — the experiment of a family's standard measurement from a CSV (its ``measurement_kinds``:
  a Flash V_th staircase, a PCM drift trace, a 2T0C retention trace, a pump's output …).

The free parameters are fitted in an unconstrained coordinate θ: a parameter declared non-negative and positive at
the start on a log scale (u = ln p), others linearly (u = p/|p_start|); bounds through a sigmoid (both) or a
softplus (one), as in jaxley's ``optimize.transforms``. The default solver is Levenberg–Marquardt (``optimistix``),
whose Jacobian comes from forward-mode differentiation through diffrax (``diffrax.ForwardMode``); an ``optax``
optimiser can be passed instead for problems too large or too rough for it. Multi-start: random candidates around
the device's values are screened by their cost (one vmapped forward pass), and the solver runs from the device
itself and the best candidates, ``batch`` starts per ``vmap``-ed chunk, with a progress bar; the best optimum is
kept.

Uncertainty: the covariance of θ is s²(JᵀJ)⁻¹ at the optimum, J the Jacobian of the weighted residuals and s²
= Σr²/(m − n) the residual variance (the noise level is estimated from the fit, as
``scipy.optimize.curve_fit`` does by default), carried to the parameters by the slope of the transform (delta
method). A parameter pinned at a bound (the transform saturated, or the Gauss–Newton step pointing beyond the
bound) is flagged and left out of the covariance; one the data do not determine (relative standard error above
1, or a null direction of J) is flagged ``unconstrained``.

Module layout: ``_transforms`` (free parameters, bounds), ``_solve`` (the least-squares problem and its batched
solvers), ``_core`` (:func:`fit`, :func:`fit_each`), ``_results`` (:class:`FitResult`, :class:`BatchFitResult`),
``_measurements`` (the families' measurement kinds); experiments and residual scales live in
:mod:`imcphys._experiment`, below the device families.
"""

from .._callable import make_callable
from .._experiment import (
    GENERIC_KINDS as GENERIC_KINDS,
    Absolute as Absolute,
    AbstractResidual as AbstractResidual,
    Experiment as Experiment,
    LogAbs as LogAbs,
    MeasurementKind as MeasurementKind,
    Relative as Relative,
    dc_sweep as dc_sweep,
    experiment_from as experiment_from,
    pulse_response as pulse_response,
    trace as trace,
)
from ._core import fit as fit, fit_each as fit_each
from ._measurements import infer_kind as infer_kind, kinds as kinds, measurement as measurement
from ._results import (
    BatchFitResult as BatchFitResult,
    FitResult as FitResult,
    FitSummary as FitSummary,
    Starts as Starts,
)
from ._transforms import Free as Free, parse_free as parse_free

make_callable(__name__)
