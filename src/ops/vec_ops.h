// Element-wise and row operations of the forward pass. The arithmetic mirrors ggml's CPU backend
// (accumulation types and operation order) so that our logits agree tightly with llama.cpp's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/fp16.h"

namespace llama_crab {

// out[i] = (x[i] * (1 / sqrt(mean(x^2) + eps))) * w[i]; the sum of squares is accumulated in double.
void rms_norm_mul(const float* x, const float* w, int64_t n, float eps, float* out);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// out[i] = gelu(gate[i]) * up[i], GELU the tanh approximation read the way ggml's CPU backend reads it: from a
// table of the float GELU of every f16 value, rounded to f16, indexed by the input rounded to f16
// (gate <= -10 gives 0, gate >= 10 gives gate).
void gelu_mul(const float* gate, const float* up, int64_t n, float* out);
void gelu_mul_ref(const float* gate, const float* up, int64_t n, float* out);  // the scalar reference
// The tanh-approximation GELU in float (what the table holds before rounding).
float gelu_tanh(float x);

// In-place softmax over n values; returns nothing. Exponentials in float, sum in double (as ggml).
void softmax_inplace(float* x, int64_t n);

// acc[i] += a * v[i] for a row stored as f16 or f32.
void axpy_f16(int64_t n, float a, const fp16_t* v, float* acc);
void axpy_f32(int64_t n, float a, const float* v, float* acc);

// RoPE: the cos/sin table of one position, computed the ggml way (theta advanced by repeated float
// multiplication). cache has n_rot floats: cache[2i] = cos, cache[2i+1] = sin of pair i.
void rope_cache(float pos, int64_t n_rot, float freq_base, float freq_scale, const float* freq_factors, float* cache);
// Rotates the first n_rot dims of one head vector in place. neox: pairs (i, i + n_rot/2); else (2i, 2i+1).
void rope_apply(float* x, int64_t n_rot, bool neox, const float* cache);

}  // namespace llama_crab
