r"""Crossbar array parasitics: a differentiable nodal solve for wire IR drop and sneak paths.

Geometry (the reference interface). An M×N array: M output lines (index i) and N input lines (index j);
``conductance[i, j]`` [S] is the cell between output line i and input line j. Every cell has two nodes:
a[i, j] on input line j and b[i, j] on output line i. Input line j is driven with ``v_in[j]`` at its end next to
output line 0, through the driver resistance plus one wire segment ``r_in_wire`` [Ω] to a[0, j], then one
segment between successive cells (its far end, past i = M−1, is open). Output line i runs from j = 0 to j =
N−1 and is held at virtual ground beyond its last cell, through one segment ``r_out_wire`` plus the sense
resistance. The output current of line i is the current into its virtual ground, I_i = b[i, N−1]/(r_out_wire +
r_sense) [A].

Kirchhoff's current law at every node, with g_a = 1/r_in_wire, g_b = 1/r_out_wire and the cell current c(V) =
G·V (or a nonlinear I–V):

.. math::

    g_a\,(2a_{ij} - a_{i-1,j} - a_{i+1,j}) + c(a_{ij} - b_{ij}) = 0,\qquad
    g_b\,(2b_{ij} - b_{i,j-1} - b_{i,j+1}) - c(a_{ij} - b_{ij}) = 0,

with the end nodes adjusted for the driver, the open end, and the sense segment. For linear cells the system
is symmetric positive definite, [[L_a + D, −D], [−D, L_b + D]] with D = diag(G): L_a couples nodes along input
lines only and L_b along output lines only, so each line alone is tridiagonal. The solver eliminates the
input-line nodes (a Schur complement S = L_b + D − D (L_a + D)^{-1} D on the output-line nodes) and runs
conjugate gradients on S preconditioned by the exact output-line solves (L_b + D)^{-1}; every product with S
takes one exact solve of all input lines. Both line solves are Thomas sweeps with the factorisation computed
once per solve. Wires are ~1e4× stiffer than cells, so a diagonal (Jacobi) preconditioner is hopeless (minutes
at 512×512 when this was scoped), while exact line solves leave only the slow coupling between the two line
directions for CG (6 iterations at 256×256 and 9 at 512×512 with 1 Ω segments and 10–100 µS cells). Small
arrays are solved directly (dense Cholesky of the full nodal matrix, by lineax).

The CG loop is written here rather than taken from ``lineax.CG``: lineax solves one right-hand side per call,
and vmapping it over 64 input vectors made the Thomas sweeps lose their batched layout; with the same
preconditioner and stopping rule it was 2.1× slower at 256×256 and 2.8× at 512×512 on 2 CPU cores (README,
Benchmarks). The loop below runs every right-hand side at once, each with its own step sizes and its own stopping
test (relative residual ‖r‖₂ ≤ rtol·‖f‖₂), and agrees with lineax's CG to 1e-9.

Nonlinear cells (e.g. the ReRAM sinh I–V) are solved by Newton's method; each Newton step is the same linear
solve with D = diag(dc/dV). Gradients with respect to conductances, voltages, resistances and I–V parameters
are by implicit differentiation: one adjoint solve with the (symmetric) Jacobian at the solution, no
backpropagation through iterations.

Zero wire resistance is handled exactly by merging nodes: with r_in_wire = r_out_wire = 0 every line is one
node (an (M+N)-node system, which is how a passive array's sneak-path read is written in closed form) and with
ideal drivers and sense amplifiers it is the ideal MVM I = G·v exactly. With exactly one wire resistance zero,
that side's lines must be held by ideal drivers (or sense amplifiers) and the other side's lines decouple into
tridiagonal solves; this case needs concrete resistances (under jit a traced zero resistance is supported only
for both sides at once).

Passive arrays: lines that are not ``driven`` (input) or not ``sensed`` (output) float; a floating output line
reports zero current. 1T1R arrays: :func:`one_t_one_r` turns the cells of unselected lines off."""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._checks import check_finite, check_range, is_concrete, runtime_check
from ._math import safe_sinh
from .device import param

Method = Literal["auto", "cg", "direct"]
#: Arrays with at most this many cells are solved by dense Cholesky when ``method="auto"``.
DIRECT_MAX_CELLS = 256


