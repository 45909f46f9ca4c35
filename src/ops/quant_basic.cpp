// Scalar kernels of the basic types: dequantize, ggml's reference quantizers, the activation quantizers that
// reproduce llama.cpp's x86 AVX2 results bit for bit, and reference dot products.
#include "ops/quant_basic.h"

#include <cfloat>
#include <cmath>
#include <cstring>

namespace llama_crab {
namespace {

// Blocks are read and written through memcpy: rows may sit at any address (mmapped files, strided buffers).
template <typename Block>
Block load_block(const void* base, int64_t i) {
    Block b;
    std::memcpy(&b, static_cast<const uint8_t*>(base) + (size_t)i * sizeof(Block), sizeof(Block));
    return b;
}

template <typename Block>
void store_block(void* base, int64_t i, const Block& b) {
    std::memcpy(static_cast<uint8_t*>(base) + (size_t)i * sizeof(Block), &b, sizeof(Block));
}

uint16_t load_u16(const void* base, int64_t i) {
    uint16_t v;
    std::memcpy(&v, static_cast<const uint8_t*>(base) + (size_t)i * 2, 2);
    return v;
}

void store_u16(void* base, int64_t i, uint16_t v) { std::memcpy(static_cast<uint8_t*>(base) + (size_t)i * 2, &v, 2); }

float load_f32(const void* base, int64_t i) {
    float v;
    std::memcpy(&v, static_cast<const uint8_t*>(base) + (size_t)i * 4, 4);
    return v;
}

uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t v;
    std::memcpy(&v, qh, 4);
    return v;
}

// Local helpers rather than std::min/max: a comdat template instantiated in some *_avx2.cpp could otherwise be the
// copy the linker keeps, and this file must run on CPUs without AVX.
int min_int(int a, int b) { return a < b ? a : b; }
float max_float(float a, float b) { return a > b ? a : b; }  // ggml's MAX macro

// C's float -> int8_t/uint8_t conversion (truncation) as ggml's reference quantizers use it, made total: the
// out-of-range and NaN cases (undefined behaviour in C) cannot occur for finite input and are clamped here.
int trunc_to_i8(float v) {
    if (!(v == v)) return 0;
    if (v <= -128.0f) return -128;
    if (v >= 127.0f) return 127;
    return (int)v;
}

int trunc_to_u8(float v) {
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (int)v;
}

// ggml's q8 reference rounds half away from zero (roundf), then stores into int8_t.
int round_away_to_i8(float v) { return trunc_to_i8(std::round(v)); }

// ---------------------------------------------------------------------------------------------------------------
// Emulation of the x86 instructions used by llama.cpp's AVX2 activation quantizers.

// maxps: dst = a > b ? a : b (so a NaN in either operand yields b).
float x86_max(float a, float b) { return a > b ? a : b; }

// The max |x| reduction of quantize_row_q8_0/q8_1 (AVX2), in its exact operand order so NaNs propagate alike.
float act_block_amax(const float* x) {
    float lane[8];
    for (int l = 0; l < 8; ++l) lane[l] = std::fabs(x[l]);
    for (int v = 1; v < 4; ++v)
        for (int l = 0; l < 8; ++l) lane[l] = x86_max(lane[l], std::fabs(x[v * 8 + l]));
    float m4[4];
    for (int l = 0; l < 4; ++l) m4[l] = x86_max(lane[4 + l], lane[l]);  // max(high half, low half)
    const float m0 = x86_max(m4[0], m4[2]);                              // max(m4, movehl(m4))
    const float m1 = x86_max(m4[1], m4[3]);
    return x86_max(m0, m1);  // max_ss(m, movehdup(m))
}

// The rounding trick below needs float expressions evaluated in float (SSE), not in x87 extended precision.
static_assert(FLT_EVAL_METHOD == 0, "float arithmetic must not use excess precision");

// roundps(nearest even) then cvtps2dq: out-of-range and NaN give INT32_MIN ("integer indefinite").
int32_t x86_round_cvt(float v) {
    // Round to nearest even. Adding 1.5 * 2^23 leaves no fraction bits for |v| < 2^22, so the FPU does the
    // rounding (far cheaper than a libm call); larger and non-finite values take nearbyint.
    const float magic = 12582912.0f;
    const float r = std::fabs(v) < 4194304.0f ? (v + magic) - magic : std::nearbyint(v);
    if (!(r >= -2147483648.0f && r < 2147483648.0f)) return INT32_MIN;
    return (int32_t)r;
}

// packssdw + packsswb: saturate to int8.
int8_t saturate_i8(int32_t v) { return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v)); }

