// Scalar references of the GEMM / GEMV kernels (layouts in gemm.h) and the kernel tables, one per ISA level.
//
// The references do the same exact integer sums as the AVX2 and AVX-512 kernels and the same float operations per
// block, in the same order; only fused multiply-adds may round differently. Each SIMD layout (8-row panels, the
// 16-row panels of AVX-512) has its reference, found by gemm_kernels_ref().
#include "ops/gemm.h"

#include <cstring>
#include <vector>

#include "ops/quant_basic.h"
#include "ops/quant_k.h"

namespace llama_crab {
namespace {

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

template <typename T>
void store(uint8_t* p, T v) {
    std::memcpy(p, &v, sizeof(T));
}

// ---- decoding one weight block into codes in element order ----

// Q4_0: the 32 unsigned nibbles (value = (code - 8) * d).
void codes_q4_0(const uint8_t* b, uint8_t* u) {
    const uint8_t* qs = b + offsetof(BlockQ4_0, qs);
    for (int j = 0; j < 16; ++j) {
        u[j] = qs[j] & 15;
        u[j + 16] = qs[j] >> 4;
    }
}

// Q4_K: the 256 nibbles of a super-block (value = d * sc * code - dmin * m).
void codes_q4_k(const BlockQ4K& b, uint8_t* u) {
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            u[64 * c + l] = b.qs[32 * c + l] & 15;
            u[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
        }
    }
}

// Q6_K: the 256 6-bit codes (value = d * sc * (code - 32)).
void codes_q6_k(const BlockQ6K& b, uint8_t* u) {
    for (int h = 0; h < 2; ++h) {
        for (int l = 0; l < 64; ++l) {
            const uint8_t lo = b.ql[64 * h + l];
            u[128 * h + l] = lo & 15;
            u[128 * h + 64 + l] = lo >> 4;
        }
        for (int l = 0; l < 32; ++l) {
            const uint8_t hb = b.qh[32 * h + l];
            for (int j = 0; j < 4; ++j) u[128 * h + 32 * j + l] |= (uint8_t)(((hb >> (2 * j)) & 3) << 4);
        }
    }
}

// Writes the codes of one row (values e = 0..nv-1 of a block) into lane r of the panel groups at dst.
void scatter_codes(const uint8_t* codes, int nv, int r, uint8_t* dst) {
    for (int e = 0; e < nv; ++e) dst[(e / 4) * 32 + r * 4 + (e % 4)] = codes[e];
}

// ---- activations ----

const BlockQ8K* q8k_block(const uint8_t* act, int64_t i) { return reinterpret_cast<const BlockQ8K*>(act) + i; }

}  // namespace

size_t act_q8k_row_bytes(int64_t n) { return (size_t)(n / kQK_K) * sizeof(BlockQ8K); }

void convert_act_q8_ref(const float* x, void* vdst, int64_t n) {
    uint8_t* dst = static_cast<uint8_t*>(vdst);
    const int64_t nb = n / 32;
    for (int64_t b = 0; b < nb; ++b) {
        BlockQ8_0 q;
        quantize_act_q8_0_ref(x + 32 * b, &q, 32);
        std::memcpy(dst + 32 * b, q.qs, 32);
        int32_t s = 0;
        for (int j = 0; j < 32; ++j) s += q.qs[j];
        store<float>(dst + 32 * nb + 4 * b, fp16_to_fp32(q.d));
        store<int32_t>(dst + 36 * nb + 4 * b, s);
        store<float>(dst + 40 * nb + 4 * b, fp16_to_fp32(q.d) * (float)(8 * s));
    }
}

// ---- packing ----

