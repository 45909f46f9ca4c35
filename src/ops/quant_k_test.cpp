// Tests of the k-quant types: layouts, round trips, hand-built blocks decoded by an independent per-value
// decoder, the Q8_K activation quantizer (hand-computed cases, AVX2 bit-identity) and every dot product kernel.
#include "ops/quant_k.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/tensor_type.h"
#include "util/fp16.h"

namespace llama_crab {
namespace {

constexpr int kTypes[] = {(int)TensorType::Q2_K, (int)TensorType::Q3_K, (int)TensorType::Q4_K,
                          (int)TensorType::Q5_K, (int)TensorType::Q6_K};

const TypeTraits& traits(int id) { return type_traits((TensorType)id); }

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.f, sigma);
    std::vector<float> v(n);
    for (float& f : v) f = dist(rng);
    return v;
}

std::vector<uint8_t> quantize(int id, const std::vector<float>& x) {
    const TypeTraits& t = traits(id);
    std::vector<uint8_t> q(row_bytes(t, (int64_t)x.size()));
    t.quantize_ref(x.data(), q.data(), (int64_t)x.size());
    return q;
}

std::vector<float> dequantize(int id, const std::vector<uint8_t>& q, size_t n) {
    std::vector<float> out(n);
    traits(id).dequantize(q.data(), out.data(), (int64_t)n);
    return out;
}

std::vector<uint8_t> q8k(const std::vector<float>& x) {
    std::vector<uint8_t> q(x.size() / kQK_K * sizeof(BlockQ8K));
    quantize_q8_k_ref(x.data(), q.data(), (int64_t)x.size());
    return q;
}

double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)a[i] * a[i];
    }
    return std::sqrt(num / den);
}

// Writes the fp16 super-block scale(s) of block b.
void set_block_scales(int id, uint8_t* b, float d, float dmin) {
    const fp16_t hd = fp32_to_fp16(d), hm = fp32_to_fp16(dmin);
    switch ((TensorType)id) {
        case TensorType::Q2_K:
            std::memcpy(b + offsetof(BlockQ2K, d), &hd, 2);
            std::memcpy(b + offsetof(BlockQ2K, dmin), &hm, 2);
            break;
        case TensorType::Q3_K: std::memcpy(b + offsetof(BlockQ3K, d), &hd, 2); break;
        case TensorType::Q4_K:
            std::memcpy(b + offsetof(BlockQ4K, d), &hd, 2);
            std::memcpy(b + offsetof(BlockQ4K, dmin), &hm, 2);
            break;
        case TensorType::Q5_K:
            std::memcpy(b + offsetof(BlockQ5K, d), &hd, 2);
            std::memcpy(b + offsetof(BlockQ5K, dmin), &hm, 2);
            break;
        default: std::memcpy(b + offsetof(BlockQ6K, d), &hd, 2); break;
    }
}

// Random but valid weight blocks: every byte random, then sane fp16 scales (a random fp16 could be Inf/NaN).
std::vector<uint8_t> random_blocks(int id, int nb, uint32_t seed) {
    const TypeTraits& t = traits(id);
    std::mt19937 rng(seed);
    std::vector<uint8_t> q(t.block_bytes * (size_t)nb);
    for (uint8_t& b : q) b = (uint8_t)rng();
    std::uniform_real_distribution<float> u(0.001f, 0.1f);
    for (int i = 0; i < nb; ++i) {
        const float d = u(rng), dmin = u(rng);
        set_block_scales(id, q.data() + t.block_bytes * (size_t)i, d, dmin);
    }
    return q;
}

// Random Q8_K rows with the full code range -128..127 and consistent bsums.
std::vector<uint8_t> random_q8k(int nb, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<BlockQ8K> y((size_t)nb);
    for (BlockQ8K& b : y) {
        b.d = std::uniform_real_distribution<float>(0.001f, 0.05f)(rng);
        for (int8_t& q : b.qs) q = (int8_t)(rng() & 0xff);
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b.qs[16 * g + l];
            b.bsums[g] = (int16_t)s;
        }
    }
    std::vector<uint8_t> out(sizeof(BlockQ8K) * (size_t)nb);
    std::memcpy(out.data(), y.data(), out.size());
    return out;
}

// ---------------------------------------------------------------------------------------------------- layout

