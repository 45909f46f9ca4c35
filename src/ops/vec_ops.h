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

// RoPE as ggml computes it, with YaRN (ext_factor != 0) and frequency factors. For pair i (dims i0 = 2i):
//   theta_extrap = pos * base^(-i0/n_rot) / freq_factors[i]    (theta advanced by repeated float multiplication)
//   theta_interp = freq_scale * theta_extrap                   (linear interpolation, freq_scale = 1/factor)
//   YaRN: ramp = 1 - clamp((i - corr_low) / max(0.001, corr_high - corr_low), 0, 1), mix = ramp * ext_factor,
//         theta = theta_interp * (1 - mix) + theta_extrap * mix, mscale = attn_factor * (1 + 0.1 ln(1/freq_scale))
//   cache[2i] = cos(theta) * mscale, cache[2i + 1] = sin(theta) * mscale (mscale = attn_factor without YaRN).
struct RopeParams {
    int64_t n_rot = 0;
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;
    const float* freq_factors = nullptr;  // [n_rot / 2] or null
    float ext_factor = 0.0f;              // YaRN extrapolation mix (0: off)
    float attn_factor = 1.0f;             // scales cos and sin
    float corr_low = 0.0f, corr_high = 0.0f;  // YaRN ramp between these pair indices
};

// ggml_rope_yarn_corr_dims: the pair indices where the rotations over n_ctx_orig positions cross beta_fast and
// beta_slow turns, floored/ceiled and clamped to [0, n_rot - 1].
void rope_yarn_corr_dims(int64_t n_rot, int64_t n_ctx_orig, float freq_base, float beta_fast, float beta_slow, float* low,
                         float* high);

// The cos/sin table of one position: cache has n_rot floats, cache[2i] = cos, cache[2i+1] = sin of pair i.
// rotation_only leaves out the magnitude scale (cos/sin of the same angles with mscale 1): re-rotating cached K by
// a position delta must not scale it a second time.
void rope_cache(float pos, const RopeParams& rp, float* cache, bool rotation_only = false);
// Rotates the first n_rot dims of one head vector in place. neox: pairs (i, i + n_rot/2); else (2i, 2i+1).
void rope_apply(float* x, int64_t n_rot, bool neox, const float* cache);

}  // namespace llama_crab
