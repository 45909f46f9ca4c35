// Quantised matrix multiplication: y = W x for a batch of activation rows, threads splitting the
// output rows. Activations are converted once to the weight type's vec_dot_type (Q8 blocks for the
// quantised types, so the inner loops are integer dot products).
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

// Reusable buffer for the converted activations (grows once to its high-water mark, then never allocates).
struct MatmulScratch {
    std::vector<uint8_t> act;
};

// y[t * y_stride + r] = dot(W row r, x[t * x_stride ...]) for t < n_tokens, r < n_out.
void matmul(ThreadPool& pool, const MatrixRef& w, const float* x, int64_t x_stride, int64_t n_tokens, float* y,
            int64_t y_stride, MatmulScratch& scratch);

}  // namespace llama_crab
