// Grid transfer between multigrid levels: coarsen_kind, restrict, prolong_add.
// CUDA twins of the Numba functions of the same names (pii_augment/ops/_numba_kernels.py): same
// arguments in the same order, followed by the array shapes. flags: (B, 3), flags[b, a] = 1 where
// axis a (z, y, x) of sample b is coarsened by 2 between the two levels; a sample absent from the
// coarser level has extent 0 there.
#include "common.cuh"
#include "levels.cuh"


// Coarse labels by erosion: FIXED if any present child is fixed, else UNKNOWN if any child is
// unknown, else ABSENT (also beyond the coarse extent). kind_f: (B, Df, Hf, Wf); kind_c:
// (B, Dc, Hc, Wc). Launch: rows = B * Dc * Hc, width = Wc. T is unused.
template <typename T>
__global__ void coarsen_kind(const unsigned char* __restrict__ kind_f, const long long* __restrict__ ext_f,
                             const long long* __restrict__ flags, unsigned char* __restrict__ kind_c,
                             const long long* __restrict__ ext_c, int B, int Df, int Hf, int Wf,
                             int Dc, int Hc, int Wc) {
    int row, b, Z, Y, X;
    if (!pii::label_cell(B, Dc, Hc, Wc, row, b, Z, Y, X)) return;
    const int fz = (int)flags[3 * b], fy = (int)flags[3 * b + 1], fx = (int)flags[3 * b + 2];
    const unsigned char k =
        (Z < ext_c[3 * b] && Y < ext_c[3 * b + 1] && X < ext_c[3 * b + 2])
            ? pii::coarsen_cell(kind_f + (long long)b * Df * Hf * Wf, Hf, Wf, ext_f[3 * b], ext_f[3 * b + 1],
                                ext_f[3 * b + 2], Z, Y, X, fz, fy, fx)
            : pii::ABSENT;
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
    if (kind_c[((long long)(b * Dc + Z) * Hc + Y) * Wc + X] != pii::UNKNOWN) {
        rhs_c[fc] = T(0);
        return;
    }
    const int fz = (int)flags[3 * b], fy = (int)flags[3 * b + 1], fx = (int)flags[3 * b + 2];
    const T* base = r_f + (b * (long long)C + c) * Df * Hf * Wf;
    rhs_c[fc] = pii::restrict_cell(base, Hf, Wf, ext_f[3 * b], ext_f[3 * b + 1], ext_f[3 * b + 2], Z, Y, X, ecz, ecy,
                                   ecx, fz, fy, fx);
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
    if (kind_f[((long long)(b * Df + z) * Hf + y) * Wf + x] != pii::UNKNOWN) return;
    if (ext_c[3 * b] == 0 || ext_c[3 * b + 1] == 0 || ext_c[3 * b + 2] == 0) return;
    const long long f = (long long)row * Wf + x;
    u_f[f] = pii::prolong_cell(e_c + (b * (long long)C + c) * Dc * Hc * Wc, Hc, Wc, ext_c[3 * b], ext_c[3 * b + 1],
                               ext_c[3 * b + 2], z, y, x, (int)flags[3 * b], (int)flags[3 * b + 1],
                               (int)flags[3 * b + 2], u_f[f]);
}
