"""Monte Carlo over millions of cells: chunked to a memory budget, resumable, with progress, sharded over devices.

``imcphys.montecarlo(study, card=..., cells=..., out=..., key=...)`` (this module is callable: it calls
:func:`montecarlo`) runs a study and returns a :class:`MonteCarloResult`.

How a run is laid out::

    key ─┬─ fold_in(key, 0): parameters of cell i from fold_in(·, i)      (population.sample_cells)
         └─ fold_in(key, 1): noise key of cell i, fold_in(·, i)            (population.cell_keys)
    chunk c = cells [c·C, (c+1)·C), laid out with NamedSharding over a 1-D mesh "cell" of every local device
    ──▶ on each device, its shard:  study.run(population, keys) → per-cell outputs and integer counts
    ──▶ sampled parameters checked ──▶ OUT/chunks/chunk_000c.nc written atomically (checksum, run fingerprint)
        (in a writer thread, while chunk c + 1 computes)
    ──▶ OUT/result.nc: counts summed over chunks, coordinates, the run's settings

Throughput: the chunk files are netCDF-4 written with h5py directly (milliseconds each), and checking and writing
chunk c overlaps computing chunk c + 1, so the runner runs at the speed of its kernel once a chunk takes longer
to compute than to write (measured: 0.67 of a fused-kernel ceiling in chunks of 5e4 cells, as fast as the bare
study kernel; 0.42 in chunks of 5e3 cells, where the files cost about as much as the cells).

Every random number of cell i comes from (key, i) alone, and every per-cell output is computed elementwise over
cells; integer counts add exactly. So the results are bit-identical whatever the chunk size or the number of
devices, and a run killed at any point resumes (``resume=True``) to the numbers an uninterrupted run gives.
A chunk file whose checksum, fingerprint or cell range does not match is recomputed, never used.

A study is a pure function of (population, per-cell keys) plus labels for its outputs (:class:`Study`); the
built-in studies are listed by name in :data:`imcphys.montecarlo.studies.STUDIES` and users add their own with
:func:`register_study`, so the CLI can run them from a card:
``imcphys mc --card CARD.toml --study NAME --cells N --out DIR [--resume]``.

Beyond one process (the same chunks, files and bits; a run started one way resumes another way):

- Dask (``pip install imcphys[cluster]``): ``montecarlo(..., client=distributed.Client(...))``, an address or a
  scheduler file; ``imcphys mc ... --scheduler ADDR | --scheduler-file PATH``. Each chunk is a task; a worker checks
  its code against the run's before touching ``out``, reuses a valid chunk file, or computes the chunk and writes
  it, returning only the counts (:mod:`._dask`).
- ``jax.distributed``: call ``jax.distributed.initialize()`` in every process, then the same ``montecarlo(...)``
  call in each, with ``out`` on a file system all processes share. Process 0 decides the run and writes
  ``run.json`` before any other process reads it (the others take the chunk size from it and check that they would
  compute the same run); process p computes chunks c ≡ p (mod process count) on its own devices (no traffic between
  hosts: chunks are independent); an error in any process is raised in all of them; process 0 writes
  ``result.nc``. Tested with two processes on 127.0.0.1.

A first Ctrl-C lets the chunk in flight finish and be saved before the run stops (``imcphys mc`` then prints the
command that resumes it). The chunk kernel returns its runtime checks as data (no host callback), so JAX's
persistent compilation cache (:func:`imcphys.enable_compilation_cache`) keeps it between processes.

Module layout: ``_study`` (:class:`Study`, :class:`Output`, keys), ``_registry`` (studies by name), ``_runner``
(:func:`montecarlo`: in this process and under ``jax.distributed``), ``_dask`` (chunks as Dask tasks), ``_files``
(chunk files), ``_result`` (:class:`MonteCarloResult`), ``studies/`` (the built-in studies,
one module per family).
"""

from .._callable import make_callable
from ._dask import VersionMismatch as VersionMismatch
from ._files import ChunkRecomputed as ChunkRecomputed
from ._registry import get_study as get_study, register_study as register_study, study_names as study_names
from ._result import MonteCarloResult as MonteCarloResult
from ._runner import bytes_per_cell as bytes_per_cell, montecarlo as montecarlo
from ._study import Output as Output, Study as Study, noise_key as noise_key, population_key as population_key
from .studies import STUDIES as STUDIES

make_callable(__name__)