// vcvtps2ph (F16C, round to nearest even): like fp32_to_fp16 but NaNs keep their sign and top payload bits.
fp16_t f16c_fp32_to_fp16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (fp16_t)(((x >> 16) & 0x8000u) | 0x7e00u | ((x >> 13) & 0x3ffu));
    return fp32_to_fp16(f);
}

// One block of the q8_0/q8_1 activation quantizer. Returns the integer sum and the fp32 scale (q8_1 needs both).
int32_t quantize_act_q8_block(const float* x, fp16_t* d_out, int8_t* qs, float* d_fp32) {
    const float amax = act_block_amax(x);
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;  // llama.cpp divides 127 by amax rather than using 1/d
    *d_out = f16c_fp32_to_fp16(d);  // llama.cpp stores with F16C, which keeps NaN payloads
    *d_fp32 = d;
    uint32_t sum = 0;  // vector int32 adds wrap around
    for (int j = 0; j < 32; ++j) {
        const int32_t q = x86_round_cvt(x[j] * id);
        sum += (uint32_t)q;
        qs[j] = saturate_i8(q);
    }
    return (int32_t)sum;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Dequantize

void dequantize_f32(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, (size_t)n * sizeof(float)); }

void dequantize_f16(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(src, i));
}

void dequantize_bf16(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(src, i));
}

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK4_0; ++i) {
        const auto b = load_block<BlockQ4_0>(src, i);
        const float d = fp16_to_fp32(b.d);
        float* y = dst + i * kQK4_0;
        for (int j = 0; j < 16; ++j) {
            y[j] = (float)((b.qs[j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((b.qs[j] >> 4) - 8) * d;
        }
    }
}

void dequantize_q4_1(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK4_1; ++i) {
        const auto b = load_block<BlockQ4_1>(src, i);
        const float d = fp16_to_fp32(b.d);
        const float m = fp16_to_fp32(b.m);
        float* y = dst + i * kQK4_1;
        for (int j = 0; j < 16; ++j) {
            y[j] = (float)(b.qs[j] & 0x0f) * d + m;
            y[j + 16] = (float)(b.qs[j] >> 4) * d + m;
        }
    }
}

void dequantize_q5_0(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK5_0; ++i) {
        const auto b = load_block<BlockQ5_0>(src, i);
        const float d = fp16_to_fp32(b.d);
        const uint32_t qh = load_qh(b.qh);
        float* y = dst + i * kQK5_0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = (b.qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            const int q1 = (b.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            y[j] = (float)(q0 - 16) * d;
            y[j + 16] = (float)(q1 - 16) * d;
        }
    }
}

void dequantize_q5_1(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK5_1; ++i) {
        const auto b = load_block<BlockQ5_1>(src, i);
        const float d = fp16_to_fp32(b.d);
        const float m = fp16_to_fp32(b.m);
        const uint32_t qh = load_qh(b.qh);
        float* y = dst + i * kQK5_1;
        for (int j = 0; j < 16; ++j) {
            const int q0 = (b.qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            const int q1 = (b.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            y[j] = (float)q0 * d + m;
            y[j + 16] = (float)q1 * d + m;
        }
    }
}

void dequantize_q8_0(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const auto b = load_block<BlockQ8_0>(src, i);
        const float d = fp16_to_fp32(b.d);
        for (int j = 0; j < kQK8_0; ++j) dst[i * kQK8_0 + j] = (float)b.qs[j] * d;
    }
}

void dequantize_q8_1(const void* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK8_1; ++i) {
        const auto b = load_block<BlockQ8_1>(src, i);
        const float d = fp16_to_fp32(b.d);
        for (int j = 0; j < kQK8_1; ++j) dst[i * kQK8_1 + j] = (float)b.qs[j] * d;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Reference quantizers (ggml-quants.c quantize_row_*_ref)

void quantize_ref_f32(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, (size_t)n * sizeof(float)); }

void quantize_ref_f16(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) store_u16(dst, i, fp32_to_fp16(src[i]));
}

