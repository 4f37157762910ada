"""PCM Monte Carlo throughput: program + drift + read of 1e6 and 1e7 devices at four read times, imcphys
(PCMStatistical, float32, the cell axis sharded over two JAX CPU devices) against IBM aihwkit's
``PCMLikeNoiseModel`` (torch, float32, two threads) on the same targets, with their statistics compared.

    python benchmarks/pcm_montecarlo.py --out benchmarks [--quick]

Both sides do the same work per device: one programming-noise draw, one ν draw, and at each read time the
drift and one read-noise draw (aihwkit: apply_programming_noise_to_conductance, generate_drift_coefficients,
then apply_drift_noise_to_conductance per read time). Targets are drawn from one seed, noise from another.
aihwkit is an optional extra (``pip install aihwkit==1.1.0 torch==2.13.0``): without it that column is skipped
and the JSON says why. Writes ``<out>/pcm_montecarlo.json``.
"""

from __future__ import annotations

import os

# Two JAX CPU devices (one per core) before jax is imported: JAX runs elementwise work on one core per device.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=2").strip()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import imcphys  # noqa: E402
from imcphys import _random  # noqa: E402

READ_TIMES = (1.0, 3600.0, 86400.0, 365.25 * 86400.0)  # 1 s, 1 h, 1 day, 1 year after programming
LEVELS_US = np.linspace(0.0, 25.0, 8)  # target conductances [µS]
SEED_TARGETS, SEED_NOISE = 1, 2


def targets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Level index and target conductance [µS] of n devices (float32), from their own seed."""
    level = np.random.default_rng(SEED_TARGETS).integers(0, LEVELS_US.size, n)
    return level, LEVELS_US[level].astype(np.float32)


def timed(fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs of ``fn()`` (after one warm-up run) and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ------------------------------------------------------------------------------------------------- imcphys
def imcphys_runner(n: int, g_us: np.ndarray, devices: list):
    model = imcphys.PCMStatistical()
    mesh = jax.sharding.Mesh(np.array(devices), ("cells",))
    sharding = NamedSharding(mesh, PartitionSpec("cells"))
    g = jax.device_put(jnp.asarray(g_us * 1e-6, dtype=jnp.float32), sharding)
    times = jnp.asarray(READ_TIMES, dtype=jnp.float32)[:, None]  # broadcasts: 4 reads of every device

    @jax.jit
    def run(g_target, key):
        k_prog, k_read = jr.split(key)
        state = model.program(g_target, key=k_prog)
        return state.nu, model.conductance(state, times, k_read)

    def call():
        nu, reads = run(g, jr.key(SEED_NOISE))
        return jax.block_until_ready((nu, reads))

    return call


def rng_only(n: int, repeats: int) -> dict:
    """Time of n float32 standard normals: the fused Threefry of imcphys vs jax.random.normal (one device)."""
    fused = jax.jit(lambda k: _random.normals(k, (n,), 1, jnp.float32)[0])
    plain = jax.jit(lambda k: jr.normal(k, (n,), jnp.float32))
    t_fused, _ = timed(lambda: fused(jr.key(0)).block_until_ready(), repeats)
    t_plain, _ = timed(lambda: plain(jr.key(0)).block_until_ready(), repeats)
    return {"normals": n, "imcphys_fused_threefry_s": t_fused, "jax_random_normal_s": t_plain}


# ------------------------------------------------------------------------------------------------- aihwkit
def aihwkit_runner(g_us: np.ndarray):
    import torch
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    torch.set_num_threads(2)
    model = PCMLikeNoiseModel(g_max=25.0)
    g = torch.from_numpy(g_us)

    def call():
        torch.manual_seed(SEED_NOISE)
        g_prog = model.apply_programming_noise_to_conductance(g)
        nu = model.generate_drift_coefficients(g)
        reads = [model.apply_drift_noise_to_conductance(g_prog, nu, t) for t in READ_TIMES]
        return nu.numpy(), np.stack([r.numpy() for r in reads])

    return call


# ---------------------------------------------------------------------------------------------- statistics
def per_level(level: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-level count, mean, std and kurtosis (non-excess) of ``values`` (float64 accumulation)."""
    k = LEVELS_US.size
    v = values.astype(np.float64)
    n = np.bincount(level, minlength=k).astype(np.float64)
    mean = np.bincount(level, v, k) / n
    d = v - mean[level]
    var = np.bincount(level, d * d, k) / n
    m4 = np.bincount(level, d**4, k) / n
    return {"n": n, "mean": mean, "std": np.sqrt(var), "kurtosis": m4 / np.maximum(var, 1e-300) ** 2}


