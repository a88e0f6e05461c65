// Per-cell operations of the multigrid levels, shared by the row-mapped kernels of transfer.cu and
// the block-per-system solver of mg.cu, so that both compute the same values to the bit. Twins of
// the Numba functions coarsen_kind, restrict and prolong_add (pii_augment/ops/_numba_kernels.py).
// A system's field is addressed as f[(z * H + y) * W + x] (H, W: the row pitches of the array; the
// extents ez, ey, ex may be smaller).
#ifndef PII_AUGMENT_LEVELS_CUH
#define PII_AUGMENT_LEVELS_CUH
#include "common.cuh"

namespace pii {

// Cell-centred linear interpolation along one axis: fine index i -> primary and secondary coarse
// parents and their weights (the secondary weight is 0 when the axis is not coarsened or the
// secondary parent lies outside [0, n_c)).
__device__ __forceinline__ void axis_pair(int i, long long f, long long n_c, int& p, int& s,
                                          double& wp, double& ws) {
    if (f == 0) {
        p = i; s = i; wp = 1.0; ws = 0.0;
        return;
    }
    p = i >> 1;
    s = (i & 1) ? p + 1 : p - 1;
    if (s < 0 || s >= n_c) {
        s = p; wp = 1.0; ws = 0.0;
        return;
    }
    wp = 0.75;
    ws = 0.25;
}

// Weight with which fine index i interpolates from coarse index I (the transpose of axis_pair);
// 0 when i does not touch I.
__device__ __forceinline__ double restrict_weight(int I, int i, long long f, long long n_c) {
    int p, s;
    double wp, ws;
    axis_pair(i, f, n_c, p, s, wp, ws);
    double w = 0.0;
    if (p == I) w += wp;
    if (s == I) w += ws;
    return w;
}

// e[z, y, x] of one (B, C) system's coarse field, widened to double.
template <typename T>
__device__ __forceinline__ double at(const T* __restrict__ e, int Hc, int Wc, int z, int y, int x) {
    return (double)e[((long long)z * Hc + y) * Wc + x];
}

}  // namespace pii

namespace pii {

// Coarse label of coarse cell (Z, Y, X) by erosion: FIXED if any present child is fixed, else
// UNKNOWN if any child is unknown, else ABSENT. kind_f: one sample's fine labels.
__device__ __forceinline__ unsigned char coarsen_cell(const unsigned char* __restrict__ kind_f, long long Hf,
                                                      long long Wf, long long efz, long long efy, long long efx,
                                                      int Z, int Y, int X, int fz, int fy, int fx) {
    bool has1 = false, has2 = false;
    for (int dz = 0; dz <= fz; ++dz) {
        const int z = (Z << fz) + dz;
        if (z >= efz) continue;
        for (int dy = 0; dy <= fy; ++dy) {
            const int y = (Y << fy) + dy;
            if (y >= efy) continue;
            for (int dx = 0; dx <= fx; ++dx) {
                const int x = (X << fx) + dx;
                if (x >= efx) continue;
                const unsigned char kf = kind_f[((long long)z * Hf + y) * Wf + x];
                if (kf == FIXED) {
                    has1 = true;
                } else if (kf == UNKNOWN) {
                    has2 = true;
                }
            }
        }
    }
    return has1 ? FIXED : (has2 ? UNKNOWN : ABSENT);
}

// The restricted right-hand side at coarse unknown (Z, Y, X): the transpose of prolong_cell,
// scaled by 2^-k (k coarsened axes). Same order as the Numba twin: per fine column x, the
// (z, y)-weighted sum of the fine residuals; then the x-weighted sum of those columns.
template <typename T>
__device__ __forceinline__ T restrict_cell(const T* __restrict__ r_f, long long Hf, long long Wf, long long efz,
                                           long long efy, long long efx, int Z, int Y, int X, long long ecz,
                                           long long ecy, long long ecx, int fz, int fy, int fx) {
    const double scale = 1.0 / (double)(1 << (fz + fy + fx));
    double s = 0.0;
    const int z_lo = (Z << fz) - fz > 0 ? (Z << fz) - fz : 0;
    const int y_lo = (Y << fy) - fy > 0 ? (Y << fy) - fy : 0;
    const int x_lo = (X << fx) - fx > 0 ? (X << fx) - fx : 0;
    for (int x = x_lo; x < (X << fx) + 1 + 2 * fx && x < efx; ++x) {
        const double wx = restrict_weight(X, x, fx, ecx);
        if (wx == 0.0) continue;
        double col = 0.0;
        for (int z = z_lo; z < (Z << fz) + 1 + 2 * fz && z < efz; ++z) {
            const double wz = restrict_weight(Z, z, fz, ecz);
            if (wz == 0.0) continue;
            for (int y = y_lo; y < (Y << fy) + 1 + 2 * fy && y < efy; ++y) {
                const double wzy = wz * restrict_weight(Y, y, fy, ecy);
                if (wzy == 0.0) continue;
                col += wzy * (double)r_f[((long long)z * Hf + y) * Wf + x];
            }
        }
        s += wx * col;
    }
    return (T)(s * scale);
}

// u + (P e_c) at fine unknown (z, y, x): cell-centred bi/trilinear interpolation of one system's
// coarse correction e_c (row pitches Hc, Wc; extents ecz, ecy, ecx). Same order as the Numba
// twin: the coarse columns x0 and x1 interpolated in (z, y), then in x.
template <typename T>
__device__ __forceinline__ T prolong_cell(const T* __restrict__ e, long long Hc, long long Wc, long long ecz,
                                          long long ecy, long long ecx, int z, int y, int x, int fz, int fy, int fx,
                                          T u) {
    int z0, z1, y0, y1, x0, x1;
    double wz0, wz1, wy0, wy1, wx0, wx1;
    axis_pair(z, fz, ecz, z0, z1, wz0, wz1);
    axis_pair(y, fy, ecy, y0, y1, wy0, wy1);
    axis_pair(x, fx, ecx, x0, x1, wx0, wx1);
    const int Hci = (int)Hc, Wci = (int)Wc;
    const double w00 = wz0 * wy0, w01 = wz0 * wy1, w10 = wz1 * wy0, w11 = wz1 * wy1;
    const double c0 = (w00 * at(e, Hci, Wci, z0, y0, x0) + w01 * at(e, Hci, Wci, z0, y1, x0)) +
                      (w10 * at(e, Hci, Wci, z1, y0, x0) + w11 * at(e, Hci, Wci, z1, y1, x0));
    const double c1 = (w00 * at(e, Hci, Wci, z0, y0, x1) + w01 * at(e, Hci, Wci, z0, y1, x1)) +
                      (w10 * at(e, Hci, Wci, z1, y0, x1) + w11 * at(e, Hci, Wci, z1, y1, x1));
    const double acc = wx0 * c0 + wx1 * c1;
    return (T)((double)u + acc);
}

}  // namespace pii

#endif  // PII_AUGMENT_LEVELS_CUH