TEST(QuantKLayout, BlockSizesAndFieldOffsetsMatchGgml) {
    EXPECT_EQ(sizeof(BlockQ2K), 84u);
    EXPECT_EQ(offsetof(BlockQ2K, qs), 16u);
    EXPECT_EQ(offsetof(BlockQ2K, d), 80u);
    EXPECT_EQ(offsetof(BlockQ2K, dmin), 82u);
    EXPECT_EQ(sizeof(BlockQ3K), 110u);
    EXPECT_EQ(offsetof(BlockQ3K, qs), 32u);
    EXPECT_EQ(offsetof(BlockQ3K, scales), 96u);
    EXPECT_EQ(offsetof(BlockQ3K, d), 108u);
    EXPECT_EQ(sizeof(BlockQ4K), 144u);
    EXPECT_EQ(offsetof(BlockQ4K, dmin), 2u);
    EXPECT_EQ(offsetof(BlockQ4K, scales), 4u);
    EXPECT_EQ(offsetof(BlockQ4K, qs), 16u);
    EXPECT_EQ(sizeof(BlockQ5K), 176u);
    EXPECT_EQ(offsetof(BlockQ5K, qh), 16u);
    EXPECT_EQ(offsetof(BlockQ5K, qs), 48u);
    EXPECT_EQ(sizeof(BlockQ6K), 210u);
    EXPECT_EQ(offsetof(BlockQ6K, qh), 128u);
    EXPECT_EQ(offsetof(BlockQ6K, scales), 192u);
    EXPECT_EQ(offsetof(BlockQ6K, d), 208u);
    EXPECT_EQ(sizeof(BlockQ8K), 292u);
    EXPECT_EQ(offsetof(BlockQ8K, qs), 4u);
    EXPECT_EQ(offsetof(BlockQ8K, bsums), 260u);
}

TEST(QuantKLayout, TraitsAreFilled) {
    const char* names[] = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};
    const size_t bytes[] = {84, 110, 144, 176, 210};
    for (int k = 0; k < 5; ++k) {
        const TypeTraits& t = traits(kTypes[k]);
        EXPECT_EQ((int)t.type, kTypes[k]);
        EXPECT_STREQ(t.name, names[k]);
        EXPECT_EQ(t.block_size, 256);
        EXPECT_EQ(t.block_bytes, bytes[k]);
        EXPECT_EQ(t.vec_dot_type, TensorType::Q8_K);
        EXPECT_TRUE(t.is_weight_type);
        EXPECT_NE(t.dequantize, nullptr);
        EXPECT_NE(t.quantize_ref, nullptr);
        EXPECT_EQ(t.quantize_act, nullptr);
        EXPECT_NE(t.vec_dot_ref, nullptr);
        EXPECT_NE(t.vec_dot, nullptr);
        EXPECT_NE(t.vec_dot_1x4, nullptr);
        EXPECT_EQ(type_from_name(names[k]), t.type);
    }
    const TypeTraits& q8 = type_traits(TensorType::Q8_K);
    EXPECT_STREQ(q8.name, "q8_K");
    EXPECT_EQ(q8.block_bytes, 292u);
    EXPECT_FALSE(q8.is_weight_type);
    EXPECT_NE(q8.quantize_act, nullptr);
    EXPECT_EQ(q8.quantize_act_ref, &quantize_q8_k_ref);
    EXPECT_EQ(q8.vec_dot, nullptr);

    TypeTraits table[40] = {};
    fill_k_type_traits(table, false);
    EXPECT_EQ(table[(int)TensorType::Q4_K].vec_dot, &vec_dot_q4_k_q8_k_ref);
    EXPECT_EQ(table[(int)TensorType::Q8_K].quantize_act, &quantize_q8_k_ref);
    fill_k_type_traits(table, true);
    EXPECT_EQ(table[(int)TensorType::Q4_K].vec_dot, &vec_dot_q4_k_q8_k_avx2);
    EXPECT_EQ(table[(int)TensorType::Q6_K].vec_dot_1x4, &vec_dot_1x4_q6_k_q8_k_avx2);
    EXPECT_EQ(table[(int)TensorType::Q8_K].quantize_act, &quantize_q8_k_avx2);
}

// ---------------------------------------------------------------------------------------------------- scales

