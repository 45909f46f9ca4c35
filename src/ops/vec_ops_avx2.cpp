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

}  // namespace llama_crab
