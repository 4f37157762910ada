"""The standard measurements of each family as fit experiments: the family declares them, this dispatches.

A family's class attribute ``measurement_kinds`` maps a kind's name (``"dc"``, ``"vth"``, ``"drift"``,
``"transfer"`` …) to a :class:`~imcphys._experiment.MeasurementKind`: its CSV columns and the builder of its
experiment. A family that declares none gets :data:`~imcphys._experiment.GENERIC_KINDS` (a DC sweep and a pulse
response). ``imcphys fit`` and :func:`measurement` read the kind off the columns when it is not given.
"""

from __future__ import annotations

import inspect
from typing import Any

import equinox as eqx

from .._experiment import GENERIC_KINDS, Experiment, MeasurementKind
from ..data import Dataset


def kinds(device: eqx.Module) -> dict[str, MeasurementKind]:
    """The kinds of measurement ``device``'s family can be fitted to."""
    return dict(getattr(type(device), "measurement_kinds", GENERIC_KINDS))


def infer_kind(data: Dataset, device: eqx.Module) -> str:
    """The kind of measurement of ``device``'s family whose columns ``data`` has."""
    table = kinds(device)
    # the most specific kind whose columns the data have ('t, T, G' is a bake, not a drift trace 't, G')
    found = [
        (max(len(c) for c in k.columns if all(n in data for n in c)), name)
        for name, k in table.items()
        if k.matches(data)
    ]
    if found:
        return max(found, key=lambda x: x[0])[1]
    expected = "; ".join(f"{n}: {' or '.join(', '.join(c) for c in k.columns)}" for n, k in table.items())
    raise ValueError(
        f"{data.source}: cannot tell the kind of measurement from the columns {data.names}; a "
        f"{type(device).__name__} can be fitted to — {expected}"
    )


def measurement(
    kind: str | None, data: Dataset, device: eqx.Module, *, floor: float = 0.0, **options: Any
) -> tuple[eqx.Module, Experiment]:
    """(module to fit, experiment) for ``data`` measured on a device like ``device``.

    ``kind``: a name in the family's ``measurement_kinds`` (None: read off the columns); a column whose unit is
    not of the dimension the kind declares (``MeasurementKind.units``) raises a ``ValueError`` naming the column,
    its unit and the expected one. ``floor`` [A or S]:
    currents or conductances at or below it take no part (log residuals). ``options`` go to the kind's builder
    (e.g. ``initial``: a state name, default the family's; ``fixed_steps``; ``source`` for Flash V_th).
    """
    table = kinds(device)
    family = type(device).__name__
    kind = kind or infer_kind(data, device)
    if kind not in table:
        raise ValueError(f"a {family} cannot be fitted to a {kind!r} measurement; its kinds: {', '.join(table)}")
    spec = table[kind]
    if not spec.matches(data):
        data.require(*spec.columns[0])  # names the missing columns
    unknown = set(options) - {"initial", *spec.options}
    if unknown:
        allowed = ", ".join(("initial", *spec.options))
        raise ValueError(f"unknown option(s) {sorted(unknown)} for a {kind!r} measurement; allowed: {allowed}")
    data.check_units(spec.units, what=f"a {kind!r} measurement of a {family}")
    options.setdefault("initial", _default_initial(device))
    return spec.build(data, device, floor=floor, **options)


def _default_initial(device: eqx.Module) -> str | None:
    """The name of the state ``device.initial_state()`` starts from by default (``"reset"``, ``"erased"`` …):
    named explicitly, a fit shares its compilation with one that names it."""
    fn = getattr(device, "initial_state", None)
    which = inspect.signature(fn).parameters.get("which") if fn is not None else None
    return which.default if which is not None and isinstance(which.default, str) else None
