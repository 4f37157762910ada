"""Parameter cards: TOML files of device parameters with units and provenance.

A card names its family and gives every parameter it sets as a value, a unit and where the number comes from::

    [card]
    family = "StanfordReRAM"
    name = "reram_stanford_v1"
    description = "..."
    references = ["..."]

    [parameters]
    gap_decay_length = { value = 0.25, unit = "nm", status = "published", source = "g0 in rram_v_1_0_0.va" }

    [structure]          # static choices (integers, names), passed to the constructor as they are
    [variability]        # device-to-device spread, read by imcphys.population

``status`` says whether a value is ``published``, ``assumed`` (chosen to reach a published behaviour) or
``fitted``. Parameters a card omits keep the family's defaults. Unit conversion happens here (and in
:mod:`imcphys.data`), nowhere else: the device receives SI values.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from . import models
from .device import AbstractDevice, parameter_units
from .units import convert

STATUSES = ("published", "assumed", "fitted", "default")


@dataclasses.dataclass
class Card:
    """A parsed card: the family, its metadata, SI parameter values and their provenance."""

    family: str
    meta: dict[str, Any]
    parameters: dict[str, np.ndarray]  #: SI values
    provenance: dict[str, dict[str, Any]]  #: per parameter: unit (as written), status, source
    structure: dict[str, Any]
    variability: dict[str, Any]
    path: Path | None = None

    def device(self) -> AbstractDevice:
        """Build the device this card describes."""
        cls = family_class(self.family)
        kwargs = {k: (v.item() if v.ndim == 0 else v) for k, v in self.parameters.items()}
        return cls(**kwargs, **self.structure)

    def variability_specs(self) -> dict[str, Any]:
        """The ``[variability]`` table as population specs (widths in SI; see
        :func:`imcphys.population.specs_from_table`); empty when the card has none."""
        from .population import specs_from_table

        return specs_from_table(self.device(), self.variability, where=f"{self.path or 'card'}: [variability]")


def family_class(name: str) -> type[AbstractDevice]:
    """The device class of family ``name`` (a class exported by :mod:`imcphys.models`)."""
    cls = getattr(models, name, None)
    if not (isinstance(cls, type) and issubclass(cls, AbstractDevice)):
        known = sorted(n for n in models.__all__ if issubclass(getattr(models, n), AbstractDevice))
        raise ValueError(f"unknown device family {name!r}; known: {known}")
    return cls


def read_card(path: str | Path) -> Card:
    """Parse and validate a card; values are converted to SI. Errors name the file and the parameter."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"card not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    head = raw.get("card", {})
    if "family" not in head:
        raise ValueError(f'{path}: missing [card] family = "..."')
    cls = family_class(head["family"])
    units = {f.name: f.metadata["unit"] for f in dataclasses.fields(cls) if "unit" in f.metadata}
    params, prov = {}, {}
    for name, entry in raw.get("parameters", {}).items():
        where = f"{path}: parameter {name!r}"
        if name not in units:
            raise ValueError(f"{where}: {head['family']} has no such parameter; known: {sorted(units)}")
        if not isinstance(entry, dict) or "value" not in entry or "unit" not in entry:
            raise ValueError(f'{where}: write it as {{ value = ..., unit = "..." }}')
        status = entry.get("status", "published")
        if status not in STATUSES:
            raise ValueError(f"{where}: status must be one of {STATUSES}; got {status!r}")
        value = convert(entry["value"], entry["unit"], units[name], name=where)
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{where}: value must be finite; got {entry['value']!r}")
        params[name] = value
        prov[name] = {
            "unit": entry["unit"],
            "status": status,
            **{k: v for k, v in entry.items() if k not in ("value", "unit", "status")},
        }
    try:
        card = Card(
            head["family"],
            {k: v for k, v in head.items() if k != "family"},
            params,
            prov,
            dict(raw.get("structure", {})),
            dict(raw.get("variability", {})),
            path,
        )
        card.device()  # validates values and relations (raises naming the parameter)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None
    card.variability_specs()  # validates the [variability] table (raises naming the card and the entry)
    return card


def load_card(path: str | Path) -> AbstractDevice:
    """The device described by the card at ``path`` (SI units inside)."""
    return read_card(path).device()


def _to_toml_value(x: np.ndarray) -> float | list:
    # 15 significant digits: drops the round-off of unit conversion (0.25 nm, not 0.24999999999999997 nm)
    rounded = np.vectorize(lambda v: float(f"{v:.15g}"))(x) if x.size else x
    return float(rounded) if x.ndim == 0 else np.asarray(rounded).tolist()


def card_dict(
    device: AbstractDevice,
    *,
    template: Card | None = None,
    meta: dict[str, Any] | None = None,
    status: dict[str, str] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """The TOML-ready dictionary of a card for ``device``.

    Units and provenance come from ``template`` where it has them (values are converted back to the card's
    units), else SI. ``status`` overrides per-parameter status (e.g. ``"fitted"``); ``extra`` adds fields (e.g.
    standard errors) per parameter.
    """
    status, extra = status or {}, extra or {}
    params = {}
    for name, si_unit in parameter_units(device).items():
        value = np.asarray(getattr(device, name), dtype=float)
        tp = template.provenance.get(name, {}) if template else {}
        unit = tp.get("unit", si_unit)
        entry = {
            "value": _to_toml_value(convert(value, si_unit, unit, name=name)),
            "unit": unit,
            "status": status.get(name, tp.get("status", "default")),
        }
        entry.update({k: v for k, v in tp.items() if k not in ("unit", "status")})
        entry.update(extra.get(name, {}))
        params[name] = entry
    head = {"family": type(device).__name__, **((template.meta if template else {}) | (meta or {}))}
    out: dict[str, Any] = {"card": head, "parameters": params}
    structure = {
        f.name: getattr(device, f.name)
        for f in dataclasses.fields(device)
        if "unit" not in f.metadata and isinstance(getattr(device, f.name), (int, float, str, bool))
    }
    if structure:
        out["structure"] = structure
    if template and template.variability:
        out["variability"] = template.variability
    return out


def save_card(device: AbstractDevice, path: str | Path, **kwargs: Any) -> Path:
    """Write ``device`` as a card at ``path`` (see :func:`card_dict` for the keyword arguments)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(card_dict(device, **kwargs)))
    return path
