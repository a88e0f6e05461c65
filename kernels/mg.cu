// Any mask, one thread block per system: mg_solve, the whole multigrid-preconditioned CG solve of
// one system (sample, channel) in one block. CUDA twin of solve_flat / mg_solve_samples
// (pii_augment/ops/_mg_system.py; tests/generic_twin.py writes it with the row-mapped
// primitives): the same hierarchy (the sample coarsens on its own schedule),
// the same V-cycle (red-black Gauss-Seidel, nu1 sweeps down and nu2 up on every level, restriction
// the scaled transpose of the bilinear prolongation), the same PCG with the offset-invariant test on
// the correction and the same stall rule, every per-cell value computed by the functions the
// row-mapped kernels use (common.cuh, levels.cuh), and dot products summed in a fixed tree over
// the block's 256 threads (the twin sums in the same order), so both give the same bytes.
#include "common.cuh"
#include "levels.cuh"

namespace pii {

constexpr int MG_MAX_LEVELS = 16;

// The per-block state of mg_solve: the level table and the scalars of the iteration.
struct MgLevels {
    long long ext[MG_MAX_LEVELS][3];
    double w[MG_MAX_LEVELS][3];
    int flags[MG_MAX_LEVELS][3];
    long long off[MG_MAX_LEVELS + 1];  // cell offset of every level in the level arrays
    int L;
};

__device__ __forceinline__ long long cells(const long long* e) { return e[0] * e[1] * e[2]; }

// Per-sample hierarchy of solver.build_hierarchy / _mg_system.hierarchy (run by one thread).
__device__ void mg_hierarchy(MgLevels& h, long long ez, long long ey, long long ex, int coarsest, int max_levels) {
    h.ext[0][0] = ez;
    h.ext[0][1] = ey;
    h.ext[0][2] = ex;
    for (int a = 0; a < 3; ++a) h.w[0][a] = 1.0;
    int L = 1;
    while (L < max_levels && L < MG_MAX_LEVELS) {
        const long long* e = h.ext[L - 1];
        const long long mx = e[0] > e[1] ? (e[0] > e[2] ? e[0] : e[2]) : (e[1] > e[2] ? e[1] : e[2]);
        if (mx <= coarsest) break;
        for (int a = 0; a < 3; ++a) {
            const int f = e[a] > 1 ? 1 : 0;
            h.flags[L - 1][a] = f;
            h.ext[L][a] = f ? (e[a] + 1) / 2 : e[a];
            h.w[L][a] = h.w[L - 1][a] * (f ? 0.25 : 1.0);
        }
        ++L;
    }
    for (int a = 0; a < 3; ++a) h.flags[L - 1][a] = 0;
    h.L = L;
    h.off[0] = 0;
    for (int k = 0; k < L; ++k) h.off[k + 1] = h.off[k] + cells(h.ext[k]);
}

// Bytes of the workspace of a hierarchy: labels, then e, rhs and res of every level, then p.
__device__ __forceinline__ long long mg_workspace_bytes(const MgLevels& h, int item) {
    const long long n_all = h.off[h.L], n0 = h.off[1];
    return (n_all + 15) / 16 * 16 + (3 * n_all + n0) * (long long)item;
}

// Red-black Gauss-Seidel: sweeps times colour `first` then 1 - first, a barrier after each colour.
template <typename T>
__device__ void mg_smooth(T* e, const T* rhs, const unsigned char* kind, const long long* ext, const double* w,
                          int sweeps, int first) {
    const long long n = cells(ext);
    const long long ey = ext[1], ex = ext[2];
    for (int s = 0; s < sweeps; ++s) {
        for (int half = 0; half < 2; ++half) {
            const int colour = half == 0 ? first : 1 - first;
            for (long long cell = threadIdx.x; cell < n; cell += BLOCK) {
                const int x = (int)(cell % ex), y = (int)((cell / ex) % ey), z = (int)(cell / (ex * ey));
                if (((x + y + z) & 1) != colour || kind[cell] != UNKNOWN) continue;
                T nb, diag;
                stencil_t(e, kind, cell, cell, z, y, x, ext[0], ey, ex, ex, ex * ey, (T)w[0], (T)w[1], (T)w[2], nb, diag);
                if (diag > T(0)) e[cell] = (rhs[cell] + nb) / diag;
            }
            __syncthreads();
        }
    }
}

// out = rhs - A(u) on unknown cells, 0 on the others (rhs may be null: zero); then a barrier.
template <typename T>
__device__ void mg_residual(const T* u, const T* rhs, const unsigned char* kind, const long long* ext,
                            const double* w, T* out) {
    const long long n = cells(ext);
    const long long ey = ext[1], ex = ext[2];
    for (long long cell = threadIdx.x; cell < n; cell += BLOCK) {
        if (kind[cell] != UNKNOWN) {
            out[cell] = T(0);
            continue;
        }
        const int x = (int)(cell % ex), y = (int)((cell / ex) % ey), z = (int)(cell / (ex * ey));
        T nb, diag;
        stencil_t(u, kind, cell, cell, z, y, x, ext[0], ey, ex, ex, ex * ey, (T)w[0], (T)w[1], (T)w[2], nb, diag);
        out[cell] = (rhs != nullptr ? rhs[cell] : T(0)) - (diag * u[cell] - nb);
    }
    __syncthreads();
}

// The dot product of x and y over the unknown cells, summed in a fixed order (see _dot_flat).
template <typename T>
__device__ double mg_dot(const T* x, const T* y, const unsigned char* kind, long long n, double* red) {
    double acc = 0.0;
    for (long long cell = threadIdx.x; cell < n; cell += BLOCK) {
        if (kind[cell] == UNKNOWN) acc += (double)x[cell] * (double)y[cell];
    }
    return block_sum(acc, red);
}

__device__ __forceinline__ double mg_relative(double rr, double rr0) {
    if (!(rr0 - rr0 == 0.0) || !(rr - rr == 0.0)) return quiet_nan<double>();
    if (rr0 == 0.0) return rr == 0.0 ? 0.0 : 1.0 / rr0;  // r0 = 0 but r != 0: +inf
    return sqrt(rr / rr0);
}

}  // namespace pii

