"""The fast paths behind program-and-verify's throughput: the compacted exact-mode loop gives the same outcome
whatever the block size and the number of lanes (device shards), the fused Threefry normals of fixed-step noise
are standard and independent, and the one-expm1 sinh is accurate with the right derivative.
"""

from __future__ import annotations

import importlib

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import host_devices_process
from scipy import stats

import imcphys
from imcphys._math import safe_sinh
from imcphys._random import key_words, normals_at
from imcphys.device import replace
from imcphys.experiments.optimize_write_verify import hand_tuned_ramp
from imcphys.experiments.reram_stanford import DEMO_SPREAD
from imcphys.population import sample
from imcphys.program import IncrementalAmplitude

prog = importlib.import_module("imcphys.program")  # the module (imcphys.program is also the function)
N = 96


@pytest.fixture(scope="module")
def setup():
    dev = imcphys.StanfordReRAM()
    pop = sample(dev, DEMO_SPREAD, N, key=jr.key(31))
    levels = prog.cell_targets(dev.read(jnp.linspace(1.5e-9, 0.4e-9, 8)), N)
    keys = jr.split(jr.key(32), N)
    return pop, levels, keys


@pytest.mark.parametrize(
    "scheme",
    [
        hand_tuned_ramp(8),
        IncrementalAmplitude(iterations=8, start=1.0, step=0.06, width=20e-9, tolerance=0.2, polarity="reset"),
    ],
    ids=["bidirectional", "ispp_reset"],
)
def test_compacted_exact_loop_matches_the_masked_per_cell_loop(setup, scheme, monkeypatch):
    """Exact mode pulses only the active cells, in blocks, per lane; the straight-through mode runs every cell's
    pulse masked (its forward pass is the exact algorithm). Same pulses and convergence, reads and energies to
    rounding, for blocks smaller than the population and for two lanes (as for a population on two devices)."""
    pop, levels, keys = setup

    def run(mode, lanes, block):
        monkeypatch.setattr(prog, "EXACT_BLOCK", block)  # read at trace time: a fresh jit below
        smooth = prog.Smoothing(verify=0.05, polarity=0.1, clip=0.05, device=0.0) if mode != "exact" else None
        return eqx.filter_jit(
            lambda p, t, k: prog._run(
                p, scheme, t, None, k, smooth, mode=mode, fixed_steps=8, initial="set", lanes=lanes
            )
        )(pop, levels, keys)

    ref = run("straight_through", 1, 1024)
    assert 0 < float(np.mean(ref.pulses)) < scheme.iterations and np.ptp(ref.pulses) >= 3  # cells stop apart
    for lanes, block in [(2, 16)]:  # (1, 1024), the default, is test_program's straight-through == exact test
        rep = run("exact", lanes, block)
        np.testing.assert_array_equal(rep.pulses, ref.pulses)
        np.testing.assert_array_equal(rep.converged, ref.converged)
        np.testing.assert_allclose(rep.read, ref.read, rtol=1e-12)
        np.testing.assert_allclose(rep.energy, ref.energy, rtol=1e-12)
        np.testing.assert_allclose(rep.time, ref.time, rtol=1e-14)


def test_fused_normals_are_standard_independent_and_keyed_by_the_key_data():
    k0, k1 = key_words(jr.key(5))
    assert (int(k0), int(k1)) == tuple(int(w) for w in jr.key_data(jr.key(5)))  # no hashing for Threefry keys
    raw = key_words(jr.PRNGKey(5))
    assert (int(raw[0]), int(raw[1])) == (int(k0), int(k1))
    z = jax.jit(lambda a, b: jnp.stack([normals_at(a, b, (200_000,), s, jnp.float64) for s in (0, 1)]))(k0, k1)
    z = np.asarray(z)
    for row in z:
        assert abs(row.mean()) < 5 / np.sqrt(row.size) and abs(row.std() - 1) < 5 / np.sqrt(2 * row.size)
        assert stats.kstest(row, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z)[0, 1]) < 5 / np.sqrt(z.shape[1])  # streams independent
    # batched key words (as under vmap over cells) give each cell the numbers of its own key
    keys = jr.split(jr.key(6), 4)
    w0, w1 = key_words(keys)
    batched = jax.vmap(lambda a, b: normals_at(a, b, (16,), 0, jnp.float64))(w0, w1)
    single = normals_at(*key_words(keys[2]), (16,), 0, jnp.float64)
    np.testing.assert_array_equal(batched[2], single)


