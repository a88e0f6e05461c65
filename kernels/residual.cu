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
    pii::CropCell q;
    if (!pii::unknown_or_zero(B, C, Dp, Hp, Wp, ext, kind, r, q)) return;
    T nb, diag;
    pii::stencil_t(u, kind, q.f, q.k, q.z, q.y, q.x, q.ez, q.ey, q.ex, (long long)Wp, (long long)Hp * Wp,
                   (T)w[3 * q.b], (T)w[3 * q.b + 1], (T)w[3 * q.b + 2], nb, diag);
    r[q.f] = rhs[q.f] - (diag * u[q.f] - nb);
}