namespace {

// Q4_0 (kQ4: the nibbles) and Q8_0 (the int8 quants) panels of R rows: per block, 8 groups of 4R bytes (lane r =
// row r), all blocks first; then the R row scales of each block as floats.
template <int R, bool kQ4>
void pack_q_0_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    const int64_t nb = n / 32;
    constexpr size_t kBlk = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    std::memset(panel, 0, (size_t)nb * 36 * R);
    for (int r = 0; r < n_rows; ++r) {
        const uint8_t* row = w + (size_t)r * row_bytes;
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* blk = row + (size_t)b * kBlk;
            uint8_t u[32];
            if constexpr (kQ4) codes_q4_0(blk, u);
            else std::memcpy(u, blk + offsetof(BlockQ8_0, qs), 32);
            for (int e = 0; e < 32; ++e) panel[32 * R * b + (e / 4) * 4 * R + 4 * r + e % 4] = u[e];
            store<float>(panel + 32 * R * nb + 4 * R * b + 4 * r, fp16_to_fp32(load<fp16_t>(blk)));
        }
    }
}

// Per row and block: the exact integer sum (Q4_0: nibbles x y - 8 * sum(y)), then acc += (dx * dy) * sum.
template <int R, bool kQ4>
void panel_q_0_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                   float* y, int64_t y_stride) {
    const int64_t nb = n / 32;
    for (int c = 0; c < n_cols; ++c) {
        const uint8_t* a = act + (size_t)c * act_stride;
        for (int r = 0; r < n_rows; ++r) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                int32_t sum = 0;
                for (int e = 0; e < 32; ++e) {
                    const uint8_t code = panel[32 * R * b + (e / 4) * 4 * R + 4 * r + e % 4];
                    sum += (kQ4 ? (int32_t)code : (int32_t)(int8_t)code) * (int8_t)a[32 * b + e];
                }
                if constexpr (kQ4) sum -= 8 * load<int32_t>(a + 36 * nb + 4 * b);
                const float scale = load<float>(panel + 32 * R * nb + 4 * R * b + 4 * r) * load<float>(a + 32 * nb + 4 * b);
                acc += scale * (float)sum;
            }
            y[c * y_stride + r] = acc;
        }
    }
}

}  // namespace

void pack_q4_0_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_q_0_ref<kPanelRows, true>(w, row_bytes, n_rows, n, panel);
}
void pack_q8_0_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_q_0_ref<kPanelRows, false>(w, row_bytes, n_rows, n, panel);
}
void pack_q4_0_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_q_0_ref<kPanelRowsWide, true>(w, row_bytes, n_rows, n, panel);
}
void pack_q8_0_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_q_0_ref<kPanelRowsWide, false>(w, row_bytes, n_rows, n, panel);
}

void pack_q4_k_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    const int64_t nsb = n / kQK_K;
    std::memset(panel, 0, panel_q4_k_bytes(n));
    for (int r = 0; r < n_rows; ++r) {
        const uint8_t* row = w + (size_t)r * row_bytes;
        for (int64_t i = 0; i < nsb; ++i) {
            BlockQ4K b;
            std::memcpy(&b, row + (size_t)i * sizeof(BlockQ4K), sizeof(b));
            uint8_t* p = panel + (size_t)i * kPanelQ4KBlock;
            uint8_t u[kQK_K];
            codes_q4_k(b, u);
            scatter_codes(u, kQK_K, r, p);
            uint8_t sc[8], mn[8];
            unpack_scales_mins_k4(b.scales, sc, mn);
            for (int k = 0; k < 8; ++k) {
                store<int16_t>(p + 2048 + 32 * k + 4 * r, sc[k]);
                store<int16_t>(p + 2048 + 32 * k + 4 * r + 2, sc[k]);
                store<int16_t>(p + 2304 + 32 * k + 4 * r, mn[k]);
                store<int16_t>(p + 2304 + 32 * k + 4 * r + 2, mn[k]);
            }
            store<float>(p + 2560 + 4 * r, fp16_to_fp32(b.d));
            store<float>(p + 2592 + 4 * r, fp16_to_fp32(b.dmin));
        }
    }
}

