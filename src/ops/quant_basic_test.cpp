// Tests of the basic tensor types: layouts, hand-computed blocks, quantization error bounds, the activation
// quantizers (bit-identical scalar/AVX2 and matching ggml's formulas), and dot products against independent sums.
#include "ops/quant_basic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace llama_crab {
namespace {

using T = TensorType;
using Bytes = std::vector<uint8_t>;

const T kAllTypes[] = {T::F32, T::F16, T::BF16, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0, T::Q8_1};
const T kWeightTypes[] = {T::F32, T::F16, T::BF16, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0};
const T kActTypes[] = {T::F32, T::F16, T::BF16, T::Q8_0, T::Q8_1};

// Our own table, filled in both variants, so the tests do not depend on what the registry picked for this CPU.
struct Tables {
    TypeTraits scalar[40]{};
    TypeTraits avx2[40]{};
    Tables() {
        fill_basic_type_traits(scalar, false);
        fill_basic_type_traits(avx2, true);
    }
};
const Tables& tables() {
    static const Tables t;
    return t;
}
const TypeTraits& scalar_traits(T t) { return tables().scalar[(int)t]; }
const TypeTraits& avx2_traits(T t) { return tables().avx2[(int)t]; }

std::string type_name(T t) { return scalar_traits(t).name; }

uint16_t u16_at(const Bytes& b, size_t off) {
    uint16_t v;
    std::memcpy(&v, b.data() + off, 2);
    return v;
}

float f32_from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

Bytes quantize_with(QuantizeFn fn, const TypeTraits& tt, const std::vector<float>& x) {
    Bytes out(row_bytes(tt, (int64_t)x.size()) + 1, 0xAB);  // one guard byte past the row
    fn(x.data(), out.data(), (int64_t)x.size());
    EXPECT_EQ(out.back(), 0xAB) << "wrote past the row";
    out.pop_back();
    return out;
}

std::vector<float> dequant(T t, const Bytes& b, int64_t n) {
    std::vector<float> y((size_t)n);
    scalar_traits(t).dequantize(b.data(), y.data(), n);
    return y;
}

// Several shapes of data: uniform, gaussian with outliers, all positive, scaled over many magnitudes.
std::vector<float> random_row(int64_t n, uint32_t seed, int kind) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::vector<float> x((size_t)n);
    for (int64_t i = 0; i < n; ++i) {
        float v = 0.0f;
        switch (kind) {
            case 0: v = uni(rng); break;
            case 1: v = gauss(rng) * ((rng() % 64) == 0 ? 20.0f : 1.0f); break;
            case 2: v = 3.0f + uni(rng); break;
            default: v = uni(rng) * std::ldexp(1.0f, (int)(rng() % 21) - 10); break;
        }
        x[(size_t)i] = v;
    }
    return x;
}

// Blocks whose values land exactly on .5 after scaling: amax = 127 * 2^k makes id = 2^-k exact.
std::vector<float> tie_row(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> x((size_t)n);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float scale = std::ldexp(1.0f, (int)(rng() % 21) - 10);
        for (int j = 0; j < 32; ++j) x[(size_t)(b * 32 + j)] = ((float)((int)(rng() % 509) - 254) / 2.0f) * scale;
        x[(size_t)(b * 32 + rng() % 32)] = (rng() % 2 ? 127.0f : -127.0f) * scale;
    }
    return x;
}

// Arbitrary bit patterns (NaNs, infinities, subnormals included); some with the low bits of an exact f16 or bf16
// halfway case, so round-to-nearest-even ties are common.
std::vector<float> random_bits_row(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> x((size_t)n);
    for (float& v : x) {
        uint32_t u = (uint32_t)rng();
        switch (rng() % 4) {
            case 0: u = (u & ~0x1fffu) | 0x1000u; break;   // f16 tie
            case 1: u = (u & ~0xffffu) | 0x8000u; break;   // bf16 tie
            case 2: u = (u & 0x80ffffffu) | 0x3f000000u; break;  // moderate magnitude
            default: break;
        }
        v = f32_from_bits(u);
    }
    return x;
}

