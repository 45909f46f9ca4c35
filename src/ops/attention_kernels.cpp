#include "ops/attention_kernels.h"

#include "ops/tensor_type.h"

namespace llama_crab {

void kq_dot_f16_avx2(int64_t hd, const fp16_t* k, const float* q, int n_q, float* out);
void kq_dot_f32_avx2(int64_t hd, const float* k, const float* q, int n_q, float* out);
void pv_axpy_f16_avx2(int64_t hd, const fp16_t* v, const float* p, int n_q, float* acc);
void pv_axpy_f32_avx2(int64_t hd, const float* v, const float* p, int n_q, float* acc);

void kq_dot_f16_ref(int64_t hd, const fp16_t* k, const float* q, int n_q, float* out) {
    for (int i = 0; i < n_q; ++i) {
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s += fp16_to_fp32(k[d]) * q[i * hd + d];
        out[i] = s;
    }
}

void kq_dot_f32_ref(int64_t hd, const float* k, const float* q, int n_q, float* out) {
    for (int i = 0; i < n_q; ++i) {
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s += k[d] * q[i * hd + d];
        out[i] = s;
    }
}

void pv_axpy_f16_ref(int64_t hd, const fp16_t* v, const float* p, int n_q, float* acc) {
    for (int i = 0; i < n_q; ++i) {
        for (int64_t d = 0; d < hd; ++d) acc[i * hd + d] += p[i] * fp16_to_fp32(v[d]);
    }
}

void pv_axpy_f32_ref(int64_t hd, const float* v, const float* p, int n_q, float* acc) {
    for (int i = 0; i < n_q; ++i) {
        for (int64_t d = 0; d < hd; ++d) acc[i * hd + d] += p[i] * v[d];
    }
}

// The AVX2 versions need hd to be a multiple of 8 (every llama-family head size is).
void kq_dot_f16(int64_t hd, const fp16_t* k, const float* q, int n_q, float* out) {
    if (cpu_has_avx2() && hd % 8 == 0) return kq_dot_f16_avx2(hd, k, q, n_q, out);
    kq_dot_f16_ref(hd, k, q, n_q, out);
}

void kq_dot_f32(int64_t hd, const float* k, const float* q, int n_q, float* out) {
    if (cpu_has_avx2() && hd % 8 == 0) return kq_dot_f32_avx2(hd, k, q, n_q, out);
    kq_dot_f32_ref(hd, k, q, n_q, out);
}

void pv_axpy_f16(int64_t hd, const fp16_t* v, const float* p, int n_q, float* acc) {
    if (cpu_has_avx2() && hd % 8 == 0) return pv_axpy_f16_avx2(hd, v, p, n_q, acc);
    pv_axpy_f16_ref(hd, v, p, n_q, acc);
}

void pv_axpy_f32(int64_t hd, const float* v, const float* p, int n_q, float* acc) {
    if (cpu_has_avx2() && hd % 8 == 0) return pv_axpy_f32_avx2(hd, v, p, n_q, acc);
    pv_axpy_f32_ref(hd, v, p, n_q, acc);
}

}  // namespace llama_crab
