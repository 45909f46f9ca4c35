// AVX2 kernels of vec_ops (compiled with -mavx2 -mfma -mf16c; called only when the CPU has them).
#include <immintrin.h>

#include <cstdint>

#include "util/fp16.h"

namespace llama_crab {

void axpy_f16_avx2(int64_t n, float a, const fp16_t* v, float* acc) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(va, x, _mm256_loadu_ps(acc + i)));
    }
    for (; i < n; ++i) acc[i] += a * fp16_to_fp32(v[i]);
}

void axpy_f32_avx2(int64_t n, float a, const float* v, float* acc) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(v + i), _mm256_loadu_ps(acc + i)));
    }
    for (; i < n; ++i) acc[i] += a * v[i];
}

// gelu_mul with the f16 table as floats: the input rounded to f16 (as the scalar code rounds it: to nearest even),
// its bits widened to an index, the table value gathered; <= -10 gives 0, >= 10 gives the input.
void gelu_mul_avx2(const float* table, const float* gate, const float* up, int64_t n, float* out) {
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256i idx = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(g, _MM_FROUND_TO_NEAREST_INT));
        __m256 y = _mm256_i32gather_ps(table, idx, 4);
        y = _mm256_blendv_ps(y, zero, _mm256_cmp_ps(g, lo, _CMP_LE_OQ));
        y = _mm256_blendv_ps(y, g, _mm256_cmp_ps(g, hi, _CMP_GE_OQ));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(y, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; ++i) {
        const float g = gate[i];
        const float y = g <= -10.0f ? 0.0f : g >= 10.0f ? g : table[fp32_to_fp16(g)];
        out[i] = y * up[i];
    }
}

}  // namespace llama_crab
