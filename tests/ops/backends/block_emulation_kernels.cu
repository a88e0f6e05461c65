// Test-only kernels of the block-level emulation (tests/ops/backends/test_emulation_block.py).
// They do NOT ship: the wheel ships kernels/ only. The tests compile this file with the g++
// emulation (pii_augment.ops.backends.emulated.compile_emulated_kernels); .ci/compile_kernels.sh compiles it
// with nvcc for sm_80 and sm_90 as well, so every kernel here is also valid CUDA.
// Launches are 1D unless said otherwise: grid (G, 1, 1), block (N, 1, 1); i = blockIdx.x * N + t.
#include "common.cuh"

// out[blockIdx.x] = sum of x[blockIdx.x * N + t] (0 where i >= n) by a shared-memory tree:
// buf[t] += buf[t + s] for s = N / 2, ..., 1, a barrier after every level. N: a power of two,
// at most 1024. The result does not depend on the order the threads run in.
template <typename T>
__global__ void tree_sum(const T* __restrict__ x, T* __restrict__ out, int n) {
    __shared__ T buf[1024];
    const int t = (int)threadIdx.x;
    const long long i = (long long)blockIdx.x * blockDim.x + t;
    buf[t] = i < n ? x[i] : T(0);
    __syncthreads();
    for (int s = (int)blockDim.x / 2; s > 0; s /= 2) {
        if (t < s) buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = buf[0];
}
PII_COOPERATIVE(tree_sum)

// out[i] = x[blockIdx.x * N + (t + 1) % N] through shared memory: thread t writes buf[t], then
// reads its neighbour's cell. With barrier != 0 a __syncthreads() separates the write and the
// read; with barrier == 0 it is a race (the read may come before the neighbour's write).
template <typename T>
__global__ void rotate_shared(const T* __restrict__ x, T* __restrict__ out, int barrier) {
    __shared__ T buf[1024];
    const unsigned t = threadIdx.x, n = blockDim.x;
    const long long base = (long long)blockIdx.x * n;
    buf[t] = x[base + t];
    if (barrier) __syncthreads();
    out[base + t] = buf[(t + 1) % n];
}
PII_COOPERATIVE(rotate_shared)

// out = x reversed within each block, through N elements of dynamic shared memory.
template <typename T>
__global__ void reverse_dynamic(const T* __restrict__ x, T* __restrict__ out) {
    PII_DYNAMIC_SHARED(T, buf);
    const unsigned t = threadIdx.x, n = blockDim.x;
    const long long base = (long long)blockIdx.x * n;
    buf[t] = x[base + t];
    __syncthreads();
    out[base + t] = buf[n - 1 - t];
}
PII_COOPERATIVE(reverse_dynamic)

// out[i] = thread t's cell of dynamic shared memory before anything wrote it in this block (the
// emulation's fill: NaN), then the cell gets x[i]. No barrier: an ordinary kernel.
template <typename T>
__global__ void read_unwritten_dynamic(const T* __restrict__ x, T* __restrict__ out) {
    PII_DYNAMIC_SHARED(T, buf);
    const unsigned t = threadIdx.x;
    const long long i = (long long)blockIdx.x * blockDim.x + t;
    out[i] = buf[t];
    buf[t] = x[i];
}

// Thread `quitter` of block `block` returns before the barrier every other thread waits at: a
// divergent barrier (undefined on a GPU, an error of the emulation).
template <typename T>
__global__ void divergent_exit(T* __restrict__ out, int block, int quitter) {
    if ((int)blockIdx.x == block && (int)threadIdx.x == quitter) return;
    __syncthreads();
    out[(long long)blockIdx.x * blockDim.x + threadIdx.x] = T(1);
}
PII_COOPERATIVE(divergent_exit)

// Threads below `split` wait at one __syncthreads(), the others at another: divergent too.
template <typename T>
__global__ void divergent_sites(T* __restrict__ out, int split) {
    const unsigned t = threadIdx.x;
    if ((int)t < split) {
        out[t] = T(1);
        __syncthreads();
    } else {
        out[t] = T(2);
        __syncthreads();
    }
}
PII_COOPERATIVE(divergent_sites)

// A barrier in a kernel NOT declared with PII_COOPERATIVE: an error of the emulation.
template <typename T>
__global__ void undeclared_barrier(T* __restrict__ out) {
    out[threadIdx.x] = T(1);
    __syncthreads();
    out[threadIdx.x] = T(2);
}

// out[blockIdx.x] = the linear index of the thread of the block that ran last: depends on the
// thread order (a deliberate race of an ordinary kernel). 3D blocks.
template <typename T>
__global__ void last_writer(T* __restrict__ out) {
    out[blockIdx.x] = (T)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

// Barrier semantics: in each of `rounds` rounds every thread writes the round into its cell,
// waits, reads every cell of the block (all must hold the round), waits again. bad[i] counts the
// cells thread i saw out of step, and idx[4 i ..] = its threadIdx after the last barrier and its
// linear index computed before the first. 3D blocks and grids; i = block * threads + linear.
template <typename T>
__global__ void barrier_check(int* __restrict__ bad, int* __restrict__ idx, int rounds) {
    __shared__ int seen[1024];
    const unsigned n = blockDim.x * blockDim.y * blockDim.z;
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int wrong = 0;
    for (int r = 0; r < rounds; ++r) {
        seen[t] = r;
        __syncthreads();
        for (unsigned j = 0; j < n; ++j) wrong += seen[j] != r;
        __syncthreads();
    }
    const long long i = (long long)b * n + t;
    bad[i] = wrong;
    idx[4 * i] = (int)threadIdx.x;
    idx[4 * i + 1] = (int)threadIdx.y;
    idx[4 * i + 2] = (int)threadIdx.z;
    idx[4 * i + 3] = (int)t;
}
PII_COOPERATIVE(barrier_check)

// `count` barriers and nothing else (out[i] = count): the cost of the emulation's switches.
template <typename T>
__global__ void barriers(T* __restrict__ out, int count) {
    for (int c = 0; c < count; ++c) __syncthreads();
    out[(long long)blockIdx.x * blockDim.x + threadIdx.x] = (T)count;
}
PII_COOPERATIVE(barriers)

// A large local array on every thread's stack (fiber stacks in the emulation): out[i] = sum of
// (k + t) % 7 for k < n, n <= 8192 (32 KiB of float, 64 KiB of double per thread; exact sums).
template <typename T>
__global__ void big_locals(T* __restrict__ out, int n) {
    T local[8192];
    const unsigned t = threadIdx.x;
    for (int k = 0; k < n; ++k) local[k] = (T)((k + (int)t) % 7);
    __syncthreads();
    T s = T(0);
    for (int k = 0; k < n; ++k) s += local[k];
    out[(long long)blockIdx.x * blockDim.x + t] = s;
}
PII_COOPERATIVE(big_locals)
