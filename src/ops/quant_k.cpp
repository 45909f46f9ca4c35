// k-quants, scalar part: scale packing, dequantization, the Q8_K activation quantizer, reference dot products
// and the type-traits table. The weight quantizers live in quant_k_ref.cpp, the AVX2 kernels in quant_k_avx2.cpp.
#include "ops/quant_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace llama_crab {
namespace {

// Round half to even by letting the FPU round at 2^23 (1.5 * 2^23 keeps negatives in the same binade), exactly as
// ggml's nearest_int does; valid for |v| < 2^22. Bits are read through memcpy (no type punning).
inline int nearest_int(float v) {
    const float t = v + 12582912.f;
    int32_t i;
    std::memcpy(&i, &t, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

template <typename Block>
const Block* blocks(const void* p) {
    return static_cast<const Block*>(p);
}

const BlockQ8K* q8k_row(const void* y, size_t stride, int j) {
    return reinterpret_cast<const BlockQ8K*>(static_cast<const uint8_t*>(y) + (size_t)j * stride);
}

}  // namespace

// ---------------------------------------------------------------------------------------------- scale packing

// Bytes 0-3: scales 0-3 (low 6 bits) + top 2 bits of scales 4-7; bytes 4-7: mins 0-3 + top bits of mins 4-7;
// bytes 8-11: low nibble = scale 4-7, high nibble = min 4-7 (low 4 bits each).
void unpack_scales_mins_k4(const uint8_t packed[kKScaleBytes], uint8_t scales[8], uint8_t mins[8]) {
    for (int j = 0; j < 4; ++j) {
        scales[j] = packed[j] & 63;
        mins[j] = packed[j + 4] & 63;
        scales[j + 4] = (uint8_t)((packed[j + 8] & 0x0f) | ((packed[j] >> 6) << 4));
        mins[j + 4] = (uint8_t)((packed[j + 8] >> 4) | ((packed[j + 4] >> 6) << 4));
    }
}

void pack_scales_mins_k4(const uint8_t scales[8], const uint8_t mins[8], uint8_t packed[kKScaleBytes]) {
    for (int j = 0; j < 4; ++j) {
        const uint8_t s_hi = scales[j + 4], m_hi = mins[j + 4];
        packed[j] = (uint8_t)((scales[j] & 63) | ((s_hi >> 4) << 6));
        packed[j + 4] = (uint8_t)((mins[j] & 63) | ((m_hi >> 4) << 6));
        packed[j + 8] = (uint8_t)((s_hi & 0x0f) | ((m_hi & 0x0f) << 4));
    }
}

// Low nibbles: scale j < 8 in the low nibble of byte j, scale j >= 8 in the high nibble of byte j - 8.
// High 2 bits: scale j in bits 2*(j/4) of byte 8 + j%4.
void unpack_scales_q3_k(const uint8_t packed[kKScaleBytes], int8_t scales[16]) {
    for (int j = 0; j < 16; ++j) {
        const int lo = j < 8 ? packed[j] & 0x0f : packed[j - 8] >> 4;
        const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        scales[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

void pack_scales_q3_k(const uint8_t scales6[16], uint8_t packed[kKScaleBytes]) {
    std::memset(packed, 0, kKScaleBytes);
    for (int j = 0; j < 16; ++j) {
        const int s = scales6[j] & 63;
        if (j < 8) {
            packed[j] |= (uint8_t)(s & 0x0f);
        } else {
            packed[j - 8] |= (uint8_t)((s & 0x0f) << 4);
        }
        packed[8 + j % 4] |= (uint8_t)((s >> 4) << (2 * (j / 4)));
    }
}

// ---------------------------------------------------------------------------------------------- decoding
// Each decoder turns one block into its 256 integer codes (with the constant offset applied where the format has
// one), in value order; dequantize and the reference dots share them. Written as plain loops over 32 bytes so the
// compiler can vectorize them.

namespace {

// Q2_K / Q3_K low bits: byte 32*h + l holds values 128*h + 32*j + l in bits 2j..2j+1.
void decode_2bit(const uint8_t* qs, int8_t* q) {
    for (int h = 0; h < 2; ++h) {
        for (int j = 0; j < 4; ++j) {
            for (int l = 0; l < 32; ++l) q[128 * h + 32 * j + l] = (int8_t)((qs[32 * h + l] >> (2 * j)) & 3);
        }
    }
}

// Q4_K / Q5_K low bits: byte 32*c + l holds value 64*c + l (low nibble) and 64*c + 32 + l (high nibble).
void decode_4bit(const uint8_t* qs, int8_t* q) {
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            q[64 * c + l] = (int8_t)(qs[32 * c + l] & 0x0f);
            q[64 * c + 32 + l] = (int8_t)(qs[32 * c + l] >> 4);
        }
    }
}

// Adds `add` to value 32*t + l when bit t of bits[l] is set (the hmask/qh layout of Q3_K/Q5_K).
void add_high_bits(const uint8_t* bits, int add, int8_t* q) {
    for (int t = 0; t < 8; ++t) {
        for (int l = 0; l < 32; ++l) q[32 * t + l] = (int8_t)(q[32 * t + l] + ((bits[l] >> t) & 1) * add);
    }
}

void decode_q2_k(const BlockQ2K& b, int8_t* q) { decode_2bit(b.qs, q); }  // 0..3

void decode_q3_k(const BlockQ3K& b, int8_t* q) {  // -4..3: q2 - 4, +4 when the high bit is set
    decode_2bit(b.qs, q);
    for (int v = 0; v < kQK_K; ++v) q[v] = (int8_t)(q[v] - 4);
    add_high_bits(b.hmask, 4, q);
}

void decode_q4_k(const BlockQ4K& b, int8_t* q) { decode_4bit(b.qs, q); }  // 0..15

void decode_q5_k(const BlockQ5K& b, int8_t* q) {  // 0..31
    decode_4bit(b.qs, q);
    add_high_bits(b.qh, 16, q);
}

void decode_q6_k(const BlockQ6K& b, int8_t* q) {  // -32..31
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b.ql + 64 * h;
        const uint8_t* qh = b.qh + 32 * h;
        int8_t* out = q + 128 * h;
        for (int l = 0; l < 32; ++l) {
            out[l] = (int8_t)(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
            out[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
            out[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            out[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

// Exact integer dot of `len` codes with Q8_K quants.
inline int32_t idot(const int8_t* q, const int8_t* y, int len) {
    int32_t s = 0;
    for (int l = 0; l < len; ++l) s += q[l] * y[l];
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- dequantize
// Evaluated as (d * scale) * q - dmin * min, the order ggml's dequantizers use.

void dequantize_q2_k(const void* src, float* dst, int64_t n) {
    const BlockQ2K* x = blocks<BlockQ2K>(src);
    int8_t q[kQK_K];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        decode_q2_k(x[i], q);
        const float d = fp16_to_fp32(x[i].d), dmin = fp16_to_fp32(x[i].dmin);
        for (int k = 0; k < 16; ++k) {
            const float dl = d * (float)(x[i].scales[k] & 0x0f), ml = dmin * (float)(x[i].scales[k] >> 4);
            for (int l = 0; l < 16; ++l) dst[i * kQK_K + 16 * k + l] = dl * (float)q[16 * k + l] - ml;
        }
    }
}

void dequantize_q3_k(const void* src, float* dst, int64_t n) {
    const BlockQ3K* x = blocks<BlockQ3K>(src);
    int8_t q[kQK_K], sc[16];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        decode_q3_k(x[i], q);
        unpack_scales_q3_k(x[i].scales, sc);
        const float d = fp16_to_fp32(x[i].d);
        for (int k = 0; k < 16; ++k) {
            const float dl = d * (float)sc[k];
            for (int l = 0; l < 16; ++l) dst[i * kQK_K + 16 * k + l] = dl * (float)q[16 * k + l];
        }
    }
}

namespace {
template <typename Block, void (*kDecode)(const Block&, int8_t*)>
void dequantize_k4(const void* src, float* dst, int64_t n) {
    const Block* x = blocks<Block>(src);
    int8_t q[kQK_K];
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        kDecode(x[i], q);
        unpack_scales_mins_k4(x[i].scales, sc, mn);
        const float d = fp16_to_fp32(x[i].d), dmin = fp16_to_fp32(x[i].dmin);
        for (int k = 0; k < 8; ++k) {
            const float dl = d * (float)sc[k], ml = dmin * (float)mn[k];
            for (int l = 0; l < 32; ++l) dst[i * kQK_K + 32 * k + l] = dl * (float)q[32 * k + l] - ml;
        }
    }
}
}  // namespace

void dequantize_q4_k(const void* src, float* dst, int64_t n) { dequantize_k4<BlockQ4K, decode_q4_k>(src, dst, n); }
void dequantize_q5_k(const void* src, float* dst, int64_t n) { dequantize_k4<BlockQ5K, decode_q5_k>(src, dst, n); }

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
    const BlockQ6K* x = blocks<BlockQ6K>(src);
    int8_t q[kQK_K];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        decode_q6_k(x[i], q);
        const float d = fp16_to_fp32(x[i].d);
        for (int k = 0; k < 16; ++k) {
            const float dl = d * (float)x[i].scales[k];
            for (int l = 0; l < 16; ++l) dst[i * kQK_K + 16 * k + l] = dl * (float)q[16 * k + l];
        }
    }
}

void dequantize_q8_k(const void* src, float* dst, int64_t n) {
    const BlockQ8K* x = blocks<BlockQ8K>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        for (int v = 0; v < kQK_K; ++v) dst[i * kQK_K + v] = x[i].d * (float)x[i].qs[v];
    }
}

// ---------------------------------------------------------------------------------------------- Q8_K

void quantize_q8_k_ref(const float* src, void* dst, int64_t n) {
    BlockQ8K* y = static_cast<BlockQ8K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        float amax = 0.f, max = 0.f;
        for (int j = 0; j < kQK_K; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {  // strict: the first value of largest magnitude keeps its sign
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.f) {
            // ggml leaves bsums unwritten here; zeros are the only consistent value.
            std::memset(&y[i], 0, sizeof(BlockQ8K));
            continue;
        }
        // -127 (not -128) so that q never needs -128: the largest value maps to -127 exactly.
        // iscale * x is rounded to float before nearest_int adds 1.5 * 2^23, as in ggml: this file is built
        // without FMA, so the compiler cannot fuse the two (a fused build would break the bit-equality).
        const float iscale = -127.f / max;
        for (int j = 0; j < kQK_K; ++j) y[i].qs[j] = (int8_t)std::min(127, nearest_int(iscale * x[j]));
        for (int g = 0; g < kQK_K / 16; ++g) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.f / iscale;
    }
}

// ---------------------------------------------------------------------------------------------- dot products
// Each super-block: isum = sum_k scale_k * dot(q_k, y_k) in exact integers, and for the types with mins,
// msum = sum_k min_k * bsum_k; then sum += d * y.d * isum - dmin * y.d * msum in float.

void vec_dot_q2_k_q8_k_ref(int64_t n, float* s, const void* vx, const void* vy) {
    const BlockQ2K* x = blocks<BlockQ2K>(vx);
    const BlockQ8K* y = blocks<BlockQ8K>(vy);
    int8_t q[kQK_K];
    float sum = 0.f;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        decode_q2_k(x[i], q);
        int32_t isum = 0, msum = 0;
        for (int k = 0; k < 16; ++k) {
            isum += (x[i].scales[k] & 0x0f) * idot(q + 16 * k, y[i].qs + 16 * k, 16);
            msum += (x[i].scales[k] >> 4) * y[i].bsums[k];
        }
        const float dy = y[i].d;
        sum += fp16_to_fp32(x[i].d) * dy * (float)isum - fp16_to_fp32(x[i].dmin) * dy * (float)msum;
    }
    *s = sum;
}

void vec_dot_q3_k_q8_k_ref(int64_t n, float* s, const void* vx, const void* vy) {
    const BlockQ3K* x = blocks<BlockQ3K>(vx);
    const BlockQ8K* y = blocks<BlockQ8K>(vy);
    int8_t q[kQK_K], sc[16];
    float sum = 0.f;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        decode_q3_k(x[i], q);
        unpack_scales_q3_k(x[i].scales, sc);
        int32_t isum = 0;
        for (int k = 0; k < 16; ++k) isum += sc[k] * idot(q + 16 * k, y[i].qs + 16 * k, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * (float)isum;
    }
    *s = sum;
}

namespace {
template <typename Block, void (*kDecode)(const Block&, int8_t*)>
void vec_dot_k4_ref(int64_t n, float* s, const void* vx, const void* vy) {
    const Block* x = blocks<Block>(vx);
    const BlockQ8K* y = blocks<BlockQ8K>(vy);
    int8_t q[kQK_K];
    uint8_t sc[8], mn[8];
    float sum = 0.f;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        kDecode(x[i], q);
        unpack_scales_mins_k4(x[i].scales, sc, mn);
        int32_t isum = 0, msum = 0;
        for (int k = 0; k < 8; ++k) {
            isum += sc[k] * idot(q + 32 * k, y[i].qs + 32 * k, 32);
            msum += mn[k] * (y[i].bsums[2 * k] + y[i].bsums[2 * k + 1]);
        }
        const float dy = y[i].d;
        sum += fp16_to_fp32(x[i].d) * dy * (float)isum - fp16_to_fp32(x[i].dmin) * dy * (float)msum;
    }
    *s = sum;
}
}  // namespace

void vec_dot_q4_k_q8_k_ref(int64_t n, float* s, const void* vx, const void* vy) {
    vec_dot_k4_ref<BlockQ4K, decode_q4_k>(n, s, vx, vy);
}
void vec_dot_q5_k_q8_k_ref(int64_t n, float* s, const void* vx, const void* vy) {
    vec_dot_k4_ref<BlockQ5K, decode_q5_k>(n, s, vx, vy);
}

void vec_dot_q6_k_q8_k_ref(int64_t n, float* s, const void* vx, const void* vy) {
    const BlockQ6K* x = blocks<BlockQ6K>(vx);
    const BlockQ8K* y = blocks<BlockQ8K>(vy);
    int8_t q[kQK_K];
    float sum = 0.f;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        decode_q6_k(x[i], q);
        int32_t isum = 0;
        for (int k = 0; k < 16; ++k) isum += x[i].scales[k] * idot(q + 16 * k, y[i].qs + 16 * k, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * (float)isum;
    }
    *s = sum;
}

// The scalar 1x4 kernels are four single dots: they exist so every type has a 1x4 entry point.
#define LC_DEFINE_DOT_1X4_REF(T)                                                                            \
    void vec_dot_1x4_##T##_q8_k_ref(int64_t n, float* s, const void* x, const void* y, size_t stride) {   \
        for (int j = 0; j < 4; ++j) vec_dot_##T##_q8_k_ref(n, s + j, x, q8k_row(y, stride, j));             \
    }
LC_DEFINE_DOT_1X4_REF(q2_k)
LC_DEFINE_DOT_1X4_REF(q3_k)
LC_DEFINE_DOT_1X4_REF(q4_k)
LC_DEFINE_DOT_1X4_REF(q5_k)
LC_DEFINE_DOT_1X4_REF(q6_k)
#undef LC_DEFINE_DOT_1X4_REF

// ---------------------------------------------------------------------------------------------- traits

namespace {

struct KTypeEntry {
    TensorType type;
    const char* name;
    size_t block_bytes;
    DequantizeFn dequantize;
    QuantizeFn quantize_ref;
    VecDotFn dot_ref, dot_avx2;
    VecDot1x4Fn dot4_ref, dot4_avx2;
};

}  // namespace

void fill_k_type_traits(TypeTraits* table, bool avx2) {
    static const KTypeEntry kWeights[] = {
        {TensorType::Q2_K, "q2_K", sizeof(BlockQ2K), dequantize_q2_k, quantize_q2_k_ref, vec_dot_q2_k_q8_k_ref,
         vec_dot_q2_k_q8_k_avx2, vec_dot_1x4_q2_k_q8_k_ref, vec_dot_1x4_q2_k_q8_k_avx2},
        {TensorType::Q3_K, "q3_K", sizeof(BlockQ3K), dequantize_q3_k, quantize_q3_k_ref, vec_dot_q3_k_q8_k_ref,
         vec_dot_q3_k_q8_k_avx2, vec_dot_1x4_q3_k_q8_k_ref, vec_dot_1x4_q3_k_q8_k_avx2},
        {TensorType::Q4_K, "q4_K", sizeof(BlockQ4K), dequantize_q4_k, quantize_q4_k_ref, vec_dot_q4_k_q8_k_ref,
         vec_dot_q4_k_q8_k_avx2, vec_dot_1x4_q4_k_q8_k_ref, vec_dot_1x4_q4_k_q8_k_avx2},
        {TensorType::Q5_K, "q5_K", sizeof(BlockQ5K), dequantize_q5_k, quantize_q5_k_ref, vec_dot_q5_k_q8_k_ref,
         vec_dot_q5_k_q8_k_avx2, vec_dot_1x4_q5_k_q8_k_ref, vec_dot_1x4_q5_k_q8_k_avx2},
        {TensorType::Q6_K, "q6_K", sizeof(BlockQ6K), dequantize_q6_k, quantize_q6_k_ref, vec_dot_q6_k_q8_k_ref,
         vec_dot_q6_k_q8_k_avx2, vec_dot_1x4_q6_k_q8_k_ref, vec_dot_1x4_q6_k_q8_k_avx2},
    };
    for (const KTypeEntry& e : kWeights) {
        TypeTraits& t = table[(int)e.type];
        t = TypeTraits{};
        t.type = e.type;
        t.name = e.name;
        t.block_size = kQK_K;
        t.block_bytes = e.block_bytes;
        t.vec_dot_type = TensorType::Q8_K;
        t.is_weight_type = true;
        t.dequantize = e.dequantize;
        t.quantize_ref = e.quantize_ref;
        t.quantize_act = nullptr;  // weights are never activations
        t.quantize_act_ref = nullptr;
        t.vec_dot_ref = e.dot_ref;
        t.vec_dot = avx2 ? e.dot_avx2 : e.dot_ref;
        t.vec_dot_1x4 = avx2 ? e.dot4_avx2 : e.dot4_ref;
    }

    TypeTraits& q8 = table[(int)TensorType::Q8_K];
    q8 = TypeTraits{};
    q8.type = TensorType::Q8_K;
    q8.name = "q8_K";
    q8.block_size = kQK_K;
    q8.block_bytes = sizeof(BlockQ8K);
    q8.vec_dot_type = TensorType::Q8_K;
    q8.is_weight_type = false;
    q8.dequantize = dequantize_q8_k;
    q8.quantize_ref = quantize_q8_k_ref;
    q8.quantize_act = avx2 ? quantize_q8_k_avx2 : quantize_q8_k_ref;
    q8.quantize_act_ref = quantize_q8_k_ref;
    q8.vec_dot_ref = nullptr;  // activation-only: nothing is dotted against a Q8_K row as "x"
    q8.vec_dot = nullptr;
    q8.vec_dot_1x4 = nullptr;
}

}  // namespace llama_crab