void quantize_ref_bf16(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) store_u16(dst, i, fp32_to_bf16(src[i]));
}

void quantize_ref_q4_0(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK4_0; ++i) {
        const float* x = src + i * kQK4_0;
        // The value of largest magnitude (first one on ties) maps to -8, so its sign picks the sign of d.
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQK4_0; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ4_0 b;
        b.d = fp32_to_fp16(d);
        for (int j = 0; j < 16; ++j) {
            const int q0 = min_int(15, trunc_to_i8(x[j] * id + 8.5f));
            const int q1 = min_int(15, trunc_to_i8(x[j + 16] * id + 8.5f));
            b.qs[j] = (uint8_t)((q0 & 0x0f) | (q1 << 4));
        }
        store_block(dst, i, b);
    }
}

void quantize_ref_q4_1(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK4_1; ++i) {
        const float* x = src + i * kQK4_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < kQK4_1; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ4_1 b;
        b.d = fp32_to_fp16(d);
        b.m = fp32_to_fp16(min);
        for (int j = 0; j < 16; ++j) {
            const int q0 = min_int(15, trunc_to_i8((x[j] - min) * id + 0.5f));
            const int q1 = min_int(15, trunc_to_i8((x[j + 16] - min) * id + 0.5f));
            b.qs[j] = (uint8_t)((q0 & 0x0f) | (q1 << 4));
        }
        store_block(dst, i, b);
    }
}

void quantize_ref_q5_0(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK5_0; ++i) {
        const float* x = src + i * kQK5_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQK5_0; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ5_0 b;
        b.d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = min_int(31, trunc_to_i8(x[j] * id + 16.5f));
            const int q1 = min_int(31, trunc_to_i8(x[j + 16] * id + 16.5f));
            b.qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        std::memcpy(b.qh, &qh, 4);
        store_block(dst, i, b);
    }
}

void quantize_ref_q5_1(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK5_1; ++i) {
        const float* x = src + i * kQK5_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < kQK5_1; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ5_1 b;
        b.d = fp32_to_fp16(d);
        b.m = fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            // ggml does not clamp here: (max - min) * id + 0.5 stays below 32.
            const int q0 = trunc_to_u8((x[j] - min) * id + 0.5f);
            const int q1 = trunc_to_u8((x[j + 16] - min) * id + 0.5f);
            b.qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        std::memcpy(b.qh, &qh, 4);
        store_block(dst, i, b);
    }
}

void quantize_ref_q8_0(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const float* x = src + i * kQK8_0;
        float amax = 0.0f;
        for (int j = 0; j < kQK8_0; ++j) amax = max_float(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ8_0 b;
        b.d = fp32_to_fp16(d);
        for (int j = 0; j < kQK8_0; ++j) b.qs[j] = (int8_t)round_away_to_i8(x[j] * id);
        store_block(dst, i, b);
    }
}

void quantize_ref_q8_1(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK8_1; ++i) {
        const float* x = src + i * kQK8_1;
        float amax = 0.0f;
        for (int j = 0; j < kQK8_1; ++j) amax = max_float(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ8_1 b;
        b.d = fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < kQK8_1; ++j) {
            b.qs[j] = (int8_t)round_away_to_i8(x[j] * id);
            sum += b.qs[j];
        }
        b.s = fp32_to_fp16((float)sum * d);
        store_block(dst, i, b);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Activation quantizers (scalar twins of the AVX2 ones)

void quantize_act_f32_ref(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, (size_t)n * sizeof(float)); }

