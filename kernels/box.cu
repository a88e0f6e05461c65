// The exact solve of box masks, one thread block per system: box_solve.
// Device twin of the CPU box solve (pii_augment/ops/_spectral.py, spectral_box_solve): the same
// problem (the correction e = f - dst on a box whose one-pixel ring lies inside the image, zero on
// the ring), solved exactly by type-I sine transforms along every axis, where the CPU uses a sine
// transform along x (and z) and Thomas' algorithm along y: full transforms keep every thread of
// the block busy, and need no per-column coefficient arrays.
//
//   e = s * S (S r0 ./ lambda),   S = S_z (x) S_y (x) S_x,   S_n[k, m] = sin(pi (k+1) (m+1) / (n+1)),
//   lambda[i, j, k] = l_P(i) + l_M(j) + l_N(k),   l_n(k) = 4 sin^2(pi (k+1) / (2 (n+1))),
//   s = prod over the transformed axes of 2 / (n + 1)   (S_n S_n = (n+1)/2 I).
#include "common.cuh"

namespace pii {

// The residual of f = dst at cell g of the image (all its neighbours lie in the image): the
// right-hand side of the correction, as guidance_rhs computes it (double, order x-, x+, y-, y+,
// z-, z+), rounded to T.
template <typename T>
__device__ __forceinline__ T box_rhs(const T* __restrict__ d, const T* __restrict__ g, long long p, long long sy,
                                     long long sz, int ndim, double al, int mode) {
    const T dp = d[p], sp = g[p];
    double acc = mode == MODE_DIVERGENCE ? (double)sp : 0.0;
    acc += pair_term(dp, d[p - 1], sp, g[p - 1], al, mode);
    acc += pair_term(dp, d[p + 1], sp, g[p + 1], al, mode);
    acc += pair_term(dp, d[p - sy], sp, g[p - sy], al, mode);
    acc += pair_term(dp, d[p + sy], sp, g[p + sy], al, mode);
    if (ndim == 3) {
        acc += pair_term(dp, d[p - sz], sp, g[p - sz], al, mode);
        acc += pair_term(dp, d[p + sz], sp, g[p + sz], al, mode);
    }
    return (T)acc;
}

// out[i, j, k] = sum_m S_n[q, m] in[...m along the axis...] for the cells of a P x M x N box,
// where the axis is x (stride 1, n = N), y (stride N, n = M) or z (stride M N, n = P) and q the
// cell's index along it. tab: sin(pi t / (n + 1)) for t in [0, 2 (n + 1)). The sum runs in
// double (float32 sums of several hundred terms would put the box solve's residual near the
// default tolerance on large boxes), the result is stored in T. Threads take cells t, t + BLOCK,
// ...; no barrier inside (the caller synchronises).
template <typename T>
__device__ void sine_transform(const T* __restrict__ in, T* __restrict__ out, const T* __restrict__ tab,
                               int P, int M, int N, int axis) {
    const long long vol = (long long)P * M * N;
    const int n = axis == 2 ? N : (axis == 1 ? M : P);
    const long long stride = axis == 2 ? 1 : (axis == 1 ? N : (long long)M * N);
    const int period = 2 * (n + 1);
    for (long long cell = threadIdx.x; cell < vol; cell += BLOCK) {
        const int k = (int)(cell % N);
        const int j = (int)((cell / N) % M);
        const int i = (int)(cell / ((long long)M * N));
        const int q = axis == 2 ? k : (axis == 1 ? j : i);
        const T* line = in + (cell - (long long)q * stride);  // element 0 along the axis
        int idx = q + 1;  // (q + 1)(m + 1) mod period, advanced by q + 1 per m
        double acc = 0.0;
        for (int m = 0; m < n; ++m) {
            acc += (double)tab[idx] * (double)line[(long long)m * stride];
            idx += q + 1;
            if (idx >= period) idx -= period;
        }
        out[cell] = (T)acc;
    }
}

// The transforms along x, y (and z in 3D), in that order, each from cur into the other buffer
// and followed by a barrier; cur ends on the buffer that holds the result.
template <typename T>
__device__ void sine_transforms(T*& cur, T*& oth, T* const* tabs, int P, int M, int N, int ndim) {
    for (int a = 2; a >= 3 - ndim; --a) {
        sine_transform(cur, oth, tabs[a], P, M, N, a);
        __syncthreads();
        T* s = cur;
        cur = oth;
        oth = s;
    }
}

}  // namespace pii

