// Attention inner loops for grouped-query attention: one K (or V) row of the cache is read once and used
// for every query head of its group. Scalar references and AVX2 versions (picked at run time).
#pragma once

#include <cstdint>

#include "util/fp16.h"

namespace llama_crab {

// out[i] = dot(k, q + i * hd) for i < n_q (n_q <= 8), k a row of hd values in f16 / f32.
void kq_dot_f16(int64_t hd, const fp16_t* k, const float* q, int n_q, float* out);
void kq_dot_f32(int64_t hd, const float* k, const float* q, int n_q, float* out);
// acc + i * hd += p[i] * v for i < n_q (n_q <= 8).
void pv_axpy_f16(int64_t hd, const fp16_t* v, const float* p, int n_q, float* acc);
void pv_axpy_f32(int64_t hd, const float* v, const float* p, int n_q, float* acc);

// The scalar references (tests compare the dispatching versions with these).
void kq_dot_f16_ref(int64_t hd, const fp16_t* k, const float* q, int n_q, float* out);
void kq_dot_f32_ref(int64_t hd, const float* k, const float* q, int n_q, float* out);
void pv_axpy_f16_ref(int64_t hd, const fp16_t* v, const float* p, int n_q, float* acc);
void pv_axpy_f32_ref(int64_t hd, const float* v, const float* p, int n_q, float* acc);

constexpr int kMaxQueriesPerKvRow = 8;

}  // namespace llama_crab
