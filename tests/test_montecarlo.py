"""Monte Carlo at scale: populations match their specs, runs are bit-identical across chunk sizes and device counts,
a killed run resumes exactly, bad chunk files are recomputed, and errors name what is wrong."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from conftest import REPO, host_devices_process
from typer.testing import CliRunner

import imcphys
import imcphys.cli
from imcphys.montecarlo import (
    ChunkRecomputed,
    MonteCarloResult,
    Output,
    Study,
    bytes_per_cell,
    get_study,
    montecarlo,
    population_key,
)
from imcphys.population import (
    Correlated,
    LogNormal,
    Normal,
    TruncatedNormal,
    Uniform,
    correlation,
    pulse_keys,
    sample,
    specs_from_table,
    summary,
)

CARD = REPO / "devices" / "reram_stanford_v1.toml"
CELLS = 20_000
#: A light configuration of the registered ReRAM study (two corners, 8 steps per pulse): compilation dominates.
OPTIONS = {"temperatures": [298.15, 398.15], "fixed_steps": 8}
SEED = 3


def _run_script(tmp: Path, devices: int, body: str) -> subprocess.Popen:
    """``body`` with ``montecarlo`` imported, in a subprocess with ``devices`` CPU host devices."""
    return host_devices_process(tmp, devices, "from imcphys.montecarlo import montecarlo\n" + textwrap.dedent(body))


def _call(chunk: int, out: Path) -> str:
    return (
        f"montecarlo('reram_pulse_read', card={str(CARD)!r}, cells={CELLS}, key=jax.random.key({SEED}), "
        f"out={str(out)!r}, chunk_cells={chunk}, progress=False, **{OPTIONS!r})\n"
    )


def _assert_identical(a: MonteCarloResult, b: MonteCarloResult) -> None:
    da, db = a.dataset(), b.dataset()
    for name in ("g_set", "g_reset", "bit_errors", "cell"):
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> MonteCarloResult:
    """The reference run, through the CLI: 2e4 cells in chunks of 1e4 on one device."""
    out = tmp_path_factory.mktemp("mc") / "reference"
    args = [
        "mc",
        "--card",
        str(CARD),
        "--study",
        "reram_pulse_read",
        "--cells",
        str(CELLS),
        "--out",
        str(out),
        "--chunk-cells",
        "10000",
        "--seed",
        str(SEED),
        "--no-progress",
        "--set",
        "temperatures=[298.15, 398.15]",
        "--set",
        "fixed_steps=8",
    ]
    result = CliRunner().invoke(imcphys.cli.app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return MonteCarloResult(out)


def test_reference_run_is_complete_and_self_consistent(reference):
    ds = reference.dataset()
    assert ds.sizes == {"cell": CELLS, "temperature": 2}
    np.testing.assert_array_equal(ds["cell"].values, np.arange(CELLS))
    assert ds["temperature"].attrs["units"] == "K" and ds["g_set"].attrs["units"] == "S"
    # the summed counts are exactly the per-cell misreads against the study's reference conductance
    g_ref = reference.manifest["identity"]["settings"]["g_ref_S"]
    misread = (ds["g_set"] < g_ref).sum("cell") + (ds["g_reset"] > g_ref).sum("cell")
    np.testing.assert_array_equal(ds["bit_errors"].values, misread.values)
    np.testing.assert_array_equal(reference.ber().values, misread.values / (2 * CELLS))
    # physics: SET then RESET opens a window of well over a decade in the median cell at every temperature
    assert np.all(ds["g_set"].median("cell") > 10 * ds["g_reset"].median("cell"))


def test_identical_for_chunks_of_1e3_and_1e4(reference, tmp_path):
    run = montecarlo(
        "reram_pulse_read",
        card=CARD,
        cells=CELLS,
        key=jax.random.key(SEED),
        out=tmp_path / "small",
        chunk_cells=1000,
        progress=False,
        **OPTIONS,
    )
    assert run.manifest["chunks"] == 20
    _assert_identical(run, reference)


def test_identical_on_four_host_devices(reference, tmp_path):
    proc = _run_script(tmp_path, 4, _call(10_000, tmp_path / "four"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _assert_identical(MonteCarloResult(tmp_path / "four"), reference)


def test_killed_run_resumes_to_identical_results(reference, tmp_path):
    out = tmp_path / "killed"
    chunks = out / "chunks"
    proc = _run_script(tmp_path, 1, _call(500, out))  # 40 chunks
    deadline = time.monotonic() + 300
    while not (chunks.exists() and len(list(chunks.glob("chunk_*.nc"))) >= 3):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the subprocess wrote no chunks"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()  # reaps it and closes its pipes
    done = len(list(chunks.glob("chunk_*.nc")))
    assert 3 <= done < 40 and not (out / "result.nc").exists()
    with pytest.raises(FileExistsError, match="resume=True"):
        montecarlo(
            "reram_pulse_read",
            card=CARD,
            cells=CELLS,
            key=jax.random.key(SEED),
            out=out,
            chunk_cells=500,
            progress=False,
            **OPTIONS,
        )
    with pytest.raises(ValueError, match="differs in: key"):
        montecarlo(
            "reram_pulse_read",
            card=CARD,
            cells=CELLS,
            key=jax.random.key(SEED + 1),
            out=out,
            chunk_cells=500,
            progress=False,
            resume=True,
            **OPTIONS,
        )
    resumed = montecarlo(
        "reram_pulse_read",
        card=CARD,
        cells=CELLS,
        key=jax.random.key(SEED),
        out=out,
        progress=False,
        resume=True,
        **OPTIONS,
    )  # chunk size taken from the run
    _assert_identical(resumed, reference)


def test_corrupted_and_foreign_chunks_are_recomputed(reference, tmp_path):
    out = tmp_path / "damaged"
    shutil.copytree(reference.path, out)
    (out / "result.nc").unlink()
    first, second = out / "chunks" / "chunk_000000.nc", out / "chunks" / "chunk_000001.nc"
    raw = bytearray(first.read_bytes())
    # flip bytes inside the stored g_set values (found by their bytes), so the file still opens
    values = np.asarray(reference.dataset()["g_set"].values[:4]).tobytes()
    at = raw.find(values)
    assert at > 0
    raw[at : at + 8] = np.float64(1.0).tobytes()
    first.write_bytes(bytes(raw))
    # a chunk of another run (another key) in the place of chunk 1
    other = montecarlo(
        "reram_pulse_read",
        card=CARD,
        cells=CELLS,
        key=jax.random.key(SEED + 1),
        out=tmp_path / "other",
        chunk_cells=10_000,
        progress=False,
        **OPTIONS,
    )
    shutil.copy(other.chunk_files()[1], second)
    with pytest.warns(ChunkRecomputed) as record:
        repaired = montecarlo(
            "reram_pulse_read",
            card=CARD,
            cells=CELLS,
            key=jax.random.key(SEED),
            out=out,
            progress=False,
            resume=True,
            **OPTIONS,
        )
    messages = " | ".join(str(w.message) for w in record)
    assert "checksum" in messages and "another run" in messages
    _assert_identical(repaired, reference)


# ------------------------------------------------------------------------------------------- populations
N_STATS = 200_000


@pytest.fixture(scope="module")
def stats_population():
    dev = imcphys.StanfordReRAM()
    specs = {
        "activation_energy": Normal(std=0.02),
        "gap_decay_length": LogNormal(sigma=0.1),
        "oxide_thickness": TruncatedNormal(std=0.1, lower=11e-9, upper=12.5e-9, relative=True),
        "gamma0": Uniform(half_width=0.05, relative=True),
        "pair": Correlated(
            {"v0": Normal(std=0.02, relative=True), "i0": Normal(std=1e-4)}, corr=[[1.0, -0.6], [-0.6, 1.0]]
        ),
    }
    return dev, specs, sample(dev, specs, N_STATS, key=jax.random.key(11))


def test_population_moments_match_specs(stats_population):
    dev, specs, pop = stats_population
    flat = {
        "activation_energy": specs["activation_energy"],
        "gap_decay_length": specs["gap_decay_length"],
        "oxide_thickness": specs["oxide_thickness"],
        "gamma0": specs["gamma0"],
        **specs["pair"].spreads,
    }
    stats = summary(pop, list(flat))
    for name, spread in flat.items():
        mean, std = (float(x) for x in spread.moments(getattr(dev, name)))
        x = np.asarray(getattr(pop, name))
        kurt = scipy.stats.kurtosis(x, fisher=False)
        # 5 standard errors: of the mean σ/√n, of the std σ·√((κ − 1)/4n)
        assert stats[name]["mean"] == pytest.approx(mean, abs=5 * std / math.sqrt(N_STATS)), name
        assert stats[name]["std"] == pytest.approx(std, abs=5 * std * math.sqrt((kurt - 1) / (4 * N_STATS))), name
    rho = correlation(pop, ["v0", "i0"])[0, 1]
    assert rho == pytest.approx(-0.6, abs=5 * (1 - 0.36) / math.sqrt(N_STATS))
    assert np.all((np.asarray(pop.oxide_thickness) >= 11e-9) & (np.asarray(pop.oxide_thickness) <= 12.5e-9))


def test_spread_moments_agree_with_scipy():
    nominal = 12e-9
    tn = TruncatedNormal(std=1e-9, lower=11e-9, upper=12.5e-9)
    ref = scipy.stats.truncnorm(-1.0, 0.5, loc=nominal, scale=1e-9)
    np.testing.assert_allclose([float(x) for x in tn.moments(nominal)], [ref.mean(), ref.std()], rtol=1e-12)
    ln = scipy.stats.lognorm(0.3, scale=2.0)
    np.testing.assert_allclose([float(x) for x in LogNormal(sigma=0.3).moments(2.0)], [ln.mean(), ln.std()], rtol=1e-12)
    un = scipy.stats.uniform(loc=1.8, scale=0.4)
    np.testing.assert_allclose(
        [float(x) for x in Uniform(half_width=0.1, relative=True).moments(2.0)], [un.mean(), un.std()], rtol=1e-12
    )


def test_cell_draws_do_not_depend_on_population_size(stats_population):
    dev, specs, pop = stats_population
    part = sample(dev, specs, 1000, key=jax.random.key(11), first_cell=5000)
    for name in ("activation_energy", "v0", "i0", "oxide_thickness"):
        np.testing.assert_array_equal(getattr(part, name), np.asarray(getattr(pop, name))[5000:6000])


def test_pulse_keys_are_fresh_per_pulse_and_reproducible():
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(3))
    pk = pulse_keys(keys, 4)
    assert pk.shape == (3, 4)
    draws = np.asarray(jax.vmap(jax.vmap(lambda k: jax.random.normal(k)))(pk))
    assert len(np.unique(draws)) == 12
    np.testing.assert_array_equal(
        draws[1], np.asarray(jax.vmap(lambda k: jax.random.normal(k))(pulse_keys(keys[1:2], 4)[0]))
    )


def test_variability_table_converts_units():
    dev = imcphys.StanfordReRAM()
    specs = specs_from_table(
        dev,
        {
            "activation_energy": {"distribution": "normal", "std": 20, "unit": "meV"},
            "ambient_temperature": {"distribution": "uniform", "half_width": 5, "unit": "degC"},  # a difference
            "oxide_thickness": {"distribution": "truncated_normal", "std": 0.5, "lower": 11, "upper": 13, "unit": "nm"},
            "group": {
                "distribution": "correlated",
                "correlation": [[1, 0.3], [0.3, 1]],
                "parameters": {
                    "v0": {"distribution": "normal", "std": 0.02, "relative": True},
                    "gap_decay_length": {"distribution": "lognormal", "sigma": 0.04},
                },
            },
        },
    )
    assert specs["activation_energy"].std == pytest.approx(0.02, rel=1e-12)
    assert specs["ambient_temperature"].half_width == pytest.approx(5.0, rel=1e-12)
    tn = specs["oxide_thickness"]
    assert (tn.std, tn.lower, tn.upper) == pytest.approx((0.5e-9, 11e-9, 13e-9), rel=1e-12)
    assert list(specs["group"].spreads) == ["v0", "gap_decay_length"]
    card_specs = imcphys.read_card(CARD).variability_specs()
    assert card_specs["activation_energy"].std == pytest.approx(0.02, rel=1e-12)


@pytest.mark.parametrize(
    "table, message",
    [
        ({"nonexistent": {"distribution": "normal", "std": 1, "unit": "V"}}, "no parameter 'nonexistent'"),
        ({"v0": {"distribution": "gaussian", "std": 1, "unit": "V"}}, "unknown distribution 'gaussian'"),
        ({"v0": {"distribution": "normal", "std": 0.1}}, "std need a unit"),
        ({"v0": {"distribution": "normal", "std": 0.1, "unit": "s"}}, "cannot be converted"),
        ({"v0": {"distribution": "normal", "std": -0.1, "unit": "V"}}, "Normal.std"),
        ({"v0": {"distribution": "lognormal", "sigma": 0.1, "unit": "V"}}, "plain fraction"),
        ({"v0": {"distribution": "normal", "sd": 0.1, "unit": "V"}}, r"unknown field\(s\) \['sd'\]"),
        (
            {
                "g": {
                    "distribution": "correlated",
                    "correlation": [[1, 2], [2, 1]],
                    "parameters": {
                        "v0": {"distribution": "normal", "std": 0.1, "unit": "V"},
                        "i0": {"distribution": "normal", "std": 1, "unit": "uA"},
                    },
                }
            },
            "positive definite",
        ),
    ],
)
def test_bad_variability_table_names_the_entry(table, message):
    with pytest.raises(ValueError, match=message) as err:
        specs_from_table(imcphys.StanfordReRAM(), table, where="card.toml: [variability]")
    assert "card.toml: [variability]" in str(err.value)


# ------------------------------------------------------------------------------- errors and custom studies
def _read_study(specs) -> Study:
    """A cheap custom study: each cell's read conductance at g_max, and a count of cells above 9 µS."""
    dev = imcphys.StanfordReRAM()

    def run(pop, keys):
        del keys
        g = jax.vmap(lambda d: d.read(d.gap_max) / d.read_voltage)(pop)
        return {"g_read": g, "high": g > 9e-6}

    return Study(
        "read_only",
        dev,
        specs,
        run,
        {"g_read": Output((), "S", "read conductance"), "high": Output((), "1", "cells above 9 uS", per_cell=False)},
        {},
        {"read_at": "gap_max"},
    )