void quantize_act_f16_ref(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) store_u16(dst, i, f16c_fp32_to_fp16(src[i]));
}

// llama.cpp converts activations to bf16 with the scalar GGML_FP32_TO_BF16 even in AVX2 builds.
void quantize_act_bf16_ref(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) store_u16(dst, i, fp32_to_bf16(src[i]));
}

void quantize_act_q8_0_ref(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK8_0; ++i) {
        BlockQ8_0 b;
        float d;
        quantize_act_q8_block(src + i * kQK8_0, &b.d, b.qs, &d);
        store_block(dst, i, b);
    }
}

void quantize_act_q8_1_ref(const float* src, void* dst, int64_t n) {
    for (int64_t i = 0; i < n / kQK8_1; ++i) {
        BlockQ8_1 b;
        float d;
        const int32_t sum = quantize_act_q8_block(src + i * kQK8_1, &b.d, b.qs, &d);
        // llama.cpp multiplies the fp32 d (not the stored fp16 one) by the int32 sum of the unsaturated quants.
        b.s = f16c_fp32_to_fp16(d * (float)sum);
        store_block(dst, i, b);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Reference dot products. Float rows accumulate in double; quantized rows sum each block in int32 exactly and
// accumulate the scaled block sums in float, as ggml's generic kernels do.

void vec_dot_f32_ref(int64_t n, float* s, const void* x, const void* y) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)load_f32(x, i) * (double)load_f32(y, i);
    *s = (float)sum;
}

void vec_dot_f16_ref(int64_t n, float* s, const void* x, const void* y) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)fp16_to_fp32(load_u16(x, i)) * (double)fp16_to_fp32(load_u16(y, i));
    *s = (float)sum;
}

void vec_dot_bf16_ref(int64_t n, float* s, const void* x, const void* y) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)bf16_to_fp32(load_u16(x, i)) * (double)bf16_to_fp32(load_u16(y, i));
    *s = (float)sum;
}

void vec_dot_q4_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const auto bx = load_block<BlockQ4_0>(x, i);
        const auto by = load_block<BlockQ8_0>(y, i);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += ((bx.qs[j] & 0x0f) - 8) * by.qs[j];
            sumi += ((bx.qs[j] >> 4) - 8) * by.qs[j + 16];
        }
        sum += (float)sumi * (fp16_to_fp32(bx.d) * fp16_to_fp32(by.d));
    }
    *s = sum;
}

void vec_dot_q4_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n / kQK8_1; ++i) {
        const auto bx = load_block<BlockQ4_1>(x, i);
        const auto by = load_block<BlockQ8_1>(y, i);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += (bx.qs[j] & 0x0f) * by.qs[j];
            sumi += (bx.qs[j] >> 4) * by.qs[j + 16];
        }
        // sum((q*d + m) * qy*dy) = d*dy*sum(q*qy) + m*s
        sum += (float)sumi * (fp16_to_fp32(bx.d) * fp16_to_fp32(by.d)) + fp16_to_fp32(bx.m) * fp16_to_fp32(by.s);
    }
    *s = sum;
}

void vec_dot_q5_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const auto bx = load_block<BlockQ5_0>(x, i);
        const auto by = load_block<BlockQ8_0>(y, i);
        const uint32_t qh = load_qh(bx.qh);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = ((bx.qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4)) - 16;
            const int q1 = ((bx.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) - 16;
            sumi += q0 * by.qs[j] + q1 * by.qs[j + 16];
        }
        sum += (float)sumi * (fp16_to_fp32(bx.d) * fp16_to_fp32(by.d));
    }
    *s = sum;
}

