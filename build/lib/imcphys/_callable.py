"""Modules that are also their main function.

``imcphys.fit``, ``imcphys.simulate``, ``imcphys.program`` and ``imcphys.montecarlo`` are modules (their results,
options and helpers are names in them: ``imcphys.fit.FitResult``, ``import imcphys.montecarlo as mc``) and calling
one calls its function of the same name: ``imcphys.fit(device, data, free=[...])`` is
``imcphys.fit.fit(device, data, free=[...])``. So no function shadows a module, and both spellings work.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any


class CallableModule(types.ModuleType):
    """A module whose call is its function of the same name (``__call_target__``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__call_target__(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the (already executed) module ``module_name`` callable as its function of the same name; signature
    and ``inspect``/``help`` follow the function."""
    module = sys.modules[module_name]
    target = getattr(module, module_name.rsplit(".", 1)[-1])
    module.__class__ = CallableModule
    module.__call_target__ = target
    module.__signature__ = inspect.signature(target)
