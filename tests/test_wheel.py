"""The built wheel carries the embedded cards: built from this tree, installed into a fresh virtual environment
outside the repository, it runs ``imcphys demo`` and loads cards by name (no source tree beside it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(args, **kwargs):
    out = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{args}\n{out.stdout}\n{out.stderr}"
    return out


def test_wheel_installs_cards_and_runs_the_demo_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    # built from a copy of the tree (symlinks kept), so that the build leaves nothing behind in the repository
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "demo-*")
    shutil.copytree(REPO, source, symlinks=True, ignore=skip)
    # no build isolation: the build backend (setuptools, wheel) comes from the test environment, so no network
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
        ]
    )
    (wheel,) = wheels.glob("imcphys-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # the fresh environment gets the wheel itself; its dependencies (jax …) are seen through a .pth line to this
    # environment's site-packages, which does not activate this environment's editable install of imcphys
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)])
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IMCPHYS_SHARED_DATA")}
    check = (
        "import imcphys; "
        f"assert 'site-packages' in imcphys.__file__ and {str(REPO)!r} not in imcphys.__file__, imcphys.__file__; "
        "print(len(imcphys.card_names()), type(imcphys.load_card('reram_stanford_v1')).__name__, "
        "type(imcphys.load_card('devices/flash_fg.toml')).__name__)"
    )
    out = _run([str(python), "-c", check], cwd=work, env=env).stdout.split()
    assert int(out[0]) == len(list((REPO / "devices").glob("*.toml"))) and out[1:] == [
        "StanfordReRAM",
        "FloatingGateCell",
    ]
    demo = _run(
        [str(venv / "bin" / "imcphys"), "demo", "--out", "report", "--section", "montecarlo_tour"], cwd=work, env=env
    )
    assert "wrote" in demo.stdout
    assert (work / "report" / "index.html").exists() and (work / "report" / "montecarlo_tour.json").exists()
