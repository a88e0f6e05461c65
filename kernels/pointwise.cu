// Elementwise passes of the functional API: label_pixels (anomaly_label) and fpi_systems
// (foreign_patch_interpolate). Device twins of label_host and fpi_samples
// (pii_augment/ops/_host_kernels.py), one pass over the data each.
#include "common.cuh"

// label[b, 0, z, y, x] = alpha[b] on mask pixels where some channel's floor(value / tolerance)
// changed between dst and out (every mask pixel when quantise is 0), 0 elsewhere; written whole.
// dst, out: (B, C, D, H, W); mask: (B, D, H, W) bytes; alpha: (B,) in T; label: (B, 1, D, H, W).
// Launch: row-mapped, rows = B * D * H, width = W.
template <typename T>
__global__ void label_pixels(const T* __restrict__ dst, const T* __restrict__ out,
                             const unsigned char* __restrict__ mask, const T* __restrict__ alpha,
                             T tolerance, int quantise, T* __restrict__ label, int B, int C, int D, int H,
                             int W) {
    int row, x;
    if (!pii::row_and_x(B * D * H, W, row, x)) return;
    const int b = row / (D * H);
    const long long N = (long long)D * H * W;
    const long long pix = (long long)row * W + x;  // (b, z, y, x) flattened
    const long long in_sample = pix - (long long)b * N;
    T v = T(0);
    if (mask[pix]) {
        bool changed = !quantise;
        for (int c = 0; c < C && !changed; ++c) {
            const long long f = ((long long)b * C + c) * N + in_sample;
            changed = floor(dst[f] / tolerance) != floor(out[f] / tolerance);
        }
        v = changed ? alpha[b] : T(0);
    }
    label[pix] = v;
}

// out = one_minus[b] * dst + alpha[b] * src on mask pixels, dst elsewhere (two roundings, as the
// host twin); flags[b, c] gets bit 0 when dst holds NaN or Inf, bit 1 when src does. One block of
// pii::BLOCK threads per system (b, c), grid = B * C. dst, src, out: (B, C, N) with N = D * H * W;
// mask: (B, N) bytes; alpha, one_minus: (B,) in T; flags: (B, C) int32.
template <typename T>
__global__ void fpi_systems(const T* __restrict__ dst, const T* __restrict__ src,
                            const unsigned char* __restrict__ mask, const T* __restrict__ alpha,
                            const T* __restrict__ one_minus, T* __restrict__ out, int* __restrict__ flags,
                            int B, int C, long long N) {
    __shared__ int s_flag[pii::BLOCK];
    const int sys = (int)blockIdx.x;
    const int t = (int)threadIdx.x;
    if (sys >= B * C) return;
    const int b = sys / C;
    const T* d = dst + (long long)sys * N;
    const T* s = src + (long long)sys * N;
    const unsigned char* m = mask + (long long)b * N;
    T* o = out + (long long)sys * N;
    const T a = alpha[b], om = one_minus[b];
    int flag = 0;
    for (long long i = t; i < N; i += pii::BLOCK) {
        const T dv = d[i], sv = s[i];
        if (!pii::finite(dv)) flag |= 1;
        if (!pii::finite(sv)) flag |= 2;
        o[i] = m[i] ? om * dv + a * sv : dv;
    }
    s_flag[t] = flag;
    __syncthreads();
    for (int k = pii::BLOCK / 2; k > 0; k >>= 1) {
        if (t < k) s_flag[t] |= s_flag[t + k];
        __syncthreads();
    }
    if (t == 0) flags[sys] = s_flag[0];
}
PII_COOPERATIVE(fpi_systems)

