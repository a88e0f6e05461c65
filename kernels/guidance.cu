// Guidance field divergence: guidance_rhs.
// CUDA twin of the Numba function of the same name (pii_augment/ops/_numba_kernels.py): same
// arguments in the same order, followed by the array shapes. One thread per crop cell.
#include "common.cuh"


// Right-hand side of the correction e = f - dst on unknown cells: rhs_p = sum over present
// neighbours q (kind_q != 0) of (v_pq - (dst_p - dst_q)), plus src_p in mode 3 (src then holds
// the divergence per pixel), accumulated in double in the order x-, x+, y-, y+, z-, z+; 0 on the
// other cells of the crop extent; cells beyond the extent are left alone.
// dst, src, rhs: (B, C, Dp, Hp, Wp); kind: (B, Dp, Hp, Wp); ext: (B, 3); alpha: (B,) float64;
// mode: 0 pii, 1 mixed, 2 source, 3 divergence, 4 harmonic. Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void guidance_rhs(const T* __restrict__ dst, const T* __restrict__ src,
                             const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                             const double* __restrict__ alpha, int mode, T* __restrict__ rhs,
                             int B, int C, int Dp, int Hp, int Wp) {
    int row, x, b, c, z, y;
    if (!pii::row_and_x(B * C * Dp * Hp, Wp, row, x)) return;
    pii::split_row(row, C, Dp, Hp, b, c, z, y);
    const long long ez = ext[3 * b], ey = ext[3 * b + 1], ex = ext[3 * b + 2];
    if (z >= ez || y >= ey || x >= ex) return;
    const long long sy = Wp, sz = (long long)Hp * Wp;
    const long long k = ((long long)(b * Dp + z) * Hp + y) * Wp + x;
    const long long f = (long long)row * Wp + x;
    if (kind[k] != 2) {
        rhs[f] = T(0);
        return;
    }
    rhs[f] = pii::rhs_cell(dst, src, kind, f, k, z, y, x, ez, ey, ex, sy, sz, sy, sz, alpha[b], mode);
}
