"""What an experiment returns (a :class:`Section`), and how a script or the demo runs one."""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np


@dataclasses.dataclass
class Figure:
    path: Path
    caption: str


Comparison = Literal["<", "<=", ">", ">="]
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclasses.dataclass(frozen=True)
class Headline:
    """A claim tested by an experiment: it is met when ``value`` ``comparison`` ``threshold`` holds (both in
    ``unit``). The threshold comes from the claim, never from the result; a value that is not finite (a
    computation that failed) never meets the claim. ``detail`` gives the context a reader needs (other
    conditions, the same figure at another temperature …)."""

    claim: str
    value: float
    comparison: Comparison
    threshold: float
    unit: str  #: unit of value and threshold ("1" for a plain ratio or rate)
    detail: str = ""

    def __post_init__(self):
        if self.comparison not in _COMPARE:
            raise ValueError(f"Headline.comparison must be one of {sorted(_COMPARE)}; got {self.comparison!r}")
        if not math.isfinite(float(self.threshold)):
            raise ValueError(f"Headline.threshold must be finite; got {self.threshold!r} ({self.claim})")
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def met(self) -> bool:
        return math.isfinite(self.value) and bool(_COMPARE[self.comparison](self.value, self.threshold))

    def row(self) -> dict[str, Any]:
        """The headline as a JSON-ready dict (``met`` included)."""
        return {**dataclasses.asdict(self), "met": self.met}


@dataclasses.dataclass
class Section:
    """What a study produced: a title, a paragraph, its numbers (JSON-ready), its figures and the claims it tests
    (:class:`Headline`, gathered into the demo's headline table)."""

    name: str
    title: str
    text: str
    numbers: dict[str, Any]
    figures: list[Figure] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    headlines: list[Headline] = dataclasses.field(default_factory=list)


def jsonable(x: Any) -> Any:
    """Convert numpy/JAX scalars and arrays (recursively) to plain Python for ``json.dump``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        arr = np.asarray(x)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(numbers: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(numbers), indent=2, allow_nan=False))
    return path


def run_study(run: Callable[..., Section], out: Path, *, quick: bool, seed: int = 0) -> Section:
    """Run a study with float64 on, time it, and write ``<out>/<name>.json``."""
    import jax

    jax.config.update("jax_enable_x64", True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    section = run(out, quick=quick, key=jax.random.key(seed))
    section.seconds = time.perf_counter() - t0
    write_json(section.numbers, out / f"{section.name}.json")
    return section


def script(run: Callable[..., Section]) -> None:
    """Command-line entry point for an experiment script: ``--out DIR``, ``--quick``, ``--seed``."""
    import typer

    from ..plot import headless

    headless()

    def main(
        out: Path = typer.Option(Path("out"), help="output directory"),
        quick: bool = typer.Option(False, help="small sizes, for tests and a first look"),
        seed: int = typer.Option(0, help="PRNG seed"),
    ) -> None:
        section = run_study(run, out, quick=quick, seed=seed)
        typer.echo(
            f"{section.title}: wrote {out / (section.name + '.json')} and {len(section.figures)} "
            f"figure(s) in {section.seconds:.1f} s"
        )

    typer.run(main)
