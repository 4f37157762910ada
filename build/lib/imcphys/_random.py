"""Standard normal draws for cheap Monte Carlo, fused with the physics that consumes them.

In a statistical device step (a PCM read is one multiply, one power and one noise term per device) drawing the
normals costs more than the physics. Two things make ``jax.random.normal`` slow on CPU: JAX lowers its
Threefry-2x32 hash as a rolled loop there, which XLA cannot fuse with the surrounding elementwise code.
:func:`normals` evaluates the *same* hash (Threefry-2x32 with 20 rounds; Salmon et al., "Parallel random
numbers: as easy as 1, 2, 3", SC'11 — bit-identical to ``jax.extend.random.threefry_2x32``) unrolled, so that
it fuses with its consumer, and uses both words of a block when two normals are drawn per element.

The counter of an element is its flat index, computed elementwise: a draw does not depend on how the array is
sharded, and the same key gives bit-identical numbers. Streams differ from ``jax.random.normal``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: Array, d: int) -> Array:
    return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """Threefry-2x32 (20 rounds) of the counter words (x0, x1) under the key words (k0, k1); all uint32.

    Unrolled, so that XLA fuses it with whatever consumes the output.
    """
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):
        for r in range(4):
            x0 = x0 + x1
            x1 = _rotl(x1, _ROTATIONS[4 * (group % 2) + r]) ^ x0
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _flat_index(shape: tuple[int, ...]) -> Array:
    """The flat (C-order) index of every element of ``shape`` as uint32, built elementwise (no reshape), so
    that a sharded consumer gets it computed shard by shard."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for dim in reversed(range(len(shape))):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, dim) * np.uint32(stride)
        stride *= shape[dim]
    return index


def _to_normal(w0: Array, w1: Array | None, dtype) -> Array:
    """Standard normal sqrt(2)·erfinv(x), x on a symmetric grid inside (−1, 1) from 24 random bits of ``w0``
    (float32) or 52 bits of ``w0`` and ``w1`` (float64)."""
    if jnp.dtype(dtype) == jnp.float64:
        hi = (w0 >> np.uint32(6)).astype(jnp.float64)
        lo = (w1 >> np.uint32(6)).astype(jnp.float64)
        x = ((hi * 2.0**26 + lo) * 2.0 + 1.0 - 2.0**52) * 2.0**-52  # exact: every term below 2^53
    else:
        k = (w0 >> np.uint32(8)).astype(jnp.int32)
        x = (2 * k + 1 - 2**24).astype(jnp.float32) * np.float32(2.0**-24)
    return np.sqrt(2.0).astype(x.dtype) * jax.lax.erf_inv(x)


def normals(key: PRNGKeyArray, shape: tuple[int, ...], count: int = 1, dtype=None) -> tuple[Array, ...]:
    """``count`` independent arrays of standard normals of ``shape`` from one key.

    Element i (flat index) of normal c comes from the Threefry block with counter (i, c // 2), word c % 2
    (float32, 24 bits, |z| ≤ 5.4), or from both words of block (i, c) (float64, 52 bits, |z| ≤ 8.3): every
    element is computed on its own, so a sharded array is drawn shard by shard with the same numbers.
    ``dtype`` defaults to JAX's default float.
    """
    dtype = jnp.dtype(dtype or jnp.zeros(()).dtype)
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    shape = tuple(int(d) for d in shape)
    if math.prod(shape) >= 2**32:
        raise ValueError(f"cannot draw more than 2^32 elements per array from one key; got shape {shape}")
    return _normals(key, shape, count, dtype)


# Jitted so that eager callers compile the unrolled hash once instead of dispatching it op by op; inside an
# outer jit it is inlined and fuses all the same.
@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _normals(key: PRNGKeyArray, shape: tuple[int, ...], count: int, dtype) -> tuple[Array, ...]:
    k = jr.bits(key, (2,), jnp.uint32)  # key words for any key type (typed or raw, any implementation)
    index = _flat_index(shape)
    out = []
    if dtype == jnp.float64:
        out = [normals_at(k[0], k[1], shape, c, dtype) for c in range(count)]
    else:
        for c in range(0, count, 2):
            y0, y1 = threefry2x32(k[0], k[1], index, jnp.full(shape, c // 2, jnp.uint32))
            out += [_to_normal(y0, None, dtype)] + ([_to_normal(y1, None, dtype)] if c + 1 < count else [])
    return tuple(out)


def key_words(key: PRNGKeyArray) -> tuple[Array, Array]:
    """Two uint32 words that identify ``key``: its own data for a Threefry key (typed or raw, no hashing), else
    two words drawn from it. Batched keys give batched words (shape of the key array)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if jr.key_impl(key) == jr.key_impl(jr.key(0)) or str(jr.key_impl(key)) == "threefry2x32":
            data = jr.key_data(key)
        else:
            data = (
                jax.vmap(lambda k: jr.bits(k, (2,), jnp.uint32))(key.reshape(-1)).reshape(*key.shape, 2)
                if key.ndim
                else jr.bits(key, (2,), jnp.uint32)
            )
    else:
        data = jnp.asarray(key, jnp.uint32)  # a raw Threefry key: its two words
    return data[..., 0], data[..., 1]


def normals_at(k0: Array, k1: Array, shape: tuple[int, ...], stream: int = 0, dtype=None) -> Array:
    """Standard normals of ``shape`` from the key words (k0, k1) (see :func:`key_words`): element i (flat index)
    comes from the Threefry block with counter (i, ``stream``) — both words, 52 random bits, in float64; the
    first word, 24 bits, in float32 — computed elementwise and unrolled, so that it fuses with its consumer (no
    key split, no rolled hash loop; under ``vmap`` the key words are simply batched). ``dtype`` defaults to
    JAX's default float."""
    dtype = jnp.dtype(dtype or jnp.zeros(()).dtype)
    y0, y1 = threefry2x32(k0, k1, _flat_index(shape), jnp.full(shape, stream, jnp.uint32))
    return _to_normal(y0, y1 if dtype == jnp.float64 else None, dtype)
