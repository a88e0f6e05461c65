// Shared helpers of the pii_augment CUDA kernels (see kernels/*.cu).
//
// Launch convention ("row-mapped"): every kernel is launched on a 2D grid of 2D blocks,
//   block = (bx, by), grid = (ceil(rows / by), ceil(width / bx));
// thread (row, x) = (blockIdx.x * blockDim.y + threadIdx.y, blockIdx.y * blockDim.x + threadIdx.x).
// A "row" is one flattened (b, c, z, y) line of a 5D field (or (b, z, y) of a 4D label array),
// matching the row loops of the Numba twins in pii_augment/ops/_numba_kernels.py. The host side
// guarantees rows < 2^31, so row arithmetic runs in 32-bit ints; element offsets use 64 bits.
//
// No block-level cooperation (__syncthreads, shared memory, warp shuffles): the g++ emulation
// (kernels/cuda_emulation.h) runs threads one after another and does not honour it.
#ifndef PII_AUGMENT_COMMON_CUH
#define PII_AUGMENT_COMMON_CUH

namespace pii {

typedef long long i64;
typedef unsigned char u8;

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

// Absolute value that works for float and double alike (only compared, so the sign of 0 is moot).
template <typename T>
__device__ __forceinline__ T absval(T v) {
    return v < T(0) ? -v : v;
}

}  // namespace pii

#endif  // PII_AUGMENT_COMMON_CUH