# ----------------------------------------------------------------------------------------------- cell I–V
class AbstractCellIV(eqx.Module):
    """Current–voltage law of one crossbar cell, parameterised by its small-signal conductance G [S]."""

    def current(self, g: Array, v: Array) -> Array:
        """Cell current [A] at cell voltage ``v`` [V] (input-line node minus output-line node)."""
        raise NotImplementedError

    def slope(self, g: Array, v: Array) -> Array:
        """dI/dV [S]."""
        raise NotImplementedError


class LinearCell(AbstractCellIV):
    """Ohmic cell, I = G·V."""

    def current(self, g, v):
        return g * v

    def slope(self, g, v):
        return jnp.broadcast_to(g, jnp.broadcast_shapes(jnp.shape(g), jnp.shape(v)))


class SinhCell(AbstractCellIV):
    """ReRAM-like cell, I = G·V_0·sinh(V/V_0): conductance G at low bias, the sinh I–V of the Stanford/Guan
    model (I = I_0 e^{−g/g_0} sinh(V/V_0), V_0 = 0.25 V; Jiang et al., IEEE TED 63, 1884 (2016)) at higher bias."""

    v0: Float[Array, ""] = param(0.25, "V")  #: V_0, I–V nonlinearity

    def __check_init__(self):
        check_range("SinhCell.v0", self.v0, lower=0.0, lower_open=True, unit="V")

    def current(self, g, v):
        return g * self.v0 * safe_sinh(v / self.v0)

    def slope(self, g, v):
        return g * jnp.sqrt(1.0 + jnp.square(safe_sinh(v / self.v0)))  # cosh without a second overflow guard


# ------------------------------------------------------------------------------------------------ results
class CrossbarSolution(eqx.Module):
    """Solved crossbar: output currents and node voltages, with the solver's outcome."""

    currents: Float[Array, "M *B"]  #: current into each output line's virtual ground [A]
    v_input_nodes: Float[Array, "M N *B"]  #: a[i, j]: input-line node voltage at cell (i, j) [V]
    v_output_nodes: Float[Array, "M N *B"]  #: b[i, j]: output-line node voltage at cell (i, j) [V]
    iterations: Int[Array, ""]  #: CG iterations (summed over Newton steps); 0 for direct solves
    converged: Bool[Array, ""]  #: every right-hand side reached the tolerance

    @property
    def cell_voltages(self) -> Float[Array, "M N *B"]:
        """a − b [V]."""
        return self.v_input_nodes - self.v_output_nodes


@dataclasses.dataclass(frozen=True)
class _Options:
    method: str
    rtol: float
    max_iter: int
    newton_rtol: float
    max_newton: int
    linear: bool


# ----------------------------------------------------------------------------------------- line algebra
def _line_weights(n: int, dtype) -> Array:
    """Diagonal of the unit-conductance chain Laplacian without its end connections: [1, 2, …, 2, 1]."""
    idx = jnp.arange(n)
    return (2.0 - (idx == 0) - (idx == n - 1)).astype(dtype)


def _lap(x: Array, axis: int) -> Array:
    """Unit chain Laplacian along ``axis`` (ends open): (w·x − left − right neighbours)."""
    n = x.shape[axis]
    w = _line_weights(n, x.dtype).reshape([-1 if k == axis else 1 for k in range(x.ndim)])
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    xp = jnp.pad(x, pad)
    left = jax.lax.slice_in_dim(xp, 0, n, axis=axis)
    right = jax.lax.slice_in_dim(xp, 2, n + 2, axis=axis)
    return w * x - left - right


def _tri_factor(diag: Array, off: Array) -> tuple[Array, Array]:
    """Thomas factorisation of tridiagonal matrices along axis 0 of ``diag`` (line × lines × 1 or B), constant
    off-diagonal ``off``: (1/pivot, off/pivot)."""

    def step(c_prev, d):
        inv = 1.0 / (d - off * c_prev)
        c = off * inv
        return c, (inv, c)

    _, (inv, c) = jax.lax.scan(step, jnp.zeros_like(diag[0]), diag)
    return inv, c


