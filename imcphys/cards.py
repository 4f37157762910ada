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
    [spec]               # published specification limits of the device (for checks), kept as written

``status`` says whether a value is ``published``, ``assumed`` (chosen to reach a published behaviour),
``fitted`` or ``default`` (the family's built-in value). A card gives every parameter of its family: one that is
missing is an error naming it, unless the card says ``defaults = "model"`` in its ``[card]`` table — then each
missing parameter takes the family's default, recorded in the provenance with status ``default``.

The cards in the repository's ``devices/`` folder install with the package (as package data, the folder itself:
one source): :func:`load_card` takes a card's name (``"reram_stanford_v1"``) or a path, and a relative path
``devices/<name>.toml`` that does not exist where you are falls back to the embedded card of that name, so
scripts written in a clone also run against an installed wheel. Unit conversion happens here (and in
:mod:`imcphys.data`), nowhere else: the device receives SI values.

A composite device (a cell behind its access transistor) names its parts in a ``[parts]`` table, each either the
path of another card (relative to this card's folder) or an embedded card (a table with its own ``[card]``,
``[parameters]``, ...)::

    [parts]
    cell = "reram_sky130.toml"
    transistor = "nmos_sky130_5v.toml"

A part's family may be any parameter model of :mod:`imcphys.models` (a transistor is not a device).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from .device import AbstractModel, parameter_units
from .models import FAMILIES
from .population import specs_from_table
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
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)  #: the ``[spec]`` table as written
    parts: dict[str, Card] = dataclasses.field(default_factory=dict)  #: the parts of a composite, by field name

    def device(self) -> AbstractModel:
        """Build the device (or, for a part, the model) this card describes."""
        cls = family_class(self.family)
        kwargs = {k: (v.item() if v.ndim == 0 else v) for k, v in self.parameters.items()}
        parts = {name: part.device() for name, part in self.parts.items()}
        return cls(**kwargs, **self.structure, **parts)

    def variability_specs(self) -> dict[str, Any]:
        """The ``[variability]`` table as population specs (widths in SI; see
        :func:`imcphys.population.specs_from_table`); empty when the card has none."""
        return specs_from_table(self.device(), self.variability, where=f"{self.path or 'card'}: [variability]")