// One block of pii::BLOCK threads per system (b, c): grid = B * C, block i taking system i, or,
// with a system list (the second pass over boxes too large for the first), grid = its length,
// block i taking system systems[i]. A system is solved when its sample's mask (from
// prepare_systems: boxes, count) fills a box whose ring lies inside the image and whose spatial
// sides sum to at most max_side_sum, and the box has at most cap cells; status[b, c] = SOLVED_BOX
// then, BOX_PENDING for such a box with more than cap cells, SOLVED_NONE otherwise.
//
// dst, out: (B, C, D, H, W), out holding a copy of dst; guide: the same shape (the source, the
// divergence in MODE_DIVERGENCE, unread in MODE_HARMONIC); alpha: (B,) double; lo, hi: (B, C) clip range;
// residual: (B, C) double, ||r0 - A e|| / ||r0|| of the computed correction (r0 and A e in double).
// Dynamic shared memory: the sine and eigenvalue tables (table_cap elements of T), BLOCK doubles
// for the reductions, then, unless scratch is given, two work buffers of cap elements; with
// scratch (global memory, gridDim * 2 * cap elements, block i using slice i) the buffers live
// there instead: the same kernel, for boxes too large for a block's shared memory.
template <typename T>
__global__ void box_solve(const T* __restrict__ dst, const T* __restrict__ guide, const double* __restrict__ alpha,
                          int mode, const long long* __restrict__ boxes, const long long* __restrict__ count,
                          const T* __restrict__ lo, const T* __restrict__ hi, int do_clip, T* __restrict__ out,
                          double* __restrict__ residual, int* __restrict__ status, T* __restrict__ scratch,
                          const int* __restrict__ systems, long long cap, long long table_cap, int max_side_sum,
                          int B, int C, int D, int H, int W, int ndim) {
    PII_DYNAMIC_SHARED(T, smem);
    const int sys = systems != nullptr ? systems[blockIdx.x] : (int)blockIdx.x;
    const int t = (int)threadIdx.x;
    if (sys >= B * C) return;  // uniform for the block
    const int b = sys / C;
    const long long* bx = boxes + 6LL * b;
    const int z0 = (int)bx[0], y0 = (int)bx[1], x0 = (int)bx[2];
    const int P = (int)(bx[3] - bx[0]), M = (int)(bx[4] - bx[1]), N = (int)(bx[5] - bx[2]);
    const long long vol = (long long)P * M * N;
    const bool ring_inside = y0 >= 1 && bx[4] <= H - 1 && x0 >= 1 && bx[5] <= W - 1 &&
                             (ndim == 2 || (z0 >= 1 && bx[3] <= D - 1));
    const int sides = M + N + (ndim == 3 ? P : 0);
    const bool is_box = count[b] > 0 && count[b] == vol && ring_inside && sides <= max_side_sum;
    if (!is_box || vol > cap) {  // uniform for the block: no thread reaches a barrier
        if (t == 0) status[sys] = is_box ? pii::BOX_PENDING : pii::SOLVED_NONE;
        return;
    }
    // shared layout: tables | reduction scratch (double) | work buffers (unless scratch)
    T* tab_x = smem;
    T* tab_y = tab_x + 2 * (N + 1);
    T* tab_z = tab_y + 2 * (M + 1);
    T* lam_x = tab_z + 2 * (P + 1);
    T* lam_y = lam_x + N;
    T* lam_z = lam_y + M;
    const long long table_bytes = (table_cap * (long long)sizeof(T) + 7) / 8 * 8;  // doubles are 8-aligned
    double* red = reinterpret_cast<double*>(reinterpret_cast<unsigned char*>(smem) + table_bytes);
    T* work = scratch != nullptr ? scratch + (long long)blockIdx.x * 2 * cap
                                 : reinterpret_cast<T*>(red + pii::BLOCK);
    T* buf0 = work;
    T* buf1 = work + cap;
    const double pi = 3.14159265358979323846;
    const int sizes[3] = {P, M, N};
    T* tabs[3] = {tab_z, tab_y, tab_x};
    T* lams[3] = {lam_z, lam_y, lam_x};
    for (int a = 3 - ndim; a < 3; ++a) {
        const int n = sizes[a];
        for (int q = t; q < 2 * (n + 1); q += pii::BLOCK) tabs[a][q] = (T)sin(pi * q / (n + 1));
        for (int q = t; q < n; q += pii::BLOCK) {
            const double s = sin(pi * (q + 1) / (2.0 * (n + 1)));
            lams[a][q] = (T)(4.0 * s * s);
        }
    }
    const long long HW = (long long)H * W;
    const long long base = (long long)sys * D * HW;
    const T* d = dst + base;
    const T* g = guide + base;
    const double al = alpha[b];
    const long long corner = (long long)z0 * HW + (long long)y0 * W + x0;
    // r0 into buf0
    for (long long cell = t; cell < vol; cell += pii::BLOCK) {
        const long long k = cell % N, j = (cell / N) % M, i = cell / ((long long)M * N);
        buf0[cell] = pii::box_rhs(d, g, corner + i * HW + j * W + k, (long long)W, HW, ndim, al, mode);
    }
    __syncthreads();
    // forward transforms: x, y (, z), each from one buffer into the other
    T* cur = buf0;
    T* oth = buf1;
    pii::sine_transforms(cur, oth, tabs, P, M, N, ndim);
    for (long long cell = t; cell < vol; cell += pii::BLOCK) {
        const int k = (int)(cell % N), j = (int)((cell / N) % M), i = (int)(cell / ((long long)M * N));
        const T lz = ndim == 3 ? lam_z[i] : T(0);
        cur[cell] = cur[cell] / ((lz + lam_y[j]) + lam_x[k]);
    }
    __syncthreads();
    pii::sine_transforms(cur, oth, tabs, P, M, N, ndim);  // the inverse: the same transforms
    double scale = (2.0 / (N + 1)) * (2.0 / (M + 1));
    if (ndim == 3) scale *= 2.0 / (P + 1);
    const T sc = (T)scale;
    // e = cur * sc: the residual r0 - A e (double) and the output clip(dst + e)
    const T l = lo[sys], h = hi[sys];
    const double diag = 2.0 * ndim;
    double rr = 0.0, bb = 0.0;
    T* o = out + base;
    for (long long cell = t; cell < vol; cell += pii::BLOCK) {
        const int k = (int)(cell % N), j = (int)((cell / N) % M), i = (int)(cell / ((long long)M * N));
        const T e = cur[cell] * sc;
        double nb = 0.0;
        nb += k > 0 ? (double)(cur[cell - 1] * sc) : 0.0;
        nb += k + 1 < N ? (double)(cur[cell + 1] * sc) : 0.0;
        nb += j > 0 ? (double)(cur[cell - N] * sc) : 0.0;
        nb += j + 1 < M ? (double)(cur[cell + N] * sc) : 0.0;
        if (ndim == 3) {
            nb += i > 0 ? (double)(cur[cell - (long long)M * N] * sc) : 0.0;
            nb += i + 1 < P ? (double)(cur[cell + (long long)M * N] * sc) : 0.0;
        }
        const long long p = corner + i * HW + (long long)j * W + k;
        const T r0 = pii::box_rhs(d, g, p, (long long)W, HW, ndim, al, mode);
        const double r = (double)r0 - (diag * (double)e - nb);
        rr += r * r;
        bb += (double)r0 * (double)r0;
        T v = d[p] + e;
        if (do_clip) v = v < l ? l : (v > h ? h : v);
        o[p] = v;
    }
    rr = pii::block_sum(rr, red);
    bb = pii::block_sum(bb, red);
    if (t == 0) {
        double rel;
        if (!(rr - rr == 0.0) || !(bb - bb == 0.0)) {
            rel = pii::quiet_nan<double>();
        } else if (bb > 0.0) {
            rel = sqrt(rr / bb);
        } else {
            rel = rr == 0.0 ? 0.0 : 1.0 / bb;  // r0 = 0 but A e != 0: +inf
        }
        residual[sys] = rel;
        status[sys] = pii::SOLVED_BOX;
    }
}
PII_COOPERATIVE(box_solve)
