"""Exact spectral solve for box-shaped masks (CPU, Numba).

When a sample's mask is a full axis-aligned box whose one-pixel ring lies inside the image (the
original PII's square patches), the masked Poisson problem is the Dirichlet Laplacian on a
rectangle, which the type-I discrete sine transform (DST-I) diagonalises exactly:
``f = S (S b / lambda)`` with ``S`` the sine matrix of each axis and ``lambda`` the sums of the
1D eigenvalues ``2 - 2 cos(pi k / (N + 1))``. The transforms are dense products with the sine
matrices (through BLAS where a product is small enough to run on the calling thread, see
:data:`BLAS_MAX_MNK`: a box's bytes are then those of the machine's BLAS, the same from run to
run, not across BLAS builds or CPUs), so a box of sides ``n_i`` costs ``prod(n_i) * sum(n_i)``
multiply-adds: far less than multigrid for the patch sizes of the original, more for very large
boxes, so
:func:`box_samples` limits the sides' sum. The right-hand side and the transforms are computed in
the image dtype (float32 or float64); norms and the residual check in float64.

Like the multigrid path, it solves for the correction ``e = f - dst`` (zero on the ring), whose
right-hand side is the residual of ``dst`` and holds only differences of pixel values, so neither
the solve nor its convergence test depends on the images' offset. It reads the full images, writes
``clip(dst + e)`` directly (no crop copies) and reports the true relative residual
``||r0 - A e|| / ||r0||`` of the correction it computed, so nothing about its accuracy is assumed.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

from ._numba_kernels import DIVERGENCE, HARMONIC, PII, _guidance


@njit(inline="always")
def _pick_t(dp, dq, sp, sq, wa, ws, mode):
    """:func:`pii_augment.ops._numba_kernels._pick` in the image dtype: a = wa (dp - dq),
    s = ws (sp - sq) (the weights precomputed in the image dtype), chosen by the one guidance
    rule, :func:`~pii_augment.ops._numba_kernels._guidance`."""
    return _guidance(wa, dp, dq, ws, sp, sq, mode)


@njit(inline="always")
def _pair_t(dp, dq, sp, sq, wa, ws, mode):
    """v_pq - (dp - dq), the pair's term of the correction's right-hand side (image dtype)."""
    return _pick_t(dp, dq, sp, sq, wa, ws, mode) - (dp - dq)

#: Boxes whose sides add up to more than this are left to multigrid (cost ~ volume * sides).
MAX_SIDE_SUM = 640


def box_samples(lo: np.ndarray, hi: np.ndarray, full_box: np.ndarray, spatial_shape, ndim: int) -> np.ndarray:
    """Which samples are full boxes [lo, hi) (from :func:`~pii_augment.ops._host_kernels._mask_box`) whose one-pixel ring lies
    inside the image and whose sides are small enough for the spectral solve: (B,) bool."""
    shape = np.array(spatial_shape, np.int64)
    spatial = slice(3 - ndim, 3)
    ring_inside = ((lo[:, spatial] >= 1) & (hi[:, spatial] <= shape[spatial] - 1)).all(axis=1)
    small = (hi - lo)[:, spatial].sum(axis=1) <= MAX_SIDE_SUM
    return full_box & ring_inside & small


@njit(cache=True, nogil=True)
def _sine_matrix(n, like):
    # S[j, k] = sin(pi (j + 1) (k + 1) / (n + 1)), symmetric, from a table of one period, in the
    # dtype of ``like`` (the dense transform along z)
    period = 2 * (n + 1)
    tab = np.sin(np.pi * np.arange(period) / (n + 1)).astype(like.dtype)
    S = np.empty((n, n), like.dtype)
    for j in range(n):
        t = (j + 1) * (j + 1) % period
        for k in range(j, n):
            S[j, k] = tab[t]
            S[k, j] = tab[t]
            t += j + 1
            if t >= period:
                t -= period
    return S


@njit(inline="always")
def _fill_sines(F, n, tab, ra, rb, ca, cb):
    """F[r, c] = tab[(ra r + rb) (ca c + cb) mod len(tab)] for r, c < n, row by row. The index
    is advanced by additions (no division; a select, not a branch, keeps it in the period), in
    four interleaved chains (columns c, c + 1, c + 2, c + 3), so that the additions of one
    chain do not wait for each other's."""
    period = tab.shape[0]
    for r in range(n):
        row = F[r]
        u = ra * r + rb
        step = u * ca % period
        step4 = 4 * step % period
        t0 = u * cb % period
        t1 = (t0 + step) % period
        t2 = (t1 + step) % period
        t3 = (t2 + step) % period
        n4 = n - n % 4
        for c in range(0, n4, 4):
            row[c] = tab[t0]
            row[c + 1] = tab[t1]
            row[c + 2] = tab[t2]
            row[c + 3] = tab[t3]
            t0 += step4
            t1 += step4
            t2 += step4
            t3 += step4
            t0 -= period if t0 >= period else 0
            t1 -= period if t1 >= period else 0
            t2 -= period if t2 >= period else 0
            t3 -= period if t3 >= period else 0
        for c in range(n4, n):
            row[c] = tab[t0]
            t0 += step
            t0 -= period if t0 >= period else 0


