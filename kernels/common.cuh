// Shared helpers of the pii_augment CUDA kernels (see kernels/*.cu).
//
// Launch convention ("row-mapped", the default): the kernel is launched on a 2D grid of 2D blocks,
//   block = (bx, by), grid = (ceil(rows / by), ceil(width / bx));
// thread (row, x) = (blockIdx.x * blockDim.y + threadIdx.y, blockIdx.y * blockDim.x + threadIdx.x).
// A "row" is one flattened (b, c, z, y) line of a 5D field (or (b, z, y) of a 4D label array),
// matching the row loops of the Numba twins in pii_augment/ops/_numba_kernels.py. The host side
// guarantees rows < 2^31, so row arithmetic runs in 32-bit ints; element offsets use 64 bits.
// A kernel with another geometry (block-level reductions, say) documents it at its definition.
// The dynamic shared memory of a launch is `shared_bytes` of CudaKernelBackend._launch (0 by
// default). The emulation refuses more than 227 KiB per block, the sm_90 opt-in maximum (on the
// GPU, more than 48 KiB also needs the kernel's max_dynamic_shared_size_bytes attribute raised).
//
// Block-level cooperation. The g++ emulation (kernels/cuda_emulation.h) runs the threads of an
// ordinary kernel one after another in a plain loop, so a kernel that uses __syncthreads() must
// say so, with PII_COOPERATIVE(name) after its definition; the emulation then runs each of its
// blocks with one fiber per thread and honours the barrier (a __syncthreads() reached by an
// undeclared kernel is a launch error of the emulation, and so is a barrier that some threads
// of a block skip or exit before: the GPU leaves both undefined). Shared memory:
// - static: `__shared__ T buf[N];` inside the kernel, as usual (emulation: one array per host
//   thread, seen by every thread of the block; NOT reset between blocks);
// - dynamic: PII_DYNAMIC_SHARED(T, name); declares `T* name` at the launch's dynamic shared
//   memory (never write `extern __shared__` directly: the emulation cannot compile it). The
//   emulation fills it with 0xFF bytes (NaN as float/double) before every block.
// The emulation switches threads only at barriers, in order (thread 0 first) by default, so a
// missing barrier can go unnoticed: PII_AUGMENT_EMULATION_SHUFFLE=<seed> runs them in a random
// order (a new one after every barrier), which turns such races into wrong results.
// Not available: warp intrinsics (__shfl*, __ballot*, __syncwarp, ...) and __syncthreads_count/
// _and/_or; the emulation leaves them undefined, so using one fails its build.
#ifndef PII_AUGMENT_COMMON_CUH
#define PII_AUGMENT_COMMON_CUH

// PII_COOPERATIVE(name): at global namespace scope, after the definition of the kernel `name` (a
// __global__ function templated on the field type T, like every kernel here), declares that
// name<float> and name<double> synchronise their blocks with __syncthreads() (a trailing
// semicolon is optional).
// PII_DYNAMIC_SHARED(type, name);: a statement in a kernel body declaring `type* name` at the
// launch's dynamic shared memory (16-byte aligned; one extern array of unsigned char for every
// kernel and field type, as CUDA requires of dynamic shared memory).
// These are the nvcc/NVRTC definitions; the emulation (kernels/cuda_emulation.h, included first)
// defines its own.
#ifndef PII_DYNAMIC_SHARED
#define PII_DYNAMIC_SHARED(type, name)                                   \
    extern __shared__ __align__(16) unsigned char pii_dynamic_shared_[]; \
    type* name = reinterpret_cast<type*>(pii_dynamic_shared_)
#endif
#ifndef PII_COOPERATIVE
#define PII_COOPERATIVE(name)
#endif