void vec_dot_q5_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n / kQK8_1; ++i) {
        const auto bx = load_block<BlockQ5_1>(x, i);
        const auto by = load_block<BlockQ8_1>(y, i);
        const uint32_t qh = load_qh(bx.qh);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = (bx.qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            const int q1 = (bx.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            sumi += q0 * by.qs[j] + q1 * by.qs[j + 16];
        }
        sum += (float)sumi * (fp16_to_fp32(bx.d) * fp16_to_fp32(by.d)) + fp16_to_fp32(bx.m) * fp16_to_fp32(by.s);
    }
    *s = sum;
}

void vec_dot_q8_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const auto bx = load_block<BlockQ8_0>(x, i);
        const auto by = load_block<BlockQ8_0>(y, i);
        int sumi = 0;
        for (int j = 0; j < kQK8_0; ++j) sumi += bx.qs[j] * by.qs[j];
        sum += (float)sumi * (fp16_to_fp32(bx.d) * fp16_to_fp32(by.d));
    }
    *s = sum;
}

namespace {
template <VecDotFn dot>
void four_dots(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes) {
    for (int j = 0; j < 4; ++j) dot(n, s + j, x, static_cast<const uint8_t*>(y) + (size_t)j * y_stride_bytes);
}
}  // namespace

void vec_dot_1x4_f32_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_f32_ref>(n, s, x, y, st);
}
void vec_dot_1x4_f16_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_f16_ref>(n, s, x, y, st);
}
void vec_dot_1x4_bf16_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_bf16_ref>(n, s, x, y, st);
}
void vec_dot_1x4_q4_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_q4_0_q8_0_ref>(n, s, x, y, st);
}
void vec_dot_1x4_q4_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_q4_1_q8_1_ref>(n, s, x, y, st);
}
void vec_dot_1x4_q5_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_q5_0_q8_0_ref>(n, s, x, y, st);
}
void vec_dot_1x4_q5_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_q5_1_q8_1_ref>(n, s, x, y, st);
}
void vec_dot_1x4_q8_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y, size_t st) {
    four_dots<vec_dot_q8_0_q8_0_ref>(n, s, x, y, st);
}

// ---------------------------------------------------------------------------------------------------------------
// Traits table

namespace {

struct Kernels {
    QuantizeFn act;
    VecDotFn dot;
    VecDot1x4Fn dot4;
};

void set_type(TypeTraits* table, TensorType type, const char* name, int64_t block_size, size_t block_bytes,
              TensorType vec_dot_type, bool is_weight, DequantizeFn deq, QuantizeFn qref, QuantizeFn act_ref,
              VecDotFn dot_ref, const Kernels& scalar, const Kernels& avx2, bool use_avx2) {
    const Kernels& k = use_avx2 ? avx2 : scalar;
    TypeTraits& t = table[(int)type];
    t.type = type;
    t.name = name;
    t.block_size = block_size;
    t.block_bytes = block_bytes;
    t.vec_dot_type = vec_dot_type;
    t.is_weight_type = is_weight;
    t.dequantize = deq;
    t.quantize_ref = qref;
    t.quantize_act = k.act;
    t.quantize_act_ref = act_ref;
    t.vec_dot_ref = dot_ref;
    t.vec_dot = k.dot;
    t.vec_dot_1x4 = k.dot4;
}

}  // namespace