// Blocks built so that 127/amax and 1/(amax/127) round some element differently (where such an element exists).
std::vector<float> inverse_sensitive_row(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uni(0.5f, 2.0f);
    std::vector<float> x = random_row(n, seed, 0);
    for (int64_t b = 0; b < n / 32; ++b) {
        float* xb = x.data() + b * 32;
        const float amax = uni(rng);
        for (int j = 0; j < 32; ++j) xb[j] = std::max(-amax, std::min(amax, xb[j] * amax));
        xb[0] = amax;
        const float id1 = 127.f / amax, id2 = 1.0f / (amax / 127.f);
        if (id1 == id2) continue;
        int placed = 1;
        for (int k = 0; k < 127 && placed < 32; ++k) {
            float v = ((float)k + 0.5f) / id1;
            for (int step = 0; step < 4; ++step, v = std::nextafter(v, 1e9f)) {
                if (std::nearbyint(v * id1) != std::nearbyint(v * id2)) {
                    xb[placed++] = (rng() % 2) ? v : -v;
                    break;
                }
            }
        }
    }
    return x;
}

// Finite and non-finite oddities, one kind per block.
std::vector<float> special_row(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    const float specials[] = {0.0f, -0.0f, 1e-40f, -1e-45f, 3e38f, -3.4e38f, 65504.0f, 65520.0f, 1e-8f,
                              std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), f32_from_bits(0x7f812345u),
                              f32_from_bits(0xffc00001u)};
    const int ns = (int)(sizeof(specials) / sizeof(specials[0]));
    std::vector<float> x = random_row(n, seed, 3);
    for (int64_t b = 0; b * 32 < n; ++b) {
        const int kind = (int)(b % (ns + 2));
        for (int j = 0; j < 32 && b * 32 + j < n; ++j) {
            float& v = x[(size_t)(b * 32 + j)];
            if (kind == ns) v = 0.0f;                                        // an all-zero block
            else if (kind == ns + 1) v = 1e-42f * (float)(j - 16);           // all subnormal
            else if (rng() % 4 == 0) v = specials[(kind + j) % (ns)];       // a sprinkle of specials
        }
    }
    return x;
}

// ---------------------------------------------------------------------------------------------------------------

TEST(QuantBasicLayout, BlockStructs) {
    EXPECT_EQ(sizeof(BlockQ4_0), 18u);
    EXPECT_EQ(sizeof(BlockQ4_1), 20u);
    EXPECT_EQ(sizeof(BlockQ5_0), 22u);
    EXPECT_EQ(sizeof(BlockQ5_1), 24u);
    EXPECT_EQ(sizeof(BlockQ8_0), 34u);
    EXPECT_EQ(sizeof(BlockQ8_1), 36u);
    EXPECT_EQ(offsetof(BlockQ4_0, qs), 2u);
    EXPECT_EQ(offsetof(BlockQ4_1, m), 2u);
    EXPECT_EQ(offsetof(BlockQ4_1, qs), 4u);
    EXPECT_EQ(offsetof(BlockQ5_0, qh), 2u);
    EXPECT_EQ(offsetof(BlockQ5_0, qs), 6u);
    EXPECT_EQ(offsetof(BlockQ5_1, qh), 4u);
    EXPECT_EQ(offsetof(BlockQ5_1, qs), 8u);
    EXPECT_EQ(offsetof(BlockQ8_0, qs), 2u);
    EXPECT_EQ(offsetof(BlockQ8_1, s), 2u);
    EXPECT_EQ(offsetof(BlockQ8_1, qs), 4u);
}