namespace pii {

typedef long long i64;
typedef unsigned char u8;

// The codes shared with the Python side, the enums of pii_augment/ops/codes.py (same names,
// tests/ops/test_codes.py holds the values equal). Cell labels of the kind arrays (codes.Cell):
// ABSENT: not part of the problem (outside the image or the crop; a stencil leaves it out),
// FIXED: Dirichlet (outside the mask), UNKNOWN: inside the mask.
constexpr u8 ABSENT = 0;
constexpr u8 FIXED = 1;
constexpr u8 UNKNOWN = 2;
// Guidance modes, the kernels' `int mode` (codes.Guidance).
constexpr int MODE_PII = 0;
constexpr int MODE_MIXED = 1;
constexpr int MODE_SOURCE = 2;
constexpr int MODE_DIVERGENCE = 3;
constexpr int MODE_HARMONIC = 4;
// How the whole-system solve of one system ended (codes.Verdict; 0: still iterating).
constexpr int CONVERGED = 1;
constexpr int STALLED = 2;
constexpr int NONFINITE = 3;
constexpr int MAX_ITER = 4;
// Who solved a system, the codes of the (B, C) int32 status tables (codes.SolvedBy): nobody yet,
// the box solve, a box or a crop left for the second pass (in global memory), and the
// whole-system multigrid (SOLVED_MG + its verdict).
constexpr int SOLVED_NONE = 0;
constexpr int SOLVED_BOX = 1;
constexpr int BOX_PENDING = 2;
constexpr int MG_PENDING = 3;
constexpr int SOLVED_MG = 10;

// This thread's (row, x); false when it lies beyond the launch's rows or width.
__device__ __forceinline__ bool row_and_x(int rows, int width, int& row, int& x) {
    row = (int)(blockIdx.x * blockDim.y + threadIdx.y);
    x = (int)(blockIdx.y * blockDim.x + threadIdx.x);
    return row < rows && x < width;
}

// Split a field row index into (b, c, z, y) for a (B, C, D, H, .) array.
__device__ __forceinline__ void split_row(int row, int C, int D, int H, int& b, int& c, int& z, int& y) {
    y = row % H;
    int t = row / H;
    z = t % D;
    t = t / D;
    c = t % C;
    b = t / C;
}

// This thread's cell in a row-mapped kernel over (B, C, Dp, Hp, Wp) crops (launch: rows =
// B * C * Dp * Hp, width = Wp): its indices, its sample's extent, the index k of its label in a
// (B, Dp, Hp, Wp) kind array and f of its value in a field array; false when the thread lies
// beyond the launch or its cell beyond the sample's extent (such threads do nothing).
struct CropCell {
    int b, c, z, y, x;
    i64 ez, ey, ex, k, f;
};

__device__ __forceinline__ bool crop_cell(int B, int C, int Dp, int Hp, int Wp, const i64* ext, CropCell& q) {
    int row;
    if (!row_and_x(B * C * Dp * Hp, Wp, row, q.x)) return false;
    split_row(row, C, Dp, Hp, q.b, q.c, q.z, q.y);
    q.ez = ext[3 * q.b];
    q.ey = ext[3 * q.b + 1];
    q.ex = ext[3 * q.b + 2];
    if (q.z >= q.ez || q.y >= q.ey || q.x >= q.ex) return false;
    q.k = ((i64)(q.b * Dp + q.z) * Hp + q.y) * Wp + q.x;
    q.f = (i64)row * Wp + q.x;
    return true;
}

// crop_cell for kernels that write 0 on the cells of the extent that are not unknown: true on an
// unknown cell (the kernel's work), false otherwise (out[q.f] = 0 on the extent's other cells).
template <typename T>
__device__ __forceinline__ bool unknown_or_zero(int B, int C, int Dp, int Hp, int Wp, const i64* ext,
                                                const unsigned char* kind, T* out, CropCell& q) {
    if (!crop_cell(B, C, Dp, Hp, Wp, ext, q)) return false;
    if (kind[q.k] == UNKNOWN) return true;
    out[q.f] = T(0);
    return false;
}

// This thread's cell in a kernel over (B, Dp, Hp, Wp) labels (launch: rows = B * Dp * Hp, width =
// Wp): its row and indices; false when it lies beyond the launch.
__device__ __forceinline__ bool label_cell(int B, int Dp, int Hp, int Wp, int& row, int& b, int& z, int& y, int& x) {
    if (!row_and_x(B * Dp * Hp, Wp, row, x)) return false;
    int c;
    split_row(row, 1, Dp, Hp, b, c, z, y);
    return true;
}

// Absolute value that works for float and double alike (only compared, so the sign of 0 is moot).
template <typename T>
__device__ __forceinline__ T absval(T v) {
    return v < T(0) ? -v : v;
}

// The canonical stencil of rbgs_sweep and residual, in the field type T, exactly as the Numba
// twins compute it (pii_augment/ops/_numba_kernels.py, _stencil): per axis the sum of the present
// neighbours, nb = (wx * sx + wy * sy) + wz * sz, and diag the sum of the present weights.
template <typename T>
__device__ __forceinline__ void stencil_t(const T* __restrict__ u, const unsigned char* __restrict__ kind,
                                          long long f, long long k, int z, int y, int x,
                                          long long ez, long long ey, long long ex,
                                          long long sy, long long sz, T wz, T wy, T wx,
                                          T& nb, T& diag) {
    T sx_ = T(0), sy_ = T(0), sz_ = T(0);
    diag = T(0);
    if (x > 0 && kind[k - 1] != ABSENT) { sx_ += u[f - 1]; diag += wx; }
    if (x + 1 < ex && kind[k + 1] != ABSENT) { sx_ += u[f + 1]; diag += wx; }
    if (y > 0 && kind[k - sy] != ABSENT) { sy_ += u[f - sy]; diag += wy; }
    if (y + 1 < ey && kind[k + sy] != ABSENT) { sy_ += u[f + sy]; diag += wy; }
    if (z > 0 && kind[k - sz] != ABSENT) { sz_ += u[f - sz]; diag += wz; }
    if (z + 1 < ez && kind[k + sz] != ABSENT) { sz_ += u[f + sz]; diag += wz; }
    nb = (wx * sx_ + wy * sy_) + wz * sz_;
}

// v_pq for one neighbour pair; MODE_PII: alpha-weighted mixed, MODE_MIXED, MODE_SOURCE.
// Differences are taken in T and widened to double, exactly as the Numba twin does. The rule (the
// destination's a where |a| > |s| strictly, else the source's s; MODE_SOURCE: s) is the one of
// _guidance in pii_augment/ops/_numba_kernels.py (its Numba callers _pick and _spectral._pick_t).
template <typename T>
__device__ __forceinline__ double pick_guidance(T dp, T dq, T sp, T sq, double al, int mode) {
    const T dd = dp - dq;
    const T ds = sp - sq;
    if (mode == MODE_SOURCE) return (double)ds;
    if (mode == MODE_PII) {
        const double a = (1.0 - al) * (double)dd;
        const double s = al * (double)ds;
        return absval(a) > absval(s) ? a : s;
    }
    return (double)(absval(dd) > absval(ds) ? dd : ds);
}

// v_pq - (dp - dq), in double: the pair's term of the correction's right-hand side.
// MODE_DIVERGENCE (the divergence is given per pixel) and MODE_HARMONIC (zero guidance) have no
// per-pair guidance.
template <typename T>
__device__ __forceinline__ double pair_term(T dp, T dq, T sp, T sq, double al, int mode) {
    const T dd = dp - dq;
    if (mode >= MODE_DIVERGENCE) return -(double)dd;
    return pick_guidance(dp, dq, sp, sq, al, mode) - (double)dd;
}

// The right-hand side of the correction at unknown cell (z, y, x) of one crop: the sum over the
// present neighbours q (kind != ABSENT) of pair_term, in the order x-, x+, y-, y+, z-, z+, in
// double (plus src_p in MODE_DIVERGENCE), rounded to T. f, k: the cell's offsets in the field and label arrays;
// fy, fz and ky, kz: their row and plane pitches; ez, ey, ex: the crop's extent.
template <typename T>
__device__ __forceinline__ T rhs_cell(const T* __restrict__ dst, const T* __restrict__ src,
                                      const unsigned char* __restrict__ kind, long long f, long long k, int z, int y,
                                      int x, long long ez, long long ey, long long ex, long long fy, long long fz,
                                      long long ky, long long kz, double al, int mode) {
    const T dp = dst[f], sp = src[f];
    double acc = mode == MODE_DIVERGENCE ? (double)sp : 0.0;
    if (x > 0 && kind[k - 1] != ABSENT) acc += pair_term(dp, dst[f - 1], sp, src[f - 1], al, mode);
    if (x + 1 < ex && kind[k + 1] != ABSENT) acc += pair_term(dp, dst[f + 1], sp, src[f + 1], al, mode);
    if (y > 0 && kind[k - ky] != ABSENT) acc += pair_term(dp, dst[f - fy], sp, src[f - fy], al, mode);
    if (y + 1 < ey && kind[k + ky] != ABSENT) acc += pair_term(dp, dst[f + fy], sp, src[f + fy], al, mode);
    if (z > 0 && kind[k - kz] != ABSENT) acc += pair_term(dp, dst[f - fz], sp, src[f - fz], al, mode);
    if (z + 1 < ez && kind[k + kz] != ABSENT) acc += pair_term(dp, dst[f + fz], sp, src[f + fz], al, mode);
    return (T)acc;
}

// True for a finite value (NaN - NaN and Inf - Inf are NaN); no library call, the same on every
// compiler.
template <typename T>
__device__ __forceinline__ bool finite(T v) {
    return v - v == T(0);
}

// A quiet NaN of type T (0 / 0 at run time; the volatile keeps compilers from folding it).
template <typename T>
__device__ __forceinline__ T quiet_nan() {
    volatile T zero = T(0);
    return zero / zero;
}

// Threads per block of the block-per-system kernels (prepare_systems, box_solve, fpi_systems).
constexpr int BLOCK = 256;

// Sum of one double per thread over a block of BLOCK threads, in a fixed tree order (the result
// does not depend on the order the threads run in). scratch: BLOCK doubles of shared memory.
// Every thread of the block must call it; every thread gets the total.
__device__ __forceinline__ double block_sum(double v, double* scratch) {
    const int t = (int)threadIdx.x;
    scratch[t] = v;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) scratch[t] += scratch[t + s];
        __syncthreads();
    }
    const double total = scratch[0];
    __syncthreads();  // scratch may be reused at once
    return total;
}

}  // namespace pii

#endif  // PII_AUGMENT_COMMON_CUH
