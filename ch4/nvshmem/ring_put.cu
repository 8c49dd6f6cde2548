// Device-initiated communication with NVSHMEM: every PE's kernel writes a buffer straight into the next
// PE's symmetric heap (nvshmemx_putmem_signal_block) and raises a signal there; a one-thread kernel on the
// receiver spins on its own signal word (nvshmem_signal_wait_until) until every block's data has landed.
// No CPU takes part once the kernels are queued: the GPU decides when data moves and when it has arrived.
//
//   ring_put RANK WORLD UID_FILE ITERS BYTES...        (started once per GPU by ch4/nvshmem_put.py)
//
// Bootstrap without MPI: PE 0 asks NVSHMEM for a unique id (nvshmemx_get_uniqueid), writes its 128 bytes
// to UID_FILE, and every PE passes it to nvshmemx_init_attr(NVSHMEMX_INIT_WITH_UNIQUEID). Each PE prints
// one JSON line per size: mean microseconds per ring step (a put of BYTES plus waiting for the previous
// PE's put), and whether the received bytes are exactly the previous PE's pattern.
//
// Built by ch4/nvshmem_put.py with `nvcc -rdc=true ... -lnvshmem_host libnvshmem_device.a` against the
// headers of the nvidia-nvshmem wheel. Without those headers on the include path (plain `nvcc -c` in CI)
// the file compiles to nothing.
#if __has_include(<nvshmem.h>)
#include <cuda_runtime.h>
#include <nvshmem.h>
#include <nvshmemx.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#define CHECK_CUDA(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "ring_put: %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

constexpr int kThreads = 512;
constexpr size_t kChunk = 256 << 10;   // bytes per block: enough blocks to keep NVLink busy on large puts
constexpr int kMaxBlocks = 64;

static int blocks_for(size_t bytes) {
    return (int)std::min<size_t>(kMaxBlocks, std::max<size_t>(1, (bytes + kChunk - 1) / kChunk));
}

// Each block puts its contiguous slice and adds 1 to the peer's signal once its slice is delivered.
__global__ void put_signal_kernel(char *dst, const char *src, size_t bytes, uint64_t *signal, int peer) {
    size_t per_block = (bytes + gridDim.x - 1) / gridDim.x;
    size_t begin = blockIdx.x * per_block;
    size_t end = begin + per_block < bytes ? begin + per_block : bytes;
    if (begin < end)
        nvshmemx_putmem_signal_block(dst + begin, src + begin, end - begin, signal, 1, NVSHMEM_SIGNAL_ADD, peer);
    else if (threadIdx.x == 0)
        nvshmemx_signal_op(signal, 1, NVSHMEM_SIGNAL_ADD, peer);   // an empty slice still counts
}

// The receiver's side: wait until the running count of delivered slices reaches `expected`.
__global__ void wait_kernel(uint64_t *signal, uint64_t expected) {
    nvshmem_signal_wait_until(signal, NVSHMEM_CMP_GE, expected);
}

// A pattern that names its sender and every element: the receiver knows exactly what must arrive.
__global__ void fill_kernel(float *x, size_t n, int rank, int salt) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = (float)(rank * 1000003 + salt * 7919 + (int)(i % 65521));
}

__global__ void check_kernel(const float *x, size_t n, int sender, int salt, unsigned long long *bad) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (x[i] != (float)(sender * 1000003 + salt * 7919 + (int)(i % 65521))) atomicAdd(bad, 1ULL);
}

static void read_uid(const char *path, nvshmemx_uniqueid_t *uid) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
        if (FILE *f = fopen(path, "rb")) {
            size_t got = fread(uid, 1, sizeof(*uid), f);
            fclose(f);
            if (got == sizeof(*uid)) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    fprintf(stderr, "ring_put: no unique id in %s after 60 s\n", path);
    exit(1);
}