TEST(QuantKScales, K4PackingRoundTripsAndMatchesTheByteLayout) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 200; ++trial) {
        uint8_t sc[8], mn[8], packed[12], sc2[8], mn2[8];
        for (int j = 0; j < 8; ++j) {
            sc[j] = (uint8_t)(rng() & 63);
            mn[j] = (uint8_t)(rng() & 63);
        }
        pack_scales_mins_k4(sc, mn, packed);
        unpack_scales_mins_k4(packed, sc2, mn2);
        for (int j = 0; j < 8; ++j) {
            ASSERT_EQ(sc2[j], sc[j]);
            ASSERT_EQ(mn2[j], mn[j]);
        }
    }
    // hand-checked: scale 4 = 0b110101 -> low nibble 0101 in byte 8, top bits 11 in bits 6-7 of byte 0
    uint8_t sc[8] = {1, 2, 3, 4, 0x35, 0, 0, 0}, mn[8] = {0, 0, 0, 0, 0, 0, 0, 0x2a};
    uint8_t packed[12];
    pack_scales_mins_k4(sc, mn, packed);
    EXPECT_EQ(packed[0], 0xc1);
    EXPECT_EQ(packed[8], 0x05);
    EXPECT_EQ(packed[11], 0xa0);  // min 7 = 0b101010: low nibble 1010 in the high half of byte 11
    EXPECT_EQ(packed[7], 0x80);   // its top bits 10 in bits 6-7 of byte 7
}

TEST(QuantKScales, Q3PackingRoundTripsAndMatchesTheByteLayout) {
    std::mt19937 rng(8);
    for (int trial = 0; trial < 200; ++trial) {
        uint8_t s6[16], packed[12];
        int8_t out[16];
        for (uint8_t& s : s6) s = (uint8_t)(rng() & 63);
        pack_scales_q3_k(s6, packed);
        unpack_scales_q3_k(packed, out);
        for (int j = 0; j < 16; ++j) ASSERT_EQ(out[j], s6[j] - 32);
    }
    uint8_t s6[16] = {};
    s6[9] = 0x3b;  // 0b111011: low nibble 1011 in the high half of byte 1, top bits 11 at bits 4-5 of byte 9
    uint8_t packed[12];
    pack_scales_q3_k(s6, packed);
    EXPECT_EQ(packed[1], 0xb0);
    EXPECT_EQ(packed[9], 0x30);
}

// ---------------------------------------------------------------------------------------------------- dequantize
// An independent decoder written per value from the format description (not sharing code with quant_k.cpp).

float expected_value(int id, const uint8_t* b, int v) {
    auto f16_at = [&](size_t off) {
        fp16_t h;
        std::memcpy(&h, b + off, 2);
        return (double)fp16_to_fp32(h);
    };
    auto k4_scale = [&](const uint8_t* s, int k, bool want_min) {
        if (k < 4) return want_min ? s[k + 4] & 63 : s[k] & 63;
        return want_min ? (s[k + 4] >> 4) | ((s[k] >> 6) << 4) : (s[k + 4] & 15) | ((s[k - 4] >> 6) << 4);
    };
    switch ((TensorType)id) {
        case TensorType::Q2_K: {
            const int sc = b[v / 16];
            const int q = (b[16 + (v / 128) * 32 + v % 32] >> ((v % 128) / 32 * 2)) & 3;
            return (float)(f16_at(80) * (sc & 15) * q - f16_at(82) * (sc >> 4));
        }
        case TensorType::Q3_K: {
            const uint8_t* s = b + 96;
            const int k = v / 16;
            const int low = k < 8 ? s[k] & 15 : s[k - 8] >> 4;
            const int high = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
            const int q2 = (b[32 + (v / 128) * 32 + v % 32] >> ((v % 128) / 32 * 2)) & 3;
            const int hbit = (b[v % 32] >> (v / 32)) & 1;
            return (float)(f16_at(108) * ((low | (high << 4)) - 32) * (q2 + 4 * hbit - 4));
        }
        case TensorType::Q4_K:
        case TensorType::Q5_K: {
            const bool q5 = (TensorType)id == TensorType::Q5_K;
            const uint8_t* qs = b + (q5 ? 48 : 16);
            const int k = v / 32;
            int q = (qs[(v / 64) * 32 + v % 32] >> (k % 2 ? 4 : 0)) & 15;
            if (q5) q += 16 * ((b[16 + v % 32] >> k) & 1);
            return (float)(f16_at(0) * k4_scale(b + 4, k, false) * q - f16_at(2) * k4_scale(b + 4, k, true));
        }
        default: {
            const int half = v / 128, r = v % 128;
            const int low = (b[64 * half + r % 64] >> (r >= 64 ? 4 : 0)) & 15;
            const int high = (b[128 + 32 * half + r % 32] >> (2 * (r / 32))) & 3;
            return (float)(f16_at(208) * (int8_t)b[192 + v / 16] * ((low | (high << 4)) - 32));
        }
    }
}