def test_out_of_range_sample_names_the_cell_and_keeps_finished_chunks(tmp_path):
    specs = {"oxide_thickness": Normal(std=0.25, relative=True)}  # a few cells below gap_max = 1.7 nm
    with pytest.raises(ValueError, match=r"cell (\d+)") as err:  # the run's own population, sampled eagerly
        sample(imcphys.StanfordReRAM(), specs, 20_000, key=population_key(jax.random.key(5)))
    bad = int(err.value.args[0].split("cell ")[1].split(" ")[0])
    assert "oxide_thickness" in str(err.value)
    chunk = 1000
    assert bad >= chunk, "choose a key whose first bad cell is past the first chunk"
    with pytest.raises(ValueError, match=f"cell {bad} ") as run_err:
        montecarlo(
            _read_study(specs),
            cells=20_000,
            key=jax.random.key(5),
            out=tmp_path / "bad",
            chunk_cells=chunk,
            progress=False,
        )
    assert any("resume=True" in note for note in run_err.value.__notes__)
    kept = sorted((tmp_path / "bad" / "chunks").glob("chunk_*.nc"))
    assert len(kept) == bad // chunk  # every chunk before the bad cell's chunk is on disk


def test_custom_study_counts_and_bounded_chunks(tmp_path):
    specs = {"gap_decay_length": LogNormal(sigma=0.1)}
    run = montecarlo(
        _read_study(specs),
        cells=5000,
        key=jax.random.key(2),
        out=tmp_path / "custom",
        memory_budget=2e5,
        progress=False,
    )
    per_cell = 2 * bytes_per_cell(_read_study(specs), jax.random.key(2))
    chunk, largest = run.manifest["identity"]["chunk_cells"], int(2e5 // per_cell)
    # as few chunks as the budget allows, balanced (the last one is not mostly padding)
    assert chunk <= largest and run.manifest["chunks"] == math.ceil(5000 / chunk) == math.ceil(5000 / largest) > 1
    ds = run.dataset()
    assert int(ds["high"]) == int(np.sum(ds["g_read"].values > 9e-6))
    with pytest.raises(ValueError, match="does not define a bit-error rate"):
        run.ber()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"cells": 0}, ValueError, "cells must be an integer >= 1"),
        ({"chunk_cells": 2.5}, ValueError, "chunk_cells must be an integer"),
        ({"memory_budget": -1.0}, ValueError, "memory_budget"),
        ({"key": 3}, ValueError, "key must be a single typed PRNG key"),
        ({"temperatures": [300.0, -5.0]}, ValueError, "temperatures must be finite and in"),
        ({"width": 0.0}, ValueError, "width must be"),
        ({"colour": "red"}, ValueError, "bad options"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, error, message):
    args = {"cells": 100, "key": jax.random.key(0), "out": tmp_path / "x", "card": CARD, "progress": False, **kwargs}
    with pytest.raises(error, match=message):
        montecarlo("reram_pulse_read", **args)


def test_unknown_study_lists_the_registered_ones():
    with pytest.raises(ValueError, match="reram_pulse_read"):
        get_study("no_such_study", card=CARD)
