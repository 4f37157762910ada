"""Monte Carlo beyond one process: kernels without host callbacks (so JAX's persistent compilation cache keeps
them, and a second process loads them), two processes of ``jax.distributed`` on one run, Ctrl-C that saves the
chunk in flight and says how to resume, a progress bar that counts only new work, and ``imcphys mc --list``."""

from __future__ import annotations

import inspect
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from typer.testing import CliRunner

import imcphys.cli
from imcphys._checks import checked_jit
from imcphys.montecarlo import STUDIES, MonteCarloResult, get_study, montecarlo, study_names
from imcphys.montecarlo._runner import _chunk_function, _int
from imcphys.stimulus import Pulse

CARD = REPO / "devices" / "reram_stanford_v1.toml"
CELLS = 4000
CHUNK = 250
OPTIONS = {"temperatures": [298.15, 398.15], "fixed_steps": 8}
SET = ["--set", "temperatures=[298.15, 398.15]", "--set", "fixed_steps=8"]
SEED = 11


def _args(out: Path, cells: int = CELLS) -> list[str]:
    return ["mc", "--card", str(CARD), "--study", "reram_pulse_read", "--cells", str(cells), "--out", str(out)] + [
        "--chunk-cells",
        str(CHUNK),
        "--seed",
        str(SEED),
        *SET,
    ]


def _run(out: Path, cells: int = CELLS, **kwargs) -> MonteCarloResult:
    return montecarlo(
        "reram_pulse_read",
        card=CARD,
        cells=cells,
        key=jax.random.key(SEED),
        out=out,
        chunk_cells=CHUNK,
        **{"progress": False, **OPTIONS, **kwargs},
    )


def _assert_identical(a: MonteCarloResult, b: MonteCarloResult) -> None:
    da, db = a.dataset(), b.dataset()
    for name in ("g_set", "g_reset", "bit_errors", "cell"):
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> MonteCarloResult:
    return _run(tmp_path_factory.mktemp("mc") / "reference")


# --------------------------------------------------------------------------- checks returned as data
def test_checked_kernel_raises_the_check_on_the_host():
    widths = jnp.asarray([1e-9, -1e-9])
    width = checked_jit(lambda w: jax.vmap(lambda x: Pulse(1.0, x).width)(w))
    np.testing.assert_array_equal(width(widths[:1]), widths[:1])
    with pytest.raises(ValueError, match="width must be > 0 s and finite"):
        width(widths)
    # the same check in an ordinary jitted function still raises through equinox (a host callback)
    with pytest.raises(eqx.EquinoxRuntimeError, match="width must be > 0 s and finite"):
        eqx.filter_jit(jax.vmap(lambda x: Pulse(1.0, x).width))(widths)


@pytest.mark.parametrize("name, card", [("reram_pulse_read", "reram_stanford_v1"), ("igzo_retention_ber", None)])
def test_chunk_kernels_hold_no_host_callback(name, card):
    # JAX's persistent compilation cache refuses any executable with a host callback (eqx.error_if is one)
    study = get_study(name, card=card or "igzo_2t0c_li2025", **({"temperatures": [300.0]} if card is None else {}))
    lowered = _chunk_function(study, jax.random.key(0)).lower(np.zeros(8, _int()), np.zeros((), _int()))
    assert "callback" not in lowered.as_text()


# ------------------------------------------------------------------------------ persistent compilation
@pytest.mark.slow
def test_second_process_loads_the_chunk_kernel_from_the_cache(tmp_path):
    env = {**os.environ, "IMCPHYS_COMPILATION_CACHE": str(tmp_path / "cache"), "JAX_LOG_COMPILES": "1"}
    logs = []
    for run in ("cold", "warm"):
        proc = subprocess.run(
            [sys.executable, "-m", "imcphys.cli", *_args(tmp_path / run, cells=1000), "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        logs.append(proc.stderr)
    hit = "Persistent compilation cache hit for 'jit_imcphys_chunk'"
    assert "Finished XLA compilation of jit(imcphys_chunk)" in logs[0] and hit not in logs[0]
    assert hit in logs[1]
    # a kernel loaded from the cache computes the bits of a fresh compilation
    _assert_identical(MonteCarloResult(tmp_path / "warm"), MonteCarloResult(tmp_path / "cold"))


# ---------------------------------------------------------------------------------- jax.distributed
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_jax_distributed_processes_run_one_fresh_run(reference, tmp_path):
    port = _free_port()
    script = tmp_path / "multihost.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.distributed.initialize("127.0.0.1:{port}", num_processes=2, process_id=int(sys.argv[1]))
        from imcphys.montecarlo import montecarlo
        run = montecarlo("reram_pulse_read", card={str(CARD)!r}, cells={CELLS}, key=jax.random.key({SEED}),
                         out={str(tmp_path / "out")!r}, chunk_cells={CHUNK}, progress=False, **{OPTIONS!r})
        print("chunks", run.manifest["chunks"])
        jax.distributed.shutdown()
    """)
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(p)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for p in (0, 1)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert f"chunks {CELLS // CHUNK}" in out
    _assert_identical(MonteCarloResult(tmp_path / "out"), reference)


# --------------------------------------------------------------------------------- feedback on long runs
@pytest.mark.slow
def test_ctrl_c_saves_the_chunk_in_flight_and_prints_the_resume_command(reference, tmp_path):
    out = tmp_path / "interrupted"
    chunks = out / "chunks"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imcphys.cli", *_args(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while len(list(chunks.glob("chunk_*.nc"))) < 2:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run wrote no chunks"
        time.sleep(0.002)
    before = len(list(chunks.glob("chunk_*.nc")))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    saved = len(list(chunks.glob("chunk_*.nc")))
    assert proc.returncode == 130, err
    assert before < saved < CELLS // CHUNK, "the chunk in flight was not saved, or the run did not stop"
    assert f"interrupted: {saved} of {CELLS // CHUNK} chunks saved" in err
    command = shlex.split(err.split("resume with:")[1].strip().splitlines()[0])
    assert command[:2] == ["imcphys", "mc"] and command[-1] == "--resume"
    resumed = CliRunner().invoke(imcphys.cli.app, command[1:])
    assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    _assert_identical(MonteCarloResult(out), reference)


def test_progress_on_resume_starts_at_the_cells_on_disk(reference, tmp_path, capsys):
    out = tmp_path / "half"
    _run(out, cells=CELLS)
    (out / "result.nc").unlink()
    for path in sorted((out / "chunks").glob("chunk_*.nc"))[CELLS // CHUNK // 2 :]:
        path.unlink()
    capsys.readouterr()
    _run(out, cells=CELLS, resume=True, progress=True)
    first = re.split(r"[\r\n]", capsys.readouterr().err.strip())[0]
    # the bar opens at half done, so its rate and time left count only the cells computed now
    assert re.search(r"\b50%\|.*\b2\.00?k/4\.00?k\b", first), first


def test_mc_list_shows_every_study_with_its_options_and_defaults():
    result = CliRunner().invoke(imcphys.cli.app, ["mc", "--list"])
    assert result.exit_code == 0, result.output
    blocks = {block.splitlines()[0]: block for block in result.output.strip().split("\n\n")}
    assert sorted(blocks) == study_names()
    for name, factory in STUDIES.items():
        for p in inspect.signature(factory).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                assert f"{p.name}: " in blocks[name] and f"default {p.default!r}" in blocks[name], (name, p.name)
