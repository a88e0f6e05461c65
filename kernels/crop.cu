// Crop set-up and write-back: build_kind, gather_crop, scatter_crop.
// CUDA twins of the Numba functions of the same names (pii_augment/ops/_numba_kernels.py), with
// the same arguments in the same order, followed by the array shapes. One thread per crop cell.
#include "common.cuh"

// kind[b, z, y, x] = UNKNOWN (mask), FIXED (in image, not mask), ABSENT (outside the image or the
// crop extent).
// mask: (B, D, H, W) bool as bytes; off, ext: (B, 3) int64; kind: (B, Dp, Hp, Wp) uint8.
// Launch: rows = B * Dp * Hp, width = Wp. T is unused (one module per field type).
template <typename T>
__global__ void build_kind(const unsigned char* __restrict__ mask, const long long* __restrict__ off,
                           const long long* __restrict__ ext, unsigned char* __restrict__ kind,
                           int B, int D, int H, int W, int Dp, int Hp, int Wp) {
    int row, b, z, y, x;
    if (!pii::label_cell(B, Dp, Hp, Wp, row, b, z, y, x)) return;
    const long long iz = off[3 * b] + z, iy = off[3 * b + 1] + y, ix = off[3 * b + 2] + x;
    unsigned char k = pii::ABSENT;
    if (z < ext[3 * b] && y < ext[3 * b + 1] && x < ext[3 * b + 2] && 0 <= iz && iz < D &&
        0 <= iy && iy < H && 0 <= ix && ix < W) {
        k = mask[((b * (long long)D + iz) * H + iy) * W + ix] ? pii::UNKNOWN : pii::FIXED;
    }
    kind[(long long)row * Wp + x] = k;
}

// out[b, c, z, y, x] = full[b, c, off + (z, y, x)] inside the image and the crop, else 0.
// full: (B, C, D, H, W); out: (B, C, Dp, Hp, Wp). Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void gather_crop(const T* __restrict__ full, const long long* __restrict__ off,
                            const long long* __restrict__ ext, T* __restrict__ out,
                            int B, int C, int D, int H, int W, int Dp, int Hp, int Wp) {
    int row, x, b, c, z, y;
    if (!pii::row_and_x(B * C * Dp * Hp, Wp, row, x)) return;
    pii::split_row(row, C, Dp, Hp, b, c, z, y);
    const long long iz = off[3 * b] + z, iy = off[3 * b + 1] + y, ix = off[3 * b + 2] + x;
    T v = T(0);
    if (z < ext[3 * b] && y < ext[3 * b + 1] && x < ext[3 * b + 2] && 0 <= iz && iz < D &&
        0 <= iy && iy < H && 0 <= ix && ix < W) {
        v = full[(((b * (long long)C + c) * D + iz) * H + iy) * W + ix];
    }
    out[(long long)row * Wp + x] = v;
}

// out[b, c, off + (z, y, x)] += u[b, c, z, y, x] (the correction, added to the dst that out holds,
// then clipped to [lo, hi][b, c] when do_clip) on unknown cells; every other cell of out is left
// alone. u: (B, C, Dp, Hp, Wp); kind:
// (B, Dp, Hp, Wp); lo, hi: (B, C); out: (B, C, D, H, W). Launch: rows = B * C * Dp * Hp, width = Wp.
template <typename T>
__global__ void scatter_crop(const T* __restrict__ u, const unsigned char* __restrict__ kind,
                             const long long* __restrict__ off, const long long* __restrict__ ext,
                             const T* __restrict__ lo, const T* __restrict__ hi, int do_clip,
                             T* __restrict__ out, int B, int C, int D, int H, int W, int Dp, int Hp,
                             int Wp) {
    pii::CropCell q;
    if (!pii::crop_cell(B, C, Dp, Hp, Wp, ext, q) || kind[q.k] != pii::UNKNOWN) return;
    const long long iz = off[3 * q.b] + q.z, iy = off[3 * q.b + 1] + q.y, ix = off[3 * q.b + 2] + q.x;
    const long long o = (((q.b * (long long)C + q.c) * D + iz) * H + iy) * W + ix;
    T v = out[o] + u[q.f];
    if (do_clip) {
        const T l = lo[q.b * C + q.c], h = hi[q.b * C + q.c];
        if (v < l) {
            v = l;
        } else if (v > h) {
            v = h;
        }
    }
    out[o] = v;
}
