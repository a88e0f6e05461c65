// Residual of the discrete Poisson operator: residual.
// CUDA twin of the Numba function of the same name (pii_augment/ops/_numba_kernels.py): same
// arguments in the same order, followed by the array shapes.
#include "common.cuh"

// r = rhs - A(u) on unknown cells, 0 on the other cells of the extent (cells beyond it untouched).
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
    const double wz = w[0], wy = w[1], wx = w[2];
    const double up = (double)u[f];
    double acc = 0.0;
    if (x > 0 && kind[k - 1] != 0) acc += wx * (up - (double)u[f - 1]);
    if (x + 1 < ex && kind[k + 1] != 0) acc += wx * (up - (double)u[f + 1]);
    if (y > 0 && kind[k - sy] != 0) acc += wy * (up - (double)u[f - sy]);
    if (y + 1 < ey && kind[k + sy] != 0) acc += wy * (up - (double)u[f + sy]);
    if (z > 0 && kind[k - sz] != 0) acc += wz * (up - (double)u[f - sz]);
    if (z + 1 < ez && kind[k + sz] != 0) acc += wz * (up - (double)u[f + sz]);
    r[f] = (T)((double)rhs[f] - acc);
}