def family_class(name: str) -> type[AbstractModel]:
    """The class of family ``name`` (a key of :data:`imcphys.models.FAMILIES`)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown device family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def cards_dir() -> Path:
    """The folder of the embedded parameter cards (the repository's ``devices/``, installed with the package)."""
    return Path(str(importlib.resources.files("imcphys") / "_resources" / "devices"))


def card_names() -> list[str]:
    """Names of the embedded cards (what :func:`load_card` accepts besides a path)."""
    return sorted(p.stem for p in cards_dir().glob("*.toml"))


def card_path(card: str | Path) -> Path:
    """The file of ``card``: an existing path; else an embedded card's name, or a relative ``devices/<name>.toml``
    whose name is an embedded card. Raises ``FileNotFoundError`` naming the embedded cards otherwise."""
    path = Path(card)
    if path.exists():
        return path
    embedded = cards_dir() / f"{path.stem}.toml"
    is_name = path.suffix == "" and len(path.parts) == 1
    in_devices = path.suffix == ".toml" and not path.is_absolute() and path.parent.name in ("devices", "")
    if (is_name or in_devices) and embedded.exists():
        return embedded
    raise FileNotFoundError(f"card not found: {card} (embedded cards: {', '.join(card_names())})")


def read_card(card: str | Path) -> Card:
    """Parse and validate a card (a path or an embedded card's name, see :func:`card_path`); values are converted
    to SI. Errors name the file and the parameter."""
    path = card_path(card)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    return _parse(raw, path, path)


def _parse(raw: dict[str, Any], path: Path, where: str | Path, seen: tuple[Path, ...] = ()) -> Card:
    """A card from its parsed TOML ``raw``; ``path`` is the file it came from (parts are found relative to it),
    ``where`` what errors name, ``seen`` the card files above it (a part that includes itself is an error)."""
    head = raw.get("card", {})
    if "family" not in head:
        raise ValueError(f'{where}: missing [card] family = "..."')
    cls = family_class(head["family"])
    units = {f.name: f.metadata["unit"] for f in dataclasses.fields(cls) if "unit" in f.metadata}
    params, prov = {}, {}
    for name, entry in raw.get("parameters", {}).items():
        here = f"{where}: parameter {name!r}"
        if name not in units:
            raise ValueError(f"{here}: {head['family']} has no such parameter; known: {sorted(units)}")
        if not isinstance(entry, dict) or "value" not in entry or "unit" not in entry:
            raise ValueError(f'{here}: write it as {{ value = ..., unit = "..." }}')
        status = entry.get("status", "published")
        if status not in STATUSES:
            raise ValueError(f"{here}: status must be one of {STATUSES}; got {status!r}")
        value = convert(entry["value"], entry["unit"], units[name], name=here)
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{here}: value must be finite; got {entry['value']!r}")
        params[name] = value
        prov[name] = {
            "unit": entry["unit"],
            "status": status,
            **{k: v for k, v in entry.items() if k not in ("value", "unit", "status")},
        }
    fields = {f.name for f in dataclasses.fields(cls)}
    parts = {}
    for name, entry in raw.get("parts", {}).items():
        here = f"{where}: part {name!r}"
        if name not in fields or name in units:
            raise ValueError(f"{here}: {head['family']} has no such part")
        if isinstance(entry, str):
            part_path = (path.parent / entry).resolve()
            if part_path in seen or part_path == path.resolve():
                raise ValueError(f"{here}: {entry!r} includes itself")
            try:
                part_raw = tomllib.loads(part_path.read_text())
            except FileNotFoundError:
                raise FileNotFoundError(f"{here}: card not found: {part_path}") from None
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{part_path}: not valid TOML ({err})") from None
            parts[name] = _parse(part_raw, part_path, part_path, (*seen, path.resolve()))
        elif isinstance(entry, dict):
            parts[name] = _parse(entry, path, f"{where} [parts.{name}]", seen)
        else:
            raise ValueError(f'{here}: give the path of a card ("cell.toml") or an embedded card table')
    if "defaults" in head and head["defaults"] != "model":
        raise ValueError(f'{path}: [card] defaults must be "model" (or left out); got {head["defaults"]!r}')
    missing = [name for name in units if name not in params]
    if missing and head.get("defaults") != "model":
        raise ValueError(
            f"{where}: missing parameter(s) {missing} of {head['family']}; give each as "
            '{ value = ..., unit = "...", status = "...", source = "..." }, or write defaults = "model" in [card] '
            "to take the family's defaults (recorded in the provenance)"
        )
    for name in missing:
        prov[name] = {"unit": units[name], "status": "default", "source": f"imcphys {head['family']} default"}
    try:
        card = Card(
            head["family"],
            {k: v for k, v in head.items() if k != "family"},
            params,
            prov,
            dict(raw.get("structure", {})),
            dict(raw.get("variability", {})),
            path,
            dict(raw.get("spec", {})),
            parts,
        )
        card.device()  # validates values and relations (raises naming the parameter)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from None
    card.variability_specs()  # validates the [variability] table (raises naming the card and the entry)
    return card


def load_card(card: str | Path) -> AbstractModel:
    """The device (or part model) described by ``card`` — a path, or an embedded card's name such as
    ``"reram_stanford_v1"`` (SI units inside)."""
    return read_card(card).device()


def _to_toml_value(x: np.ndarray) -> float | list:
    # 15 significant digits: drops the round-off of unit conversion (0.25 nm, not 0.24999999999999997 nm)
    rounded = np.vectorize(lambda v: float(f"{v:.15g}"))(x) if x.size else x
    return float(rounded) if x.ndim == 0 else np.asarray(rounded).tolist()


def card_dict(
    device: AbstractModel,
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
    parts = {f.name: getattr(device, f.name) for f in dataclasses.fields(device)}
    parts = {name: part for name, part in parts.items() if isinstance(part, AbstractModel)}
    if parts:  # a composite's parts are written embedded, each with its template's units and provenance
        out["parts"] = {
            name: card_dict(part, template=template.parts.get(name) if template else None)
            for name, part in parts.items()
        }
    if template and template.variability:
        out["variability"] = template.variability
    if template and template.spec:
        out["spec"] = template.spec
    return out


def save_card(device: AbstractModel, path: str | Path, **kwargs: Any) -> Path:
    """Write ``device`` as a card at ``path`` (see :func:`card_dict` for the keyword arguments)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(card_dict(device, **kwargs)))
    return path