void pack_q6_k_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    const int64_t nsb = n / kQK_K;
    std::memset(panel, 0, panel_q6_k_bytes(n));
    for (int r = 0; r < n_rows; ++r) {
        const uint8_t* row = w + (size_t)r * row_bytes;
        for (int64_t i = 0; i < nsb; ++i) {
            BlockQ6K b;
            std::memcpy(&b, row + (size_t)i * sizeof(BlockQ6K), sizeof(b));
            uint8_t* p = panel + (size_t)i * kPanelQ6KBlock;
            uint8_t u[kQK_K];
            codes_q6_k(b, u);
            scatter_codes(u, kQK_K, r, p);
            for (int k = 0; k < 16; ++k) {
                store<int16_t>(p + 2048 + 32 * k + 4 * r, b.scales[k]);
                store<int16_t>(p + 2048 + 32 * k + 4 * r + 2, b.scales[k]);
            }
            for (int j = 0; j < 8; ++j) {
                store<int16_t>(p + 2560 + 32 * j + 4 * r, b.scales[2 * j]);
                store<int16_t>(p + 2560 + 32 * j + 4 * r + 2, b.scales[2 * j + 1]);
            }
            store<float>(p + 2816 + 4 * r, fp16_to_fp32(b.d));
        }
    }
}

// ---- panel kernels ----

void panel_q4_0_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride) {
    panel_q_0_ref<kPanelRows, true>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void panel_q8_0_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride) {
    panel_q_0_ref<kPanelRows, false>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void panel_q4_0_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride) {
    panel_q_0_ref<kPanelRowsWide, true>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void panel_q8_0_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride) {
    panel_q_0_ref<kPanelRowsWide, false>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

void panel_q4_k_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride) {
    const int64_t nsb = n / kQK_K;
    for (int c = 0; c < n_cols; ++c) {
        const uint8_t* a = act + (size_t)c * act_stride;
        for (int r = 0; r < n_rows; ++r) {
            float acc = 0.0f;
            for (int64_t i = 0; i < nsb; ++i) {
                const uint8_t* p = panel + (size_t)i * kPanelQ4KBlock;
                const BlockQ8K* yb = q8k_block(a, i);
                int32_t sumi = 0, mins = 0;
                for (int k = 0; k < 8; ++k) {
                    int32_t s = 0;
                    for (int e = 32 * k; e < 32 * k + 32; ++e) s += p[(e / 4) * 32 + 4 * r + e % 4] * yb->qs[e];
                    sumi += load<int16_t>(p + 2048 + 32 * k + 4 * r) * s;
                    mins += load<int16_t>(p + 2304 + 32 * k + 4 * r) * (yb->bsums[2 * k] + yb->bsums[2 * k + 1]);
                }
                acc -= load<float>(p + 2592 + 4 * r) * yb->d * (float)mins;
                acc += load<float>(p + 2560 + 4 * r) * yb->d * (float)sumi;
            }
            y[c * y_stride + r] = acc;
        }
    }
}

void panel_q6_k_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride) {
    const int64_t nsb = n / kQK_K;
    for (int c = 0; c < n_cols; ++c) {
        const uint8_t* a = act + (size_t)c * act_stride;
        for (int r = 0; r < n_rows; ++r) {
            float acc = 0.0f;
            for (int64_t i = 0; i < nsb; ++i) {
                const uint8_t* p = panel + (size_t)i * kPanelQ6KBlock;
                const BlockQ8K* yb = q8k_block(a, i);
                int32_t sumi = 0, corr = 0;
                for (int k = 0; k < 16; ++k) {
                    int32_t s = 0;
                    for (int e = 16 * k; e < 16 * k + 16; ++e) s += p[(e / 4) * 32 + 4 * r + e % 4] * yb->qs[e];
                    const int32_t sc = load<int16_t>(p + 2048 + 32 * k + 4 * r);
                    sumi += sc * s;
                    corr += sc * yb->bsums[k];
                }
                sumi -= 32 * corr;
                acc += load<float>(p + 2816 + 4 * r) * yb->d * (float)sumi;
            }
            y[c * y_stride + r] = acc;
        }
    }
}

// ---- 16-row k-quant panels (AVX-512): two 8-row panels interleaved in 32-byte units ----

