// Smoothers: rbgs_sweep (red-black Gauss-Seidel half sweep), jacobi_sweep.
// CUDA twins of the Numba functions of the same names (pii_augment/ops/_numba_kernels.py): same
// arguments in the same order, followed by the array shapes. Arithmetic in double, as the twins.
#include "common.cuh"

namespace pii {

// Weighted neighbour sum of u over present neighbours (kind != ABSENT) and its diagonal, in double;
// the order of the terms (x-, x+, y-, y+, z-, z+) matches the Numba jacobi_sweep twin.
template <typename T>
__device__ __forceinline__ void gather_neighbours(const T* __restrict__ u, const unsigned char* __restrict__ kind,
                                                  long long f, long long k, int z, int y, int x,
                                                  long long ez, long long ey, long long ex,
                                                  long long sy, long long sz, double wz, double wy,
                                                  double wx, double& acc, double& diag) {
    if (x > 0 && kind[k - 1] != ABSENT) { diag += wx; acc += wx * (double)u[f - 1]; }
    if (x + 1 < ex && kind[k + 1] != ABSENT) { diag += wx; acc += wx * (double)u[f + 1]; }
    if (y > 0 && kind[k - sy] != ABSENT) { diag += wy; acc += wy * (double)u[f - sy]; }
    if (y + 1 < ey && kind[k + sy] != ABSENT) { diag += wy; acc += wy * (double)u[f + sy]; }
    if (z > 0 && kind[k - sz] != ABSENT) { diag += wz; acc += wz * (double)u[f - sz]; }
    if (z + 1 < ez && kind[k + sz] != ABSENT) { diag += wz; acc += wz * (double)u[f + sz]; }
}

}  // namespace pii

// One red-black Gauss-Seidel half sweep in place: unknowns with (z + y + x) % 2 == color,
// u_p = (rhs_p + nb_p) / diag_p in the field type (see stencil_t).
// u, rhs: (B, C, Dp, Hp, Wp); w: (B, 3) float64 axis weights (z, y, x) per sample.
// Launch: rows = B * C * Dp * Hp, width = (Wp + 1) / 2 (thread i of a row takes x = 2 i + parity).
template <typename T>
__global__ void rbgs_sweep(T* __restrict__ u, const T* __restrict__ rhs,
                           const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                           const double* __restrict__ w, int color, int B, int C, int Dp, int Hp, int Wp) {
    int row, i, b, c, z, y;
    if (!pii::row_and_x(B * C * Dp * Hp, (Wp + 1) / 2, row, i)) return;
    pii::split_row(row, C, Dp, Hp, b, c, z, y);
    const int x = 2 * i + ((color + z + y) & 1);
    const long long ez = ext[3 * b], ey = ext[3 * b + 1], ex = ext[3 * b + 2];
    if (z >= ez || y >= ey || x >= ex) return;
    const long long k = ((long long)(b * Dp + z) * Hp + y) * Wp + x;
    if (kind[k] != pii::UNKNOWN) return;
    const long long f = (long long)row * Wp + x;
    T nb, diag;
    pii::stencil_t(u, kind, f, k, z, y, x, ez, ey, ex, (long long)Wp, (long long)Hp * Wp,
                   (T)w[3 * b], (T)w[3 * b + 1], (T)w[3 * b + 2], nb, diag);
    if (diag > T(0)) u[f] = (rhs[f] + nb) / diag;
}

// One weighted Jacobi sweep from u into u_out; non-unknown cells of the extent are copied.
// Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void jacobi_sweep(const T* __restrict__ u, const T* __restrict__ rhs,
                             const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                             const double* __restrict__ w, double omega, T* __restrict__ u_out,
                             int B, int C, int Dp, int Hp, int Wp) {
    pii::CropCell q;
    if (!pii::crop_cell(B, C, Dp, Hp, Wp, ext, q)) return;
    const T up = u[q.f];
    if (kind[q.k] != pii::UNKNOWN) {
        u_out[q.f] = up;
        return;
    }
    double diag = 0.0;
    double acc = (double)rhs[q.f];
    pii::gather_neighbours(u, kind, q.f, q.k, q.z, q.y, q.x, q.ez, q.ey, q.ex, (long long)Wp, (long long)Hp * Wp,
                           w[3 * q.b], w[3 * q.b + 1], w[3 * q.b + 2], acc, diag);
    if (diag > 0.0) {
        u_out[q.f] = (T)((1.0 - omega) * (double)up + omega * (acc / diag));
    } else {
        u_out[q.f] = up;
    }
}