TEST(QuantKDequantize, RandomBlocksMatchAPerValueDecoder) {
    for (int id : kTypes) {
        const int nb = 3;
        const std::vector<uint8_t> q = random_blocks(id, nb, 100 + id);
        const std::vector<float> out = dequantize(id, q, (size_t)nb * kQK_K);
        for (int i = 0; i < nb; ++i) {
            for (int v = 0; v < kQK_K; ++v) {
                const float e = expected_value(id, q.data() + traits(id).block_bytes * (size_t)i, v);
                ASSERT_NEAR(out[(size_t)i * kQK_K + v], e, 1e-6f * (1.f + std::fabs(e)))
                    << traits(id).name << " block " << i << " value " << v;
            }
        }
    }
}

TEST(QuantKDequantize, HandBuiltBlocks) {
    // Q4_K: d = 0.5, dmin = 0.25, sub-block 1 (values 32..63, high nibbles of qs[0..31]) scale 3, min 2.
    BlockQ4K b4{};
    b4.d = fp32_to_fp16(0.5f);
    b4.dmin = fp32_to_fp16(0.25f);
    b4.scales[1] = 3;
    b4.scales[5] = 2;
    b4.qs[7] = 0xa0;  // value 39 = 10
    float out[kQK_K];
    dequantize_q4_k(&b4, out, kQK_K);
    EXPECT_FLOAT_EQ(out[39], 0.5f * 3 * 10 - 0.25f * 2);  // 14.5
    EXPECT_FLOAT_EQ(out[38], -0.5f);
    EXPECT_FLOAT_EQ(out[7], 0.f);

    // Q6_K: d = 2, scale of sub-block 5 (values 80..95) = -3; value 85 = ql[21] high nibble | qh[21] bits 4-5
    BlockQ6K b6{};
    b6.d = fp32_to_fp16(2.f);
    b6.scales[5] = -3;
    b6.ql[21] = 0x70;  // low 4 bits 7
    b6.qh[21] = 0x20;  // high 2 bits 2 -> code 0b100111 = 39 -> value 7
    dequantize_q6_k(&b6, out, kQK_K);
    EXPECT_FLOAT_EQ(out[85], 2.f * -3 * 7);
    EXPECT_FLOAT_EQ(out[84], 2.f * -3 * -32);

    // Q3_K: d = 1, scale of sub-block 0 = s6 40 -> 8; value 3: q2 = 1, high bit clear -> 1 - 4 = -3
    BlockQ3K b3{};
    b3.d = fp32_to_fp16(1.f);
    uint8_t s6[16];
    for (uint8_t& s : s6) s = 32;
    s6[0] = 40;
    pack_scales_q3_k(s6, b3.scales);
    b3.qs[3] = 1;
    b3.hmask[4] = 1;  // value 4: q2 = 0, high bit set -> 0
    dequantize_q3_k(&b3, out, kQK_K);
    EXPECT_FLOAT_EQ(out[3], -24.f);
    EXPECT_FLOAT_EQ(out[4], 0.f);
    EXPECT_FLOAT_EQ(out[5], -32.f);

    // Q2_K: d = 1, dmin = 0.5, sub-block 9 (values 144..159) scale 5 min 3; value 150 = qs[32 + 22] bits 0-1
    BlockQ2K b2{};
    b2.d = fp32_to_fp16(1.f);
    b2.dmin = fp32_to_fp16(0.5f);
    b2.scales[9] = 0x35;
    b2.qs[54] = 2;
    dequantize_q2_k(&b2, out, kQK_K);
    EXPECT_FLOAT_EQ(out[150], 5.f * 2 - 1.5f);
    EXPECT_FLOAT_EQ(out[151], -1.5f);

    // Q5_K: value 200 (sub-block 6, low nibble of qs[96 + 8]) with its 5th bit in bit 6 of qh[8]
    BlockQ5K b5{};
    b5.d = fp32_to_fp16(1.f);
    b5.dmin = fp32_to_fp16(1.f);
    uint8_t sc[8] = {0, 0, 0, 0, 0, 0, 17, 0}, mn[8] = {0, 0, 0, 0, 0, 0, 1, 0};
    pack_scales_mins_k4(sc, mn, b5.scales);
    b5.qs[104] = 0x03;
    b5.qh[8] = 0x40;
    dequantize_q5_k(&b5, out, kQK_K);
    EXPECT_FLOAT_EQ(out[200], 17.f * 19 - 1);
}

