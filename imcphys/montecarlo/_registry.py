"""Studies by name: the built-in table (:data:`imcphys.montecarlo.studies.STUDIES`) and the user's own."""

from __future__ import annotations

import inspect
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cards import Card, read_card
from ._study import Study
from .studies import ALIASES, STUDIES

#: ``factory(card: Card, **options) -> Study``.
StudyFactory = Callable[..., Study]
#: Studies registered at run time (:func:`register_study`), beside the built-in :data:`STUDIES`.
_REGISTERED: dict[str, StudyFactory] = {}


def register_study(name: str) -> Callable[[StudyFactory], StudyFactory]:
    """Decorator: register ``factory(card: Card, **options) -> Study`` under ``name``, so that
    :func:`imcphys.montecarlo` and ``imcphys mc --study NAME`` find it (a built-in name cannot be taken)."""

    def deco(factory: StudyFactory) -> StudyFactory:
        taken = STUDIES.get(name) or _REGISTERED.get(name)
        if (taken is not None and taken is not factory) or name in ALIASES:
            raise ValueError(f"a Monte Carlo study named {name!r} is already registered")
        _REGISTERED[name] = factory
        return factory

    return deco


def study_names() -> list[str]:
    """Names of the built-in and registered studies."""
    return sorted({**STUDIES, **_REGISTERED})


def get_study(name: str, *, card: Card | str | Path, **options: Any) -> Study:
    """The study ``name`` built from ``card`` (a card name, a path or a parsed :class:`Card`) and its options."""
    if name in ALIASES:
        warnings.warn(
            f"the Monte Carlo study {name!r} is now called {ALIASES[name]!r}", DeprecationWarning, stacklevel=2
        )
        name = ALIASES[name]
    factories = {**STUDIES, **_REGISTERED}
    if name not in factories:
        raise ValueError(f"unknown Monte Carlo study {name!r}; known: {study_names()}")
    card = card if isinstance(card, Card) else read_card(card)
    try:
        return factories[name](card, **options)
    except TypeError as err:
        raise ValueError(f"study {name!r}: bad options {sorted(options)} ({err})") from None


def describe_study(name: str) -> str:
    """``name``, its description (the factory's docstring) and its options with their defaults (the factory's
    keyword arguments): what ``imcphys mc --list`` prints."""
    factories = {**STUDIES, **_REGISTERED}
    if name not in factories:
        raise ValueError(f"unknown Monte Carlo study {name!r}; known: {study_names()}")
    factory = factories[name]
    lines = [name]
    doc = inspect.getdoc(factory) or ""
    lines += [textwrap.indent(textwrap.fill(" ".join(p.split()), 100), "    ") for p in doc.split("\n\n") if p.strip()]
    options = [p for p in inspect.signature(factory).parameters.values() if p.kind is p.KEYWORD_ONLY]
    if options:
        lines.append("    options (--set NAME=VALUE, JSON values):")
    for p in options:
        annotation = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        default = "required" if p.default is p.empty else f"default {p.default!r}"
        lines.append(f"      {p.name}: {annotation} ({default})")
    return "\n".join(lines)
