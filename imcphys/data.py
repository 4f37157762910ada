"""Measured data from CSV files, with the unit of every column in its header, converted to SI.

A file looks like what a probe station writes::

    # cell07, DC sweep, 2025-03-14          <- comment lines (starting with #) are skipped
    t [s],V [V],I [A]
    0.0,0.0,0.0
    8e-05,0.04,2.1e-07
    ...

Each header is ``name [unit]``, the unit as pint understands it (``uS``, ``nA``, ``ms``, ``degC``; ``1`` for a
dimensionless column). Cells are separated by commas, tabs or semicolons (read off the header line: what a
spreadsheet writes as "CSV", "Text (tab delimited)" or, in locales whose decimal mark is a comma, "CSV" with
semicolons — where a number written ``1,5`` is read as 1.5). The text is UTF-8, with or without the byte-order mark
Excel's "CSV UTF-8" starts with, or UTF-16 with its byte-order mark (Excel's "Unicode text").

:func:`load_csv` converts every column to SI (``G [uS]`` becomes siemens) through
:func:`imcphys.units.convert` and checks what is easy to get wrong. Every error names the file, the row — the
line number in the file as an editor or spreadsheet shows it, the header being row 1 unless comments precede
it — and the column: a missing column, a cell that is empty, not a number, NaN or infinite, a time column that
does not increase, an unknown unit, a header without a unit, a row with the wrong number of cells, an empty
file.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .units import convert, registry

#: SI units a column may be converted to, in order of preference for a given dimensionality.
SI_UNITS = ("s", "V", "A", "S", "ohm", "F", "C", "Hz", "K", "W", "J", "m", "m/s", "V/m", "A/m**2", "dimensionless")

_HEADER = re.compile(r"^\s*(?P<name>.*?)\s*\[(?P<unit>[^\[\]]*)\]\s*$")
#: Column names treated as time (checked to increase strictly) unless ``time=`` says otherwise.
TIME_NAMES = ("t", "time")


#: Names of the dimensions of :data:`SI_UNITS`, for error messages.
_DIMENSION_NAMES = {
    "s": "a time",
    "V": "a voltage",
    "A": "a current",
    "S": "a conductance",
    "ohm": "a resistance",
    "F": "a capacitance",
    "C": "a charge",
    "Hz": "a frequency",
    "K": "a temperature",
    "W": "a power",
    "J": "an energy",
    "m": "a length",
    "m/s": "a velocity",
    "V/m": "an electric field",
    "A/m**2": "a current density",
    "dimensionless": "dimensionless",
}


def dimension_name(unit: str) -> str:
    """What ``unit`` measures, in words (``"uA"`` → ``"a current"``; pint's dimensionality otherwise)."""
    ureg = registry()
    dim = ureg.Quantity(1.0, unit or "dimensionless").dimensionality
    for target, name in _DIMENSION_NAMES.items():
        if ureg.Quantity(1.0, target).dimensionality == dim:
            return name
    return f"of dimension {dim}"


def same_dimension(unit: str, expected: str) -> bool:
    """Whether ``unit`` converts to ``expected`` (``"mA"`` and ``"A"``; ``"degC"`` and ``"K"``)."""
    ureg = registry()
    return (
        ureg.Quantity(1.0, unit or "dimensionless").dimensionality
        == ureg.Quantity(1.0, expected or "dimensionless").dimensionality
    )


def si_unit(unit: str) -> str:
    """The SI unit of the same dimension as ``unit`` (``"uS"`` → ``"S"``, ``"degC"`` → ``"K"``)."""
    ureg = registry()
    dim = ureg.Quantity(1.0, unit or "dimensionless").dimensionality
    for target in SI_UNITS:
        if ureg.Quantity(1.0, target).dimensionality == dim:
            return "1" if target == "dimensionless" else target
    return f"{ureg.Quantity(1.0, unit).to_base_units().units:~}"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Columns of a measurement, in SI units, with where each value came from (for error messages).

    ``data["I"]`` is the column named ``I`` (as a float64 numpy array, SI); ``data.unit("I")`` the unit its
    header gave, ``data.si_units["I"]`` its SI unit, ``data.label("I")`` ``"I [A]"`` for plots.
    """

    columns: dict[str, np.ndarray]  #: name -> SI values
    units: dict[str, str]  #: name -> unit as written in the header
    si_units: dict[str, str]  #: name -> SI unit of the values in ``columns``
    rows: np.ndarray  #: file line number (1-based) of each data row
    path: Path | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        self._known(name)
        return self.columns[name]

    def _known(self, name: str) -> None:
        if name not in self.columns:
            raise KeyError(f"{self.source}: no column {name!r}; columns: {self.names}")

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<in-memory data>"

    def unit(self, name: str) -> str:
        """The unit of column ``name`` as written in the file."""
        self._known(name)
        return self.units[name]

    def label(self, name: str) -> str:
        """``"name [SI unit]"``, an axis label for the column."""
        self._known(name)
        return f"{name} [{self.si_units[name]}]"

    def where(self, name: str, index: int) -> str:
        """``"file, row R, column 'name [unit]'"`` for the value ``self[name][index]`` (error messages)."""
        self._known(name)
        return f"{self.source}, row {int(self.rows[index])}, column '{name} [{self.units[name]}]'"

    def require(self, *names: str) -> None:
        """Raise a ``ValueError`` naming the file and the missing column(s) unless all ``names`` are present."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            header_row = int(self.rows[0]) - 1 if len(self.rows) else 1
            raise ValueError(
                f"{self.source}, row {header_row} (header): missing column(s) "
                f"{', '.join(repr(f'{n} [unit]') for n in missing)}; columns found: {self.names}"
            )

    def check_units(self, expected: Mapping[str, str], *, what: str = "this measurement") -> None:
        """Raise a ``ValueError`` naming the file, the column, its unit and the expected one unless every column
        of ``expected`` (name -> a unit of the dimension it needs, e.g. ``{"I": "A"}``) that the data have is of
        that dimension: a current in parsecs, or V and I swapped, is refused instead of fitted."""
        for name, unit in expected.items():
            if name in self.columns and not same_dimension(self.units[name], unit):
                raise ValueError(
                    f"{self.source}, column '{name} [{self.units[name]}]': {what} needs {name} as "
                    f"{dimension_name(unit)} (a unit like {unit}); got {self.units[name]!r}, "
                    f"{dimension_name(self.units[name])}"
                )

    @classmethod
    def from_arrays(
        cls, columns: Mapping[str, tuple[Sequence[float] | np.ndarray, str]], path: Path | None = None
    ) -> Dataset:
        """A dataset from ``{name: (values, unit)}`` (values in ``unit``, converted to SI like a file's)."""
        cols, units, si = {}, {}, {}
        for name, (values, unit) in columns.items():
            si[name] = si_unit(unit)
            cols[name] = convert(values, unit, si[name], name=name)
            units[name] = unit
        n = {len(v) for v in cols.values()}
        if len(n) > 1:
            raise ValueError(f"columns differ in length: { {k: len(v) for k, v in cols.items()} }")
        return cls(cols, units, si, np.arange(2, 2 + (n.pop() if n else 0)), path)

    def to_csv(self, path: str | Path, units: Mapping[str, str] | None = None) -> Path:
        """Write the dataset as CSV, each column in ``units[name]`` (default: as read) with ``name [unit]``."""
        path = Path(path)
        units = {**self.units, **(units or {})}
        values = [convert(self.columns[n], self.si_units[n], units[n], name=n) for n in self.names]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([f"{n} [{units[n]}]" for n in self.names])
            writer.writerows(zip(*(map(repr, map(float, v)) for v in values)))
        return path


def _parse_header(path: Path, row: int, header: list[str], overrides: Mapping[str, str]) -> list[tuple[str, str]]:
    parsed, seen = [], set()
    for text in header:
        text = text.strip()
        where = f"{path}, row {row} (header), column {text!r}"
        if text in overrides:
            name, unit = text, overrides[text]
        elif (m := _HEADER.match(text)) is not None:
            name, unit = m["name"], m["unit"].strip()
            unit = overrides.get(name, unit)
        elif text:
            raise ValueError(
                f"{where}: no unit in the header; write it as 'name [unit]' ('[1]' for a "
                "dimensionless column) or pass units={...}"
            )
        else:
            raise ValueError(f"{where}: empty column name")
        if not name:
            raise ValueError(f"{where}: empty column name")
        if name in seen:
            raise ValueError(f"{where}: column {name!r} appears twice")
        seen.add(name)
        try:
            convert(1.0, unit, si_unit(unit), name=where)
        except Exception as err:  # pint raises several types for malformed units
            raise ValueError(f"{where}: unknown unit {unit!r} ({err})") from None
        parsed.append((name, unit))
    return parsed


def _decode(path: Path, raw: bytes) -> str:
    """The text of a file: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8 without the mark
    (a mark left in would become part of the first column's name)."""
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 or UTF-16 text ({err}); save it as 'CSV UTF-8'") from None


def _delimiter(header: str) -> str:
    """The cell separator of a file, read off its header line: a tab or a semicolon where the header has one
    and no comma, else a comma."""
    for sep in ("\t", ";"):
        if sep in header and "," not in header:
            return sep
    return ","


#: A number with a decimal comma (``-1,5e-3``), as written in semicolon-separated files.
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*$|^\s*[+-]?\d+,\d*(?:[eE][+-]?\d+)?\s*$")


def _number(cell: str, delimiter: str) -> float:
    """``float(cell)``; in a semicolon-separated file a single decimal comma is read as the decimal mark."""
    if delimiter == ";" and _DECIMAL_COMMA.match(cell):
        cell = cell.replace(",", ".")
    return float(cell)


def load_csv(
    path: str | Path,
    *,
    require: Sequence[str] = (),
    time: str | None = None,
    units: Mapping[str, str] | None = None,
) -> Dataset:
    """Load a CSV file with ``name [unit]`` headers into a :class:`Dataset` of SI columns.

    ``require``: column names that must be present. ``time``: the column that must increase strictly (default:
    a column named ``t`` or ``time`` if there is one). ``units``: units for headers written without one, keyed
    by the full header (``{"f_clk_kHz": "kHz"}``) or overriding a header's unit by column name. Raises
    ``ValueError`` naming the file, row and column of the first problem (``FileNotFoundError`` if there is no
    file).
    """
    path = Path(path)
    overrides = dict(units or {})
    try:
        text = _decode(path, path.read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"data file not found: {path}") from None
    lines = [
        (i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ValueError(f"{path}, row 1: empty file (expected a header such as 't [s],V [V],I [A]')")
    delimiter = _delimiter(lines[0][1])
    reader = csv.reader([line for _, line in lines], delimiter=delimiter)
    header_row, header = lines[0][0], next(reader)
    columns = _parse_header(path, header_row, header, overrides)
    if len(lines) == 1:
        raise ValueError(f"{path}, row {header_row + 1}: no data rows after the header")
    raw = np.empty((len(lines) - 1, len(columns)))
    for k, ((row, _), cells) in enumerate(zip(lines[1:], reader)):
        if len(cells) != len(columns):
            raise ValueError(
                f"{path}, row {row}: {len(cells)} cells but the header has {len(columns)} columns "
                f"({', '.join(h.strip() for h in header)})"
            )
        for j, cell in enumerate(cells):
            where = f"{path}, row {row}, column {header[j].strip()!r}"
            try:
                value = _number(cell, delimiter)
            except ValueError:
                kind = "empty cell" if not cell.strip() else f"not a number: {cell.strip()!r}"
                raise ValueError(f"{where}: {kind}") from None
            if not math.isfinite(value):
                raise ValueError(f"{where}: value {cell.strip()!r} is not finite")
            raw[k, j] = value
    rows = np.array([row for row, _ in lines[1:]])
    out, unit_of, si = {}, {}, {}
    for j, (name, unit) in enumerate(columns):
        si[name] = si_unit(unit)
        with np.errstate(over="ignore"):
            out[name] = convert(raw[:, j], unit, si[name], name=f"{path}, column {header[j].strip()!r}")
        bad = np.flatnonzero(~np.isfinite(out[name]))
        if bad.size:  # e.g. 1e300 parsec: finite as written, beyond float64 in SI
            raise ValueError(
                f"{path}, row {rows[bad[0]]}, column {header[j].strip()!r}: value "
                f"{raw[bad[0], j]!r} {unit} is not finite in SI ({si[name]})"
            )
        unit_of[name] = unit
    data = Dataset(out, unit_of, si, rows, path)
    data.require(*require)
    time = time if time is not None else next((n for n in data.names if n.lower() in TIME_NAMES), None)
    if time is not None:
        t = data[time]
        bad = np.flatnonzero(np.diff(t) <= 0)
        if bad.size:
            k = bad[0] + 1
            col = header[data.names.index(time)].strip()
            raise ValueError(
                f"{path}, row {rows[k]}, column {col!r}: time must increase strictly; "
                f"{raw[k, data.names.index(time)]!r} follows {raw[k - 1, data.names.index(time)]!r} "
                f"(row {rows[k - 1]})"
            )
    return data