// ---------------------------------------------------------------------------------------------------- round trip

TEST(QuantKRoundTrip, ErrorIsBoundedAndOrderedByBits) {
    const size_t n = 64 * kQK_K;
    const std::vector<float> x = gaussian(n, 42, 0.02f);
    // Measured 0.297 / 0.151 / 0.071 / 0.036 / 0.0176 (Q2_K .. Q6_K); the bounds leave ~12% headroom.
    const double limit[] = {0.33, 0.17, 0.08, 0.041, 0.020};
    double err[5];
    for (int k = 0; k < 5; ++k) {
        err[k] = rel_rms(x, dequantize(kTypes[k], quantize(kTypes[k], x), n));
        EXPECT_LT(err[k], limit[k]) << traits(kTypes[k]).name;
        EXPECT_GT(err[k], 0.0) << traits(kTypes[k]).name;
    }
    for (int k = 0; k + 1 < 5; ++k) EXPECT_GT(err[k], err[k + 1]) << traits(kTypes[k]).name;
}

TEST(QuantKRoundTrip, SkewedAndOutlierData) {
    const size_t n = 16 * kQK_K;
    std::vector<float> x = gaussian(n, 43, 1.f);
    for (size_t i = 0; i < n; ++i) x[i] = x[i] + 0.5f;  // offset: exercises the mins
    for (size_t i = 0; i < n; i += 97) x[i] *= 20.f;    // outliers
    for (int k = 0; k < 5; ++k) {
        const std::vector<float> y = dequantize(kTypes[k], quantize(kTypes[k], x), n);
        EXPECT_LT(rel_rms(x, y), 0.5) << traits(kTypes[k]).name;
    }
}

TEST(QuantKRoundTrip, ZeroAndConstantBlocks) {
    const size_t n = 2 * kQK_K;
    std::vector<float> x(n, 0.f);
    for (size_t i = kQK_K; i < n; ++i) x[i] = 0.75f;
    for (int id : kTypes) {
        const std::vector<float> y = dequantize(id, quantize(id, x), n);
        for (size_t i = 0; i < (size_t)kQK_K; ++i) ASSERT_EQ(y[i], 0.f) << traits(id).name;
        for (size_t i = kQK_K; i < n; ++i) ASSERT_NEAR(y[i], 0.75f, 0.01f) << traits(id).name << " " << i;
    }
}

// ---------------------------------------------------------------------------------------------------- Q8_K

TEST(QuantKQ8K, HandComputedBlock) {
    std::vector<float> x(kQK_K, 0.f);
    x[3] = -1.984375f;  // -127/64: the first value of largest magnitude, so iscale = 64 exactly
    x[9] = 1.984375f;   // same magnitude, later: maps to +127
    x[10] = 1.f / 128;  // 0.5 -> 0 (ties to even)
    x[11] = 3.f / 128;  // 1.5 -> 2
    x[12] = 5.f / 128;  // 2.5 -> 2
    x[13] = -3.f / 128; // -1.5 -> -2
    x[40] = 0.3f;       // 19.2 -> 19
    BlockQ8K b;
    std::memset(&b, 0x5a, sizeof(b));
    quantize_q8_k_ref(x.data(), &b, kQK_K);
    EXPECT_EQ(b.d, 1.f / 64);
    EXPECT_EQ(b.qs[3], -127);
    EXPECT_EQ(b.qs[9], 127);
    EXPECT_EQ(b.qs[10], 0);
    EXPECT_EQ(b.qs[11], 2);
    EXPECT_EQ(b.qs[12], 2);
    EXPECT_EQ(b.qs[13], -2);
    EXPECT_EQ(b.qs[40], 19);
    EXPECT_EQ(b.bsums[0], -127 + 127 + 2 + 2 - 2);
    EXPECT_EQ(b.bsums[2], 19);
    EXPECT_EQ(b.bsums[15], 0);

    // largest magnitude positive: the sign flips (iscale negative), d negative
    std::vector<float> z(kQK_K, 0.f);
    z[0] = 1.984375f;
    z[1] = -1.f;
    quantize_q8_k_ref(z.data(), &b, kQK_K);
    EXPECT_EQ(b.d, -1.f / 64);
    EXPECT_EQ(b.qs[0], -127);
    EXPECT_EQ(b.qs[1], 64);

    // all zero: everything zero, including bsums
    std::vector<float> zero(kQK_K, 0.f);
    std::memset(&b, 0x5a, sizeof(b));
    quantize_q8_k_ref(zero.data(), &b, kQK_K);
    EXPECT_EQ(b.d, 0.f);
    for (int j = 0; j < kQK_K; ++j) ASSERT_EQ(b.qs[j], 0);
    for (int g = 0; g < 16; ++g) ASSERT_EQ(b.bsums[g], 0);
}