namespace {

// One super-block of 8-row panels lo (rows 0-7) and hi (rows 8-15), bytes8 long each, into the 16-row layout.
void interleave_x16(const uint8_t* lo, const uint8_t* hi, size_t bytes8, uint8_t* dst) {
    for (size_t o = 0; o < bytes8; o += 32) {
        std::memcpy(dst + 2 * o, lo + o, 32);
        std::memcpy(dst + 2 * o + 32, hi + o, 32);
    }
}

void pack_k_x16_ref(GemmPackFn pack8, size_t block8, size_t block_bytes, const uint8_t* w, size_t row_bytes,
                    int n_rows, int64_t n, uint8_t* panel) {
    uint8_t lo[kPanelQ6KBlock], hi[kPanelQ6KBlock];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const uint8_t* blk = w + (size_t)i * block_bytes;
        pack8(blk, row_bytes, n_rows < 8 ? n_rows : 8, kQK_K, lo);
        pack8(n_rows > 8 ? blk + 8 * row_bytes : blk, row_bytes, n_rows > 8 ? n_rows - 8 : 0, kQK_K, hi);
        interleave_x16(lo, hi, block8, panel + (size_t)i * 2 * block8);
    }
}

// The reference product: the panel split back into its two 8-row panels, each through the 8-row reference.
void panel_k_x16_ref(GemmPanelFn panel8, size_t block8, int64_t n, const uint8_t* panel, int n_rows,
                     const uint8_t* act, size_t act_stride, int n_cols, float* y, int64_t y_stride) {
    const int64_t nsb = n / kQK_K;
    std::vector<uint8_t> lo((size_t)nsb * block8), hi((size_t)nsb * block8);
    for (int64_t i = 0; i < nsb; ++i) {
        for (size_t o = 0; o < block8; o += 32) {
            std::memcpy(&lo[(size_t)i * block8 + o], panel + (size_t)i * 2 * block8 + 2 * o, 32);
            std::memcpy(&hi[(size_t)i * block8 + o], panel + (size_t)i * 2 * block8 + 2 * o + 32, 32);
        }
    }
    panel8(n, lo.data(), n_rows < 8 ? n_rows : 8, act, act_stride, n_cols, y, y_stride);
    if (n_rows > 8) panel8(n, hi.data(), n_rows - 8, act, act_stride, n_cols, y + 8, y_stride);
}

}  // namespace

void pack_q4_k_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_k_x16_ref(pack_q4_k_ref, kPanelQ4KBlock, sizeof(BlockQ4K), w, row_bytes, n_rows, n, panel);
}
void pack_q6_k_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_k_x16_ref(pack_q6_k_ref, kPanelQ6KBlock, sizeof(BlockQ6K), w, row_bytes, n_rows, n, panel);
}
void panel_q4_k_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride) {
    panel_k_x16_ref(panel_q4_k_ref, kPanelQ4KBlock, n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void panel_q6_k_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride) {
    panel_k_x16_ref(panel_q6_k_ref, kPanelQ6KBlock, n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

// ---- GEMV (rows in place) ----

void gemv_q4_0_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    const int64_t nb = n / 32;
    for (int64_t c = 0; c < n_cols; ++c) {
        const uint8_t* a = act + (size_t)c * act_stride;
        for (int64_t r = 0; r < n_rows; ++r) {
            const uint8_t* row = w + (size_t)r * row_bytes;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = row + (size_t)b * sizeof(BlockQ4_0);
                uint8_t u[32];
                codes_q4_0(blk, u);
                int32_t sum = 0;
                for (int e = 0; e < 32; ++e) sum += u[e] * (int8_t)a[32 * b + e];
                // dx * (dy * sum(u y) - dy * 8 sum(y)), the offset as the precomputed m
                const float t = load<float>(a + 32 * nb + 4 * b) * (float)sum - load<float>(a + 40 * nb + 4 * b);
                acc += fp16_to_fp32(load<fp16_t>(blk)) * t;
            }
            y[c * y_stride + r] = acc;
        }
    }
}

void gemv_q8_0_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    const int64_t nb = n / 32;
    for (int64_t c = 0; c < n_cols; ++c) {
        const uint8_t* a = act + (size_t)c * act_stride;
        for (int64_t r = 0; r < n_rows; ++r) {
            const uint8_t* row = w + (size_t)r * row_bytes;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = row + (size_t)b * sizeof(BlockQ8_0);
                int32_t sum = 0;
                for (int e = 0; e < 32; ++e) sum += (int8_t)blk[offsetof(BlockQ8_0, qs) + e] * (int8_t)a[32 * b + e];
                acc += fp16_to_fp32(load<fp16_t>(blk)) * load<float>(a + 32 * nb + 4 * b) * (float)sum;
            }
            y[c * y_stride + r] = acc;
        }
    }
}