TEST(QuantBasicTraits, TableEntries) {
    struct Want {
        T type;
        const char* name;
        int64_t block_size;
        size_t block_bytes;
        T vec_dot_type;
        bool weight;
        bool has_act;
    };
    const Want wants[] = {
        {T::F32, "f32", 1, 4, T::F32, true, true},       {T::F16, "f16", 1, 2, T::F16, true, true},
        {T::BF16, "bf16", 1, 2, T::BF16, true, true},    {T::Q4_0, "q4_0", 32, 18, T::Q8_0, true, false},
        {T::Q4_1, "q4_1", 32, 20, T::Q8_1, true, false}, {T::Q5_0, "q5_0", 32, 22, T::Q8_0, true, false},
        {T::Q5_1, "q5_1", 32, 24, T::Q8_1, true, false}, {T::Q8_0, "q8_0", 32, 34, T::Q8_0, true, true},
        {T::Q8_1, "q8_1", 32, 36, T::Q8_1, false, true},
    };
    for (const TypeTraits* table : {tables().scalar, tables().avx2}) {
        for (const Want& w : wants) {
            const TypeTraits& t = table[(int)w.type];
            SCOPED_TRACE(w.name);
            ASSERT_NE(t.name, nullptr);
            EXPECT_EQ(t.type, w.type);
            EXPECT_STREQ(t.name, w.name);
            EXPECT_EQ(t.block_size, w.block_size);
            EXPECT_EQ(t.block_bytes, w.block_bytes);
            EXPECT_EQ(t.vec_dot_type, w.vec_dot_type);
            EXPECT_EQ(t.is_weight_type, w.weight);
            EXPECT_NE(t.dequantize, nullptr);
            EXPECT_NE(t.quantize_ref, nullptr);
            EXPECT_EQ(t.quantize_act != nullptr, w.has_act);
            EXPECT_EQ(t.quantize_act_ref != nullptr, w.has_act);
            EXPECT_EQ(t.vec_dot_ref != nullptr, w.weight);
            EXPECT_EQ(t.vec_dot != nullptr, w.weight);
            EXPECT_EQ(t.vec_dot_1x4 != nullptr, w.weight);
        }
    }
    // The scalar table uses only scalar kernels; the AVX2 one swaps in the fast kernels.
    for (T t : kWeightTypes) {
        EXPECT_EQ(scalar_traits(t).vec_dot, scalar_traits(t).vec_dot_ref) << type_name(t);
        EXPECT_NE(avx2_traits(t).vec_dot, avx2_traits(t).vec_dot_ref) << type_name(t);
    }
    for (T t : {T::F16, T::BF16, T::Q8_0, T::Q8_1}) {
        EXPECT_EQ(scalar_traits(t).quantize_act, scalar_traits(t).quantize_act_ref) << type_name(t);
        EXPECT_NE(avx2_traits(t).quantize_act, avx2_traits(t).quantize_act_ref) << type_name(t);
    }
    // The global registry holds this family too.
    ASSERT_NE(find_type_traits((uint32_t)T::Q5_1), nullptr);
    EXPECT_STREQ(type_traits(T::Q5_1).name, "q5_1");
    EXPECT_EQ(type_from_name("Q4_0"), T::Q4_0);
    EXPECT_EQ(type_from_name("bf16"), T::BF16);
}

// ---------------------------------------------------------------------------------------------------------------
// Hand-computed blocks

std::vector<float> block_of(std::initializer_list<std::pair<int, float>> values) {
    std::vector<float> x(32, 0.0f);
    for (const auto& [j, v] : values) x[(size_t)j] = v;
    return x;
}

TEST(QuantBasicKnown, Q4_0Block) {
    // amax 8 first reached by -8 => d = -8 / -8 = 1; q = trunc(x + 8.5) clamped to 15.
    const auto x = block_of({{0, -8.0f}, {1, 4.0f}, {16, 7.0f}, {17, 8.0f}});
    const Bytes b = quantize_with(quantize_ref_q4_0, scalar_traits(T::Q4_0), x);
    EXPECT_EQ(u16_at(b, 0), 0x3c00);
    EXPECT_EQ(b[2], 0xf0);  // x0 -> 0, x16 -> 15
    EXPECT_EQ(b[3], 0xfc);  // x1 -> 12, x17 -> 16 clamped to 15
    for (int j = 2; j < 16; ++j) EXPECT_EQ(b[2 + j], 0x88) << j;
    const auto y = dequant(T::Q4_0, b, 32);
    EXPECT_EQ(y[0], -8.0f);
    EXPECT_EQ(y[1], 4.0f);
    EXPECT_EQ(y[16], 7.0f);
    EXPECT_EQ(y[17], 7.0f);
    EXPECT_EQ(y[5], 0.0f);
}

TEST(QuantBasicKnown, Q4_1Block) {
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[(size_t)j] = (float)(j % 16) - 2.0f;  // min -2, max 13 => d = 1
    const Bytes b = quantize_with(quantize_ref_q4_1, scalar_traits(T::Q4_1), x);
    EXPECT_EQ(u16_at(b, 0), 0x3c00);  // d = 1
    EXPECT_EQ(u16_at(b, 2), 0xc000);  // m = -2
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b[4 + j], 0x11 * j) << j;
    EXPECT_EQ(dequant(T::Q4_1, b, 32), x);
}

TEST(QuantBasicKnown, Q5_0Block) {
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[(size_t)j] = (float)(j - 16);  // max -16 => d = 1, q = j
    const Bytes b = quantize_with(quantize_ref_q5_0, scalar_traits(T::Q5_0), x);
    EXPECT_EQ(u16_at(b, 0), 0x3c00);
    const uint8_t qh[4] = {0x00, 0x00, 0xff, 0xff};  // elements 16..31 have the fifth bit
    for (int k = 0; k < 4; ++k) EXPECT_EQ(b[2 + k], qh[k]) << k;
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b[6 + j], 0x11 * j) << j;
    EXPECT_EQ(dequant(T::Q5_0, b, 32), x);
}