std::vector<std::vector<float>> q8k_cases() {
    std::vector<std::vector<float>> cases;
    const size_t n = 8 * kQK_K;
    cases.push_back(gaussian(n, 1));
    cases.push_back(gaussian(n, 2, 1e-20f));
    cases.push_back(gaussian(n, 3, 1e20f));
    std::vector<float> ties(n);
    std::mt19937 rng(4);
    for (float& f : ties) f = (float)((int)(rng() % 509) - 254) / 128.f;  // many exact .5 products
    cases.push_back(ties);
    std::vector<float> pm(n, 0.f);  // +-max ties in both orders, single values, zero blocks, negative zeros
    pm[5] = 3.f, pm[200] = -3.f, pm[300] = -7.f, pm[301] = 7.f, pm[600] = -0.f, pm[700] = 1e-3f;
    for (size_t i = 4 * kQK_K; i < 5 * (size_t)kQK_K; ++i) pm[i] = (i % 2) ? 2.5f : -2.5f;
    pm[6 * kQK_K + 17] = -1e-38f;  // subnormal scale
    cases.push_back(pm);
    std::vector<float> mixed = gaussian(n, 5);
    for (size_t i = 0; i < n; i += 13) mixed[i] *= 1000.f;
    cases.push_back(mixed);
    return cases;
}

TEST(QuantKQ8K, Avx2IsBitIdenticalToScalar) {
    if (!cpu_supports(IsaLevel::kAvx2)) GTEST_SKIP() << "AVX2 kernels not tested: this CPU lacks " << isa_missing_features(IsaLevel::kAvx2);
    std::vector<std::vector<float>> cases = q8k_cases();
    std::vector<float> special = gaussian(3 * kQK_K, 6);
    special[10] = std::numeric_limits<float>::infinity();  // block 0: max is Inf, iscale -0, Inf * 0 = NaN
    special[kQK_K + 20] = std::numeric_limits<float>::quiet_NaN();  // block 1: a NaN is skipped by the max
    special[2 * kQK_K + 30] = -std::numeric_limits<float>::infinity();
    cases.push_back(special);
    for (const std::vector<float>& x : cases) {
        std::vector<uint8_t> a(x.size() / kQK_K * sizeof(BlockQ8K), 0x11), b(a.size(), 0x22);
        quantize_q8_k_ref(x.data(), a.data(), (int64_t)x.size());
        quantize_q8_k_avx2(x.data(), b.data(), (int64_t)x.size());
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0);
    }
}