void gemv_q4_k_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    for (int64_t c = 0; c < n_cols; ++c) {
        for (int64_t r = 0; r < n_rows; ++r) {
            vec_dot_q4_k_q8_k_ref(n, &y[c * y_stride + r], w + (size_t)r * row_bytes, act + (size_t)c * act_stride);
        }
    }
}

void gemv_q6_k_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    for (int64_t c = 0; c < n_cols; ++c) {
        for (int64_t r = 0; r < n_rows; ++r) {
            vec_dot_q6_k_q8_k_ref(n, &y[c * y_stride + r], w + (size_t)r * row_bytes, act + (size_t)c * act_stride);
        }
    }
}

// ---- F16 / F32 ----

void convert_act_f16_ref(const float* x, void* vdst, int64_t n) {
    float* dst = static_cast<float*>(vdst);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

void convert_act_f32(const float* x, void* dst, int64_t n) { std::memcpy(dst, x, (size_t)n * sizeof(float)); }

namespace {

// Value k of a row as float: F16 (kBytes = 2) or F32 (kBytes = 4).
template <size_t kBytes>
float value_at(const uint8_t* p, int64_t k) {
    if constexpr (kBytes == 2) return fp16_to_fp32(load<fp16_t>(p + 2 * k));
    else return load<float>(p + 4 * k);
}

template <size_t kBytes>
void pack_f_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    const size_t rb = (size_t)n * kBytes;
    std::memset(panel, 0, rb * kPanelRowsFloat);
    for (int r = 0; r < n_rows; ++r) std::memcpy(panel + rb * (size_t)r, w + (size_t)r * row_bytes, rb);
}

template <size_t kBytes>
void panel_f_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                 float* y, int64_t y_stride) {
    for (int c = 0; c < n_cols; ++c) {
        const uint8_t* a = act + (size_t)c * act_stride;
        for (int r = 0; r < n_rows; ++r) {
            double acc = 0;
            for (int64_t k = 0; k < n; ++k) acc += (double)value_at<kBytes>(panel + (size_t)r * (size_t)n * kBytes, k) * load<float>(a + 4 * k);
            y[c * y_stride + r] = (float)acc;
        }
    }
}

template <size_t kBytes>
void gemv_f_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act, size_t act_stride,
                int64_t n_cols, float* y, int64_t y_stride) {
    for (int64_t c = 0; c < n_cols; ++c) {
        const uint8_t* a = act + (size_t)c * act_stride;
        for (int64_t r = 0; r < n_rows; ++r) {
            double acc = 0;
            for (int64_t k = 0; k < n; ++k) acc += (double)value_at<kBytes>(w + (size_t)r * row_bytes, k) * load<float>(a + 4 * k);
            y[c * y_stride + r] = (float)acc;
        }
    }
}

}  // namespace

void pack_f16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_f_ref<2>(w, row_bytes, n_rows, n, panel);
}
void pack_f32_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_f_ref<4>(w, row_bytes, n_rows, n, panel);
}
void panel_f16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                   float* y, int64_t y_stride) {
    panel_f_ref<2>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void panel_f32_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                   float* y, int64_t y_stride) {
    panel_f_ref<4>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void gemv_f16_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                  size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    gemv_f_ref<2>(n, w, row_bytes, n_rows, act, act_stride, n_cols, y, y_stride);
}
void gemv_f32_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                  size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    gemv_f_ref<4>(n, w, row_bytes, n_rows, act, act_stride, n_cols, y, y_stride);
}