TEST(QuantBasicKnown, Q5_1Block) {
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[(size_t)j] = 1.0f + 0.5f * (float)j;  // min 1, d = 15.5 / 31 = 0.5
    x[3] = 1.0f + 0.5f * 20;                                            // element 3 gets q = 20 (bit 4 set)
    const Bytes b = quantize_with(quantize_ref_q5_1, scalar_traits(T::Q5_1), x);
    EXPECT_EQ(u16_at(b, 0), 0x3800);  // 0.5
    EXPECT_EQ(u16_at(b, 2), 0x3c00);  // 1.0
    const uint8_t qh[4] = {0x08, 0x00, 0xff, 0xff};
    for (int k = 0; k < 4; ++k) EXPECT_EQ(b[4 + k], qh[k]) << k;
    EXPECT_EQ(b[8 + 3], 0x34);  // low nibble 20 & 15 = 4, high nibble 19 & 15 = 3
    EXPECT_EQ(b[8 + 5], 0x55);
    EXPECT_EQ(dequant(T::Q5_1, b, 32), x);
}

// Ties: the reference quantizer rounds half away from zero, llama.cpp's AVX2 activation path to nearest even.
TEST(QuantBasicKnown, Q8TiesRefVersusActivation) {
    const auto x = block_of({{0, 127.0f}, {1, 2.5f}, {2, -2.5f}, {3, 3.5f}, {4, 0.5f}, {5, -1.5f}});
    const int8_t want_ref[6] = {127, 3, -3, 4, 1, -2};
    const int8_t want_act[6] = {127, 2, -2, 4, 0, -2};
    const Bytes r0 = quantize_with(quantize_ref_q8_0, scalar_traits(T::Q8_0), x);
    const Bytes a0 = quantize_with(quantize_act_q8_0_ref, scalar_traits(T::Q8_0), x);
    const Bytes r1 = quantize_with(quantize_ref_q8_1, scalar_traits(T::Q8_1), x);
    const Bytes a1 = quantize_with(quantize_act_q8_1_ref, scalar_traits(T::Q8_1), x);
    EXPECT_EQ(u16_at(r0, 0), 0x3c00);
    EXPECT_EQ(u16_at(a0, 0), 0x3c00);
    for (int j = 0; j < 6; ++j) {
        EXPECT_EQ((int8_t)r0[2 + j], want_ref[j]) << j;
        EXPECT_EQ((int8_t)a0[2 + j], want_act[j]) << j;
        EXPECT_EQ((int8_t)r1[4 + j], want_ref[j]) << j;
        EXPECT_EQ((int8_t)a1[4 + j], want_act[j]) << j;
    }
    EXPECT_EQ(u16_at(r1, 2), 0x5810);  // s = 130
    EXPECT_EQ(u16_at(a1, 2), 0x5808);  // s = 129
    if (cpu_supports(IsaLevel::kAvx2)) {
        EXPECT_EQ(quantize_with(quantize_act_q8_0_avx2, scalar_traits(T::Q8_0), x), a0);
        EXPECT_EQ(quantize_with(quantize_act_q8_1_avx2, scalar_traits(T::Q8_1), x), a1);
    }
}

TEST(QuantBasicKnown, F16AndBF16Rounding) {
    const std::vector<float> x = {1.0f, 65504.0f, 65520.0f, 1.0f + std::ldexp(1.0f, -11),
                                  1.0f + 3 * std::ldexp(1.0f, -11), -2.0f, 1.0f + std::ldexp(1.0f, -8),
                                  1.0f + 3 * std::ldexp(1.0f, -8)};
    const uint16_t want_f16[] = {0x3c00, 0x7bff, 0x7c00, 0x3c00, 0x3c02, 0xc000, 0x3c04, 0x3c0c};
    const uint16_t want_bf16[] = {0x3f80, 0x4780, 0x4780, 0x3f80, 0x3f80, 0xc000, 0x3f80, 0x3f82};
    for (QuantizeFn fn : {quantize_ref_f16, quantize_act_f16_ref}) {
        const Bytes b = quantize_with(fn, scalar_traits(T::F16), x);
        for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(u16_at(b, 2 * i), want_f16[i]) << i;
    }
    for (QuantizeFn fn : {quantize_ref_bf16, quantize_act_bf16_ref}) {
        const Bytes b = quantize_with(fn, scalar_traits(T::BF16), x);
        for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(u16_at(b, 2 * i), want_bf16[i]) << i;
    }
    // F16C keeps a NaN's sign and top payload bits and makes it quiet.
    const std::vector<float> nans = {f32_from_bits(0x7f812345u), f32_from_bits(0xffc00000u)};
    const Bytes h = quantize_with(quantize_act_f16_ref, scalar_traits(T::F16), nans);
    EXPECT_EQ(u16_at(h, 0), 0x7e09);
    EXPECT_EQ(u16_at(h, 2), 0xfe00);
}