void fill_basic_type_traits(TypeTraits* table, bool avx2) {
    using T = TensorType;
    // F32 activations are a plain copy on every CPU.
    set_type(table, T::F32, "f32", 1, 4, T::F32, true, dequantize_f32, quantize_ref_f32, quantize_act_f32_ref,
             vec_dot_f32_ref, {quantize_act_f32_ref, vec_dot_f32_ref, vec_dot_1x4_f32_ref},
             {quantize_act_f32_ref, vec_dot_f32_avx2, vec_dot_1x4_f32_avx2}, avx2);
    set_type(table, T::F16, "f16", 1, 2, T::F16, true, dequantize_f16, quantize_ref_f16, quantize_act_f16_ref,
             vec_dot_f16_ref, {quantize_act_f16_ref, vec_dot_f16_ref, vec_dot_1x4_f16_ref},
             {quantize_act_f16_avx2, vec_dot_f16_avx2, vec_dot_1x4_f16_avx2}, avx2);
    set_type(table, T::BF16, "bf16", 1, 2, T::BF16, true, dequantize_bf16, quantize_ref_bf16, quantize_act_bf16_ref,
             vec_dot_bf16_ref, {quantize_act_bf16_ref, vec_dot_bf16_ref, vec_dot_1x4_bf16_ref},
             {quantize_act_bf16_avx2, vec_dot_bf16_avx2, vec_dot_1x4_bf16_avx2}, avx2);
    set_type(table, T::Q4_0, "q4_0", kQK4_0, sizeof(BlockQ4_0), T::Q8_0, true, dequantize_q4_0, quantize_ref_q4_0,
             nullptr, vec_dot_q4_0_q8_0_ref, {nullptr, vec_dot_q4_0_q8_0_ref, vec_dot_1x4_q4_0_q8_0_ref},
             {nullptr, vec_dot_q4_0_q8_0_avx2, vec_dot_1x4_q4_0_q8_0_avx2}, avx2);
    set_type(table, T::Q4_1, "q4_1", kQK4_1, sizeof(BlockQ4_1), T::Q8_1, true, dequantize_q4_1, quantize_ref_q4_1,
             nullptr, vec_dot_q4_1_q8_1_ref, {nullptr, vec_dot_q4_1_q8_1_ref, vec_dot_1x4_q4_1_q8_1_ref},
             {nullptr, vec_dot_q4_1_q8_1_avx2, vec_dot_1x4_q4_1_q8_1_avx2}, avx2);
    set_type(table, T::Q5_0, "q5_0", kQK5_0, sizeof(BlockQ5_0), T::Q8_0, true, dequantize_q5_0, quantize_ref_q5_0,
             nullptr, vec_dot_q5_0_q8_0_ref, {nullptr, vec_dot_q5_0_q8_0_ref, vec_dot_1x4_q5_0_q8_0_ref},
             {nullptr, vec_dot_q5_0_q8_0_avx2, vec_dot_1x4_q5_0_q8_0_avx2}, avx2);
    set_type(table, T::Q5_1, "q5_1", kQK5_1, sizeof(BlockQ5_1), T::Q8_1, true, dequantize_q5_1, quantize_ref_q5_1,
             nullptr, vec_dot_q5_1_q8_1_ref, {nullptr, vec_dot_q5_1_q8_1_ref, vec_dot_1x4_q5_1_q8_1_ref},
             {nullptr, vec_dot_q5_1_q8_1_avx2, vec_dot_1x4_q5_1_q8_1_avx2}, avx2);
    set_type(table, T::Q8_0, "q8_0", kQK8_0, sizeof(BlockQ8_0), T::Q8_0, true, dequantize_q8_0, quantize_ref_q8_0,
             quantize_act_q8_0_ref, vec_dot_q8_0_q8_0_ref,
             {quantize_act_q8_0_ref, vec_dot_q8_0_q8_0_ref, vec_dot_1x4_q8_0_q8_0_ref},
             {quantize_act_q8_0_avx2, vec_dot_q8_0_q8_0_avx2, vec_dot_1x4_q8_0_q8_0_avx2}, avx2);
    // Q8_1 only ever holds activations (for Q4_1/Q5_1 weights): no dot product of its own.
    set_type(table, T::Q8_1, "q8_1", kQK8_1, sizeof(BlockQ8_1), T::Q8_1, false, dequantize_q8_1, quantize_ref_q8_1,
             quantize_act_q8_1_ref, nullptr, {quantize_act_q8_1_ref, nullptr, nullptr},
             {quantize_act_q8_1_avx2, nullptr, nullptr}, avx2);
}

}  // namespace llama_crab
