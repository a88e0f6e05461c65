// Grid transfer between multigrid levels: coarsen_kind, restrict, prolong_add.
// CUDA twins of the Numba functions of the same names (pii_augment/ops/_numba_kernels.py): same
// arguments in the same order, followed by the array shapes. flags: (B, 3), flags[b, a] = 1 where
// axis a (z, y, x) of sample b is coarsened by 2 between the two levels; a sample absent from the
// coarser level has extent 0 there.
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

// Coarse labels by erosion: fixed if any present child is fixed, else unknown if any child is
// unknown, else 0 (also 0 beyond the coarse extent). kind_f: (B, Df, Hf, Wf); kind_c:
// (B, Dc, Hc, Wc). Launch: rows = B * Dc * Hc, width = Wc. T is unused.
template <typename T>
__global__ void coarsen_kind(const unsigned char* __restrict__ kind_f, const long long* __restrict__ ext_f,
                             const long long* __restrict__ flags, unsigned char* __restrict__ kind_c,
                             const long long* __restrict__ ext_c, int B, int Df, int Hf, int Wf,
                             int Dc, int Hc, int Wc) {
    int row, X;
    if (!pii::row_and_x(B * Dc * Hc, Wc, row, X)) return;
    const int Y = row % Hc;
    const int t = row / Hc;
    const int Z = t % Dc;
    const int b = t / Dc;
    const int fz = (int)flags[3 * b], fy = (int)flags[3 * b + 1], fx = (int)flags[3 * b + 2];
    unsigned char k = 0;
    if (Z < ext_c[3 * b] && Y < ext_c[3 * b + 1] && X < ext_c[3 * b + 2]) {
        bool has1 = false, has2 = false;
        for (int dz = 0; dz <= fz; ++dz) {
            const int z = (Z << fz) + dz;
            if (z >= ext_f[3 * b]) continue;
            for (int dy = 0; dy <= fy; ++dy) {
                const int y = (Y << fy) + dy;
                if (y >= ext_f[3 * b + 1]) continue;
                for (int dx = 0; dx <= fx; ++dx) {
                    const int x = (X << fx) + dx;
                    if (x >= ext_f[3 * b + 2]) continue;
                    const unsigned char kf = kind_f[((long long)(b * Df + z) * Hf + y) * Wf + x];
                    if (kf == 1) {
                        has1 = true;
                    } else if (kf == 2) {
                        has2 = true;
                    }
                }
            }
        }
        k = has1 ? 1 : (has2 ? 2 : 0);
    }
    kind_c[(long long)row * Wc + X] = k;
}

// rhs_c on coarse unknowns: the transpose of prolong_add, scaled by 2^-k (k coarsened axes) so
// that it averages; 0 on the other cells of the coarse extent. r_f: (B, C, Df, Hf, Wf); rhs_c:
// (B, C, Dc, Hc, Wc). Launch: rows = B * C * Dc * Hc, width = Wc.
template <typename T>
__global__ void restrict(const T* __restrict__ r_f, const long long* __restrict__ ext_f,
                         const unsigned char* __restrict__ kind_c, const long long* __restrict__ ext_c,
                         const long long* __restrict__ flags, T* __restrict__ rhs_c,
                         int B, int C, int Df, int Hf, int Wf, int Dc, int Hc, int Wc) {
    int row, X, b, c, Z, Y;
    if (!pii::row_and_x(B * C * Dc * Hc, Wc, row, X)) return;
    pii::split_row(row, C, Dc, Hc, b, c, Z, Y);
    const long long ecz = ext_c[3 * b], ecy = ext_c[3 * b + 1], ecx = ext_c[3 * b + 2];
    if (Z >= ecz || Y >= ecy || X >= ecx) return;
    const long long fc = (long long)row * Wc + X;
    if (kind_c[((long long)(b * Dc + Z) * Hc + Y) * Wc + X] != 2) {
        rhs_c[fc] = T(0);
        return;
    }
    const int fz = (int)flags[3 * b], fy = (int)flags[3 * b + 1], fx = (int)flags[3 * b + 2];
    const long long efz = ext_f[3 * b], efy = ext_f[3 * b + 1], efx = ext_f[3 * b + 2];
    const double scale = 1.0 / (double)(1 << (fz + fy + fx));
    const T* base = r_f + (b * (long long)C + c) * Df * Hf * Wf;
    // Same order as the Numba twin: per fine column x, the (z, y)-weighted sum of the fine
    // residuals; then the x-weighted sum of those columns.
    double s = 0.0;
    const int z_lo = (Z << fz) - fz > 0 ? (Z << fz) - fz : 0;
    const int y_lo = (Y << fy) - fy > 0 ? (Y << fy) - fy : 0;
    const int x_lo = (X << fx) - fx > 0 ? (X << fx) - fx : 0;
    for (int x = x_lo; x < (X << fx) + 1 + 2 * fx && x < efx; ++x) {
        const double wx = pii::restrict_weight(X, x, fx, ecx);
        if (wx == 0.0) continue;
        double col = 0.0;
        for (int z = z_lo; z < (Z << fz) + 1 + 2 * fz && z < efz; ++z) {
            const double wz = pii::restrict_weight(Z, z, fz, ecz);
            if (wz == 0.0) continue;
            for (int y = y_lo; y < (Y << fy) + 1 + 2 * fy && y < efy; ++y) {
                const double wzy = wz * pii::restrict_weight(Y, y, fy, ecy);
                if (wzy == 0.0) continue;
                col += wzy * (double)base[((long long)z * Hf + y) * Wf + x];
            }
        }
        s += wx * col;
    }
    rhs_c[fc] = (T)(s * scale);
}

