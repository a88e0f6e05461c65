// CPU emulation of the small part of CUDA the pii_augment kernels use, for g++.
//
// Included (by pii_augment/ops/_cuda.py) in front of the very same kernels/*.cu sources that
// cupy compiles with NVRTC. The CUDA qualifiers become plain (inline) C++, the built-in index
// variables become thread_local globals, and pii_emu::launch<&kernel> runs a launch as nested
// loops over the grid's blocks and each block's threads, one thread after the other.
//
// Deliberately NOT emulated: __syncthreads, __shared__, warp intrinsics. Threads run to
// completion one at a time, so block-level cooperation would silently compute something else;
// leaving them undefined turns any use into a compile error of the emulation build.
#ifndef PII_AUGMENT_CUDA_EMULATION_H
#define PII_AUGMENT_CUDA_EMULATION_H

#include <cstddef>
#include <cstring>
#include <tuple>
#include <utility>

#define __global__
#define __host__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict

namespace pii_emu {

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

}  // namespace pii_emu

// The built-in variables: one copy per host thread, so several launches may run concurrently in
// different host threads (the host backend solves batch chunks in parallel threads).
inline thread_local pii_emu::uint3 threadIdx = {0, 0, 0};
inline thread_local pii_emu::uint3 blockIdx = {0, 0, 0};
inline thread_local pii_emu::dim3 blockDim = {1, 1, 1};
inline thread_local pii_emu::dim3 gridDim = {1, 1, 1};

// Sequential emulation: one thread runs at a time, so a plain read-modify-write is atomic.
inline double atomicAdd(double* address, double val) {
    const double old = *address;
    *address = old + val;
    return old;
}
inline float atomicAdd(float* address, float val) {
    const float old = *address;
    *address = old + val;
    return old;
}

namespace pii_emu {

template <typename F>
struct kernel_signature;

// Unpack a cudaLaunchKernel-style argument array (args[i] points at the i-th argument's value).
template <typename... A>
struct kernel_signature<void (*)(A...)> {
    template <typename X>
    static X load(void* p) {
        X v;
        std::memcpy(static_cast<void*>(&v), p, sizeof(X));
        return v;
    }
    template <std::size_t... I>
    static std::tuple<A...> unpack(void** args, std::index_sequence<I...>) {
        return std::tuple<A...>(load<A>(args[I])...);
    }
    static std::tuple<A...> unpack(void** args) {
        return unpack(args, std::index_sequence_for<A...>{});
    }
};

// Run kernel K over a (gx, gy, gz) grid of (bx, by, bz) blocks, thread by thread.
template <auto K>
void launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** args) {
    const auto a = kernel_signature<decltype(K)>::unpack(args);
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    for (unsigned kz = 0; kz < gz; ++kz)
        for (unsigned ky = 0; ky < gy; ++ky)
            for (unsigned kx = 0; kx < gx; ++kx) {
                blockIdx = {kx, ky, kz};
                for (unsigned tz = 0; tz < bz; ++tz)
                    for (unsigned ty = 0; ty < by; ++ty)
                        for (unsigned tx = 0; tx < bx; ++tx) {
                            threadIdx = {tx, ty, tz};
                            std::apply(K, a);
                        }
            }
}

}  // namespace pii_emu

#endif  // PII_AUGMENT_CUDA_EMULATION_H