// ---------------------------------------------------------------------------------------------------------------
// Quantization error

// Largest error dequantize(quantize_ref(x)) may have for one block, from the format's step and fp16 rounding.
double block_error_bound(T t, const float* x, int64_t n) {
    double amax = 0.0, mn = 1e300, mx = -1e300;
    for (int64_t j = 0; j < n; ++j) {
        amax = std::max(amax, (double)std::fabs(x[j]));
        mn = std::min(mn, (double)x[j]);
        mx = std::max(mx, (double)x[j]);
    }
    const double h = std::ldexp(1.0, -11);  // fp16 relative rounding
    // Absolute error of a scale stored as fp16 (subnormal fp16 values have a fixed step of 2^-24).
    auto fp16_err = [&](double v) { return std::max(std::fabs(v) * h, std::ldexp(1.0, -25)); };
    const double tiny = 1e-30;
    switch (t) {
        case T::F32: return 0.0;
        case T::F16: return fp16_err(amax);  // blocks of one value: amax is the value
        case T::BF16: return amax * std::ldexp(1.0, -8);
        case T::Q4_0: {  // the value opposite the max can clamp to a full step
            const double d = amax / 8;
            return d * (1.0 + 1e-5) + 8 * fp16_err(d) + tiny;
        }
        case T::Q5_0: {
            const double d = amax / 16;
            return d * (1.0 + 1e-5) + 16 * fp16_err(d) + tiny;
        }
        case T::Q4_1: {
            const double d = (mx - mn) / 15;
            return d * (0.5 + 1e-5) + 15 * fp16_err(d) + fp16_err(mn) + 1e-6 * (mx - mn) + tiny;
        }
        case T::Q5_1: {
            const double d = (mx - mn) / 31;
            return d * (0.5 + 1e-5) + 31 * fp16_err(d) + fp16_err(mn) + 1e-6 * (mx - mn) + tiny;
        }
        case T::Q8_0:
        case T::Q8_1: {
            const double d = amax / 127;
            return d * (0.5 + 1e-5) + 127 * fp16_err(d) + tiny;
        }
        default: return 0.0;
    }
}

TEST(QuantBasicQuantize, RoundTripErrorBounded) {
    for (T t : kAllTypes) {
        const TypeTraits& tt = scalar_traits(t);
        for (int kind = 0; kind < 4; ++kind) {
            for (int64_t nb : {1, 3, 64}) {
                const int64_t n = nb * 32;
                const auto x = random_row(n, 1000u + (uint32_t)kind * 17u + (uint32_t)nb, kind);
                const Bytes q = quantize_with(tt.quantize_ref, tt, x);
                const auto y = dequant(t, q, n);
                double worst_ratio = 0.0;
                for (int64_t b = 0; b < n / tt.block_size; ++b) {
                    const int64_t bs = tt.block_size;
                    const double bound = block_error_bound(t, x.data() + b * bs, bs);
                    for (int64_t j = b * bs; j < (b + 1) * bs; ++j) {
                        const double err = std::fabs((double)y[(size_t)j] - (double)x[(size_t)j]);
                        ASSERT_LE(err, bound) << type_name(t) << " kind " << kind << " element " << j;
                        if (bound > 0) worst_ratio = std::max(worst_ratio, err / bound);
                    }
                }
                // The bound is not slack by orders of magnitude (guards against a lenient test).
                if (t != T::F32 && nb == 64) {
                    EXPECT_GT(worst_ratio, 0.2) << type_name(t) << " kind " << kind;
                }
            }
        }
    }
}

