"""Hand a card to a circuit simulator: the parameter set of the official Verilog-A model of its family.

``imcphys export --card CARD --format verilog-a OUT`` (or :func:`export_card`) writes a Verilog-AMS ``paramset``
for the official model of the card's family — values in that model's own units and under its own parameter names,
each with its provenance as a comment — to be included after the model in a Verilog-AMS netlist (a commented
SPICE instance line with the same values is written too, for simulators without paramsets):

- ``SkyWaterReRAM`` → ``sky130_fd_pr_reram__reram_cell`` (SkyWater open PDK, Apache-2.0);
- ``StanfordReRAM`` → ``rram_v_1_0_0`` (Stanford RRAM model v1.0.0, nanoHUB, doi:10.4231/D37H1DN48).

The models themselves are not shipped (their licences are their authors'). A card whose values the official model
cannot express (a Stanford ``gamma0_reset`` other than the model's fixed 16, a SkyWater ``atom_spacing`` other than
the PDK's fixed 0.25 nm) is refused with the reason; imcphys-only settings (read voltage, the smoothing of the
Stanford field threshold, which the official model applies as a hard step) are listed as comments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .cards import Card, read_card

FORMATS = ("verilog-a",)


@dataclasses.dataclass(frozen=True)
class OfficialModel:
    """How a family maps onto its official Verilog-A model."""

    module: str  #: module name of the official model
    source: str  #: where the official model comes from
    names: dict[str, str]  #: official parameter name -> imcphys parameter name (same unit: SI, energies in eV)
    fixed: dict[str, tuple[str, float]]  #: imcphys parameter -> (official constant's name, its value)
    extra: Callable[[Card], dict[str, tuple[float, str]]]  #: official name -> (value, comment), derived settings
    not_exported: dict[str, str]  #: imcphys parameter -> why the official model has no such parameter


def _stanford_extra(card: Card) -> dict[str, tuple[float, str]]:
    gap_max = float(card.device().gap_max)
    return {
        "model_switch": (0, "0: the deterministic model (1 adds the deltaGap0 cycle-to-cycle variation)"),
        "gap_ini": (gap_max, "initial gap of the instance [m]: gap_max, a RESET cell (set per instance)"),
    }


def _sky130_extra(card: Card) -> dict[str, tuple[float, str]]:
    del card
    return {}


MODELS: dict[str, OfficialModel] = {
    "SkyWaterReRAM": OfficialModel(
        module="sky130_fd_pr_reram__reram_cell",
        source="SkyWater open PDK, google/skywater-pdk-libs-sky130_fd_pr_reram, "
        "cells/reram_cell/sky130_fd_pr_reram__reram_cell.va (Apache-2.0)",
        names={
            "area_ox": "area",
            "Tox": "oxide_thickness",
            "Tfilament_max": "filament_max",
            "Tfilament_min": "filament_min",
            "Tfilament_0": "filament_initial",
            "Eact_generation": "generation_energy",
            "Eact_recombination": "recombination_energy",
            "I_k1": "current_prefactor",
            "Tfilament_ref": "filament_reference",
            "V_ref": "voltage_reference",
            "velocity_k1": "velocity",
            "gamma_k0": "gamma0",
            "gamma_k1": "gamma1",
            "Temperature_0": "ambient_temperature",
            "C_thermal": "thermal_capacitance",
            "tau_thermal": "thermal_time_constant",
        },
        fixed={"atom_spacing": ("a0 (internal)", 0.25e-9)},
        extra=_sky130_extra,
        not_exported={"read_voltage": "imcphys read convention"},
    ),
    "StanfordReRAM": OfficialModel(
        module="rram_v_1_0_0",
        source="Stanford RRAM model v1.0.0, nanoHUB, doi:10.4231/D37H1DN48",
        names={
            "g0": "gap_decay_length",
            "V0": "v0",
            "I0": "i0",
            "Vel0": "gap_velocity",
            "beta": "beta",
            "gamma0": "gamma0",
            "Ea": "activation_energy",
            "a0": "atom_spacing",
            "tox": "oxide_thickness",
            "F_min": "min_field",
            "gap_min": "gap_min",
            "gap_max": "gap_max",
            "T_ini": "ambient_temperature",
            "Rth": "thermal_resistance",
            "deltaGap0": "gap_noise",
            "T_crit": "noise_t_crit",
            "T_smth": "noise_t_smooth",
            "time_step": "noise_time_step",
        },
        fixed={"gamma0_reset": ("gamma_ini for V < 0 (internal)", 16.0)},
        extra=_stanford_extra,
        not_exported={
            "read_voltage": "imcphys read convention",
            "field_threshold_width": "imcphys smooths the F_min threshold; the official model applies a hard step",
        },
    ),
}


def _number(x: float | int) -> str:
    # 15 significant digits drop the round-off of unit conversion (4.9e-09, not 4.900000000000001e-09)
    return str(x) if isinstance(x, int) else repr(float(f"{float(x):.15g}"))


def _provenance(card: Card, name: str) -> str:
    prov = card.provenance.get(name)
    if prov is None:
        return "family default (not on the card)"
    return f"{prov['status']}: {prov.get('source', 'no source given')}"


def official_parameters(card: Card) -> dict[str, float | int]:
    """The official model's parameters for ``card``: official name -> value in the model's units."""
    model = _model(card)
    device = card.device()
    for name, (constant, value) in model.fixed.items():
        if not np.isclose(float(getattr(device, name)), value, rtol=1e-12, atol=0.0):
            raise ValueError(
                f"{card.path}: {name} = {float(getattr(device, name)):g} cannot be exported: {model.module} fixes "
                f"{constant} = {value:g}"
            )
    values = {official: float(getattr(device, ours)) for official, ours in model.names.items()}
    values.update({k: v for k, (v, _) in model.extra(card).items()})
    return values


def _model(card: Card) -> OfficialModel:
    if card.family not in MODELS:
        raise ValueError(
            f"{card.path}: no official Verilog-A model for family {card.family!r}; export supports {sorted(MODELS)}"
            + (" (export the card of the cell in its [parts])" if card.parts else "")
        )
    return MODELS[card.family]


def verilog_a(card: Card) -> str:
    """The text of the ``paramset`` include for ``card`` (see the module docstring)."""
    model = _model(card)
    values = official_parameters(card)
    device = card.device()
    extra = model.extra(card)
    name = str(card.meta.get("name", card.path.stem if card.path else "card"))
    ident = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not (ident[:1].isalpha() or ident[:1] == "_"):
        ident = "p_" + ident
    lines = [
        f"// {model.module} parameters of the imcphys card {card.path or name} ({card.family}: {name})",
        f"// written by imcphys export; the model: {model.source}",
        "// values in the model's own units (SI; energies in eV); provenance after each value",
        f"// include after the model, then instantiate:  {ident} X1 (te, be);",
        f"paramset {ident} {model.module};",
    ]
    for official, ours in model.names.items():
        lines.append(f"  .{official} = {_number(values[official])};  // {ours}, {_provenance(card, ours)}")
    for official, (value, comment) in extra.items():
        lines.append(f"  .{official} = {_number(value)};  // {comment}")
    lines.append("endparamset")
    for ours, (constant, _) in model.fixed.items():
        lines.append(f"// {ours} = {float(getattr(device, ours)):g}: the model's {constant}, not a parameter")
    for ours, why in model.not_exported.items():
        lines.append(f"// not exported: {ours} = {float(getattr(device, ours)):g} ({why})")
    spice = " ".join(f"{k}={_number(v)}" for k, v in values.items())
    lines.append(f"// SPICE instance with the same values:  X1 te be {model.module} {spice}")
    return "\n".join(lines) + "\n"


def export_card(card: str | Path | Card, out: str | Path, *, fmt: str = "verilog-a") -> Path:
    """Write the parameter set of ``card`` (a path or a parsed card) for the official model in format ``fmt``
    (``"verilog-a"``) to ``out``; returns the path written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {list(FORMATS)}")
    card = card if isinstance(card, Card) else read_card(card)
    text = verilog_a(card)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
