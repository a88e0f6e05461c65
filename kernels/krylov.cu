// Per-system vector operations of the conjugate-gradient driver: dot_unknowns (as two kernels,
// see below), axpy_unknowns, xpby_unknowns. CUDA twins of the Numba functions of the same names
// (pii_augment/ops/_numba_kernels.py): same arguments in the same order, followed by the shapes.
// All act on the unknown cells (kind == UNKNOWN) of each system (b, c) only.
#include "common.cuh"

// dot_unknowns, stage 1 of 2 (deterministic, no atomics): partial[row] = sum of x * y over the
// unknown cells of one (b, c, z, y) row, 0 for rows beyond the extent. x, y: (B, C, Dp, Hp, Wp);
// partial: (B * C * Dp * Hp,) float64. Launch: rows = B * C * Dp * Hp, width = 1.
template <typename T>
__global__ void dot_unknowns_rows(const T* __restrict__ x, const T* __restrict__ y,
                                  const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                                  double* __restrict__ partial, int B, int C, int Dp, int Hp, int Wp) {
    int row, one, b, c, z, yy;
    if (!pii::row_and_x(B * C * Dp * Hp, 1, row, one)) return;
    pii::split_row(row, C, Dp, Hp, b, c, z, yy);
    double s = 0.0;
    if (z < ext[3 * b] && yy < ext[3 * b + 1]) {
        const long long ex = ext[3 * b + 2];
        const unsigned char* krow = kind + ((long long)(b * Dp + z) * Hp + yy) * Wp;
        const T* xrow = x + (long long)row * Wp;
        const T* yrow = y + (long long)row * Wp;
        for (long long i = 0; i < ex; ++i) {
            if (krow[i] == pii::UNKNOWN) s += (double)xrow[i] * (double)yrow[i];
        }
    }
    partial[row] = s;
}

// dot_unknowns, stage 2 of 2: out[b, c] = sum, in row order, of the Dp * Hp row partials of
// system (b, c). out: (B, C) float64. Launch: rows = B * C, width = 1. T is unused.
template <typename T>
__global__ void dot_unknowns_total(const double* __restrict__ partial, double* __restrict__ out,
                                   int B, int C, int Dp, int Hp) {
    int n, one;
    if (!pii::row_and_x(B * C, 1, n, one)) return;
    const long long per = (long long)Dp * Hp;
    const double* p = partial + (long long)n * per;
    double s = 0.0;
    for (long long i = 0; i < per; ++i) s += p[i];
    out[n] = s;
}

// y += a[b, c] * x on unknown cells; systems with a == 0 are left alone (frozen by the driver).
// a: (B, C) float64; x, y: (B, C, Dp, Hp, Wp).
// Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void axpy_unknowns(const double* __restrict__ a, const T* __restrict__ x, T* __restrict__ y,
                              const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                              int B, int C, int Dp, int Hp, int Wp) {
    pii::CropCell q;
    if (!pii::crop_cell(B, C, Dp, Hp, Wp, ext, q)) return;
    const double s = a[q.b * C + q.c];
    if (s == 0.0 || kind[q.k] != pii::UNKNOWN) return;
    y[q.f] = (T)((double)y[q.f] + s * (double)x[q.f]);
}

// y = x + beta[b, c] * y on unknown cells. beta: (B, C) float64; x, y: (B, C, Dp, Hp, Wp).
// Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void xpby_unknowns(const T* __restrict__ x, const double* __restrict__ beta, T* __restrict__ y,
                              const unsigned char* __restrict__ kind, const long long* __restrict__ ext,
                              int B, int C, int Dp, int Hp, int Wp) {
    pii::CropCell q;
    if (!pii::crop_cell(B, C, Dp, Hp, Wp, ext, q) || kind[q.k] != pii::UNKNOWN) return;
    y[q.f] = (T)((double)x[q.f] + beta[q.b * C + q.c] * (double)y[q.f]);
}