// The masks of PatchParams.masks() (pii_augment/sampling/patches.py and _raster.py), made on the
// device from the patch parameters: mask[b, z, y, x] = 1 where any patch r of sample b holds the
// pixel (rows first[b] .. first[b + 1] - 1; row b alone when first is null). A pixel belongs to
// patch r inside its clipped box [lo, hi) when its shape test holds, computed in double in the
// host's order (so the masks are bit for bit the host's):
// - not deformed (matrix null): boxes (kind 0) hold every pixel of the box; ellipses (kind 1)
//   where sum over the axes of ((g + 0.5 - centre) / width)^2 <= 1;
// - deformed: u_i = (A_i0 x_0 + A_i1 x_1) + A_i2 x_2 with x = g + 0.5 - centre (axes z, y, x; in
//   2D y, x) and A the row's inverse matrix, computed on the host from the angles; boxes where
//   every |u_i| < 1, ellipses where sum u_i^2 <= 1.
// lo, hi: (N, 3) int64 (z, y, x; an empty box, lo = hi, for samples left alone); centre: (N, 3)
// int64; width: (N, 3) double (max(half-width, 1)); matrix: null or (N, 3, 3) double (the 2D
// matrix in its top-left 2 x 2 block); kinds: null (every row is `shape`) or (N,) int32;
// first: null or (B + 1,) int64; ndim: 2 (the z column is unused) or 3; mask: (B, D, H, W) bytes.
// Launch: row-mapped, rows = B * D * H, width = W. T is unused.
template <typename T>
__global__ void patch_masks(const long long* __restrict__ lo, const long long* __restrict__ hi,
                            const long long* __restrict__ centre, const double* __restrict__ width,
                            const double* __restrict__ matrix, const int* __restrict__ kinds, int shape,
                            const long long* __restrict__ first, int ndim, unsigned char* __restrict__ mask,
                            int B, int D, int H, int W) {
    int row, x;
    if (!pii::row_and_x(B * D * H, W, row, x)) return;
    const int y = row % H;
    const int z = (row / H) % D;
    const int b = row / (D * H);
    const long long r0 = first ? first[b] : (long long)b;
    const long long r1 = first ? first[b + 1] : (long long)b + 1;
    bool any = false;
    for (long long r = r0; r < r1 && !any; ++r) {
        const long long* l = lo + 3 * r;
        const long long* h = hi + 3 * r;
        bool in = y >= l[1] && y < h[1] && x >= l[2] && x < h[2] && (ndim == 2 || (z >= l[0] && z < h[0]));
        if (!in) continue;
        const int kind = kinds ? kinds[r] : shape;
        const long long* c = centre + 3 * r;
        if (!matrix) {
            if (kind == 1) {
                const double* w = width + 3 * r;
                double r2 = 0.0;
                if (ndim == 3) {
                    const double rz = ((double)z + 0.5 - (double)c[0]) / w[0];
                    r2 += rz * rz;
                }
                const double ry = ((double)y + 0.5 - (double)c[1]) / w[1];
                r2 += ry * ry;
                const double rx = ((double)x + 0.5 - (double)c[2]) / w[2];
                r2 += rx * rx;
                in = r2 <= 1.0;
            }
        } else {
            const double* A = matrix + 9 * r;
            double u[3];
            if (ndim == 3) {
                const double x0 = (double)z + 0.5 - (double)c[0];
                const double x1 = (double)y + 0.5 - (double)c[1];
                const double x2 = (double)x + 0.5 - (double)c[2];
                for (int i = 0; i < 3; ++i) {
                    double acc = A[3 * i] * x0;
                    acc = acc + A[3 * i + 1] * x1;
                    acc = acc + A[3 * i + 2] * x2;
                    u[i] = acc;
                }
            } else {
                const double x0 = (double)y + 0.5 - (double)c[1];
                const double x1 = (double)x + 0.5 - (double)c[2];
                for (int i = 0; i < 2; ++i) {
                    double acc = A[3 * i] * x0;
                    acc = acc + A[3 * i + 1] * x1;
                    u[i] = acc;
                }
            }
            if (kind == 1) {
                double r2 = 0.0;
                for (int i = 0; i < ndim; ++i) r2 += u[i] * u[i];
                in = r2 <= 1.0;
            } else {
                for (int i = 0; i < ndim; ++i) in = in && fabs(u[i]) < 1.0;
            }
        }
        any = in;
    }
    mask[(long long)row * W + x] = any ? 1 : 0;
}
