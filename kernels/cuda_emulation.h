// CPU emulation of the small part of CUDA the pii_augment kernels use, for g++.
//
// Included (by pii_augment/ops/backends/emulated.py) in front of the very same kernels/*.cu sources that
// cupy compiles with NVRTC. The CUDA qualifiers become plain (inline) C++, the built-in index
// variables become thread_local globals, and pii_emu::launch<&kernel> runs a launch block after
// block. How the threads of a block run depends on the kernel:
//
// - Ordinary kernels (the default) run one thread after the other, to completion, in a plain
//   loop: the fast path, taken by almost every launch. A __syncthreads() reached by such a kernel
//   is an error of the emulation (it cannot be honoured in a loop), reported by the launcher.
// - Kernels declared with PII_COOPERATIVE(name) (kernels/common.cuh) run with one fiber per
//   thread of the block, each on its own stack (POSIX ucontext). __syncthreads() is a real
//   barrier: the fiber that reaches it switches to the next thread of the block, and no thread
//   passes it before every thread of the block has reached it. A block in which some threads
//   wait at a barrier while others have exited, or threads wait at different __syncthreads()
//   calls (both undefined on a GPU), is an error naming the block and the barrier. A barrier in
//   a __device__ helper is fine when the kernel calling it is declared. Threads only switch at
//   barriers, so code between two barriers runs atomically per thread (hence atomicAdd below).
//
// Shared memory: `__shared__ T buf[N];` becomes a `static thread_local` array. All fibers of a
// block run on the launching host thread, so they see one array, while launches running
// concurrently in other host threads (the host backend solves batch chunks in parallel) each
// have their own. Static shared arrays are NOT reset between blocks: a block sees what the
// previous block on this host thread left (zeros at first use). Dynamic shared memory
// (PII_DYNAMIC_SHARED, sized by the launch) is one buffer per host thread, filled with 0xFF bytes
// (NaN as float or double, -1 as an integer) before every block, so reads of unwritten shared
// memory show up; its size is refused above the limit passed by the launcher (a GPU's launch
// failure). `extern __shared__` itself is not emulated: use PII_DYNAMIC_SHARED.
//
// Thread order: in order (thread 0 first, x fastest), or, when the launcher gets shuffle != 0,
// in a pseudo-random order derived from the seed, the block's linear index and (cooperative
// kernels) the barrier phase: a new permutation after every barrier. A kernel whose result
// depends on the order of its threads (a race) then gives different results with different
// seeds; set PII_AUGMENT_EMULATION_SHUFFLE=<seed> (read by pii_augment/ops/backends/emulated.py at every launch).
//
// Fiber stacks are FIBER_STACK_BYTES (256 KiB) each, with a guard page below: local arrays of a
// cooperative kernel must stay well under that (say 200 KiB per thread in all); an overflow is
// a segmentation fault, not silent corruption. Stacks are allocated once per host thread, grown
// to the largest block seen, reused by every later block and launch, and freed when the host
// thread exits. A switch between fibers costs one swapcontext (a few hundred ns: it saves the
// signal mask with a system call).
//
// Also provided: __align__(n), and the global float/double overloads of the math functions
// (<math.h>) that device code sees; they round as glibc's do, not as CUDA's device library.
//
// Errors: launch returns 0, or 1 with a message readable through pii_emu_last_error() (per host
// thread). No C++ exception leaves the launcher, and nothing aborts.
//
// Deliberately NOT emulated: warp intrinsics (__shfl*, __ballot*, __syncwarp, ...) and the
// __syncthreads_count/_and/_or reductions. Leaving them undefined turns any use into a compile
// error of the emulation build rather than a silently different computation.
#ifndef PII_AUGMENT_CUDA_EMULATION_H
#define PII_AUGMENT_CUDA_EMULATION_H

// Tells kernels/common.cuh that the sources are compiled by the emulation, not nvcc/NVRTC.
#define PII_CUDA_EMULATION 1

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <math.h>  // the global float/double overloads (sqrt, sin, ...) CUDA device code sees

#include <atomic>
#include <cfenv>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __host__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local
#define __syncthreads() ::pii_emu::syncthreads(__FILE__, __LINE__)