def _tri_solve(factors: tuple[Array, Array], off: Array, f: Array) -> Array:
    """Solve the factored tridiagonal systems for right-hand sides ``f`` (line axis first, then lines, then RHS;
    factors with a trailing axis of 1 are shared by every right-hand side)."""
    inv, c = factors

    def forward(y, x):
        inv_k, f_k = x
        y = (f_k - off * y) * inv_k
        return y, y

    _, y = jax.lax.scan(forward, jnp.zeros_like(f[0]), (inv, f))

    def backward(x_next, x):
        c_k, y_k = x
        x_k = y_k - c_k * x_next
        return x_k, x_k

    _, x = jax.lax.scan(backward, jnp.zeros_like(f[0]), (c, y), reverse=True)
    return x


class _Network(eqx.Module):
    """The nodal problem with finite wire resistances: every array that the residual depends on."""

    g: Array  # (M, N) cell conductances [S]
    v: Array  # (N, B) drive voltages [V]
    g_a: Array  # input-wire segment conductance [S]
    g_b: Array  # output-wire segment conductance [S]
    g_src: Array  # (N,) driver-side end conductance of each input line (0: floating) [S]
    g_gnd: Array  # (M,) sense-side end conductance of each output line (0: floating) [S]
    cell: AbstractCellIV

    def diag_a(self, d: Array) -> Array:
        """Diagonal of the input-line matrices L_a + D, for ``d`` of shape (M, N, K)."""
        m = d.shape[0]
        first = (jnp.arange(m) == 0).astype(d.dtype)
        return d + (self.g_a * _line_weights(m, d.dtype)[:, None] + first[:, None] * self.g_src[None, :])[..., None]

    def diag_b(self, d: Array) -> Array:
        """Diagonal of the output-line matrices L_b + D, for ``d`` of shape (M, N, K)."""
        n = d.shape[1]
        last = (jnp.arange(n) == n - 1).astype(d.dtype)
        return d + (self.g_b * _line_weights(n, d.dtype)[None, :] + self.g_gnd[:, None] * last[None, :])[..., None]

    def source(self) -> Array:
        """Current injected at a[0, j] by the drivers, (M, N, B) [A]."""
        f = jnp.zeros((self.g.shape[0],) + self.v.shape, self.v.dtype)
        return f.at[0].set(self.g_src[:, None] * self.v)

    def residual(self, a: Array, b: Array) -> tuple[Array, Array]:
        """Net current leaving each node [A] (zero at the solution)."""
        m, n = self.g.shape
        cell = self.cell.current(self.g[..., None], a - b)
        first = (jnp.arange(m) == 0).astype(a.dtype)[:, None, None]
        last = (jnp.arange(n) == n - 1).astype(b.dtype)[None, :, None]
        fa = self.g_a * _lap(a, 0) + first * self.g_src[None, :, None] * a + cell - self.source()
        fb = self.g_b * _lap(b, 1) + last * self.g_gnd[:, None, None] * b - cell
        return fa, fb

    def slope(self, a: Array, b: Array) -> Array:
        return self.cell.slope(self.g[..., None], a - b)


# -------------------------------------------------------------------------------------------- linear solves
def _col_dot(x: Array, y: Array) -> Array:
    return jnp.sum(x * y, axis=(0, 1))