// ---- tables ----

namespace {

using T = TensorType;
constexpr int kQ = kPanelRows, kF = kPanelRowsFloat, kW = kPanelRowsWide;
// act type, panel rows, act row bytes, panel bytes, convert, pack, panel, gemv
const GemmKernels kQ4_0Ref{T::Q8_0, kQ, act_q8_row_bytes, panel_q4_0_bytes, convert_act_q8_ref, pack_q4_0_ref,
                           panel_q4_0_ref, gemv_q4_0_ref};
const GemmKernels kQ8_0Ref{T::Q8_0, kQ, act_q8_row_bytes, panel_q8_0_bytes, convert_act_q8_ref, pack_q8_0_ref,
                           panel_q8_0_ref, gemv_q8_0_ref};
const GemmKernels kQ4KRef{T::Q8_K, kQ, act_q8k_row_bytes, panel_q4_k_bytes, quantize_q8_k_ref, pack_q4_k_ref,
                          panel_q4_k_ref, gemv_q4_k_ref};
const GemmKernels kQ6KRef{T::Q8_K, kQ, act_q8k_row_bytes, panel_q6_k_bytes, quantize_q8_k_ref, pack_q6_k_ref,
                          panel_q6_k_ref, gemv_q6_k_ref};
const GemmKernels kF16Ref{T::F16, kF, act_f_row_bytes, panel_f16_bytes, convert_act_f16_ref, pack_f16_ref,
                          panel_f16_ref, gemv_f16_ref};
const GemmKernels kF32Ref{T::F32, kF, act_f_row_bytes, panel_f32_bytes, convert_act_f32, pack_f32_ref,
                          panel_f32_ref, gemv_f32_ref};
// The references of the 16-row layouts of the AVX-512 kernels.
const GemmKernels kQ4_0X16Ref{T::Q8_0, kW, act_q8_row_bytes, panel_q_0_x16_bytes, convert_act_q8_ref,
                              pack_q4_0_x16_ref, panel_q4_0_x16_ref, gemv_q4_0_ref};
const GemmKernels kQ8_0X16Ref{T::Q8_0, kW, act_q8_row_bytes, panel_q_0_x16_bytes, convert_act_q8_ref,
                              pack_q8_0_x16_ref, panel_q8_0_x16_ref, gemv_q8_0_ref};
const GemmKernels kQ4KX16Ref{T::Q8_K, kW, act_q8k_row_bytes, panel_q4_k_x16_bytes, quantize_q8_k_ref,
                             pack_q4_k_x16_ref, panel_q4_k_x16_ref, gemv_q4_k_ref};
const GemmKernels kQ6KX16Ref{T::Q8_K, kW, act_q8k_row_bytes, panel_q6_k_x16_bytes, quantize_q8_k_ref,
                             pack_q6_k_x16_ref, panel_q6_k_x16_ref, gemv_q6_k_ref};

const GemmKernels kQ4_0Avx2{T::Q8_0, kQ, act_q8_row_bytes, panel_q4_0_bytes, convert_act_q8_avx2, pack_q4_0_avx2,
                            panel_q4_0_avx2, gemv_q4_0_avx2};
const GemmKernels kQ8_0Avx2{T::Q8_0, kQ, act_q8_row_bytes, panel_q8_0_bytes, convert_act_q8_avx2, pack_q8_0_avx2,
                            panel_q8_0_avx2, gemv_q8_0_avx2};
const GemmKernels kQ4KAvx2{T::Q8_K, kQ, act_q8k_row_bytes, panel_q4_k_bytes, quantize_q8_k_avx2, pack_q4_k_avx2,
                           panel_q4_k_avx2, gemv_q4_k_avx2};
const GemmKernels kQ6KAvx2{T::Q8_K, kQ, act_q8k_row_bytes, panel_q6_k_bytes, quantize_q8_k_avx2, pack_q6_k_avx2,
                           panel_q6_k_avx2, gemv_q6_k_avx2};
const GemmKernels kF16Avx2{T::F16, kF, act_f_row_bytes, panel_f16_bytes, convert_act_f16_avx2, pack_f16_avx2,
                           panel_f16_avx2, gemv_f16_avx2};
const GemmKernels kF32Avx2{T::F32, kF, act_f_row_bytes, panel_f32_bytes, convert_act_f32, pack_f32_avx2,
                           panel_f32_avx2, gemv_f32_avx2};


// AVX-512: the VNNI panel kernels of Q4_0 / Q8_0 on 16-row panels; activation conversion and GEMV stay AVX2.
const GemmKernels kQ4_0Avx512{T::Q8_0, kW, act_q8_row_bytes, panel_q_0_x16_bytes, convert_act_q8_avx2,
                              pack_q4_0_x16_avx512, panel_q4_0_x16_avx512, gemv_q4_0_avx2};
const GemmKernels kQ8_0Avx512{T::Q8_0, kW, act_q8_row_bytes, panel_q_0_x16_bytes, convert_act_q8_avx2,
                              pack_q8_0_x16_avx512, panel_q8_0_x16_avx512, gemv_q8_0_avx2};
// ... and of Q4_K / Q6_K on 16-row panels.
const GemmKernels kQ4KAvx512{T::Q8_K, kW, act_q8k_row_bytes, panel_q4_k_x16_bytes, quantize_q8_k_avx2,
                             pack_q4_k_x16_avx512, panel_q4_k_x16_avx512, gemv_q4_k_avx2};
const GemmKernels kQ6KAvx512{T::Q8_K, kW, act_q8k_row_bytes, panel_q6_k_x16_bytes, quantize_q8_k_avx2,
                             pack_q6_k_x16_avx512, panel_q6_k_x16_avx512, gemv_q6_k_avx2};

}  // namespace