TEST(QuantBasicQuantize, ZeroAndConstantBlocks) {
    const std::vector<float> zeros(64, 0.0f);
    std::vector<float> constant(64, 0.75f);
    for (T t : kAllTypes) {
        const TypeTraits& tt = scalar_traits(t);
        EXPECT_EQ(dequant(t, quantize_with(tt.quantize_ref, tt, zeros), 64), zeros) << type_name(t);
        const auto y = dequant(t, quantize_with(tt.quantize_ref, tt, constant), 64);
        for (float v : y) EXPECT_NEAR(v, 0.75f, 0.75f / 100) << type_name(t);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Activation quantizers

TEST(QuantBasicAct, Avx2BitIdenticalToScalar) {
    if (!cpu_supports(IsaLevel::kAvx2)) GTEST_SKIP() << "AVX2 kernels not tested: this CPU lacks " << isa_missing_features(IsaLevel::kAvx2);
    int rows = 0;
    for (T t : kActTypes) {
        const TypeTraits& tt = scalar_traits(t);
        const QuantizeFn fast = avx2_traits(t).quantize_act;
        const std::vector<int64_t> sizes = tt.block_size == 1 ? std::vector<int64_t>{1, 3, 8, 15, 16, 17, 31, 33, 100, 4096}
                                                              : std::vector<int64_t>{32, 64, 96, 32 * 33, 4096};
        for (int64_t n : sizes) {
            for (int kind = 0; kind < 8; ++kind) {
                const uint32_t seed = 77u + (uint32_t)n * 7u + (uint32_t)kind;
                std::vector<float> x;
                if (kind < 4) x = random_row(n, seed, kind);
                else if (kind == 4) x = n % 32 == 0 ? tie_row(n, seed) : random_row(n, seed, 3);
                else if (kind == 5) x = n % 32 == 0 ? inverse_sensitive_row(n, seed) : random_row(n, seed, 2);
                else if (kind == 6) x = special_row(n, seed);
                else x = random_bits_row(n, seed);
                const Bytes want = quantize_with(tt.quantize_act_ref, tt, x);
                const Bytes got = quantize_with(fast, tt, x);
                ASSERT_EQ(got, want) << type_name(t) << " n=" << n << " kind=" << kind;
                ++rows;
            }
        }
    }
    EXPECT_GT(rows, 100);
}

// The q8 activation formulas restated from llama.cpp's AVX2 quantize_row_q8_0/_q8_1 (finite input only).
TEST(QuantBasicAct, Q8MatchesLlamaCppFormula) {
    int64_t inverse_differs = 0;  // blocks where 127/amax and 1/(amax/127) quantize differently
    for (T t : {T::Q8_0, T::Q8_1}) {
        const TypeTraits& tt = scalar_traits(t);
        const size_t bytes = tt.block_bytes, qs_off = t == T::Q8_0 ? 2 : 4;
        for (int kind = 0; kind < 7; ++kind) {
            const int64_t n = 32 * 256;
            const uint32_t seed = 5u + (uint32_t)kind;
            const auto x = kind < 4 ? random_row(n, seed, kind) : kind < 6 ? tie_row(n, seed) : inverse_sensitive_row(n, seed);
            std::vector<QuantizeFn> fns = {tt.quantize_act_ref};
            if (cpu_supports(IsaLevel::kAvx2)) fns.push_back(avx2_traits(t).quantize_act);
            for (QuantizeFn fn : fns) {
                const Bytes q = quantize_with(fn, tt, x);
                for (int64_t b = 0; b < n / 32; ++b) {
                    const float* xb = x.data() + b * 32;
                    float amax = 0.0f;
                    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
                    const float d = amax / 127.f;
                    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
                    const float id_inv = d != 0.0f ? 1.0f / d : 0.0f;
                    ASSERT_EQ(u16_at(q, (size_t)b * bytes), fp32_to_fp16(d));
                    int sum = 0;
                    bool differs = false;
                    for (int j = 0; j < 32; ++j) {
                        const int want = (int)std::nearbyint(xb[j] * id);
                        differs |= want != (int)std::nearbyint(xb[j] * id_inv);
                        ASSERT_EQ((int8_t)q[(size_t)b * bytes + qs_off + (size_t)j], want) << "block " << b << " j " << j;
                        sum += want;
                    }
                    if (t == T::Q8_1) {
                        ASSERT_EQ(u16_at(q, (size_t)b * bytes + 2), fp32_to_fp16(d * (float)sum));
                    }
                    inverse_differs += differs;
                }
            }
        }
    }
    EXPECT_GT(inverse_differs, 0) << "the data never tells 127/amax from 1/d apart";
}

// ---------------------------------------------------------------------------------------------------------------
// Dot products

struct DotCase {
    Bytes x, y;             // x in the weight type, y in its vec_dot_type
    std::vector<float> xd, yd;  // dequantized
    double exact = 0.0;     // dot of the dequantized rows, in double
    double scale = 0.0;     // sum |xd * yd| (+ the min terms of _1 types): what errors are measured against
    double ref_bound = 0.0; // allowed |vec_dot_ref - exact|
};

DotCase make_case(T t, int64_t n, uint32_t seed, int kind) {
    const TypeTraits& tx = scalar_traits(t);
    const TypeTraits& ty = scalar_traits(tx.vec_dot_type);
    DotCase c;
    const auto xf = random_row(n, seed, kind);
    const auto yf = random_row(n, seed + 1000u, (kind + 1) % 4);
    c.x = quantize_with(tx.quantize_ref, tx, xf);
    c.y = quantize_with(ty.quantize_act_ref, ty, yf);
    c.xd = dequant(t, c.x, n);
    c.yd = dequant(tx.vec_dot_type, c.y, n);
    for (int64_t i = 0; i < n; ++i) {
        c.exact += (double)c.xd[(size_t)i] * (double)c.yd[(size_t)i];
        c.scale += std::fabs((double)c.xd[(size_t)i] * (double)c.yd[(size_t)i]);
    }
    // Float types accumulate in double: one final rounding (plus the dequantized products, exact in double).
    // Quantized types round each block's scale product and accumulate in float.
    const double eps = std::ldexp(1.0, -24);
    c.ref_bound = tx.block_size == 1 ? 4 * eps * c.scale : 2 * eps * (double)(n / 32 + 8) * c.scale;
    if (t == T::Q4_1 || t == T::Q5_1) {
        // The stored s = fp16(d32 * sum(q)) stands in for sum(qy * fp16(d)): allow both roundings per block.
        const size_t xb = tx.block_bytes, yb = ty.block_bytes;
        for (int64_t b = 0; b < n / 32; ++b) {
            const double m = std::fabs(fp16_to_fp32(u16_at(c.x, (size_t)b * xb + 2)));
            double sum_abs_y = 0.0;
            for (int j = 0; j < 32; ++j) sum_abs_y += std::fabs(c.yd[(size_t)(b * 32 + j)]);
            const double s = std::fabs(fp16_to_fp32(u16_at(c.y, (size_t)b * yb + 2)));
            const double term = m * (s + sum_abs_y);
            c.scale += term;
            c.ref_bound += term * std::ldexp(1.0, -10);
        }
    }
    return c;
}

std::vector<int64_t> dot_sizes(T t) {
    if (scalar_traits(t).block_size == 1) return {1, 5, 8, 9, 16, 31, 32, 33, 47, 100, 1000, 4099};
    return {32, 64, 96, 224, 32 * 33, 4096};
}

TEST(QuantBasicVecDot, RefMatchesDequantizedDot) {
    for (T t : kWeightTypes) {
        for (int64_t n : dot_sizes(t)) {
            for (int kind = 0; kind < 4; ++kind) {
                const DotCase c = make_case(t, n, 300u + (uint32_t)n + (uint32_t)kind, kind);
                float s = -1.0f;
                scalar_traits(t).vec_dot_ref(n, &s, c.x.data(), c.y.data());
                EXPECT_LE(std::fabs((double)s - c.exact), c.ref_bound + 1e-30)
                    << type_name(t) << " n=" << n << " kind=" << kind << " got " << s << " want " << c.exact;
            }
        }
    }
}

// Relative error limits of the AVX2 kernels against the scalar reference (relative to sum |x*y|).
// Measured: about 1e-7 for every type at these sizes (only the float accumulation order differs).
double avx2_limit(T) { return 1e-6; }

TEST(QuantBasicVecDot, Avx2MatchesScalar) {
    if (!cpu_supports(IsaLevel::kAvx2)) GTEST_SKIP() << "AVX2 kernels not tested: this CPU lacks " << isa_missing_features(IsaLevel::kAvx2);
    for (T t : kWeightTypes) {
        double worst = 0.0;
        for (int64_t n : dot_sizes(t)) {
            for (int kind = 0; kind < 4; ++kind) {
                const DotCase c = make_case(t, n, 500u + (uint32_t)n + (uint32_t)kind, kind);
                float ref = 0.0f, fast = 0.0f;
                scalar_traits(t).vec_dot_ref(n, &ref, c.x.data(), c.y.data());
                avx2_traits(t).vec_dot(n, &fast, c.x.data(), c.y.data());
                const double rel = std::fabs((double)fast - (double)ref) / (c.scale + 1e-30);
                worst = std::max(worst, rel);
                EXPECT_LE(rel, avx2_limit(t)) << type_name(t) << " n=" << n << " kind=" << kind;
            }
        }
        std::printf("[ info ] %-5s AVX2 vec_dot vs scalar: max error %.3g of sum|x*y|\n", type_name(t).c_str(), worst);
    }
}

// Rows at odd addresses and with padded strides: kernels must not assume alignment.
TEST(QuantBasicVecDot, OneByFourMatchesSingleDots) {
    for (T t : kWeightTypes) {
        const TypeTraits& tx = scalar_traits(t);
        const TypeTraits& ty = scalar_traits(tx.vec_dot_type);
        double worst = 0.0;
        for (int64_t n : dot_sizes(t)) {
            const size_t xbytes = row_bytes(tx, n), ybytes = row_bytes(ty, n);
            const size_t stride = ybytes + 3;
            Bytes xbuf(xbytes + 1), ybuf(stride * 4 + 1);
            std::memcpy(xbuf.data() + 1, quantize_with(tx.quantize_ref, tx, random_row(n, 11u + (uint32_t)n, 1)).data(),
                        xbytes);
            for (int j = 0; j < 4; ++j) {
                const Bytes yq = quantize_with(ty.quantize_act_ref, ty, random_row(n, 21u + (uint32_t)(n * 4 + j), j % 4));
                std::memcpy(ybuf.data() + 1 + (size_t)j * stride, yq.data(), ybytes);
            }
            const uint8_t* x = xbuf.data() + 1;
            const uint8_t* y = ybuf.data() + 1;

            float single[4], four[4];
            for (int j = 0; j < 4; ++j) tx.vec_dot_ref(n, &single[j], x, y + (size_t)j * stride);
            tx.vec_dot_1x4(n, four, x, y, stride);
            for (int j = 0; j < 4; ++j) EXPECT_EQ(four[j], single[j]) << type_name(t) << " scalar n=" << n << " j=" << j;

            if (!cpu_supports(IsaLevel::kAvx2)) continue;
            const TypeTraits& fx = avx2_traits(t);
            for (int j = 0; j < 4; ++j) fx.vec_dot(n, &single[j], x, y + (size_t)j * stride);
            fx.vec_dot_1x4(n, four, x, y, stride);
            for (int j = 0; j < 4; ++j) {
                double scale = 0.0;
                std::vector<float> xd((size_t)n), yd((size_t)n);
                tx.dequantize(x, xd.data(), n);
                ty.dequantize(y + (size_t)j * stride, yd.data(), n);
                for (int64_t i = 0; i < n; ++i) scale += std::fabs((double)xd[(size_t)i] * yd[(size_t)i]);
                if (tx.vec_dot_type == T::Q8_1) {
                    for (int64_t b = 0; b < n / 32; ++b) {
                        scale += std::fabs(fp16_to_fp32(u16_at(xbuf, 1 + (size_t)b * tx.block_bytes + 2))) *
                                 std::fabs(fp16_to_fp32(u16_at(ybuf, 1 + (size_t)j * stride + (size_t)b * 36 + 2)));
                    }
                }
                const double rel = std::fabs((double)four[j] - (double)single[j]) / (scale + 1e-30);
                worst = std::max(worst, rel);
                EXPECT_LE(rel, avx2_limit(t)) << type_name(t) << " avx2 n=" << n << " j=" << j;
            }
        }
        if (cpu_supports(IsaLevel::kAvx2)) {
            std::printf("[ info ] %-5s AVX2 1x4 vs AVX2 single: max error %.3g of sum|x*y|\n", type_name(t).c_str(),
                        worst);
        }
    }
}

TEST(QuantBasicVecDot, ZeroRowsGiveZero) {
    for (T t : kWeightTypes) {
        const TypeTraits& tx = scalar_traits(t);
        const TypeTraits& ty = scalar_traits(tx.vec_dot_type);
        const int64_t n = 128;
        const std::vector<float> zeros(n, 0.0f);
        const Bytes x = quantize_with(tx.quantize_ref, tx, zeros);
        const Bytes y = quantize_with(ty.quantize_act_ref, ty, random_row(n, 3, 0));
        for (const TypeTraits* table : {tables().scalar, tables().avx2}) {
            if (table == tables().avx2 && !cpu_supports(IsaLevel::kAvx2)) continue;
            float s = 1.0f;
            table[(int)t].vec_dot(n, &s, x.data(), y.data());
            EXPECT_EQ(s, 0.0f) << type_name(t);
        }
    }
}

}  // namespace
}  // namespace llama_crab
