"""Unit conversion at the library's boundaries (cards and measured data), through pint.

Inside the library every number is SI (energies per particle in eV, where a field's unit says so).
"""

from __future__ import annotations

import functools

import numpy as np
import pint


@functools.cache
def registry() -> pint.UnitRegistry:
    ureg = pint.UnitRegistry()
    ureg.define("Ohm = ohm")  # the spelling in most data-sheet headers
    return ureg


def convert(value, unit: str, target: str, *, name: str = "value") -> np.ndarray:
    """``value`` in ``unit`` expressed in ``target`` (e.g. ``convert(25, "uS", "S")``).

    Raises ``ValueError`` naming ``name`` for an unknown unit or one of the wrong dimension.
    """
    ureg = registry()
    try:
        q = ureg.Quantity(np.asarray(value, dtype=float), unit or "dimensionless")
    except (pint.errors.UndefinedUnitError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{name}: unknown unit {unit!r} ({err})") from None
    try:
        return np.asarray(q.to(target or "dimensionless").magnitude, dtype=float)
    except pint.errors.DimensionalityError:
        raise ValueError(f"{name}: unit {unit!r} cannot be converted to {target!r}") from None
