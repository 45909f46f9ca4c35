#include "ops/vec_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/tensor_type.h"

namespace llama_crab {

void axpy_f16_avx2(int64_t n, float a, const fp16_t* v, float* acc);
void axpy_f32_avx2(int64_t n, float a, const float* v, float* acc);
void gelu_mul_avx2(const float* table, const float* gate, const float* up, int64_t n, float* out);

void rms_norm_mul(const float* x, const float* w, int64_t n, float eps, float* out) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * w[i];
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        out[i] = (g / (1.0f + std::exp(-g))) * up[i];
    }
}

float gelu_tanh(float x) {
    constexpr float kCoefA = 0.044715f;
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

namespace {

// GELU of every f16 value, rounded to f16 (ggml's table_gelu_f16), kept as floats so that SIMD code can gather
// from it; built once.
const float* gelu_f16_table() {
    static const std::vector<float> table = [] {
        std::vector<float> t(1 << 16);
        for (uint32_t i = 0; i < t.size(); ++i) t[i] = fp16_to_fp32(fp32_to_fp16(gelu_tanh(fp16_to_fp32((fp16_t)i))));
        return t;
    }();
    return table.data();
}

}  // namespace

void gelu_mul_ref(const float* gate, const float* up, int64_t n, float* out) {
    const float* table = gelu_f16_table();
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        float y;
        if (g <= -10.0f) {
            y = 0.0f;
        } else if (g >= 10.0f) {
            y = g;
        } else {
            y = table[fp32_to_fp16(g)];
        }
        out[i] = y * up[i];
    }
}

void gelu_mul(const float* gate, const float* up, int64_t n, float* out) {
    if (cpu_has_avx2()) return gelu_mul_avx2(gelu_f16_table(), gate, up, n, out);
    gelu_mul_ref(gate, up, n, out);
}

void softmax_inplace(float* x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const float e = std::exp(x[i] - mx);
        x[i] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void axpy_f16(int64_t n, float a, const fp16_t* v, float* acc) {
    if (cpu_has_avx2()) return axpy_f16_avx2(n, a, v, acc);
    for (int64_t i = 0; i < n; ++i) acc[i] += a * fp16_to_fp32(v[i]);
}

void axpy_f32(int64_t n, float a, const float* v, float* acc) {
    if (cpu_has_avx2()) return axpy_f32_avx2(n, a, v, acc);
    for (int64_t i = 0; i < n; ++i) acc[i] += a * v[i];
}

constexpr float kPi = 3.14159265358979323846f;

void rope_yarn_corr_dims(int64_t n_rot, int64_t n_ctx_orig, float freq_base, float beta_fast, float beta_slow, float* low,
                         float* high) {
    // The pair index whose wavelength makes n_turns turns over n_ctx_orig positions.
    auto corr_dim = [&](float n_turns) {
        return (float)n_rot * std::log((float)n_ctx_orig / (n_turns * 2.0f * kPi)) / (2.0f * std::log(freq_base));
    };
    *low = std::max(0.0f, std::floor(corr_dim(beta_fast)));
    *high = std::min((float)(n_rot - 1), std::ceil(corr_dim(beta_slow)));
}

void rope_cache(float pos, const RopeParams& rp, float* cache, bool rotation_only) {
    const float theta_scale = std::pow(rp.freq_base, -2.0f / (float)rp.n_rot);
    const bool yarn = rp.ext_factor != 0.0f;
    float mscale = rotation_only ? 1.0f : rp.attn_factor;
    if (yarn && !rotation_only) mscale *= 1.0f + 0.1f * std::log(1.0f / rp.freq_scale);
    float theta = pos;
    for (int64_t i0 = 0; i0 < rp.n_rot; i0 += 2) {
        const float ff = rp.freq_factors ? rp.freq_factors[i0 / 2] : 1.0f;
        const float extrap = theta / ff;
        float t = rp.freq_scale * extrap;
        if (yarn) {
            const float y = ((float)(i0 / 2) - rp.corr_low) / std::max(0.001f, rp.corr_high - rp.corr_low);
            const float mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * rp.ext_factor;
            t = t * (1.0f - mix) + extrap * mix;
        }
        cache[i0] = std::cos(t) * mscale;
        cache[i0 + 1] = std::sin(t) * mscale;
        theta *= theta_scale;
    }
}

void rope_apply(float* x, int64_t n_rot, bool neox, const float* cache) {
    const int64_t half = n_rot / 2;
    for (int64_t i0 = 0; i0 < n_rot; i0 += 2) {
        const float c = cache[i0];
        const float s = cache[i0 + 1];
        const int64_t a = neox ? i0 / 2 : i0;
        const int64_t b = neox ? i0 / 2 + half : i0 + 1;
        const float x0 = x[a];
        const float x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

}  // namespace llama_crab