def compare(a: dict, b: dict) -> dict:
    """z-scores of the differences of per-level means and stds between two independent Monte Carlo runs."""
    se_mean = np.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    se_std = np.sqrt(a["std"] ** 2 * (a["kurtosis"] - 1) / (4 * a["n"])
                     + b["std"] ** 2 * (b["kurtosis"] - 1) / (4 * b["n"]))
    z_mean = np.where(se_mean > 0, (a["mean"] - b["mean"]) / np.where(se_mean > 0, se_mean, 1), 0.0)
    z_std = np.where(se_std > 0, (a["std"] - b["std"]) / np.where(se_std > 0, se_std, 1), 0.0)
    return {"z_mean": z_mean.tolist(), "z_std": z_std.tolist()}


def statistics(level, nu, reads) -> dict:
    """Per-level statistics of ν and of the conductance [µS] at each read time."""
    out = {"nu": per_level(level, nu)}
    out.update({f"g_{t:g}s_uS": per_level(level, r) for t, r in zip(READ_TIMES, reads, strict=True)})
    return out


def summary(stats: dict) -> dict:
    return {name: {"mean": s["mean"].tolist(), "std": s["std"].tolist()} for name, s in stats.items()}


# ------------------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--quick", action="store_true", help="1e5 and 1e6 devices, fewer repeats")
    args = parser.parse_args()
    sizes = (100_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    repeats = 2 if args.quick else 3

    try:
        import aihwkit
        import torch

        aihwkit_skip, versions = None, {"aihwkit": aihwkit.__version__, "torch": torch.__version__}
    except ImportError as err:
        aihwkit_skip = f"aihwkit/torch not installed ({err}); pip install aihwkit==1.1.0 torch==2.13.0"
        versions = {}

    result: dict = {
        "read_times_s": list(READ_TIMES), "levels_uS": LEVELS_US.tolist(), "dtype": "float32",
        "work_per_device": "programming noise, nu, then drift + read noise at each of 4 read times",
        "machine": {"python": platform.python_version(), "jax": jax.__version__, **versions,
                    "cpu_count": os.cpu_count(), "jax_devices": [str(d) for d in jax.devices()],
                    "load_average_start": list(os.getloadavg())},
        "aihwkit_skipped": aihwkit_skip, "sizes": {},
    }
    for n in sizes:
        level, g_us = targets(n)
        entry: dict = {"devices": n}
        for name, devs in (("imcphys_2dev", jax.devices()[:2]), ("imcphys_1dev", jax.devices()[:1])):
            t, (nu, reads) = timed(imcphys_runner(n, g_us, devs), repeats)
            entry[f"{name}_s"] = t
            entry[f"{name}_devices_per_s"] = n / t
        ours = statistics(level, np.asarray(nu), np.asarray(reads) * 1e6)
        entry["imcphys_stats"] = summary(ours)
        if aihwkit_skip is None:
            t, (nu_a, reads_a) = timed(aihwkit_runner(g_us), repeats)
            entry["aihwkit_s"] = t
            entry["aihwkit_devices_per_s"] = n / t
            entry["speedup_vs_aihwkit"] = entry["aihwkit_s"] / entry["imcphys_2dev_s"]
            theirs = statistics(level, nu_a, reads_a)
            entry["aihwkit_stats"] = summary(theirs)
            z = {name: compare(ours[name], theirs[name]) for name in ours}
            all_z = np.abs(np.concatenate([np.r_[v["z_mean"], v["z_std"]] for v in z.values()]))
            entry["stats_comparison"] = {"z_scores": z, "max_abs_z": float(all_z.max()),
                                         "n_compared": int(all_z.size),
                                         "n_abs_z_above_3": int(np.sum(all_z > 3))}
        result["sizes"][str(n)] = entry
        line = (f"{n:>9} devices: imcphys {entry['imcphys_2dev_s']:.3f} s (2 dev), "
                f"{entry['imcphys_1dev_s']:.3f} s (1 dev)")
        if aihwkit_skip is None:
            line += (f", aihwkit {entry['aihwkit_s']:.3f} s -> {entry['speedup_vs_aihwkit']:.2f}x; "
                     f"stats max |z| {entry['stats_comparison']['max_abs_z']:.2f}")
        print(line, flush=True)
    result["rng_only"] = rng_only(sizes[-1], repeats)
    result["machine"]["load_average_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "pcm_montecarlo.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