// The emulation's side of kernels/common.cuh's block-cooperation macros (see there).
// PII_COOPERATIVE(name) marks name<float> and name<double> as cooperative (pii_emu::cooperative);
// PII_DYNAMIC_SHARED(type, name) points `name` at this block's dynamic shared memory.
#define PII_COOPERATIVE(name)                                          \
    template <>                                                        \
    inline constexpr bool ::pii_emu::cooperative<&name<float>> = true; \
    template <>                                                        \
    inline constexpr bool ::pii_emu::cooperative<&name<double>> = true;
#define PII_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::pii_emu::dynamic_shared())

namespace pii_emu {

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

}  // namespace pii_emu

// The built-in variables: one copy per host thread, so several launches may run concurrently in
// different host threads (the host backend solves batch chunks in parallel threads). The fibers
// of a cooperative block share the host thread's copy; threadIdx is set before each switch.
inline thread_local pii_emu::uint3 threadIdx = {0, 0, 0};
inline thread_local pii_emu::uint3 blockIdx = {0, 0, 0};
inline thread_local pii_emu::dim3 blockDim = {1, 1, 1};
inline thread_local pii_emu::dim3 gridDim = {1, 1, 1};

// Threads only ever switch at __syncthreads(), so a plain read-modify-write is atomic.
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

// -- configuration ---------------------------------------------------------------------------------

// Stack of each fiber (one per thread of a cooperative block), in bytes, plus one guard page.
constexpr std::size_t FIBER_STACK_BYTES = 256 * 1024;
// Limits of a launch, as on the GPUs the kernels target (sm_80, sm_90).
constexpr unsigned long long MAX_BLOCK_THREADS = 1024;
constexpr unsigned MAX_BLOCK_DIM[3] = {1024, 1024, 64};
constexpr unsigned long long MAX_GRID_DIM[3] = {2147483647ULL, 65535, 65535};

// True for the kernels declared with PII_COOPERATIVE(name) (kernels/common.cuh).
template <auto K>
inline constexpr bool cooperative = false;

// -- errors ----------------------------------------------------------------------------------------

inline thread_local char last_error_message[1024] = "";

// Record the message of a failed launch (printf-style); returns the launcher's status, 1.
__attribute__((format(printf, 1, 2))) inline int fail(const char* format, ...) {
    va_list ap;
    va_start(ap, format);
    std::vsnprintf(last_error_message, sizeof last_error_message, format, ap);
    va_end(ap);
    return 1;
}

// Thrown by __syncthreads() outside a cooperative kernel, caught by the launcher.
struct emulation_error : std::exception {
    char message[512];
    const char* what() const noexcept override { return message; }
};

// -- per host thread resources: fiber stacks, dynamic shared memory, thread order ------------------

struct fiber {
    ucontext_t context;
    void* mapping = nullptr;  // guard page + stack
    std::size_t mapping_bytes = 0;
};

class thread_resources {
  public:
    thread_resources() = default;
    thread_resources(const thread_resources&) = delete;
    thread_resources& operator=(const thread_resources&) = delete;
    ~thread_resources() {
        for (unsigned i = 0; i < fibers_made_; ++i) munmap(fibers_[i].mapping, fibers_[i].mapping_bytes);
        std::free(shared_);
    }

    // Make sure n fibers exist (their stacks mapped); false with the error recorded on failure.
    // The fiber array is allocated once at its final size: a ucontext_t must never move (glibc
    // keeps a pointer into it for the floating-point state).
    bool reserve_fibers(unsigned n) {
        if (!fibers_) {
            fibers_.reset(new (std::nothrow) fiber[MAX_BLOCK_THREADS]);
            order_.reset(new (std::nothrow) unsigned[MAX_BLOCK_THREADS]);
            if (!fibers_ || !order_) {
                fail("out of memory for the fibers of a block");
                return false;
            }
        }
        const std::size_t page = (std::size_t)sysconf(_SC_PAGESIZE);
        for (; fibers_made_ < n; ++fibers_made_) {
            fiber& f = fibers_[fibers_made_];
            const std::size_t bytes = FIBER_STACK_BYTES + page;
            void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                           -1, 0);
            if (m == MAP_FAILED) {
                fail("cannot map a %zu-byte fiber stack", bytes);
                return false;
            }
            if (mprotect(m, page, PROT_NONE) != 0 || getcontext(&f.context) != 0) {
                munmap(m, bytes);
                fail("cannot set up a fiber stack");
                return false;
            }
            f.mapping = m;
            f.mapping_bytes = bytes;
        }
        return true;
    }
    ucontext_t* context(unsigned i) { return &fibers_[i].context; }
    void* stack(unsigned i) { return static_cast<char*>(fibers_[i].mapping) + (fibers_[i].mapping_bytes - FIBER_STACK_BYTES); }
    unsigned* order() { return order_.get(); }

    // The dynamic shared memory buffer, at least `bytes` long (256-byte aligned); null on failure.
    unsigned char* shared(std::size_t bytes) {
        if (bytes > shared_capacity_) {
            const std::size_t cap = (bytes + 4095) / 4096 * 4096;
            void* p = std::aligned_alloc(256, cap);
            if (!p) return nullptr;
            std::free(shared_);
            shared_ = static_cast<unsigned char*>(p);
            shared_capacity_ = cap;
        }
        return shared_;
    }

  private:
    std::unique_ptr<fiber[]> fibers_;
    std::unique_ptr<unsigned[]> order_;
    unsigned fibers_made_ = 0;
    unsigned char* shared_ = nullptr;
    std::size_t shared_capacity_ = 0;
};