@njit(inline="always")
def _transpose_into(F, n, T):
    """T[c, r] = F[r, c] for r, c < n."""
    for r in range(n):
        row = F[r]
        for c in range(n):
            T[c, r] = row[c]


@njit(inline="always")
def _table_shape(n):
    """(h1, h0r, L) of side n's tables (:func:`_half_sine_matrices`): Fe and FeT are (h1, L), Fo and
    FoT (h0r, L), with h1 = n - n // 2, h0r = max(n // 2, 1) and L = h1 rounded up to 8."""
    h1 = n - n // 2
    return h1, max(n // 2, 1), (h1 + 7) // 8 * 8


@njit(cache=True, nogil=True)
def _half_sine_matrices(n, like):
    """The DST-I of size n split by parity, for :func:`_dst_x` / :func:`_idst_x`.

    With ``S[j, k] = sin(pi (j + 1) (k + 1) / (n + 1))``, ``S[n - 1 - j, k] = (-1)^k S[j, k]``:
    the even modes of x are those of the folded sum ``x[j] + x[n - 1 - j]`` (and the middle
    element when n is odd), the odd modes those of the folded difference, each a product with
    half of S. Returns ``Fe``: ``Fe[j, p] = S[j, 2p]`` (h1 rows), ``Fo``: ``Fo[j, p] = S[j, 2p +
    1]`` (h0 rows) and their transposes, with ``h0 = n // 2``, ``h1 = n - h0``, every row zero-
    padded to a multiple of 8 columns (whole vector registers in :func:`_matmul_rows`).
    """
    h0 = n // 2
    h1, h0r, L = _table_shape(n)
    period = 2 * (n + 1)
    tab = np.sin(np.pi * np.arange(period) / (n + 1)).astype(like.dtype)
    Fe = np.zeros((h1, L), like.dtype)
    Fo = np.zeros((h0r, L), like.dtype)
    FeT = np.zeros((h1, L), like.dtype)
    FoT = np.zeros((h0r, L), like.dtype)
    _fill_sines(Fe, h1, tab, 1, 1, 2, 1)  # Fe[j, p] = tab[(j + 1) (2p + 1)]
    _fill_sines(Fo, h0, tab, 1, 1, 2, 2)  # Fo[j, p] = tab[(j + 1) (2p + 2)]
    _transpose_into(Fe, h1, FeT)
    _transpose_into(Fo, h0, FoT)
    return Fe, Fo, FeT, FoT


#: Sides up to this take their sine tables from a store built once per dtype (:func:`sine_store`,
#: about 3 MB in float32); larger sides, whose solve costs far more than their tables, build them
#: per box.
STORE_MAX_SIDE = 128


@njit(cache=True, nogil=True)
def _build_sine_store(nmax, like):
    """The tables of :func:`_half_sine_matrices` for every side 1..nmax in one flat array, and
    (nmax + 1, 4) offsets: row n tells where side n's Fe, Fo, FeT and FoT start."""
    offs = np.zeros((nmax + 1, 4), np.int64)
    total = 0
    for n in range(1, nmax + 1):
        h1, h0r, L = _table_shape(n)
        sizes = (h1 * L, h0r * L, h1 * L, h0r * L)
        for i in range(4):
            offs[n, i] = total
            total += sizes[i]
    store = np.empty(total, like.dtype)
    for n in range(1, nmax + 1):
        tables = _half_sine_matrices(n, like)
        for i in range(4):
            t = tables[i].ravel()
            store[offs[n, i]:offs[n, i] + t.size] = t
    return store, offs


_STORES: dict = {}
_STORE_LOCK = threading.Lock()


def sine_store(dtype) -> tuple[np.ndarray, np.ndarray]:
    """(store, offsets) of :func:`_build_sine_store` for ``dtype`` (float32 or float64), built on
    first use, then shared read-only by every box solve of the process (:func:`_sine_tables`)."""
    found = _STORES.get(dtype)  # an np.dtype, as the solves pass it: one dict lookup
    if found is None:
        key = np.dtype(dtype)
        with _STORE_LOCK:
            found = _STORES.get(key)
            if found is None:
                found = _STORES[key] = _build_sine_store(STORE_MAX_SIDE, np.empty(1, dtype))
    return found


@njit(inline="always")
def _sine_tables(n, like, store, offs):
    """:func:`_half_sine_matrices` of side n: views of the store when it holds n, else built."""
    if n < offs.shape[0]:
        h1, h0r, L = _table_shape(n)
        Fe = store[offs[n, 0]:offs[n, 0] + h1 * L].reshape((h1, L))
        Fo = store[offs[n, 1]:offs[n, 1] + h0r * L].reshape((h0r, L))
        FeT = store[offs[n, 2]:offs[n, 2] + h1 * L].reshape((h1, L))
        FoT = store[offs[n, 3]:offs[n, 3] + h0r * L].reshape((h0r, L))
        return Fe, Fo, FeT, FoT
    return _half_sine_matrices(n, like)


#: Products of at most this many multiply-adds (m n k) go to BLAS: OpenBLAS runs them on the
#: calling thread (its bound for one thread, 65536 x GEMM_MULTITHREAD_THRESHOLD 4), so the host's
#: threads, one per sample, are not oversubscribed by BLAS' own; larger ones stay in
#: :func:`_matmul_rows`' loops (with BLAS' threads they were 1.5x slower at 1024^2 on 2 cores).
BLAS_MAX_MNK = 262144


@njit(inline="always")
def _matmul_rows(A, n, F, O):
    """O[i, :] = sum_{j < n} A[i, j] F[j, :] for every row i of A: two rows of A and four rows
    of F per pass over the output rows (each row of F loaded once for two outputs)."""
    M = A.shape[0]
    L = O.shape[1]
    if 0 < n == A.shape[1] and M * n * L <= BLAS_MAX_MNK:
        np.dot(A, F[:n], O)  # BLAS (SciPy's, through Numba): 512-bit kernels where the CPU has them
        return
    for i in range(M):
        orow = O[i]
        for k in range(L):
            orow[k] = 0
    n4 = n - n % 4
    for i in range(0, M - M % 2, 2):
        a0 = A[i]
        a1 = A[i + 1]
        o0 = O[i]
        o1 = O[i + 1]
        for j in range(0, n4, 4):
            s0, s1, s2, s3 = F[j], F[j + 1], F[j + 2], F[j + 3]
            p0, p1, p2, p3 = a0[j], a0[j + 1], a0[j + 2], a0[j + 3]
            q0, q1, q2, q3 = a1[j], a1[j + 1], a1[j + 2], a1[j + 3]
            for k in range(L):
                f0, f1, f2, f3 = s0[k], s1[k], s2[k], s3[k]
                o0[k] += (p0 * f0 + p1 * f1) + (p2 * f2 + p3 * f3)
                o1[k] += (q0 * f0 + q1 * f1) + (q2 * f2 + q3 * f3)
        for j in range(n4, n):
            s0 = F[j]
            p0 = a0[j]
            q0 = a1[j]
            for k in range(L):
                o0[k] += p0 * s0[k]
                o1[k] += q0 * s0[k]
    if M % 2:
        a0 = A[M - 1]
        o0 = O[M - 1]
        for j in range(n):
            s0 = F[j]
            p0 = a0[j]
            for k in range(L):
                o0[k] += p0 * s0[k]


@njit(inline="always")
def _copy_cols(dst, d0, src, s0, n):
    # dst[i, d0:d0 + n] = src[i, s0:s0 + n] for every row i of the (M, .) arrays
    for i in range(dst.shape[0]):
        drow = dst[i]
        srow = src[i]
        for k in range(n):
            drow[d0 + k] = srow[s0 + k]


@njit(inline="always")
def _mirror(n, j):
    """The index ``n - 1 - j`` as an unsigned integer: Numba then emits no negative-index
    wrap-around test (a select per element that kept the folds of :func:`_dst_x` and
    :func:`_idst_x` from vectorising: 3-4 us -> 0.6 us per 90 x 90 fold)."""
    return np.uint64(n - 1 - j)


@njit(cache=True, nogil=True)
def _dst_x(a, Fe, Fo):
    """The DST-I (unnormalised) of every row of a (P, M, N), its modes stored by parity: the
    even modes 0, 2, ... in ``[:h1]``, the odd modes 1, 3, ... in ``[h1:]`` (see
    :func:`_half_sine_matrices`; half the multiply-adds of the dense product)."""
    P, M, N = a.shape
    h0 = N // 2
    h1 = N - h0
    out = np.empty_like(a)
    fs = np.empty((M, h1), a.dtype)
    fd = np.empty((M, max(h0, 1)), a.dtype)
    t = np.empty((M, Fe.shape[1]), a.dtype)
    for p in range(P):
        for i in range(M):
            row = a[p, i]
            srow = fs[i]
            drow = fd[i]
            for j in range(h0):
                r = row[_mirror(N, j)]
                srow[j] = row[j] + r
                drow[j] = row[j] - r
            if h1 > h0:
                srow[h0] = row[h0]
        _matmul_rows(fs, h1, Fe, t)
        _copy_cols(out[p], 0, t, 0, h1)
        _matmul_rows(fd, h0, Fo, t)
        _copy_cols(out[p], h1, t, 0, h0)
    return out


@njit(cache=True, nogil=True)
def _idst_x(a, FeT, FoT):
    """The inverse of :func:`_dst_x` up to its scale: modes by parity in, rows in natural order
    out (the unnormalised DST-I again, unfolded)."""
    P, M, N = a.shape
    h0 = N // 2
    h1 = N - h0
    out = np.empty_like(a)
    u = np.empty((M, FeT.shape[1]), a.dtype)
    w = np.empty((M, FeT.shape[1]), a.dtype)
    ye = np.empty((M, h1), a.dtype)
    yo = np.empty((M, max(h0, 1)), a.dtype)
    for p in range(P):
        _copy_cols(ye, 0, a[p], 0, h1)
        _copy_cols(yo, 0, a[p], h1, h0)
        _matmul_rows(ye, h1, FeT, u)
        _matmul_rows(yo, h0, FoT, w)
        for i in range(M):
            orow = out[p, i]
            urow = u[i]
            wrow = w[i]
            for j in range(h0):  # two loops: one store stream each (so that both vectorise)
                orow[j] = urow[j] + wrow[j]
            for j in range(h0):
                orow[_mirror(N, j)] = urow[j] - wrow[j]
            if h1 > h0:
                orow[h0] = urow[h0]
    return out


@njit(cache=True, nogil=True)
def _dst_z(a, S):
    """a (P, M, N) -> the dense DST-I (matrix S) along the first axis: one BLAS product
    (P, P) x (P, M N) where small enough (:data:`BLAS_MAX_MNK`), else four planes per pass."""
    P, M, N = a.shape
    if P * P * M * N <= BLAS_MAX_MNK:
        out = np.empty_like(a)
        np.dot(S, a.reshape((P, M * N)), out.reshape((P, M * N)))
        return out
    out = np.zeros_like(a)
    p4 = P - P % 4
    for i in range(P):
        for j in range(0, p4, 4):
            c0, c1, c2, c3 = S[i, j], S[i, j + 1], S[i, j + 2], S[i, j + 3]
            for q in range(M):
                orow = out[i, q]
                r0, r1, r2, r3 = a[j, q], a[j + 1, q], a[j + 2, q], a[j + 3, q]
                for k in range(N):
                    orow[k] += (c0 * r0[k] + c1 * r1[k]) + (c2 * r2[k] + c3 * r3[k])
        for j in range(p4, P):
            s = S[i, j]
            for q in range(M):
                orow = out[i, q]
                arow = a[j, q]
                for k in range(N):
                    orow[k] += s * arow[k]
    return out


@njit(inline="always")
def _stencil_rows(a, z, y, x0, N, ndim):
    """Row views of a (D, H, W) array around row (z, y) of a box starting at column x0: the row
    itself with one extra cell each side, then the rows above/below (y) and before/after (z; the
    row itself again in 2D), each N long. Contiguous views: no per-pixel 3D indexing."""
    zd = z - 1 if ndim == 3 else z
    zu = z + 1 if ndim == 3 else z
    return (a[z, y, x0 - 1:x0 + N + 1], a[z, y - 1, x0:x0 + N], a[z, y + 1, x0:x0 + N],
            a[zd, y, x0:x0 + N], a[zu, y, x0:x0 + N])


@njit(cache=True, nogil=True)
def spectral_box_solve(dst, guide, gidx, alpha, mode, idx, lo, hi, ndim, clip_lo, clip_hi, do_clip, out, residual,
                       store, offs):
    """Solve every sample ``idx[i]`` (a box mask [lo, hi)) exactly and write it into ``out``.

    dst, out: (B, C, D, H, W), ``out`` holding a copy of dst; guide: (G, C, D, H, W), sample b's
    guidance in ``guide[gidx[b]]``: the source images (guidance modes PII, MIXED, SOURCE),
    the divergence per pixel (mode ``DIVERGENCE``) or unread (``HARMONIC``, zero guidance); gidx:
    (B,) int64; alpha: (B,) float64; clip_lo, clip_hi: (B, C); residual: (B, C) float64,
    receives ``||r0 - A e|| / ||r0||`` of the computed correction e (0 when r0 = 0; NaN when
    the data are not finite); store, offs: the sine tables of :func:`sine_store` for dst's dtype.
    """
    for t in range(idx.shape[0]):
        b = idx[t]
        solve_box(dst, guide, gidx[b], alpha[b], mode, b, lo[b], hi[b], ndim, clip_lo, clip_hi, do_clip, out,
                  residual, store, offs)


@njit(inline="always")
def _box_eigenvalues(P, N, ndim, work):
    # eigenvalues of the transformed axes (x, and z in 3D), the x modes in the parity order of
    # _dst_x; y is solved by Thomas' algorithm
    h1 = N - N // 2
    lam = np.empty((P, N), work.dtype)
    for i in range(P):
        lz = 2.0 - 2.0 * np.cos(np.pi * (i + 1) / (P + 1)) if ndim == 3 else 0.0
        for q in range(N):
            k = 2 * q if q < h1 else 2 * (q - h1) + 1
            lam[i, q] = lz + 2.0 - 2.0 * np.cos(np.pi * (k + 1) / (N + 1))
    return lam


@njit(inline="always")
def _box_rhs(rb, d, g, z0, y0, x0, ndim, mode, wa, ws):
    # r0 of the box (P, M, N) at (z0, y0, x0), the residual of e = 0: every element written
    P, M, N = rb.shape
    for i in range(P):
        z = z0 + i
        for j in range(M):
            y = y0 + j
            dc, dn, ds, dd, du = _stencil_rows(d, z, y, x0, N, ndim)
            out_row = rb[i, j]
            if mode == HARMONIC or mode == DIVERGENCE:
                for k in range(N):
                    dp = dc[k + 1]
                    acc = ((dp - dc[k]) + (dp - dc[k + 2])) + ((dp - dn[k]) + (dp - ds[k]))
                    if ndim == 3:
                        acc += (dp - dd[k]) + (dp - du[k])
                    out_row[k] = -acc
                if mode == DIVERGENCE:
                    gg = g[z, y, x0:x0 + N]
                    for k in range(N):
                        out_row[k] += gg[k]
            else:
                sc, sn, ss, sd, su = _stencil_rows(g, z, y, x0, N, ndim)
                # in the image dtype, branch-free: the loop vectorises
                for k in range(N):
                    dp = dc[k + 1]
                    sp = sc[k + 1]
                    acc = _pair_t(dp, dc[k], sp, sc[k], wa, ws, mode)
                    acc += _pair_t(dp, dc[k + 2], sp, sc[k + 2], wa, ws, mode)
                    acc += _pair_t(dp, dn[k], sp, sn[k], wa, ws, mode)
                    acc += _pair_t(dp, ds[k], sp, ss[k], wa, ws, mode)
                    if ndim == 3:
                        acc += _pair_t(dp, dd[k], sp, sd[k], wa, ws, mode)
                        acc += _pair_t(dp, du[k], sp, su[k], wa, ws, mode)
                    out_row[k] = acc


# Thomas' two phases are functions of their own, compiled apart from the solve, and with
# error_model="numpy": under Numba's default model each division tests for zero (a branch per
# element), and inside the one large function of the inlined solve LLVM vectorised none of these
# loops either way. The pivots are never 0 (2 + lambda - c with |c| < 1/2, lambda > 0); the
# arithmetic and its order are what they were, so the results are the same bytes (one 90 x 90
# float32 plane: about 28 -> 12 us, one thread).
@njit(nogil=True, inline="never", error_model="numpy")
def _thomas_pivots(lm, cp, iv):
    """The forward elimination's coefficients of (T_y + diag(lm)) along y for the N modes:
    iv[j, k] = 1 / (2 + lm[k] + cp[j - 1, k]) in float64 (cp[-1] = 0) and cp[j, k] = -iv[j, k]
    rounded to cp's dtype. lm: (N,); cp: (M, N) image dtype; iv: (M, N) float64."""
    M, N = cp.shape
    # 2 as float64 (Numba types float32 + 2 as float64), so the pivots and the products run in
    # float64 and are rounded when stored; the results are what they always were
    two = lm[0] - lm[0] + 2
    c0 = cp[0]
    i0 = iv[0]
    for k in range(N):
        inv = 1 / (two + lm[k])
        i0[k] = inv
        c0[k] = -inv
    for j in range(1, M):
        cj = cp[j]
        cq = cp[j - 1]
        ij = iv[j]
        for k in range(N):
            inv = 1 / (two + lm[k] + cq[k])
            ij[k] = inv
            cj[k] = -inv


@njit(nogil=True, inline="never", error_model="numpy")
def _thomas_sweeps(g, cp, iv):
    """Thomas' forward and backward sweeps along y of one plane g (M, N), in place, with the
    coefficients of :func:`_thomas_pivots` (the products in float64, rounded when stored)."""
    M, N = g.shape
    g0 = g[0]
    i0 = iv[0]
    for k in range(N):
        g0[k] = g0[k] * i0[k]
    for j in range(1, M):
        gj = g[j]
        gp = g[j - 1]
        ij = iv[j]
        for k in range(N):
            gj[k] = (gj[k] + gp[k]) * ij[k]
    for j in range(M - 2, -1, -1):
        gj = g[j]
        gn = g[j + 1]
        cj = cp[j]
        for k in range(N):
            gj[k] = gj[k] - cj[k] * gn[k]


@njit(inline="always")
def _thomas_y(f, lam, cp, iv):
    """(T_y + lambda) g = f along y for every (z, x) mode of f (P, M, N), in place; cp: (M, N)
    scratch of f's dtype, iv: (M, N) float64 scratch."""
    for i in range(f.shape[0]):
        _thomas_pivots(lam[i], cp, iv)
        _thomas_sweeps(f[i], cp, iv)


@njit(inline="always")
def _add_correction(o, ep, f, sw, z0, y0, x0, do_clip, lo_v, hi_v):
    # e = f * sw in the image dtype, kept in ep (with its zero ring) and added to o (which holds
    # dst), clipped to [lo_v, hi_v] with do_clip (one pass over the box; the residual reads ep)
    P, M, N = f.shape
    for i in range(P):
        for j in range(M):
            orow = o[z0 + i, y0 + j, x0:x0 + N]
            erow = ep[i + 1, j + 1, 1:N + 1]
            frow = f[i, j]
            if do_clip:
                for k in range(N):
                    erow[k] = frow[k] * sw
                    v = orow[k] + erow[k]
                    orow[k] = lo_v if v < lo_v else (hi_v if v > hi_v else v)
            else:
                for k in range(N):
                    erow[k] = frow[k] * sw
                    orow[k] = orow[k] + erow[k]


@njit(inline="always")
def _zero_ring(ep, P, M, N, ndim):
    # zeros in every cell of the correction's padded box that _add_correction does not write (the
    # ring around the P x M x N box: in 3D planes 0 and P + 1 too), and nowhere else: a full
    # np.zeros of it was about 100 KB of memset per 90 x 90 box
    if ndim == 3:
        ep[0] = 0
        ep[P + 1] = 0
    for i in range(1, P + 1):
        ep[i, 0] = 0
        ep[i, M + 1] = 0
        for j in range(1, M + 1):
            ep[i, j, 0] = 0
            ep[i, j, N + 1] = 0


@njit(inline="always")
def _box_residual(ep, rb, gr, ndim):
    # ||r0 - A e|| / ||r0|| in float64, e = 0 on the ring (0 when r0 = 0, NaN for non-finite data);
    # gr: one residual row (N,) float64
    P, M, N = rb.shape
    r0 = r1 = r2 = r3 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    n4 = N - N % 4
    diag = 2.0 * ndim
    for i in range(P):
        for j in range(M):
            ec, en, es, ed, eu = _stencil_rows(ep, i + 1, j + 1, 1, N, ndim)
            brow = rb[i, j]
            if ndim == 3:
                for k in range(N):
                    gr[k] = brow[k] - (diag * ec[k + 1] - ((1.0 * ec[k] + ec[k + 2]) + (1.0 * en[k] + es[k])
                                                           + (1.0 * ed[k] + eu[k])))
            else:
                for k in range(N):
                    gr[k] = brow[k] - (diag * ec[k + 1] - ((1.0 * ec[k] + ec[k + 2]) + (1.0 * en[k] + es[k])))
            # sums of squares with four independent accumulators
            for k in range(0, n4, 4):
                r0 += gr[k] * gr[k]
                r1 += gr[k + 1] * gr[k + 1]
                r2 += gr[k + 2] * gr[k + 2]
                r3 += gr[k + 3] * gr[k + 3]
                b0 += 1.0 * brow[k] * brow[k]
                b1 += 1.0 * brow[k + 1] * brow[k + 1]
                b2 += 1.0 * brow[k + 2] * brow[k + 2]
                b3 += 1.0 * brow[k + 3] * brow[k + 3]
            for k in range(n4, N):
                r0 += gr[k] * gr[k]
                b0 += 1.0 * brow[k] * brow[k]
    rr = (r0 + r1) + (r2 + r3)
    bb = (b0 + b1) + (b2 + b3)
    if not (np.isfinite(rr) and np.isfinite(bb)):
        return np.nan
    if bb > 0:
        return np.sqrt(rr / bb)
    return 0.0 if rr == 0 else np.inf


@njit(cache=True, nogil=True)
def solve_box(dst, guide, gb, alpha_b, mode, b, lo_b, hi_b, ndim, clip_lo, clip_hi, do_clip, out, residual, store,
              offs):
    """The exact solve of sample b, whose mask is the box [lo_b, hi_b) with its ring inside the
    image, its guidance in ``guide[gb]`` (arguments as :func:`spectral_box_solve`)."""
    C = dst.shape[1]
    work = np.empty(1, dst.dtype)  # the transforms run in the image dtype (float32 or float64)
    z0, y0, x0 = lo_b[0], lo_b[1], lo_b[2]
    P, M, N = hi_b[0] - z0, hi_b[1] - y0, hi_b[2] - x0
    Sz = _sine_matrix(P, work) if ndim == 3 else np.empty((1, 1), work.dtype)
    Fe, Fo, FeT, FoT = _sine_tables(N, work, store, offs)
    lam = _box_eigenvalues(P, N, ndim, work)
    scale = 2.0 / (N + 1)  # S S = (n + 1) / 2 per transformed axis
    if ndim == 3:
        scale *= 2.0 / (P + 1)
    wscale = np.empty(1, work.dtype)
    wscale[0] = scale
    cp = np.empty((M, N), work.dtype)
    iv = np.empty((M, N))  # Thomas' pivots, float64
    gr = np.empty(N)  # one residual row, float64
    # the correction with a zero ring around it; in 2D only plane 1 is read (_stencil_rows)
    ep = np.empty((P + 2 if ndim == 3 else 2, M + 2, N + 2), work.dtype)
    _zero_ring(ep, P, M, N, ndim)
    # guidance weights in the image dtype: a = wa (d_p - d_q), s = ws (s_p - s_q)
    wv = np.empty(2, dst.dtype)
    wv[0] = 1.0 - alpha_b if mode == PII else 1.0
    wv[1] = alpha_b if mode == PII else 1.0
    wa, ws = wv[0], wv[1]
    for c in range(C):
        rb = np.empty((P, M, N), work.dtype)
        _box_rhs(rb, dst[b, c], guide[gb, c], z0, y0, x0, ndim, mode, wa, ws)
        f = _dst_x(rb, Fe, Fo)
        if ndim == 3:
            f = _dst_z(f, Sz)
        _thomas_y(f, lam, cp, iv)
        if ndim == 3:
            f = _dst_z(f, Sz)
        f = _idst_x(f, FeT, FoT)
        _add_correction(out[b, c], ep, f, wscale[0], z0, y0, x0, do_clip, clip_lo[b, c], clip_hi[b, c])
        residual[b, c] = _box_residual(ep, rb, gr, ndim)