def _solve_cg(net: _Network, d: Array, ra: Array, rb: Array, opts: _Options):
    """Solve [[W_a + D, −D], [−D, W_b + D]] (a, b) = (ra, rb) by CG on the output-line Schur complement.

    ``d`` is (M, N, 1) (shared by every right-hand side) or (M, N, B). Returns (a, b, iterations, converged).
    """
    off_a, off_b = -net.g_a, -net.g_b
    fac_a = _tri_factor(net.diag_a(d), off_a)
    fac_b = _tri_factor(jnp.swapaxes(net.diag_b(d), 0, 1), off_b)
    n = ra.shape[1]
    last = (jnp.arange(n) == n - 1).astype(ra.dtype)[None, :, None] * net.g_gnd[:, None, None]

    def pa_solve(x):
        return _tri_solve(fac_a, off_a, x)

    def pb_solve(x):
        return jnp.swapaxes(_tri_solve(fac_b, off_b, jnp.swapaxes(x, 0, 1)), 0, 1)

    def s_mul(x):
        return net.g_b * _lap(x, 1) + (last + d) * x - d * pa_solve(d * x)

    y = pa_solve(ra)
    rhs = rb + d * y
    tol = opts.rtol * jnp.sqrt(_col_dot(rhs, rhs))
    z0 = pb_solve(rhs)

    def cond(carry):
        _, r, _, _, k = carry
        return (k < opts.max_iter) & jnp.any(jnp.sqrt(_col_dot(r, r)) > tol)

    def body(carry):
        x, r, p, rz, k = carry
        q = s_mul(p)
        pq = _col_dot(p, q)
        alpha = jnp.where(pq > 0, rz / jnp.where(pq > 0, pq, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * q
        z = pb_solve(r)
        rz_new = _col_dot(r, z)
        beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        return x, r, z + beta * p, rz_new, k + 1

    b, r, _, _, k = jax.lax.while_loop(cond, body, (jnp.zeros_like(rhs), rhs, z0, _col_dot(rhs, z0), jnp.array(0)))
    converged = jnp.all(jnp.sqrt(_col_dot(r, r)) <= tol)
    a = y + pa_solve(d * b)
    return a, b, k, converged


def _solve_direct(net: _Network, d: Array, ra: Array, rb: Array):
    """Dense Cholesky (lineax) of the full 2MN nodal matrix (one matrix per right-hand side when ``d`` differs
    between them)."""
    m, n = net.g.shape
    dtype = ra.dtype

    def chain(k):
        w = _line_weights(k, dtype)
        return jnp.diag(w) - jnp.diag(jnp.ones(k - 1, dtype), 1) - jnp.diag(jnp.ones(k - 1, dtype), -1)

    e0 = (jnp.arange(m) == 0).astype(dtype)
    en = (jnp.arange(n) == n - 1).astype(dtype)
    wa = net.g_a * jnp.kron(chain(m), jnp.eye(n, dtype=dtype)) + jnp.diag(jnp.kron(e0, net.g_src))
    wb = net.g_b * jnp.kron(jnp.eye(m, dtype=dtype), chain(n)) + jnp.diag(jnp.kron(net.g_gnd, en))

    def one(dk, fa, fb):  # dk (M, N); fa, fb (M, N, K)
        dd = jnp.diag(dk.reshape(-1))
        mat = lx.MatrixLinearOperator(jnp.block([[wa + dd, -dd], [-dd, wb + dd]]), lx.positive_semidefinite_tag)
        rhs = jnp.concatenate([fa.reshape(m * n, -1), fb.reshape(m * n, -1)])
        # Cholesky factorised once, every right-hand side solved with it; a singular network (a floating island)
        # gives non-finite values, reported as not converged below
        x = jax.vmap(lambda r: lx.linear_solve(mat, r, lx.Cholesky(), throw=False).value, 1, 1)(rhs)
        return x[: m * n].reshape(fa.shape), x[m * n :].reshape(fa.shape)

    if d.shape[-1] == 1:
        a, b = one(d[..., 0], ra, rb)
    else:
        a, b = jax.vmap(lambda dk, fa, fb: one(dk, fa[..., None], fb[..., None]), in_axes=2, out_axes=2)(d, ra, rb)
        a, b = a[..., 0], b[..., 0]
    return a, b, jnp.array(0), jnp.all(jnp.isfinite(a)) & jnp.all(jnp.isfinite(b))


def _linear_solve(net: _Network, d: Array, ra: Array, rb: Array, opts: _Options):
    if opts.method == "direct":
        return _solve_direct(net, d, ra, rb)
    return _solve_cg(net, d, ra, rb, opts)


def _col_max(x: Array) -> Array:
    return jnp.max(jnp.abs(x), axis=(0, 1))


def _solve_nodes_impl(opts: _Options, net: _Network):
    g3 = net.g[..., None]
    zero = jnp.zeros((net.g.shape[0],) + net.v.shape, net.v.dtype)
    a, b, iters, ok = _linear_solve(net, net.slope(zero, zero) if not opts.linear else g3, net.source(), zero, opts)
    if opts.linear:
        return a, b, iters, ok

    def cond(carry):
        _, _, _, _, k, done = carry
        return (k < opts.max_newton) & ~done

    def body(carry):
        a, b, iters, ok, k, _ = carry
        fa, fb = net.residual(a, b)
        da, db, it, ok_k = _linear_solve(net, net.slope(a, b), -fa, -fb, opts)
        a, b = a + da, b + db
        step = jnp.maximum(_col_max(da), _col_max(db))
        scale = jnp.maximum(_col_max(a), _col_max(b))
        done = jnp.all(step <= opts.newton_rtol * scale)
        return a, b, iters + it, ok & ok_k, k + 1, done

    a, b, iters, ok, _, done = jax.lax.while_loop(cond, body, (a, b, iters, ok, jnp.array(0), jnp.array(False)))
    return a, b, iters, ok & done


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _solve_nodes(opts: _Options, net: _Network):
    return _solve_nodes_impl(opts, net)


def _solve_nodes_fwd(opts, net):
    out = _solve_nodes_impl(opts, net)
    return out, (net, out[0], out[1])


def _solve_nodes_bwd(opts, res, cot):
    net, a, b = res
    a_bar, b_bar = cot[0], cot[1]
    # The nodal Jacobian is symmetric, so the adjoint solve is the forward solve at the operating point.
    la, lb, _, ok = _linear_solve(net, net.slope(a, b), a_bar, b_bar, opts)
    la = runtime_check(la, ~ok, "crossbar: the adjoint (gradient) solve did not converge")
    _, vjp = jax.vjp(lambda nw: nw.residual(a, b), net)
    (net_bar,) = vjp((-la, -lb))
    return (net_bar,)


_solve_nodes.defvjp(_solve_nodes_fwd, _solve_nodes_bwd)


# --------------------------------------------------------------------------------- zero wire resistance
def _lines_as_nodes(g, v, g_src, fixed_src, g_gnd, fixed_gnd, sensed, vector: bool):
    """Both wire resistances zero: each line is one node, an (N+M)-node network [N input, then M output]."""
    m, n = g.shape
    dtype = v.dtype
    k = jnp.block([[jnp.diag(g_src + jnp.sum(g, axis=0)), -g.T], [-g, jnp.diag(g_gnd + jnp.sum(g, axis=1))]])
    fixed = jnp.concatenate([fixed_src, fixed_gnd])
    k = jnp.where(fixed[:, None], jnp.eye(n + m, dtype=dtype), k)
    rhs = jnp.concatenate([jnp.where(fixed_src[:, None], v, g_src[:, None] * v), jnp.zeros((m, v.shape[1]), dtype)])
    x = jnp.linalg.solve(k, rhs)
    u = jnp.where(fixed_src[:, None], v, x[:n])  # held nodes exactly at their values (ideal MVM bit for bit)
    w = jnp.where(fixed_gnd[:, None], 0.0, x[n:])
    # G·u as the same product as the ideal MVM (matrix–vector for one input vector), so that held lines give it
    # bit for bit
    gu = (g @ u[:, 0])[:, None] if vector else g @ u
    currents = jnp.where(sensed[:, None], gu - w * jnp.sum(g, axis=1)[:, None], 0.0)
    a = jnp.broadcast_to(u[None], (m, n, v.shape[1]))
    b = jnp.broadcast_to(w[:, None], (m, n, v.shape[1]))
    return currents, a, b


def _single_side(g, v, g_wire, g_end, off_axis_input: bool):
    """One wire resistance zero with that side held ideally: the other side's lines decouple (tridiagonal)."""
    m, n = g.shape
    d = g[..., None]
    if off_axis_input:  # ideal input lines a = v; output lines (L_b + D) b = D v
        a = jnp.broadcast_to(v[None], (m, n, v.shape[1]))
        last = (jnp.arange(n) == n - 1).astype(v.dtype)
        diag = g + g_wire * _line_weights(n, v.dtype)[None, :] + g_end[:, None] * last[None, :]
        fac = _tri_factor(diag.T[..., None], -g_wire)
        b = jnp.swapaxes(_tri_solve(fac, -g_wire, jnp.swapaxes(d * a, 0, 1)), 0, 1)
        return g_end[:, None] * b[:, -1], a, b
    # ideal output lines b = 0; input lines (L_a + D) a = driver injection
    first = (jnp.arange(m) == 0).astype(v.dtype)
    diag = g + g_wire * _line_weights(m, v.dtype)[:, None] + first[:, None] * g_end[None, :]
    fac = _tri_factor(diag[..., None], -g_wire)
    f = jnp.zeros((m,) + v.shape, v.dtype).at[0].set(g_end[:, None] * v)
    a = _tri_solve(fac, -g_wire, f)
    return jnp.sum(d * a, axis=1), a, jnp.zeros_like(a)


# ------------------------------------------------------------------------------------------- public API
def _as_mask(mask, size: int, name: str) -> Array:
    if mask is None:
        return jnp.ones(size, bool)
    mask = jnp.asarray(mask)
    if mask.shape != (size,):
        raise ValueError(f"{name} must be a boolean mask of shape ({size},); got shape {mask.shape}")
    return mask.astype(bool)


def _safe_inv(r: Array) -> Array:
    pos = r > 0
    return jnp.where(pos, 1.0 / jnp.where(pos, r, 1.0), 0.0)


@eqx.filter_jit
def _solve_core(
    opts: _Options, index: int | None, vector: bool, g, vb, r_in, r_out, r_drv, r_sns, driven_m, sensed_m, cell
):
    """The four cases (finite wires; both, input or output wires ideal), jitted once per shape and options;
    ``index`` None picks the case at run time (wire resistances traced)."""
    dtype = vb.dtype
    linear = opts.linear

    def general():
        # a zero resistance here only comes from a branch not taken (switch under vmap): keep that solve finite
        r_a, r_b = jnp.where(r_in > 0, r_in, 1.0), jnp.where(r_out > 0, r_out, 1.0)
        net = _Network(
            g=g,
            v=vb,
            g_a=1.0 / r_a,
            g_b=1.0 / r_b,
            g_src=driven_m.astype(dtype) / (r_a + r_drv),
            g_gnd=sensed_m.astype(dtype) / (r_b + r_sns),
            cell=cell,
        )
        a, b, iters, ok = _solve_nodes(opts, net)
        return net.g_gnd[:, None] * b[:, -1], a, b, iters, ok

    def both_zero():
        cur, a, b = _lines_as_nodes(
            g,
            vb,
            driven_m * _safe_inv(r_drv),
            driven_m & (r_drv == 0),
            sensed_m * _safe_inv(r_sns),
            sensed_m & (r_sns == 0),
            sensed_m,
            vector,
        )
        return cur, a, b, jnp.array(0), jnp.all(jnp.isfinite(cur))

    def in_zero():
        cur, a, b = _single_side(g, vb, _safe_inv(r_out), sensed_m * _safe_inv(r_out + r_sns), True)
        ok = jnp.all(driven_m) & (r_drv == 0)
        return cur, a, b, jnp.array(0), ok

    def out_zero():
        cur, a, b = _single_side(g, vb, _safe_inv(r_in), driven_m * _safe_inv(r_in + r_drv), False)
        ok = jnp.all(sensed_m) & (r_sns == 0)
        return cur, a, b, jnp.array(0), ok

    branches = [general, both_zero, in_zero, out_zero]
    if index is not None:
        return branches[index]()
    # Traced wire resistances: finite wires, or both ideal (the ideal MVM); one ideal side alone is supported only
    # with concrete values (it would add two more branches to compile for a rare case).
    both = (r_in == 0) & (r_out == 0)
    cur, a, b, iters, ok = jax.lax.cond(both, both_zero, general) if linear else general()
    return cur, a, b, iters, ok & ((r_in > 0) & (r_out > 0) | both & linear)


def solve_crossbar_nodes(
    conductance: Float[ArrayLike, "M N"],
    v_in: Float[ArrayLike, "N *B"],
    r_in_wire: Float[ArrayLike, ""],
    r_out_wire: Float[ArrayLike, ""],
    *,
    r_driver: Float[ArrayLike, ""] = 0.0,
    r_sense: Float[ArrayLike, ""] = 0.0,
    driven: Bool[ArrayLike, " N"] | None = None,
    sensed: Bool[ArrayLike, " M"] | None = None,
    cell: AbstractCellIV | None = None,
    method: Method = "auto",
    rtol: float | None = None,
    max_iter: int = 2000,
    newton_rtol: float | None = None,
    max_newton: int = 50,
    throw: bool = True,
) -> CrossbarSolution:
    """Solve the crossbar network (geometry in the module docstring) and return currents, node voltages and the
    solver's outcome.

    Args:
        conductance: G[i, j] [S], cell between output line i and input line j, shape (M, N), ≥ 0.
        v_in: input-line drive voltages [V], shape (N,) or (N, B) for B input vectors.
        r_in_wire, r_out_wire: resistance of one wire segment of an input / output line [Ω], ≥ 0.
        r_driver, r_sense: driver output and sense-amplifier input resistance [Ω], in series with the first input
            segment and the last output segment, ≥ 0.
        driven, sensed: boolean masks of input lines connected to their driver and output lines connected to
            their virtual ground (default: all); the others float (passive-array reads). A floating output line
            reports zero current.
        cell: the cells' I–V law (default :class:`LinearCell`); nonlinear laws are solved by Newton's method.
        method: ``"direct"`` (dense Cholesky, small arrays), ``"cg"`` (line-preconditioned conjugate gradients) or
            ``"auto"`` (direct up to ``DIRECT_MAX_CELLS`` cells).
        rtol: relative residual of every right-hand side at which CG stops (default 1e-8 in float64, 1e-5 in
            float32).
        max_iter: CG iteration limit per linear solve.
        newton_rtol, max_newton: Newton stops when every node's update is below ``newton_rtol`` × the largest
            node voltage (default 1e-10 in float64, 1e-5 in float32).
        throw: raise when a solve does not converge (also under jit/vmap); with ``throw=False`` the outcome is in
            ``converged`` and the values are returned as they are.
    """
    g = jnp.asarray(conductance)
    v = jnp.asarray(v_in)
    if g.ndim != 2:
        raise ValueError(f"conductance must have shape (M, N) (output lines × input lines); got shape {g.shape}")
    m, n = g.shape
    if v.ndim not in (1, 2) or v.shape[0] != n:
        raise ValueError(
            f"v_in must have shape ({n},) or ({n}, B) to match conductance of shape {g.shape} "
            f"(N = {n} input lines); got shape {v.shape}"
        )
    if method not in ("auto", "cg", "direct"):
        raise ValueError(f"method must be 'auto', 'cg' or 'direct'; got {method!r}")
    dtype = jnp.result_type(g.dtype, v.dtype, float)
    g, v = g.astype(dtype), v.astype(dtype)
    check_range("conductance", g, lower=0.0, unit="S")
    check_finite("v_in", v)
    res = {
        name: jnp.asarray(x, dtype)
        for name, x in (
            ("r_in_wire", r_in_wire),
            ("r_out_wire", r_out_wire),
            ("r_driver", r_driver),
            ("r_sense", r_sense),
        )
    }
    for name, x in res.items():
        if jnp.ndim(x) != 0:
            raise ValueError(f"{name} must be a scalar; got shape {jnp.shape(x)}")
        check_range(name, x, lower=0.0, unit="ohm")
    driven_m, sensed_m = _as_mask(driven, n, "driven"), _as_mask(sensed, m, "sensed")
    cell = LinearCell() if cell is None else cell
    linear = isinstance(cell, LinearCell)
    f64 = np.finfo(dtype).bits >= 64
    opts = _Options(
        method=("direct" if m * n <= DIRECT_MAX_CELLS else "cg") if method == "auto" else method,
        rtol=(1e-8 if f64 else 1e-5) if rtol is None else float(rtol),
        max_iter=int(max_iter),
        newton_rtol=(1e-10 if f64 else 1e-5) if newton_rtol is None else float(newton_rtol),
        max_newton=int(max_newton),
        linear=linear,
    )

    vb = v[:, None] if v.ndim == 1 else v
    r_in, r_out, r_drv, r_sns = res["r_in_wire"], res["r_out_wire"], res["r_driver"], res["r_sense"]
    bad = ~(jnp.all(g >= 0) & jnp.all(jnp.isfinite(g)) & jnp.all(jnp.isfinite(vb)))
    bad |= ~jnp.all(jnp.stack([jnp.isfinite(x) & (x >= 0) for x in (r_in, r_out, r_drv, r_sns)]))
    vb = runtime_check(
        vb, bad, "crossbar: conductance must be finite and >= 0 S, v_in finite, and resistances finite and >= 0 ohm"
    )

    if is_concrete((r_in, r_out)):
        zi, zo = bool(r_in == 0), bool(r_out == 0)
        index = 1 if zi and zo else 2 if zi else 3 if zo else 0
        if index and not linear:
            raise ValueError("crossbar: nonlinear cells need r_in_wire > 0 and r_out_wire > 0")
        if index == 2 and is_concrete((driven_m, r_drv)) and not (bool(jnp.all(driven_m)) and float(r_drv) == 0):
            raise ValueError(
                "crossbar: r_in_wire = 0 with r_out_wire > 0 needs every input line driven with "
                "r_driver = 0 (use a small r_in_wire > 0 for floating lines or a driver resistance)"
            )
        if index == 3 and is_concrete((sensed_m, r_sns)) and not (bool(jnp.all(sensed_m)) and float(r_sns) == 0):
            raise ValueError(
                "crossbar: r_out_wire = 0 with r_in_wire > 0 needs every output line sensed with "
                "r_sense = 0 (use a small r_out_wire > 0 for floating lines or a sense resistance)"
            )
        message = "crossbar: the solve did not converge (or the network is singular: a floating island?)"
    else:
        index = None
        message = (
            "crossbar: the solve did not converge, the network is singular, or a zero wire resistance was "
            "combined with floating lines, a driver/sense resistance or nonlinear cells"
        )
    cur, a, b, iters, ok = _solve_core(
        opts, index, v.ndim == 1, g, vb, r_in, r_out, r_drv, r_sns, driven_m, sensed_m, cell
    )
    if throw:
        cur = runtime_check(
            cur, ~ok, message + f" (method {opts.method}, rtol {opts.rtol:g}, max_iter {opts.max_iter})"
        )
    if v.ndim == 1:
        cur, a, b = cur[:, 0], a[..., 0], b[..., 0]
    return CrossbarSolution(
        currents=cur, v_input_nodes=a, v_output_nodes=b, iterations=jnp.asarray(iters), converged=jnp.asarray(ok)
    )


def solve_crossbar(
    conductance: Float[ArrayLike, "M N"],
    v_in: Float[ArrayLike, "N *B"],
    r_in_wire: Float[ArrayLike, ""],
    r_out_wire: Float[ArrayLike, ""],
    **options,
) -> Float[Array, "M *B"]:
    """Output currents [A] of a crossbar with wire resistance: shape (M,), or (M, B) for ``v_in`` of shape (N, B).

    ``conductance[i, j]`` [S] is the cell between output line i and input line j; input line j is driven with
    ``v_in[j]`` [V] next to output line 0, one ``r_in_wire`` [Ω] segment before the first cell and between cells;
    output line i is held at virtual ground one ``r_out_wire`` [Ω] segment beyond its last cell (j = N−1).
    Keyword ``options`` (driver and sense resistances, floating lines, nonlinear cells, solver settings) are those
    of :func:`solve_crossbar_nodes`. Works under jit, vmap and grad (implicit differentiation).
    """
    return solve_crossbar_nodes(conductance, v_in, r_in_wire, r_out_wire, **options).currents


def one_t_one_r(
    conductance: Float[ArrayLike, "M N"],
    *,
    selected_outputs: Bool[ArrayLike, " M"] | None = None,
    selected_inputs: Bool[ArrayLike, " N"] | None = None,
    g_off: Float[ArrayLike, ""] = 0.0,
) -> Float[Array, "M N"]:
    """Cell conductances [S] of a 1T1R array whose access transistors are on only where both the output line and
    the input line are selected; unselected cells conduct ``g_off`` [S] (transistor leakage, default 0)."""
    g = jnp.asarray(conductance)
    m, n = g.shape
    on = (
        _as_mask(selected_outputs, m, "selected_outputs")[:, None]
        & _as_mask(selected_inputs, n, "selected_inputs")[None, :]
    )
    return jnp.where(on, g, g_off)


def read_cell(
    conductance: Float[ArrayLike, "M N"],
    i: int,
    j: int,
    v_read: Float[ArrayLike, ""],
    r_in_wire: Float[ArrayLike, ""],
    r_out_wire: Float[ArrayLike, ""],
    **options,
) -> Float[Array, ""]:
    """Current [A] read from cell (i, j) of a passive array: input line j driven at ``v_read`` [V], output line i
    sensed, every other line floating, so sneak paths through unselected cells add to the cell's own current."""
    g = jnp.asarray(conductance)
    m, n = g.shape
    v = jnp.zeros(n, jnp.result_type(g.dtype, float)).at[j].set(v_read)
    sol = solve_crossbar_nodes(
        g, v, r_in_wire, r_out_wire, driven=jnp.arange(n) == j, sensed=jnp.arange(m) == i, **options
    )
    return sol.currents[i]


def ideal_currents(conductance: Float[ArrayLike, "M N"], v_in: Float[ArrayLike, "N *B"]) -> Float[Array, "M *B"]:
    """Output currents [A] with ideal wires: I = G·v."""
    return jnp.asarray(conductance) @ jnp.asarray(v_in)