def test_noisy_pulses_spread_like_the_euler_maruyama_noise():
    """Noisy RESET pulses of one cell with many keys: the spread of the final gap grows with the noise amplitude
    δg_0 (zero without noise), and the mean moves by far less than the spread (unbiased increments)."""
    dev = imcphys.StanfordReRAM()
    keys = jr.split(jr.key(7), 4000)
    gap0 = jnp.asarray(0.6e-9)

    def gaps(d):
        return jax.jit(jax.vmap(lambda k: d.pulse(gap0, -1.3, 20e-9, fixed_steps=16, key=k).state))(keys)

    quiet = float(dev.pulse(gap0, -1.3, 20e-9, fixed_steps=16).state)
    small, large = (np.asarray(gaps(replace(dev, gap_noise=x))) for x in (0.01, 0.02))
    assert 0 < small.std() < large.std()
    assert abs(large.mean() - quiet) < 0.2 * large.std()
    assert large.std() / small.std() == pytest.approx(2.0, rel=0.2)  # small noise: spread ∝ δg_0


def test_safe_sinh_accurate_with_cosh_derivative():
    x = np.concatenate([-np.logspace(-300, 2.3, 500), [0.0], np.logspace(-300, 2.3, 500)])
    np.testing.assert_allclose(safe_sinh(jnp.asarray(x)), np.sinh(x), rtol=2e-15, atol=0)
    pts = jnp.asarray([-3.0, -1e-9, 0.0, 1e-9, 2.0, 50.0])
    np.testing.assert_allclose(jax.vmap(jax.grad(safe_sinh))(pts), np.cosh(np.asarray(pts)), rtol=2e-15)
    assert float(safe_sinh(1e4)) == float(safe_sinh(200.0)) and np.isfinite(float(jax.grad(safe_sinh)(1e4)))


def test_population_sharded_over_two_devices_programs_as_on_one(tmp_path):
    """A population whose arrays are split over two (CPU host) devices runs one exact loop per device
    (``program._lanes`` reads the sharding) and gives the single-device outcome. A subprocess, because the host
    device count is fixed when JAX starts."""
    proc = host_devices_process(
        tmp_path,
        2,
        """
        import importlib
        import equinox as eqx
        import jax
        import jax.numpy as jnp
        import jax.random as jr
        import numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        import imcphys
        from imcphys.population import sample
        from imcphys.experiments.reram_stanford import DEMO_SPREAD
        prog = importlib.import_module("imcphys.program")
        n = 64
        dev = imcphys.StanfordReRAM()
        pop = sample(dev, DEMO_SPREAD, n, key=jr.key(31))
        levels = dev.read(jnp.linspace(1.5e-9, 0.4e-9, 8))
        scheme = prog.IncrementalAmplitude(iterations=8, start=1.0, step=0.06, width=20e-9, tolerance=0.2,
                                           polarity="reset")
        cells = NamedSharding(Mesh(np.array(jax.devices()), ("cell",)), PartitionSpec("cell"))
        arrays, static = eqx.partition(pop, eqx.is_array)
        sharded = eqx.combine(jax.tree_util.tree_map(lambda x: jax.device_put(x, cells) if x.ndim else x, arrays),
                              static)
        assert prog._lanes(pop) == 1 and prog._lanes(sharded) == 2
        run = lambda p: prog.program(p, scheme, targets=levels, key=jr.key(32), verify="exact", initial="set",
                                     fixed_steps=8)
        one, two = run(pop), run(sharded)
        assert len(two.read.sharding.device_set) == 2, two.read.sharding
        np.testing.assert_array_equal(np.asarray(two.pulses), np.asarray(one.pulses))
        np.testing.assert_array_equal(np.asarray(two.converged), np.asarray(one.converged))
        np.testing.assert_allclose(np.asarray(two.read), np.asarray(one.read), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(two.energy), np.asarray(one.energy), rtol=1e-12)
        assert 0 < float(np.mean(one.pulses)) < 8 and np.ptp(np.asarray(one.pulses)) >= 2
        print("ok", float(np.mean(one.pulses)))
    """,
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert out.startswith("ok")
