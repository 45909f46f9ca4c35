// Quantised matrix multiplication: y = W x for a batch of activation rows. Activations are converted once to
// the weight type's vec_dot_type (Q8 blocks for the quantised types, so the inner loops are integer dot products).
//
// With AVX2, Q4_0 / Q8_0 / Q4_K / Q6_K / F16 / F32 weights go through the kernels of ops/gemm.h: register-tiled
// panels for prompt processing (more than 3 tokens), a GEMV reading the rows in place for decode. The other types
// (and CPUs without AVX2) use the TypeTraits dot products. Work is split over output rows and tokens, for all
// matrices of a call at once; a call allocates nothing once its scratch buffers have grown.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/tensor_type.h"

namespace llama_crab {

class ThreadPool;

// A weight matrix: n_out rows of n_in values in `traits` format, rows row_bytes apart.
struct MatrixRef {
    const TypeTraits* traits = nullptr;
    const uint8_t* data = nullptr;
    int64_t n_in = 0;
    int64_t n_out = 0;
    size_t row_bytes = 0;
};

// One product of a matmul_multi call: y[t * y_stride + r] = dot(W row r, x row t).
struct MatmulJob {
    MatrixRef w;
    float* y = nullptr;
    int64_t y_stride = 0;
};

// Reusable buffers (each grows once to its high-water mark, then never allocates).
struct MatmulScratch {
    std::vector<uint8_t> act;                  // converted activations
    std::vector<std::vector<uint8_t>> panels;  // one repacked weight panel per thread
};

// y[t * y_stride + r] = dot(W row r, x[t * x_stride ...]) for t < n_tokens, r < n_out.
void matmul(ThreadPool& pool, const MatrixRef& w, const float* x, int64_t x_stride, int64_t n_tokens, float* y,
            int64_t y_stride, MatmulScratch& scratch);

// Several matrices applied to the same input (q/k/v, gate/up) in one thread-pool dispatch: every jobs[i].w has
// n_in values per row (the input's width); the types may differ. The activations are converted once per
// distinct activation format. n_jobs <= kMaxMatmulJobs.
constexpr int kMaxMatmulJobs = 8;
void matmul_multi(ThreadPool& pool, const MatmulJob* jobs, int n_jobs, const float* x, int64_t x_stride,
                  int64_t n_tokens, MatmulScratch& scratch);

}  // namespace llama_crab
