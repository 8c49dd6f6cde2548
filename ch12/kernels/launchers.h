// The launchers this chapter's .cu files export (those built into the Python extension; the ones in
// rdc/ are built separately, see __init__.py), declared once for the .cu files and binding.cpp.
// Each takes raw pointers, sizes and the caller's stream, and returns the first CUDA error it met.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// graph_chain.cu: y = f(f(...f(x))) with f(v) = v / 2 + 1, one single-thread kernel per f, n kernels.
cudaError_t launch_chain_eager(const float* x, float* y, int n, cudaStream_t stream);
cudaError_t launch_chain_graph_replay(const float* x, float* y, int n, cudaStream_t stream);
cudaError_t launch_chain_graph_set_params(const float* x, float* y, int n, cudaStream_t stream);
cudaError_t launch_chain_graph_exec_update(const float* x, float* y, int n, cudaStream_t stream);
cudaError_t launch_chain_graph_recapture(const float* x, float* y, int n, cudaStream_t stream);

// work_queue.cu: out[r] = sum over row r of sqrt(v * v + 1), rows given by CSR offsets (int64, rows + 1).
// One warp per row at a time; counter must be zeroed; grain = rows taken per atomic.
cudaError_t launch_rows_static(const float* values, const int64_t* offsets, float* out, int64_t rows,
                               cudaStream_t stream);
cudaError_t launch_rows_dynamic(const float* values, const int64_t* offsets, float* out, int64_t rows,
                                unsigned long long* counter, int grain, cudaStream_t stream);
cudaError_t launch_rows_block_per_row(const float* values, const int64_t* offsets, float* out, int64_t rows,
                                      cudaStream_t stream);

// while_node.cu: Jacobi iterations for the tridiagonal system diag[i] x[i] - x[i-1] - x[i+1] = b[i],
// from x0, until max |x_new - x| <= tol or max_iters; x gets the solution and iters[0] the count.
// The host loop needs work buffers: x_new (n floats) and state (4 ints, zeroed).
cudaError_t launch_jacobi_host_loop(const float* b, const float* diag, const float* x0, float* x, int* iters,
                                    float* x_new, int* state, int64_t n, float tol, int max_iters, cudaStream_t stream);
cudaError_t launch_jacobi_while_graph(const float* b, const float* diag, const float* x0, float* x, int* iters,
                                      int64_t n, float tol, int max_iters, cudaStream_t stream);
int conditional_nodes_supported();

// mariani_silver.cu: escape-time dwells of the window [x0, x1] x [y0, y1] on a size x size image,
// Mariani-Silver subdivision, one pass per level driven by the host. regions_a/b: work lists of
// ms_list_capacity(size) int4 each; count: 1 int.
cudaError_t launch_mariani_silver_multipass(int* dwells, int size, float x0, float y0, float x1, float y1,
                                            int max_dwell, int4* regions_a, int4* regions_b, int* count,
                                            cudaStream_t stream);
int64_t ms_list_capacity(int size);
int ms_size_multiple();
}