// u_f += P e_c on fine unknowns: cell-centred bi/trilinear interpolation (weights 3/4, 1/4 per
// coarsened axis; the nearest coarse cell at the end of the coarse extent). Coarse cells that are
// not unknown hold a zero correction; a sample absent from the coarse level (extent 0) gets
// nothing; kind_c is not read (kept for symmetry with restrict).
// e_c: (B, C, Dc, Hc, Wc); u_f: (B, C, Df, Hf, Wf). Launch: rows = B * C * Df * Hf, width = Wf.
template <typename T>
__global__ void prolong_add(const T* __restrict__ e_c, const unsigned char* __restrict__ kind_c,
                            const long long* __restrict__ ext_c, const unsigned char* __restrict__ kind_f,
                            const long long* __restrict__ ext_f, const long long* __restrict__ flags,
                            T* __restrict__ u_f, int B, int C, int Df, int Hf, int Wf, int Dc, int Hc,
                            int Wc) {
    (void)kind_c;
    int row, x, b, c, z, y;
    if (!pii::row_and_x(B * C * Df * Hf, Wf, row, x)) return;
    pii::split_row(row, C, Df, Hf, b, c, z, y);
    if (z >= ext_f[3 * b] || y >= ext_f[3 * b + 1] || x >= ext_f[3 * b + 2]) return;
    if (kind_f[((long long)(b * Df + z) * Hf + y) * Wf + x] != 2) return;
    if (ext_c[3 * b] == 0 || ext_c[3 * b + 1] == 0 || ext_c[3 * b + 2] == 0) return;
    int z0, z1, y0, y1, x0, x1;
    double wz0, wz1, wy0, wy1, wx0, wx1;
    pii::axis_pair(z, flags[3 * b], ext_c[3 * b], z0, z1, wz0, wz1);
    pii::axis_pair(y, flags[3 * b + 1], ext_c[3 * b + 1], y0, y1, wy0, wy1);
    pii::axis_pair(x, flags[3 * b + 2], ext_c[3 * b + 2], x0, x1, wx0, wx1);
    const T* e = e_c + (b * (long long)C + c) * Dc * Hc * Wc;
    // Same order as the Numba twin: the coarse columns x0 and x1 interpolated in (z, y), then in x.
    const double w00 = wz0 * wy0, w01 = wz0 * wy1, w10 = wz1 * wy0, w11 = wz1 * wy1;
    const double c0 = (w00 * pii::at(e, Hc, Wc, z0, y0, x0) + w01 * pii::at(e, Hc, Wc, z0, y1, x0)) +
                      (w10 * pii::at(e, Hc, Wc, z1, y0, x0) + w11 * pii::at(e, Hc, Wc, z1, y1, x0));
    const double c1 = (w00 * pii::at(e, Hc, Wc, z0, y0, x1) + w01 * pii::at(e, Hc, Wc, z0, y1, x1)) +
                      (w10 * pii::at(e, Hc, Wc, z1, y0, x1) + w11 * pii::at(e, Hc, Wc, z1, y1, x1));
    const double acc = wx0 * c0 + wx1 * c1;
    const long long f = (long long)row * Wf + x;
    u_f[f] = (T)((double)u_f[f] + acc);
}
