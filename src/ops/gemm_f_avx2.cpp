// AVX2 GEMM / GEMV kernels of F16 and F32 weights (layouts in gemm.h). Compiled with -mavx2 -mfma -mf16c; called
// only when cpu_has_avx2().
//
// A float panel is just its 16 rows, copied next to each other (zero rows past the matrix). The kernel tiles them
// 4 rows x 3 columns: per 8 values, 4 weight vectors and 3 activation vectors feed 12 FMAs into 12 accumulators,
// each an 8-lane partial sum of one result (lane j sums the values k = j mod 8, in order), reduced at the end as
// ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)). That is the summation order of llama.cpp's tiled float GEMM, so prompt
// logits stay as close to llama.cpp's as its own kernels allow. The activations are the floats of the weight
// type's vec_dot_type: F32 as given, F16 rounded to half and widened back (the values the F16 vec_dot multiplies).
//
// Only intrinsics, memcpy and internal-linkage helpers here (see gemm_avx2.cpp).
#include <immintrin.h>

#include <cstring>

#include "ops/gemm.h"
#include "ops/simd_avx2.h"

namespace llama_crab {
namespace {

using u8 = uint8_t;

struct F16 {
    static constexpr size_t kElem = 2;
    static __m256 load8(const u8* p) { return _mm256_cvtph_ps(loadu128(p)); }
    static float load1(const u8* p) { return _cvtsh_ss(load_u16(p)); }
};
struct F32 {
    static constexpr size_t kElem = 4;
    static __m256 load8(const u8* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
    static float load1(const u8* p) { return load_f32(p); }
};

// ---------------------------------------------------------------------------------------------------- panels

template <class L>
void pack_rows(const u8* w, size_t row_bytes, int n_rows, int64_t n, u8* panel) {
    const size_t rb = (size_t)n * L::kElem;
    for (int r = 0; r < kPanelRowsFloat; ++r) {
        if (r < n_rows) {
            std::memcpy(panel + rb * (size_t)r, w + row_bytes * (size_t)r, rb);
        } else {
            std::memset(panel + rb * (size_t)r, 0, rb);
        }
    }
}

// Rows r0..r0+RM-1 of the panel against columns 0..RN-1.
template <class L, int RM, int RN>
void tile(int64_t n, const u8* panel, int r0, int n_rows, const u8* act, size_t act_stride, float* y, int64_t y_stride) {
    const size_t rb = (size_t)n * L::kElem;
    const u8* w[RM];
    const float* a[RN];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i) w[i] = panel + rb * (size_t)(r0 + i);
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) a[j] = reinterpret_cast<const float*>(act + (size_t)j * act_stride);
    __m256 acc[RM][RN];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i) {
#pragma GCC unroll 8
        for (int j = 0; j < RN; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 av[RN];
#pragma GCC unroll 8
        for (int j = 0; j < RN; ++j) av[j] = _mm256_loadu_ps(a[j] + k);
#pragma GCC unroll 8
        for (int i = 0; i < RM; ++i) {
            const __m256 wv = L::load8(w[i] + (size_t)k * L::kElem);
#pragma GCC unroll 8
            for (int j = 0; j < RN; ++j) acc[i][j] = _mm256_fmadd_ps(wv, av[j], acc[i][j]);
        }
    }
    for (int i = 0; i < RM && r0 + i < n_rows; ++i) {
        for (int j = 0; j < RN; ++j) {
            float s = hsum_ps(acc[i][j]);
            for (int64_t t = k; t < n; ++t) s += L::load1(w[i] + (size_t)t * L::kElem) * a[j][t];
            y[j * y_stride + r0 + i] = s;
        }
    }
}

template <class L, int RN>
void rows_of_panel(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y, int64_t y_stride) {
    for (int r0 = 0; r0 < n_rows; r0 += 4) tile<L, 4, RN>(n, panel, r0, n_rows, act, act_stride, y, y_stride);
}

template <class L>
void panel_f(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, int n_cols, float* y,
             int64_t y_stride) {
    int c = 0;
    for (; c + 3 <= n_cols; c += 3) rows_of_panel<L, 3>(n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
    if (n_cols - c == 2) rows_of_panel<L, 2>(n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
    if (n_cols - c == 1) rows_of_panel<L, 1>(n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
}

// ---------------------------------------------------------------------------------------------------- GEMV

// The loop of the F16 / F32 vec_dot kernels (32 values per step into four accumulators, then 8 at a time, then
// one at a time), with the activations already widened: the same products and sums in the same order.
template <class L>
float dot_row(int64_t n, const u8* x, const float* a) {
    constexpr size_t e = L::kElem;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(L::load8(x + (size_t)i * e), _mm256_loadu_ps(a + i), a0);
        a1 = _mm256_fmadd_ps(L::load8(x + (size_t)(i + 8) * e), _mm256_loadu_ps(a + i + 8), a1);
        a2 = _mm256_fmadd_ps(L::load8(x + (size_t)(i + 16) * e), _mm256_loadu_ps(a + i + 16), a2);
        a3 = _mm256_fmadd_ps(L::load8(x + (size_t)(i + 24) * e), _mm256_loadu_ps(a + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(L::load8(x + (size_t)i * e), _mm256_loadu_ps(a + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) sum += L::load1(x + (size_t)i * e) * a[i];
    return sum;
}

template <class L>
void gemv_f(int64_t n, const u8* w, size_t row_bytes, int64_t n_rows, const u8* act, size_t act_stride, int64_t n_cols,
            float* y, int64_t y_stride) {
    for (int64_t r = 0; r < n_rows; ++r) {
        for (int64_t c = 0; c < n_cols; ++c) {
            y[c * y_stride + r] =
                dot_row<L>(n, w + (size_t)r * row_bytes, reinterpret_cast<const float*>(act + (size_t)c * act_stride));
        }
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------- entry points

void convert_act_f16_avx2(const float* x, void* vdst, int64_t n) {
    float* dst = static_cast<float*>(vdst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) dst[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

void pack_f16_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_rows<F16>(w, row_bytes, n_rows, n, panel);
}
void pack_f32_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_rows<F32>(w, row_bytes, n_rows, n, panel);
}

void panel_f16_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride) {
    panel_f<F16>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void panel_f32_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride) {
    panel_f<F32>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

void gemv_f16_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    gemv_f<F16>(n, w, row_bytes, n_rows, act, act_stride, n_cols, y, y_stride);
}
void gemv_f32_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    gemv_f<F32>(n, w, row_bytes, n_rows, act, act_stride, n_cols, y, y_stride);
}

}  // namespace llama_crab
