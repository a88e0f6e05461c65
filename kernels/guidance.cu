// Guidance field divergence: guidance_rhs.
// CUDA twin of the Numba function of the same name (pii_augment/ops/_numba_kernels.py): same
// arguments in the same order, followed by the array shapes. One thread per crop cell.
#include "common.cuh"


// Right-hand side of the correction e = f - dst on unknown cells: rhs_p = sum over present
// neighbours q (kind_q != ABSENT) of (v_pq - (dst_p - dst_q)), plus src_p in MODE_DIVERGENCE (src
// then holds the divergence per pixel), accumulated in double in the order x-, x+, y-, y+, z-, z+;
// 0 on the other cells of the crop extent; cells beyond the extent are left alone.
// dst, src, rhs: (B, C, Dp, Hp, Wp); kind: (B, Dp, Hp, Wp); ext: (B, 3); alpha: (B,) float64;
// mode: one of MODE_PII, MODE_MIXED, MODE_SOURCE, MODE_DIVERGENCE, MODE_HARMONIC (common.cuh).
// Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void guidance_rhs(const T* __restrict__ dst, const T* __restrict__ src,
                             const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                             const double* __restrict__ alpha, int mode, T* __restrict__ rhs,
                             int B, int C, int Dp, int Hp, int Wp) {
    pii::CropCell q;
    if (!pii::unknown_or_zero(B, C, Dp, Hp, Wp, ext, kind, rhs, q)) return;
    const long long sy = Wp, sz = (long long)Hp * Wp;
    rhs[q.f] = pii::rhs_cell(dst, src, kind, q.f, q.k, q.z, q.y, q.x, q.ez, q.ey, q.ex, sy, sz, sy, sz, alpha[q.b],
                             mode);
}
