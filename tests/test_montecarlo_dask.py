"""Monte Carlo on a Dask cluster (two local worker processes): the same bits as one process, a killed worker
costs only its chunk, runs resume across engines, and a worker running other code fails at once, writing nothing.

One cluster for the module: each worker imports JAX and compiles the chunk kernel once (tens of seconds here).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import REPO
from distributed import Client, LocalCluster
from typer.testing import CliRunner

import imcphys.cli
from imcphys.montecarlo import MonteCarloResult, VersionMismatch, _runner, montecarlo

CARD = REPO / "devices" / "reram_stanford_v1.toml"
CELLS = 12_000
CHUNK = 250  # 48 chunks: a worker can be killed while most are still to do
#: A light configuration of the registered ReRAM study (two corners, 8 steps per pulse): compilation dominates.
OPTIONS = {"temperatures": [298.15, 398.15], "fixed_steps": 8}
SEED = 7
#: Slow: starting the cluster and compiling the chunk kernel in each worker costs tens of seconds here.
pytestmark = pytest.mark.slow


def _run(out: Path, **kwargs) -> MonteCarloResult:
    return montecarlo(
        "reram_pulse_read",
        card=CARD,
        cells=CELLS,
        key=jax.random.key(SEED),
        out=out,
        chunk_cells=CHUNK,
        progress=False,
        **OPTIONS,
        **kwargs,
    )


def _assert_identical(a: MonteCarloResult, b: MonteCarloResult) -> None:
    da, db = a.dataset(), b.dataset()
    for name in ("g_set", "g_reset", "bit_errors", "cell"):
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> MonteCarloResult:
    """The in-process run of the same key."""
    return _run(tmp_path_factory.mktemp("mc") / "reference")


def test_dask_run_is_bit_identical_to_the_in_process_run(client, reference, tmp_path):
    run = _run(tmp_path / "dask", client=client)
    assert run.manifest["chunks"] == CELLS // CHUNK
    _assert_identical(run, reference)
    # each worker built the chunk kernel once, for all the chunks it computed
    assert sorted(client.run(_runner._kernels_built).values()) == [1, 1]


def test_killed_worker_costs_only_its_chunks(client, reference, tmp_path):
    out = tmp_path / "killed"
    pids = client.run(os.getpid)
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["run"] = _run(out, client=client)
        except BaseException as err:  # noqa: BLE001  (reported by the assertions below)
            result["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 300
    while len(list((out / "chunks").glob("chunk_*.nc"))) < 2:
        assert thread.is_alive() and time.monotonic() < deadline, (
            f"the run wrote no chunks: {result} {sorted(p.name for p in out.rglob('*'))}"
        )
        time.sleep(0.002)
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    done_at_kill = len(list((out / "chunks").glob("chunk_*.nc")))
    thread.join(timeout=600)
    assert "run" in result, f"the run did not finish after a worker was killed: {result}"
    assert done_at_kill < CELLS // CHUNK, "the run had finished before the worker was killed"
    _assert_identical(result["run"], reference)  # type: ignore[arg-type]
    client.wait_for_workers(2, timeout=300)  # the nanny restarts the killed worker for the next tests


def test_resume_across_engines(client, reference, tmp_path):
    # a run in one engine with chunks missing (and no result) is completed by the other, to the same bits
    for name, first, then in (("dask_then_here", {"client": client}, {}), ("here_then_dask", {}, {"client": client})):
        out = tmp_path / name
        _run(out, **first)
        (out / "result.nc").unlink()
        files = sorted((out / "chunks").glob("chunk_*.nc"))
        for path in files[1::2]:
            path.unlink()
        kept = {p: p.stat().st_mtime_ns for p in files[0::2]}
        _assert_identical(_run(out, resume=True, **then), reference)
        assert {p: p.stat().st_mtime_ns for p in kept} == kept, "a chunk on disk was computed again"


def test_version_mismatch_fails_at_once_and_writes_no_chunk(client, tmp_path, monkeypatch):
    # the process starting the run pretends to another imcphys: every worker refuses before touching out
    other = {**_runner._code(), "imcphys": "0.0.0+other"}
    monkeypatch.setattr(_runner, "_code", lambda: other)
    with pytest.raises(VersionMismatch, match="differs in: imcphys") as err:
        _run(tmp_path / "mismatch", client=client)
    assert "resume=True" in " ".join(err.value.__notes__)
    assert list((tmp_path / "mismatch" / "chunks").iterdir()) == []


def test_cli_runs_on_a_scheduler_file(client, reference, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"address": client.scheduler.address}))
    out = tmp_path / "cli"
    args = ["mc", "--card", str(CARD), "--study", "reram_pulse_read", "--cells", str(CELLS), "--out", str(out)]
    args += ["--chunk-cells", str(CHUNK), "--seed", str(SEED), "--no-progress", "--scheduler-file", str(scheduler_file)]
    args += ["--set", "temperatures=[298.15, 398.15]", "--set", "fixed_steps=8"]
    result = CliRunner().invoke(imcphys.cli.app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Dask scheduler" in result.output
    _assert_identical(MonteCarloResult(out), reference)
    shutil.rmtree(out)