inline thread_resources& resources() {
    static thread_local thread_resources r;
    return r;
}

// The running launch's dynamic shared memory (PII_DYNAMIC_SHARED); null when it asked for none.
inline thread_local unsigned char* dynamic_shared_memory = nullptr;
inline unsigned char* dynamic_shared() { return dynamic_shared_memory; }

// -- thread order ----------------------------------------------------------------------------------

inline std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// order[0 .. n) = a permutation of 0 .. n-1 drawn from (seed, block, phase) (Fisher-Yates).
inline void permutation(unsigned* order, unsigned n, std::uint64_t seed, std::uint64_t block, std::uint64_t phase) {
    std::uint64_t s = seed;
    s = splitmix64(s) ^ block;
    s = splitmix64(s) ^ phase;
    splitmix64(s);
    for (unsigned i = 0; i < n; ++i) order[i] = i;
    for (unsigned i = n - 1; i > 0; --i) {  // n >= 1
        const unsigned j = (unsigned)(splitmix64(s) % (i + 1ULL));
        const unsigned t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

inline void set_thread(unsigned linear) {
    const unsigned bx = blockDim.x, by = blockDim.y;
    threadIdx = {linear % bx, (linear / bx) % by, linear / (bx * by)};
}

// -- cooperative blocks: one fiber per thread --------------------------------------------------------

struct block_run {
    void (*invoke)(const void*);  // runs the kernel for the current threadIdx
    const void* args;             // its argument tuple
    thread_resources* res;
    unsigned n;                   // threads per block
    const unsigned* order;        // this phase's thread order
    unsigned pos;                 // position in `order` of the running thread
    unsigned arrived, exited;     // this phase's threads at the barrier / returned
    const char* file;             // the barrier of this phase (first arrival)
    int line;
    const char* other_file;       // a different barrier reached in the same phase, if any
    int other_line;
    bool failed;
    char failure[400];
    std::fenv_t fenv;             // the launching thread's floating-point environment
    ucontext_t scheduler;
};

inline thread_local block_run* current_block = nullptr;

// The context to run after the current thread stops: the next thread of this phase, or the
// scheduler after the last one. Sets threadIdx for the next thread.
inline ucontext_t* next_context(block_run& b) {
    if (++b.pos < b.n) {
        const unsigned i = b.order[b.pos];
        set_thread(i);
        return b.res->context(i);
    }
    return &b.scheduler;
}

inline bool same_site(const char* f1, int l1, const char* f2, int l2) {
    return l1 == l2 && (f1 == f2 || std::strcmp(f1, f2) == 0);
}

[[noreturn]] inline void throw_barrier_outside_cooperative(const char* file, int line) {
    emulation_error e;
    std::snprintf(e.message, sizeof e.message,
                  "__syncthreads() at %s:%d in a kernel not declared cooperative (write "
                  "PII_COOPERATIVE(name) after the kernel's definition, see kernels/common.cuh); "
                  "block (%u, %u, %u), thread (%u, %u, %u)",
                  file, line, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    throw e;
}

inline void syncthreads(const char* file, int line) {
    block_run* b = current_block;
    if (b == nullptr) throw_barrier_outside_cooperative(file, line);
    if (b->file == nullptr) {
        b->file = file;
        b->line = line;
    } else if (b->other_file == nullptr && !same_site(b->file, b->line, file, line)) {
        b->other_file = file;
        b->other_line = line;
    }
    ++b->arrived;
    ucontext_t* self = b->res->context(b->order[b->pos]);
    // The other threads of the block run inside swapcontext: the compiler must not keep shared
    // memory (static thread_local arrays) or threadIdx in registers across it.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    swapcontext(self, next_context(*b));
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // Resumed by the next phase: threadIdx has been set back to this thread's by the switcher.
}

inline void fiber_main() {
    block_run& b = *current_block;
    std::fesetenv(&b.fenv);
    try {
        b.invoke(b.args);
    } catch (const std::exception& e) {
        if (!b.failed) std::snprintf(b.failure, sizeof b.failure, "%s", e.what());
        b.failed = true;
    } catch (...) {
        if (!b.failed) std::snprintf(b.failure, sizeof b.failure, "a C++ exception escaped the kernel");
        b.failed = true;
    }
    ++b.exited;
    setcontext(next_context(b));
}

template <auto K, typename Args>
void invoke(const void* args) {
    std::apply(K, *static_cast<const Args*>(args));
}

// Run every block of a cooperative launch (gridDim, blockDim set); 0, or 1 with the error set.
inline int run_cooperative(void (*invoke_kernel)(const void*), const void* args, std::size_t shared_bytes,
                           bool shuffle, std::uint64_t seed) {
    thread_resources& res = resources();
    const unsigned n = blockDim.x * blockDim.y * blockDim.z;
    if (!res.reserve_fibers(n)) return 1;
    unsigned char* shared = shared_bytes ? res.shared(shared_bytes) : nullptr;
    if (shared_bytes && !shared) return fail("out of memory for %zu bytes of dynamic shared memory", shared_bytes);
    block_run b;
    b.invoke = invoke_kernel;
    b.args = args;
    b.res = &res;
    b.n = n;
    b.order = res.order();
    std::fegetenv(&b.fenv);
    unsigned* order = res.order();
    if (!shuffle)
        for (unsigned i = 0; i < n; ++i) order[i] = i;
    dynamic_shared_memory = shared;
    current_block = &b;
    int status = 0;
    const unsigned gx = gridDim.x, gy = gridDim.y, gz = gridDim.z;
    for (unsigned kz = 0; kz < gz && status == 0; ++kz)
        for (unsigned ky = 0; ky < gy && status == 0; ++ky)
            for (unsigned kx = 0; kx < gx && status == 0; ++kx) {
                blockIdx = {kx, ky, kz};
                const std::uint64_t block = kx + (std::uint64_t)gx * (ky + (std::uint64_t)gy * kz);
                if (shared) std::memset(shared, 0xFF, shared_bytes);
                for (unsigned i = 0; i < n; ++i) {
                    ucontext_t* c = res.context(i);
                    c->uc_stack.ss_sp = res.stack(i);
                    c->uc_stack.ss_size = FIBER_STACK_BYTES;
                    c->uc_link = &b.scheduler;  // never taken: fiber_main ends with setcontext
                    makecontext(c, fiber_main, 0);
                }
                b.failed = false;
                for (std::uint64_t phase = 0;; ++phase) {
                    if (shuffle) permutation(order, n, seed, block, phase);
                    b.pos = 0;
                    b.arrived = b.exited = 0;
                    b.file = b.other_file = nullptr;
                    b.line = b.other_line = 0;
                    set_thread(order[0]);
                    swapcontext(&b.scheduler, res.context(order[0]));
                    if (b.failed) {
                        status = fail("block (%u, %u, %u): %s", kx, ky, kz, b.failure);
                        break;
                    }
                    if (b.exited == n) break;  // the block is done
                    if (b.other_file != nullptr) {
                        status = fail("threads of block (%u, %u, %u) wait at different __syncthreads() calls "
                                      "(%s:%d and %s:%d): a barrier in divergent code",
                                      kx, ky, kz, b.file, b.line, b.other_file, b.other_line);
                        break;
                    }
                    if (b.arrived != n) {
                        status = fail("divergent __syncthreads() in block (%u, %u, %u): %u of its %u threads "
                                      "wait at %s:%d while %u returned without reaching it",
                                      kx, ky, kz, b.arrived, n, b.file, b.line, n - b.arrived);
                        break;
                    }
                }
            }
    current_block = nullptr;
    dynamic_shared_memory = nullptr;
    return status;
}

// -- launches ----------------------------------------------------------------------------------------

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

// The launch's configuration, checked as a GPU checks it; 0, or 1 with the error set.
inline int check_launch(const unsigned grid[3], const unsigned block[3], unsigned long long shared_bytes,
                        unsigned long long shared_limit) {
    static const char axis[3] = {'x', 'y', 'z'};
    for (int i = 0; i < 3; ++i) {
        if (grid[i] == 0 || grid[i] > MAX_GRID_DIM[i])
            return fail("invalid launch configuration: gridDim.%c = %u (1 .. %llu)", axis[i], grid[i], MAX_GRID_DIM[i]);
        if (block[i] == 0 || block[i] > MAX_BLOCK_DIM[i])
            return fail("invalid launch configuration: blockDim.%c = %u (1 .. %u)", axis[i], block[i], MAX_BLOCK_DIM[i]);
    }
    const unsigned long long threads = (unsigned long long)block[0] * block[1] * block[2];
    if (threads > MAX_BLOCK_THREADS)
        return fail("invalid launch configuration: %llu threads per block (at most %llu)", threads, MAX_BLOCK_THREADS);
    if (shared_bytes > shared_limit)
        return fail("too much dynamic shared memory: %llu bytes per block requested, the limit is %llu bytes "
                    "(the launch would fail on the GPU)",
                    shared_bytes, shared_limit);
    return 0;
}

// Run every block of an ordinary launch in the general order: threads permuted per block
// (shuffle) and/or dynamic shared memory refilled per block. 0, or 1 with the error set.
inline int run_sequential(void (*invoke_kernel)(const void*), const void* args, std::size_t shared_bytes,
                          bool shuffle, std::uint64_t seed) {
    thread_resources& res = resources();
    unsigned char* shared = shared_bytes ? res.shared(shared_bytes) : nullptr;
    if (shared_bytes && !shared) return fail("out of memory for %zu bytes of dynamic shared memory", shared_bytes);
    if (!res.reserve_fibers(0)) return 1;  // allocates the order array
    unsigned* order = res.order();
    const unsigned n = blockDim.x * blockDim.y * blockDim.z;
    for (unsigned i = 0; i < n; ++i) order[i] = i;
    const unsigned gx = gridDim.x, gy = gridDim.y, gz = gridDim.z;
    dynamic_shared_memory = shared;
    int status = 0;
    try {
        for (unsigned kz = 0; kz < gz; ++kz)
            for (unsigned ky = 0; ky < gy; ++ky)
                for (unsigned kx = 0; kx < gx; ++kx) {
                    blockIdx = {kx, ky, kz};
                    if (shuffle) permutation(order, n, seed, kx + (std::uint64_t)gx * (ky + (std::uint64_t)gy * kz), 0);
                    if (shared) std::memset(shared, 0xFF, shared_bytes);
                    for (unsigned i = 0; i < n; ++i) {
                        set_thread(order[i]);
                        invoke_kernel(args);
                    }
                }
    } catch (const std::exception& e) {
        status = fail("%s", e.what());
    } catch (...) {
        status = fail("a C++ exception escaped the kernel");
    }
    dynamic_shared_memory = nullptr;
    return status;
}

// Run kernel K over a (gx, gy, gz) grid of (bx, by, bz) blocks with `shared_bytes` of dynamic
// shared memory (refused above `shared_limit`), threads in order or (shuffle != 0) permuted by
// `seed`. Returns 0, or 1 with the message in pii_emu_last_error().
template <auto K>
int launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** args,
           unsigned long long shared_bytes, unsigned long long shared_limit, int shuffle, unsigned long long seed) {
    const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    if (check_launch(grid, block, shared_bytes, shared_limit) != 0) return 1;
    const auto a = kernel_signature<decltype(K)>::unpack(args);
    using Args = std::remove_const_t<decltype(a)>;
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    if constexpr (cooperative<K>) {
        return run_cooperative(&invoke<K, Args>, &a, (std::size_t)shared_bytes, shuffle != 0, seed);
    } else {
        if (shuffle != 0 || shared_bytes != 0)
            return run_sequential(&invoke<K, Args>, &a, (std::size_t)shared_bytes, shuffle != 0, seed);
        // The fast path of (almost) every launch: plain loops, thread 0 first.
        try {
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
        } catch (const std::exception& e) {
            return fail("%s", e.what());
        } catch (...) {
            return fail("a C++ exception escaped the kernel");
        }
        return 0;
    }
}

}  // namespace pii_emu

// The message of the last failed launch of the calling host thread ("" if none failed).
extern "C" const char* pii_emu_last_error(void) { return pii_emu::last_error_message; }

#endif  // PII_AUGMENT_CUDA_EMULATION_H