// One block of pii::BLOCK threads per system: grid = B * C (block i: system i), or the length of
// `systems` (block i: system systems[i], the second pass). A system is solved here when its
// sample's mask is non-empty and the exact box solve did not take it (status != SOLVED_BOX), and its
// workspace (labels, e, rhs and res of every level, and p: about 21 bytes per crop cell in float32,
// 37 in float64) fits in `capacity` bytes; status[b, c] is set to MG_PENDING when it does not (it
// then goes to the second pass), else to SOLVED_MG + the twin's verdict (11 CONVERGED, 12 STALLED,
// 13 NONFINITE, 14 MAX_ITER); residual[b, c] and iters[b, c] get the relative residual and the PCG
// iterations. The solution e goes to x_buf (capacity_cells T per block, global memory) and out
// (holding dst) gets clip(dst + e) on the mask. The workspace is the launch's dynamic shared memory,
// or, with scratch (global, capacity bytes per block), that slice of it: the same kernel for crops
// too large for a block's shared memory.
//
// dst, guide, out: (B, C, D, H, W); mask: (B, D, H, W) bytes; alpha: (B,) double; boxes, count:
// the tables of prepare_systems; lo, hi: (B, C) clip range.
template <typename T>
__global__ void mg_solve(const T* __restrict__ dst, const T* __restrict__ guide,
                         const unsigned char* __restrict__ mask, const double* __restrict__ alpha, int mode,
                         const long long* __restrict__ boxes, const long long* __restrict__ count,
                         const T* __restrict__ lo, const T* __restrict__ hi, int do_clip, T* __restrict__ out,
                         double* __restrict__ residual, int* __restrict__ status, int* __restrict__ iters,
                         T* __restrict__ x_buf, long long capacity_cells, unsigned char* __restrict__ scratch,
                         long long capacity, const int* __restrict__ systems, double tol, int max_iter, int nu1,
                         int nu2, int coarsest, int max_levels, double stall_ratio, int B, int C, int D, int H,
                         int W, int ndim) {
    PII_DYNAMIC_SHARED(unsigned char, smem);
    __shared__ pii::MgLevels h;
    __shared__ double red[pii::BLOCK];
    const int sys = systems != nullptr ? systems[blockIdx.x] : (int)blockIdx.x;
    const int t = (int)threadIdx.x;
    if (sys >= B * C) return;
    const int b = sys / C;
    if (count[b] == 0 ||
        (systems == nullptr && (status[sys] == pii::SOLVED_BOX || status[sys] == pii::BOX_PENDING))) {
        return;  // empty, or a box
    }
    const long long* bx = boxes + 6LL * b;
    const int hz = ndim == 3 ? 1 : 0;
    const long long oz = bx[0] - hz, oy = bx[1] - 1, ox = bx[2] - 1;  // crop origin in the image
    const long long ez = ndim == 3 ? bx[3] - bx[0] + 2 : 1, ey = bx[4] - bx[1] + 2, ex = bx[5] - bx[2] + 2;
    if (t == 0) pii::mg_hierarchy(h, ez, ey, ex, coarsest, max_levels);
    __syncthreads();
    const int item = (int)sizeof(T);
    const long long n0 = h.off[1], n_all = h.off[h.L];
    if (pii::mg_workspace_bytes(h, item) > capacity || n0 > capacity_cells) {  // uniform for the block
        if (t == 0) status[sys] = pii::MG_PENDING;
        return;
    }
    unsigned char* ws = scratch != nullptr ? scratch + (long long)blockIdx.x * capacity : smem;
    unsigned char* kinds = ws;
    T* es = reinterpret_cast<T*>(ws + (n_all + 15) / 16 * 16);
    T* rhss = es + n_all;
    T* ress = rhss + n_all;
    T* p = ress + n_all;
    T* x = x_buf + (long long)blockIdx.x * capacity_cells;
    T* z = es;     // level 0 of e: the preconditioned residual
    T* r = rhss;   // level 0 of rhs: the residual of x
    T* q = ress;   // level 0 of res: A p, and the V-cycle's residual scratch
    const long long HW = (long long)H * W;
    const long long base = (long long)sys * D * HW;
    const T* d = dst + base;
    const T* g = guide + base;
    const unsigned char* m = mask + (long long)b * D * HW;
    const double al = alpha[b];
    // labels of the crop (build_kind) and the correction's right-hand side (guidance_rhs), x = 0
    for (long long cell = t; cell < n0; cell += pii::BLOCK) {
        const long long cx = cell % ex, cy = (cell / ex) % ey, cz = cell / (ex * ey);
        const long long iz = oz + cz, iy = oy + cy, ix = ox + cx;
        unsigned char k = pii::ABSENT;
        if (0 <= iz && iz < D && 0 <= iy && iy < H && 0 <= ix && ix < W) {
            k = m[iz * HW + iy * W + ix] ? pii::UNKNOWN : pii::FIXED;
        }
        kinds[cell] = k;
        x[cell] = T(0);
        p[cell] = T(0);
    }
    __syncthreads();
    for (long long cell = t; cell < n0; cell += pii::BLOCK) {
        T v = T(0);
        if (kinds[cell] == pii::UNKNOWN) {
            const int cx = (int)(cell % ex), cy = (int)((cell / ex) % ey), cz = (int)(cell / (ex * ey));
            v = pii::rhs_cell(d, g, kinds, (oz + cz) * HW + (oy + cy) * W + (ox + cx), cell, cz, cy, cx, ez, ey, ex,
                              (long long)W, HW, ex, ex * ey, al, mode);
        }
        r[cell] = v;
    }
    // coarse labels, level by level
    for (int k = 0; k + 1 < h.L; ++k) {
        __syncthreads();
        const long long* ef = h.ext[k];
        const long long* ec = h.ext[k + 1];
        const long long nc = pii::cells(ec);
        unsigned char* kf = kinds + h.off[k];
        unsigned char* kc = kinds + h.off[k + 1];
        for (long long cell = t; cell < nc; cell += pii::BLOCK) {
            const int X = (int)(cell % ec[2]), Y = (int)((cell / ec[2]) % ec[1]), Z = (int)(cell / (ec[2] * ec[1]));
            kc[cell] = pii::coarsen_cell(kf, ef[1], ef[2], ef[0], ef[1], ef[2], Z, Y, X, h.flags[k][0], h.flags[k][1],
                                         h.flags[k][2]);
        }
    }
    __syncthreads();
    const unsigned char* kind0 = kinds;
    const double rr0 = pii::mg_dot(r, r, kind0, n0, red);
    double rel = pii::mg_relative(rr0, rr0);
    int st = pii::MAX_ITER, it = 0;
    if (rel <= tol) {
        st = pii::CONVERGED;
    } else if (!(rel - rel == 0.0)) {
        st = pii::NONFINITE;
    } else {
        double last = pii::mg_relative(1.0, 0.0);  // +inf
        double rz = 0.0;
        while (it < max_iter) {
            // z = V-cycle(r): level 0 starts at 0
            for (long long cell = t; cell < n0; cell += pii::BLOCK) z[cell] = T(0);
            __syncthreads();
            for (int k = 0; k < h.L; ++k) {
                T* ek = es + h.off[k];
                const T* bk = k == 0 ? r : rhss + h.off[k];
                const unsigned char* kk = kinds + h.off[k];
                if (k > 0) {
                    for (long long cell = t; cell < pii::cells(h.ext[k]); cell += pii::BLOCK) ek[cell] = T(0);
                    __syncthreads();
                }
                pii::mg_smooth(ek, bk, kk, h.ext[k], h.w[k], nu1, 0);
                if (k + 1 < h.L) {
                    T* rk = ress + h.off[k];
                    pii::mg_residual(ek, bk, kk, h.ext[k], h.w[k], rk);
                    const long long* ef = h.ext[k];
                    const long long* ec = h.ext[k + 1];
                    const unsigned char* kc = kinds + h.off[k + 1];
                    T* rc = rhss + h.off[k + 1];
                    for (long long cell = t; cell < pii::cells(ec); cell += pii::BLOCK) {
                        if (kc[cell] != pii::UNKNOWN) {
                            rc[cell] = T(0);
                            continue;
                        }
                        const int X = (int)(cell % ec[2]), Y = (int)((cell / ec[2]) % ec[1]),
                                  Z = (int)(cell / (ec[2] * ec[1]));
                        rc[cell] = pii::restrict_cell(rk, ef[1], ef[2], ef[0], ef[1], ef[2], Z, Y, X, ec[0], ec[1],
                                                      ec[2], h.flags[k][0], h.flags[k][1], h.flags[k][2]);
                    }
                    __syncthreads();
                }
            }
            for (int k = h.L - 1; k >= 0; --k) {
                T* ek = es + h.off[k];
                const T* bk = k == 0 ? r : rhss + h.off[k];
                const unsigned char* kk = kinds + h.off[k];
                if (k + 1 < h.L) {
                    const long long* ef = h.ext[k];
                    const long long* ec = h.ext[k + 1];
                    const T* ecv = es + h.off[k + 1];
                    for (long long cell = t; cell < pii::cells(ef); cell += pii::BLOCK) {
                        if (kk[cell] != pii::UNKNOWN) continue;
                        const int xx = (int)(cell % ef[2]), yy = (int)((cell / ef[2]) % ef[1]),
                                  zz = (int)(cell / (ef[2] * ef[1]));
                        ek[cell] = pii::prolong_cell(ecv, ec[1], ec[2], ec[0], ec[1], ec[2], zz, yy, xx, h.flags[k][0],
                                                     h.flags[k][1], h.flags[k][2], ek[cell]);
                    }
                    __syncthreads();
                }
                pii::mg_smooth(ek, bk, kk, h.ext[k], h.w[k], nu2, 1);
            }
            const double rz_new = pii::mg_dot(r, z, kind0, n0, red);
            if (it == 0) {
                for (long long cell = t; cell < n0; cell += pii::BLOCK) p[cell] = z[cell];
            } else {
                const double beta = rz > 0 ? rz_new / rz : 0.0;
                for (long long cell = t; cell < n0; cell += pii::BLOCK) {
                    if (kind0[cell] == pii::UNKNOWN) p[cell] = (T)((double)z[cell] + beta * (double)p[cell]);
                }
            }
            rz = rz_new;
            __syncthreads();
            pii::mg_residual(p, (const T*)nullptr, kind0, h.ext[0], h.w[0], q);  // q = -A p
            const double pq = pii::mg_dot(p, q, kind0, n0, red);
            const double alpha_k = -pq > 0 ? rz / (-pq) : 0.0;
            if (alpha_k != 0.0) {
                for (long long cell = t; cell < n0; cell += pii::BLOCK) {
                    if (kind0[cell] != pii::UNKNOWN) continue;
                    x[cell] = (T)((double)x[cell] + alpha_k * (double)p[cell]);
                    r[cell] = (T)((double)r[cell] + alpha_k * (double)q[cell]);
                }
            }
            __syncthreads();
            ++it;
            const double est = pii::mg_relative(pii::mg_dot(r, r, kind0, n0, red), rr0);
            const bool said_ok = est <= tol;
            if (said_ok || !(est - est == 0.0) || it == max_iter) {
                // the true residual r0 - A x, with r0 recomputed from the images (as stored before)
                for (long long cell = t; cell < n0; cell += pii::BLOCK) {
                    if (kind0[cell] != pii::UNKNOWN) {
                        q[cell] = T(0);
                        continue;
                    }
                    const int cx = (int)(cell % ex), cy = (int)((cell / ex) % ey), cz = (int)(cell / (ex * ey));
                    const T r0 = pii::rhs_cell(d, g, kinds, (oz + cz) * HW + (oy + cy) * W + (ox + cx), cell, cz, cy,
                                               cx, ez, ey, ex, (long long)W, HW, ex, ex * ey, al, mode);
                    T nb, diag;
                    pii::stencil_t(x, kind0, cell, cell, cz, cy, cx, ez, ey, ex, ex, ex * ey, (T)h.w[0][0],
                                   (T)h.w[0][1], (T)h.w[0][2], nb, diag);
                    q[cell] = r0 - (diag * x[cell] - nb);
                }
                __syncthreads();
                const double tr = pii::mg_relative(pii::mg_dot(q, q, kind0, n0, red), rr0);
                rel = tr;
                if (tr <= tol) {
                    st = pii::CONVERGED;
                    break;
                }
                if (!(tr - tr == 0.0)) {
                    st = pii::NONFINITE;
                    break;
                }
                if (said_ok && tr > stall_ratio * last) {
                    st = pii::STALLED;
                    break;
                }
                last = tr;
            }
        }
    }
    // out = clip(dst + e) on the mask (scatter_crop)
    const T l = lo[sys], hv = hi[sys];
    T* o = out + base;
    for (long long cell = t; cell < n0; cell += pii::BLOCK) {
        if (kind0[cell] != pii::UNKNOWN) continue;
        const long long cx = cell % ex, cy = (cell / ex) % ey, cz = cell / (ex * ey);
        const long long img = (oz + cz) * HW + (oy + cy) * W + (ox + cx);
        T v = o[img] + x[cell];
        if (do_clip) v = v < l ? l : (v > hv ? hv : v);
        o[img] = v;
    }
    if (t == 0) {
        residual[sys] = rel;
        status[sys] = pii::SOLVED_MG + st;
        iters[sys] = it;
    }
}
PII_COOPERATIVE(mg_solve)
