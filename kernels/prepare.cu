// Preparation of a batch, one pass over the data: prepare_systems.
// Device twin of NumbaBackend.prepare (pii_augment/ops/backends/host.py: copy_minmax, mask_boxes and
// all_finite of pii_augment/ops/_host_kernels.py in one kernel).
#include "common.cuh"

// One block of pii::BLOCK threads per system (b, c), grid = B * C:
// - out = dst (the copy the blend writes into);
// - lo, hi = min and max of dst over the system (the clip range), NaN when it holds NaN or Inf;
// - flags[b, c]: bit 0 set when dst holds NaN or Inf, bit 1 when guide does (has_guide only);
// - the block of channel 0 also writes the sample's mask bounding box, boxes[b] = (z0, y0, x0,
//   z1, y1, x1) with exclusive upper bounds (zeros for an empty mask), and its pixel count;
// - status[b, c] = SOLVED_NONE and residual[b, c] = 0 (the box solve, if any, fills them in).
// dst, out, guide: (B, C, N) with N = D * H * W; mask: (B, N) bytes; lo, hi: (B, C); flags:
// (B, C) int32; boxes: (B, 6) int64; count: (B,) int64; status: (B, C) int32; residual: (B, C) double. Every thread visits the cells
// t, t + BLOCK, ...; the reductions are fixed trees, so nothing depends on the thread order.
template <typename T>
__global__ void prepare_systems(const T* __restrict__ dst, const T* __restrict__ guide,
                                const unsigned char* __restrict__ mask, T* __restrict__ out,
                                T* __restrict__ lo, T* __restrict__ hi, int* __restrict__ flags,
                                long long* __restrict__ boxes, long long* __restrict__ count,
                                int* __restrict__ status, double* __restrict__ residual,
                                int B, int C, int D, int H, int W, int has_guide) {
    __shared__ T s_lo[pii::BLOCK];
    __shared__ T s_hi[pii::BLOCK];
    __shared__ int s_flag[pii::BLOCK];
    __shared__ long long s_count[pii::BLOCK];
    __shared__ int s_box[6][pii::BLOCK];
    const int sys = (int)blockIdx.x;
    const int t = (int)threadIdx.x;
    if (sys >= B * C) return;  // uniform for the whole block
    const int b = sys / C, c = sys % C;
    const long long HW = (long long)H * W, N = (long long)D * HW;
    const T* d = dst + (long long)sys * N;
    const T* g = guide + (long long)sys * N;
    T* o = out + (long long)sys * N;
    const unsigned char* m = mask + (long long)b * N;
    const bool boxes_here = c == 0;
    T mn = d[0], mx = d[0];
    int flag = 0;
    long long cnt = 0;
    int z0 = D, y0 = H, x0 = W, z1 = -1, y1 = -1, x1 = -1;
    for (long long i = t; i < N; i += pii::BLOCK) {
        const T v = d[i];
        o[i] = v;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        if (!pii::finite(v)) flag |= 1;
        if (has_guide && !pii::finite(g[i])) flag |= 2;
        if (boxes_here && m[i]) {
            const int x = (int)(i % W), y = (int)((i / W) % H), z = (int)(i / HW);
            ++cnt;
            z0 = z < z0 ? z : z0;
            y0 = y < y0 ? y : y0;
            x0 = x < x0 ? x : x0;
            z1 = z > z1 ? z : z1;
            y1 = y > y1 ? y : y1;
            x1 = x > x1 ? x : x1;
        }
    }
    s_lo[t] = mn;
    s_hi[t] = mx;
    s_flag[t] = flag;
    s_count[t] = cnt;
    s_box[0][t] = z0;
    s_box[1][t] = y0;
    s_box[2][t] = x0;
    s_box[3][t] = z1;
    s_box[4][t] = y1;
    s_box[5][t] = x1;
    __syncthreads();
    for (int s = pii::BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) {
            const int u = t + s;
            s_lo[t] = s_lo[u] < s_lo[t] ? s_lo[u] : s_lo[t];
            s_hi[t] = s_hi[u] > s_hi[t] ? s_hi[u] : s_hi[t];
            s_flag[t] |= s_flag[u];
            s_count[t] += s_count[u];
            for (int a = 0; a < 3; ++a) {
                s_box[a][t] = s_box[a][u] < s_box[a][t] ? s_box[a][u] : s_box[a][t];
                s_box[a + 3][t] = s_box[a + 3][u] > s_box[a + 3][t] ? s_box[a + 3][u] : s_box[a + 3][t];
            }
        }
        __syncthreads();
    }
    if (t == 0) {
        const bool bad = (s_flag[0] & 1) != 0;
        const T l = bad ? pii::quiet_nan<T>() : s_lo[0];  // NaN bounds, as the host twin (copy_minmax)
        const T h = bad ? l : s_hi[0];
        lo[sys] = l;
        hi[sys] = h;
        flags[sys] = s_flag[0];
        status[sys] = pii::SOLVED_NONE;
        residual[sys] = 0.0;
        if (boxes_here) {
            long long* bx = boxes + 6LL * b;
            const bool any = s_count[0] > 0;
            for (int a = 0; a < 3; ++a) {
                bx[a] = any ? s_box[a][0] : 0;
                bx[a + 3] = any ? s_box[a + 3][0] + 1 : 0;
            }
            count[b] = s_count[0];
        }
    }
}
PII_COOPERATIVE(prepare_systems)
