// AVX2 attention kernels (compiled with -mavx2 -mfma -mf16c; called only when the CPU has them).
#include <immintrin.h>

#include <cstdint>

namespace llama_crab {
namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

template <typename LoadK>
inline void kq_dot_impl(int64_t hd, LoadK load_k, const float* q, int n_q, float* out) {
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 8) {
        const __m256 k = load_k(d);
        for (int i = 0; i < n_q; ++i) acc[i] = _mm256_fmadd_ps(k, _mm256_loadu_ps(q + i * hd + d), acc[i]);
    }
    for (int i = 0; i < n_q; ++i) out[i] = hsum(acc[i]);
}

template <typename LoadV>
inline void pv_axpy_impl(int64_t hd, LoadV load_v, const float* p, int n_q, float* acc) {
    __m256 pv[8];
    for (int i = 0; i < n_q; ++i) pv[i] = _mm256_set1_ps(p[i]);
    for (int64_t d = 0; d < hd; d += 8) {
        const __m256 v = load_v(d);
        for (int i = 0; i < n_q; ++i) {
            float* a = acc + i * hd + d;
            _mm256_storeu_ps(a, _mm256_fmadd_ps(pv[i], v, _mm256_loadu_ps(a)));
        }
    }
}

}  // namespace

void kq_dot_f16_avx2(int64_t hd, const uint16_t* k, const float* q, int n_q, float* out) {
    kq_dot_impl(hd, [k](int64_t d) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + d))); }, q, n_q, out);
}

void kq_dot_f32_avx2(int64_t hd, const float* k, const float* q, int n_q, float* out) {
    kq_dot_impl(hd, [k](int64_t d) { return _mm256_loadu_ps(k + d); }, q, n_q, out);
}

void pv_axpy_f16_avx2(int64_t hd, const uint16_t* v, const float* p, int n_q, float* acc) {
    pv_axpy_impl(hd, [v](int64_t d) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + d))); }, p, n_q, acc);
}

void pv_axpy_f32_avx2(int64_t hd, const float* v, const float* p, int n_q, float* acc) {
    pv_axpy_impl(hd, [v](int64_t d) { return _mm256_loadu_ps(v + d); }, p, n_q, acc);
}

}  // namespace llama_crab
