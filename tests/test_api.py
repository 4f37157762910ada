"""The public API: every public submodule imports as itself, no function shadows a module, the names of earlier
releases' public calls keep working, and the generic pulse solver is not a public way to wrong physics."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types
import warnings

import pytest

import imcphys

PUBLIC_MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(imcphys.__path__, "imcphys.")
    if not any(part.startswith("_") for part in m.name.split("."))
)


def test_public_modules_are_listed():
    for name in ("imcphys.fit", "imcphys.montecarlo", "imcphys.simulate", "imcphys.program", "imcphys.models.flash"):
        assert name in PUBLIC_MODULES


def test_import_as_binds_the_module():
    # `import a.b as m` binds the attribute b of a: it must be the module itself, never a function of that name
    # (one fresh interpreter: nothing imported before)
    lines = [
        f"import {n} as m; assert isinstance(m, types.ModuleType) and m.__name__ == {n!r}, {n!r}"
        for n in PUBLIC_MODULES
    ]
    code = "import types\n" + "\n".join(lines) + "\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_submodule_names_and_callable_modules():
    import imcphys.fit as f
    import imcphys.montecarlo as mc

    assert f.FitResult is imcphys.FitResult and mc.MonteCarloResult is imcphys.MonteCarloResult
    for module, function in (
        (imcphys.fit, imcphys.fit.fit),
        (imcphys.montecarlo, imcphys.montecarlo.montecarlo),
        (imcphys.simulate, imcphys.simulate.simulate),
        (imcphys.program, imcphys.program.program),
    ):
        assert isinstance(module, types.ModuleType) and callable(module)
        assert inspect.signature(module) == inspect.signature(function)
    for package in (imcphys, imcphys.fit, imcphys.montecarlo, imcphys.models):
        for attr in dir(package):
            value = getattr(package, attr)
            sub = sys.modules.get(f"{package.__name__}.{attr}")
            if sub is not None:  # a name that is also a submodule must be that submodule
                assert value is sub, f"{package.__name__}.{attr} shadows its submodule"


def test_top_level_is_deliberate():
    names = {n for n in dir(imcphys) if not n.startswith("_")}
    for stray in ("Path", "Output", "Study", "trace", "Free", "Optimized", "pulse", "solve_pulse"):
        assert stray not in names
    # the public calls users and outside checks rely on
    for name in (
        "fit",
        "fit_each",
        "montecarlo",
        "MonteCarloResult",
        "StanfordReRAM",
        "PCMStatistical",
        "PCMCell",
        "apply_pulse",
        "simulate",
        "solve_crossbar",
        "load_card",
        "load_csv",
        "replace",
        "program",
        "optimize_scheme",
    ):
        assert name in names, name
    assert imcphys.fit.Free and imcphys.montecarlo.Study and imcphys.program.Optimized and imcphys.stimulus.pulse


def test_no_public_solve_pulse_and_pulses_go_through_the_family():
    assert not hasattr(imcphys, "solve_pulse") and not hasattr(imcphys.simulate, "solve_pulse")
    # apply_pulse drives a family through its own pulse: a PCMCell amplitude is a current, not a temperature
    cell = imcphys.PCMCell()
    reset = cell.initial_state("reset")
    set_ = imcphys.apply_pulse(cell, reset, 80e-6, 1e-6)
    assert float(cell.read(set_)) > 10 * float(cell.read(reset))


def test_no_import_circles():
    """Every module imports on its own in a fresh interpreter, in any order (a circle shows up as an ImportError
    for some entry point)."""
    code = "; ".join(f"importlib.import_module({n!r})" for n in reversed(PUBLIC_MODULES))
    out = subprocess.run([sys.executable, "-c", f"import importlib; {code}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_cards_by_name_or_path_and_old_study_name():
    assert "reram_stanford_v1" in imcphys.card_names()
    by_name = imcphys.load_card("reram_stanford_v1")
    by_path = imcphys.load_card(imcphys.cards_dir() / "reram_stanford_v1.toml")
    assert isinstance(by_name, imcphys.StanfordReRAM) and float(by_name.i0) == float(by_path.i0)
    with pytest.raises(FileNotFoundError, match="embedded cards: .*reram_stanford_v1"):
        imcphys.load_card("no_such_card")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = imcphys.get_study("flash_ispp", card="flash_fg")
    assert study.name == "flash_ispp_population" and caught[0].category is DeprecationWarning


def test_every_module_is_importable_directly():
    for name in PUBLIC_MODULES:
        assert importlib.import_module(name).__name__ == name


def test_experiments_have_one_name_each():
    """module imcphys.experiments.<name> = section <name> = script experiments/<name>.py = <name>.json."""
    import ast
    from pathlib import Path

    from imcphys.experiments import EXPERIMENTS

    repo = Path(__file__).resolve().parents[1]
    scripts = {p.stem for p in (repo / "experiments").glob("*.py")}
    assert scripts == set(EXPERIMENTS), scripts ^ set(EXPERIMENTS)
    for name, module in EXPERIMENTS.items():
        assert f"script({name}.run)" in (repo / "experiments" / f"{name}.py").read_text()
        tree = ast.parse(Path(module.__file__).read_text())
        sections = {
            node.args[0].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "Section"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        }
        assert sections == {name}, (name, sections)