static void write_uid(const char *path, const nvshmemx_uniqueid_t *uid) {
    std::string tmp = std::string(path) + ".tmp";
    FILE *f = fopen(tmp.c_str(), "wb");
    if (!f || fwrite(uid, 1, sizeof(*uid), f) != sizeof(*uid)) { fprintf(stderr, "ring_put: cannot write %s\n", path); exit(1); }
    fclose(f);
    rename(tmp.c_str(), path);   // readers see the whole id or nothing
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: ring_put RANK WORLD UID_FILE ITERS BYTES...\n");
        return 2;
    }
    // A deadline of its own: should the launcher die, a PE spinning on a signal that never comes still ends.
    const char *deadline = getenv("RING_PUT_DEADLINE_S");
    alarm(deadline ? (unsigned)atoi(deadline) : 300u);
    int rank = atoi(argv[1]), world = atoi(argv[2]), iters = atoi(argv[4]);
    std::vector<size_t> sizes;
    for (int a = 5; a < argc; ++a) sizes.push_back(strtoull(argv[a], nullptr, 10));
    size_t max_bytes = *std::max_element(sizes.begin(), sizes.end());

    int ndev = 0;
    CHECK_CUDA(cudaGetDeviceCount(&ndev));
    CHECK_CUDA(cudaSetDevice(rank % ndev));   // one GPU per PE, chosen before NVSHMEM initialises

    nvshmemx_uniqueid_t uid = NVSHMEMX_UNIQUEID_INITIALIZER;
    if (rank == 0) {
        nvshmemx_get_uniqueid(&uid);
        write_uid(argv[3], &uid);
    } else {
        read_uid(argv[3], &uid);
    }
    nvshmemx_init_attr_t attr = NVSHMEMX_INIT_ATTR_INITIALIZER;
    nvshmemx_set_attr_uniqueid_args(rank, world, &uid, &attr);
    if (nvshmemx_init_attr(NVSHMEMX_INIT_WITH_UNIQUEID, &attr) != 0) {
        fprintf(stderr, "ring_put: nvshmemx_init_attr failed\n");
        return 1;
    }
    int me = nvshmem_my_pe(), npes = nvshmem_n_pes();
    int next = (me + 1) % npes, prev = (me + npes - 1) % npes;

    // Symmetric allocations: the same call on every PE, so `dst` names the same object everywhere.
    char *src = (char *)nvshmem_malloc(max_bytes);
    char *dst = (char *)nvshmem_malloc(max_bytes);
    uint64_t *signal = (uint64_t *)nvshmem_calloc(1, sizeof(uint64_t));
    unsigned long long *bad;
    CHECK_CUDA(cudaMalloc(&bad, sizeof(*bad)));
    if (!src || !dst || !signal) { fprintf(stderr, "ring_put: nvshmem_malloc of %zu bytes failed\n", max_bytes); return 1; }

    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaEvent_t t0, t1;
    CHECK_CUDA(cudaEventCreate(&t0));
    CHECK_CUDA(cudaEventCreate(&t1));
    uint64_t arrived = 0;   // running count of slices the previous PE has delivered to us (never reset)

    auto step = [&](size_t bytes) {
        int blocks = blocks_for(bytes);
        put_signal_kernel<<<blocks, kThreads, 0, stream>>>(dst, src, bytes, signal, next);
        arrived += blocks;   // every PE runs the same sizes, so the previous PE sends exactly `blocks` slices
        wait_kernel<<<1, 1, 0, stream>>>(signal, arrived);
    };

    for (size_t si = 0; si < sizes.size(); ++si) {
        size_t bytes = sizes[si], n = bytes / sizeof(float);
        int salt = (int)si + 1;
        fill_kernel<<<256, 256, 0, stream>>>((float *)src, n, me, salt);
        CHECK_CUDA(cudaMemsetAsync(dst, 0, bytes, stream));
        CHECK_CUDA(cudaStreamSynchronize(stream));
        nvshmem_barrier_all();   // nobody puts into a buffer its owner is still clearing

        int warmup = std::max(1, iters / 10);
        for (int i = 0; i < warmup; ++i) step(bytes);
        CHECK_CUDA(cudaEventRecord(t0, stream));
        for (int i = 0; i < iters; ++i) step(bytes);
        CHECK_CUDA(cudaEventRecord(t1, stream));
        CHECK_CUDA(cudaEventSynchronize(t1));
        float ms = 0;
        CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));

        CHECK_CUDA(cudaMemsetAsync(bad, 0, sizeof(*bad), stream));
        check_kernel<<<256, 256, 0, stream>>>((const float *)dst, n, prev, salt, bad);
        unsigned long long nbad = 0;
        CHECK_CUDA(cudaMemcpyAsync(&nbad, bad, sizeof(nbad), cudaMemcpyDeviceToHost, stream));
        CHECK_CUDA(cudaStreamSynchronize(stream));
        CHECK_CUDA(cudaGetLastError());
        printf("{\"rank\": %d, \"world\": %d, \"bytes\": %zu, \"iters\": %d, \"blocks\": %d, \"us_per_step\": %.4f, "
               "\"wrong_elements\": %llu}\n", me, npes, bytes, iters, blocks_for(bytes), ms * 1e3 / iters, nbad);
        fflush(stdout);
        nvshmem_barrier_all();   // the next size refills `src` and clears `dst` only after every PE has checked
    }
    nvshmem_free(signal);
    nvshmem_free(dst);
    nvshmem_free(src);
    CHECK_CUDA(cudaFree(bad));
    nvshmem_finalize();
    return 0;
}
#endif  // __has_include(<nvshmem.h>)
