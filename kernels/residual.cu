// Residual of the discrete Poisson operator: residual.
// CUDA twin of the Numba function of the same name (pii_augment/ops/_numba_kernels.py): same
// arguments in the same order, followed by the array shapes.
#include "common.cuh"

// r = rhs - A(u) on unknown cells, 0 on the other cells of the extent (cells beyond it untouched);
// A(u)_p = diag_p u_p - nb_p in the field type (see stencil_t); w: (B, 3) axis weights per sample.
// Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void residual(const T* __restrict__ u, const T* __restrict__ rhs,
                         const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                         const double* __restrict__ w, T* __restrict__ r,
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
        r[f] = T(0);
        return;
    }
    T nb, diag;
    pii::stencil_t(u, kind, f, k, z, y, x, ez, ey, ex, sy, sz, (T)w[3 * b], (T)w[3 * b + 1], (T)w[3 * b + 2],
                   nb, diag);
    r[f] = rhs[f] - (diag * u[f] - nb);
}