const GemmKernels* gemm_kernels(TensorType type, IsaLevel level) {
    switch (level) {
        case IsaLevel::kScalar:
            switch (type) {
                case T::F16: return &kF16Ref;
                case T::F32: return &kF32Ref;
                case T::Q4_0: return &kQ4_0Ref;
                case T::Q8_0: return &kQ8_0Ref;
                case T::Q4_K: return &kQ4KRef;
                case T::Q6_K: return &kQ6KRef;
                default: return nullptr;
            }
        case IsaLevel::kAvx512:
            if (type == T::Q4_0) return &kQ4_0Avx512;
            if (type == T::Q8_0) return &kQ8_0Avx512;
            if (type == T::Q4_K) return &kQ4KAvx512;
            if (type == T::Q6_K) return &kQ6KAvx512;
            [[fallthrough]];  // the other types: the AVX2 kernels
        case IsaLevel::kAvx2:
            switch (type) {
                case T::F16: return &kF16Avx2;
                case T::F32: return &kF32Avx2;
                case T::Q4_0: return &kQ4_0Avx2;
                case T::Q8_0: return &kQ8_0Avx2;
                case T::Q4_K: return &kQ4KAvx2;
                case T::Q6_K: return &kQ6KAvx2;
                default: return nullptr;
            }
    }
    return nullptr;
}

const GemmKernels* gemm_kernels_ref(TensorType type, IsaLevel level) {
    const GemmKernels* k = gemm_kernels(type, level);
    if (k == nullptr) return nullptr;
    if (k == &kQ4_0Avx512) return &kQ4_0X16Ref;
    if (k == &kQ8_0Avx512) return &kQ8_0X16Ref;
    if (k == &kQ4KAvx512) return &kQ4KX16Ref;
    if (k == &kQ6KAvx512) return &kQ6KX16Ref;
    return gemm_kernels(type, IsaLevel::kScalar);
}

}  // namespace llama_crab