TEST(QuantKQ8K, MatchesTheDefinition) {
    // Re-derives every block with double-checked arithmetic: iscale = -127/max (signed, first occurrence),
    // q = min(127, nearbyint(iscale*x)) under round-to-nearest-even, d = 1/iscale, bsums = sums of 16.
    for (const std::vector<float>& x : q8k_cases()) {
        std::vector<BlockQ8K> y(x.size() / kQK_K);
        quantize_q8_k_ref(x.data(), y.data(), (int64_t)x.size());
        for (size_t i = 0; i < y.size(); ++i) {
            const float* xb = x.data() + i * kQK_K;
            float max = 0.f;
            for (int j = 0; j < kQK_K; ++j) {
                if (std::fabs(xb[j]) > std::fabs(max)) max = xb[j];
            }
            if (max == 0.f) {
                ASSERT_EQ(y[i].d, 0.f);
                continue;
            }
            const float iscale = -127.f / max;
            ASSERT_EQ(y[i].d, 1.f / iscale);
            if (std::isinf(iscale)) {  // |max| < 127/FLT_MAX: every product is Inf or NaN, which the
                for (int j = 0; j < kQK_K; ++j) ASSERT_EQ(y[i].qs[j], 0);  // rounding trick turns into 0
                continue;
            }
            for (int j = 0; j < kQK_K; ++j) {
                const float p = iscale * xb[j];
                const int q = (int)std::nearbyint(p);
                ASSERT_EQ(y[i].qs[j], q > 127 ? 127 : q) << "block " << i << " value " << j;
            }
            for (int g = 0; g < 16; ++g) {
                int s = 0;
                for (int l = 0; l < 16; ++l) s += y[i].qs[16 * g + l];
                ASSERT_EQ(y[i].bsums[g], s);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------- dots

double dot_f64(const std::vector<float>& a, const std::vector<float>& b, double* abs_sum) {
    double s = 0;
    *abs_sum = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        s += (double)a[i] * b[i];
        *abs_sum += std::fabs((double)a[i] * b[i]);
    }
    return s;
}

TEST(QuantKDot, RefMatchesDequantizedProduct) {
    for (int id : kTypes) {
        for (int nb : {1, 3, 16}) {
            const size_t n = (size_t)nb * kQK_K;
            const std::vector<float> xf = gaussian(n, 10 + nb), yf = gaussian(n, 20 + nb);
            const std::vector<uint8_t> xq = quantize(id, xf), yq = q8k(yf);
            const std::vector<float> xd = dequantize(id, xq, n);
            std::vector<float> yd(n);
            dequantize_q8_k(yq.data(), yd.data(), (int64_t)n);
            double abs_sum;
            const double expect = dot_f64(xd, yd, &abs_sum);
            float got = 0;
            traits(id).vec_dot_ref((int64_t)n, &got, xq.data(), yq.data());
            EXPECT_NEAR(got, expect, 2e-6 * abs_sum) << traits(id).name << " nb=" << nb;
            // and it approximates the float dot product within the quantization error
            double abs_f;
            const double exact = dot_f64(xf, yf, &abs_f);
            EXPECT_NEAR(got, exact, 0.3 * abs_f) << traits(id).name;
        }
    }
}

TEST(QuantKDot, RefOnRandomBlocksMatchesDequantizedProduct) {
    for (int id : kTypes) {
        const int nb = 4;
        const size_t n = (size_t)nb * kQK_K;
        const std::vector<uint8_t> xq = random_blocks(id, nb, 300 + id), yq = random_q8k(nb, 400 + id);
        const std::vector<float> xd = dequantize(id, xq, n);
        std::vector<float> yd(n);
        dequantize_q8_k(yq.data(), yd.data(), (int64_t)n);
        double abs_sum;
        const double expect = dot_f64(xd, yd, &abs_sum);
        float got = 0;
        traits(id).vec_dot_ref((int64_t)n, &got, xq.data(), yq.data());
        EXPECT_NEAR(got, expect, 2e-6 * abs_sum) << traits(id).name;
    }
}

TEST(QuantKDot, RefOneByFourIsFourSingleDots) {
    for (int id : kTypes) {
        const int nb = 5;
        const size_t n = (size_t)nb * kQK_K, stride = (size_t)nb * sizeof(BlockQ8K);
        const std::vector<uint8_t> xq = random_blocks(id, nb, 500 + id), yq = random_q8k(4 * nb, 600 + id);
        float four[4], single;
        const TypeTraits& t = traits(id);
        TypeTraits table[40] = {};
        fill_k_type_traits(table, false);
        table[id].vec_dot_1x4((int64_t)n, four, xq.data(), yq.data(), stride);
        for (int j = 0; j < 4; ++j) {
            t.vec_dot_ref((int64_t)n, &single, xq.data(), yq.data() + j * stride);
            EXPECT_EQ(four[j], single) << t.name << " column " << j;
        }
    }
}

// Largest |avx2 - ref| relative to sum |x_i y_i|, over quantized Gaussian data and random-byte blocks.
struct Avx2Kernels {
    VecDotFn dot;
    VecDot1x4Fn dot4;
    double limit;
};

Avx2Kernels avx2_kernels(int id) {
    switch ((TensorType)id) {
        case TensorType::Q2_K: return {vec_dot_q2_k_q8_k_avx2, vec_dot_1x4_q2_k_q8_k_avx2, 1e-6};
        case TensorType::Q3_K: return {vec_dot_q3_k_q8_k_avx2, vec_dot_1x4_q3_k_q8_k_avx2, 1e-6};
        case TensorType::Q4_K: return {vec_dot_q4_k_q8_k_avx2, vec_dot_1x4_q4_k_q8_k_avx2, 1e-6};
        case TensorType::Q5_K: return {vec_dot_q5_k_q8_k_avx2, vec_dot_1x4_q5_k_q8_k_avx2, 1e-6};
        default: return {vec_dot_q6_k_q8_k_avx2, vec_dot_1x4_q6_k_q8_k_avx2, 1e-6};
    }
}

TEST(QuantKDot, Avx2MatchesScalarReference) {
    if (!cpu_supports(IsaLevel::kAvx2)) GTEST_SKIP() << "AVX2 kernels not tested: this CPU lacks " << isa_missing_features(IsaLevel::kAvx2);
    for (int id : kTypes) {
        const TypeTraits& t = traits(id);
        const Avx2Kernels k = avx2_kernels(id);
        double worst = 0;
        for (int trial = 0; trial < 24; ++trial) {
            const int nb = 1 + trial % 7;
            const size_t n = (size_t)nb * kQK_K, stride = (size_t)nb * sizeof(BlockQ8K);
            std::vector<uint8_t> xq, yq;
            if (trial % 2 == 0) {
                xq = quantize(id, gaussian(n, 1000 + trial));
                yq = q8k(gaussian(4 * n, 2000 + trial));
            } else {
                xq = random_blocks(id, nb, 3000 + trial);
                yq = random_q8k(4 * nb, 4000 + trial);
            }
            const std::vector<float> xd = dequantize(id, xq, n);
            float four[4];
            k.dot4((int64_t)n, four, xq.data(), yq.data(), stride);
            for (int j = 0; j < 4; ++j) {
                const uint8_t* yj = yq.data() + j * stride;
                float ref = 0, fast = 0;
                t.vec_dot_ref((int64_t)n, &ref, xq.data(), yj);
                k.dot((int64_t)n, &fast, xq.data(), yj);
                std::vector<float> yd(n);
                dequantize_q8_k(yj, yd.data(), (int64_t)n);
                double abs_sum;
                dot_f64(xd, yd, &abs_sum);
                const double err = std::fabs((double)fast - ref) / abs_sum;
                worst = std::max(worst, err);
                EXPECT_LE(err, k.limit) << t.name << " trial " << trial << " column " << j;
                EXPECT_EQ(four[j], fast) << t.name << ": 1x4 column " << j << " differs from the single dot";
            }
        }
        std::printf("[ QuantK   ] %s AVX2 vs scalar: max |diff| / sum|x*y| = %.3g\n", t.name, worst);
        RecordProperty(std::string(t.name) + "_max_rel_err", std::to_string(worst));
    }
}

TEST(QuantKDot, Avx2ExtremeCodesDoNotSaturate) {
    if (!cpu_supports(IsaLevel::kAvx2)) GTEST_SKIP() << "AVX2 kernels not tested: this CPU lacks " << isa_missing_features(IsaLevel::kAvx2);
    // All weight code bytes 0xff (largest codes, largest scales) against y = +-127 and -128: the integer
    // sums are at their extremes, so any 16-bit saturation would show as a large error.
    for (int id : kTypes) {
        const TypeTraits& t = traits(id);
        std::vector<uint8_t> xq(2 * t.block_bytes, 0xff);
        for (int i = 0; i < 2; ++i) set_block_scales(id, xq.data() + t.block_bytes * (size_t)i, 0.05f, 0.03f);
        for (int8_t fill : {(int8_t)127, (int8_t)-127, (int8_t)-128}) {
            std::vector<BlockQ8K> y(2);
            for (BlockQ8K& b : y) {
                b.d = 0.01f;
                std::memset(b.qs, (uint8_t)fill, sizeof(b.qs));
                for (int16_t& s : b.bsums) s = (int16_t)(16 * fill);
            }
            float ref = 0, fast = 0;
            t.vec_dot_ref(2 * kQK_K, &ref, xq.data(), y.data());
            avx2_kernels(id).dot(2 * kQK_K, &fast, xq.data(), y.data());
            EXPECT_NEAR(fast, ref, 1e-5 * std::fabs(ref)) << t.name << " fill " << (int)fill;
        }
    }
}

}  // namespace
}  // namespace llama_crab
