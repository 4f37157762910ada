"""Test configuration: float64 on (the library never switches it itself), shared helpers."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

# Entry points (the CLI, notebooks, Dask workers) keep compiled kernels in a per-user cache directory: the suite
# points them at one temporary directory for the session (set once, by the controller under pytest-xdist, and
# inherited by its workers and every subprocess), never at the user's home.
if "PYTEST_XDIST_WORKER" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="imcphys-test-jax-cache-")
    os.environ["IMCPHYS_COMPILATION_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def host_devices_process(tmp: Path, devices: int, body: str) -> subprocess.Popen:
    """A Python subprocess with ``devices`` CPU host devices and float64 on, running ``body`` (the host device
    count is fixed when JAX starts, so multi-device tests need their own process)."""
    script = tmp / f"run_{devices}.py"
    script.write_text(
        textwrap.dedent(f"""
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count={devices}"
        import jax
        jax.config.update("jax_enable_x64", True)
        assert jax.device_count() == {devices}
    """)
        + textwrap.dedent(body)
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def central_difference(f, x: float, rel: float = 1e-6, abs_step: float = 1e-9) -> float:
    """(f(x + h) − f(x − h)) / 2h with h = rel·|x| (``abs_step`` when x = 0)."""
    h = rel * abs(x) if x != 0 else abs_step
    return (float(f(x + h)) - float(f(x - h))) / (2 * h)


def run_notebook(name: str, tmp_path: Path, monkeypatch, *, timeout: int = 600) -> str:
    """Execute ``notebooks/<name>`` at its quick sizes (``IMCPHYS_QUICK=1``) in ``tmp_path``; return all it printed."""
    import nbclient
    import nbformat

    monkeypatch.setenv("IMCPHYS_QUICK", "1")
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


# ------------------------------------------------------------- longest files first
#: The test files by measured duration, longest first (the rest follow in their usual order). pytest-xdist hands whole
#: files (``--dist loadfile``) to its workers in collection order: started first, the long ones no longer leave one
#: worker running alone at the end.
_LONGEST_FIRST = (
    "test_family_notebooks.py test_contract.py test_one_t_one_r.py test_fit.py test_fit_families.py test_mram.py "
    "test_reram.py test_flash.py test_igzo_tft.py test_program.py test_igzo.py test_mram_notebook.py "
    "test_ferroelectric.py test_reram_plateau.py test_montecarlo.py test_reram_sky130_notebook.py "
    "test_montecarlo_scale.py test_montecarlo_dask.py test_program_engine.py test_robustness_reram.py"
).split()


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order


# ------------------------------------------------------------- hypothesis example count (the bar: >= 5000 examples)
_HYPOTHESIS_EXAMPLES = {"examples": 0, "tests": 0}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Count the examples every hypothesis test runs (its inner test is wrapped for the duration of the call)."""
    import functools

    handle = getattr(item.obj, "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    if inner is None:
        yield
        return

    @functools.wraps(inner)
    def counted(*args, **kwargs):
        _HYPOTHESIS_EXAMPLES["examples"] += 1
        return inner(*args, **kwargs)

    handle.inner_test = counted
    _HYPOTHESIS_EXAMPLES["tests"] += 1
    try:
        yield
    finally:
        handle.inner_test = inner


def pytest_sessionfinish(session):
    """Under pytest-xdist, a worker hands its count to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["hypothesis_examples"] = dict(_HYPOTHESIS_EXAMPLES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """Under pytest-xdist, the controller adds up the workers' counts."""
    counts = getattr(node, "workeroutput", {}).get("hypothesis_examples", {})
    for k in _HYPOTHESIS_EXAMPLES:
        _HYPOTHESIS_EXAMPLES[k] += counts.get(k, 0)


def pytest_terminal_summary(terminalreporter):
    if _HYPOTHESIS_EXAMPLES["tests"]:
        terminalreporter.write_line(
            f"hypothesis: {_HYPOTHESIS_EXAMPLES['examples']} examples in "
            f"{_HYPOTHESIS_EXAMPLES['tests']} property-based tests"
        )
