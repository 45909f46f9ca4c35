// Tests of the GEMM / GEMV kernels (ops/gemm.h) and of matmul: every SIMD level (AVX2, AVX-512) against the scalar
// references of the same layout (activation conversion and panel packing bit-identical, products within
// float-reordering limits; a level the CPU lacks is skipped, naming the missing features), the references against
// the TypeTraits dot products, extreme codes, and matmul / matmul_multi against a dequantize-then-f32 product
// on ragged shapes and several thread counts.
#include "ops/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "ops/quant_basic.h"
#include "ops/quant_k.h"
#include "util/thread_pool.h"

namespace llama_crab {
namespace {

using T = TensorType;
using Bytes = std::vector<uint8_t>;

const T kTypes[] = {T::Q4_0, T::Q8_0, T::Q4_K, T::Q6_K, T::F16, T::F32};

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, scale);
    std::vector<float> x((size_t)n);
    for (float& v : x) v = g(rng);
    // a few outliers, as real activations have
    for (int64_t i = 0; i < n; i += 97) x[(size_t)i] *= 6.0f;
    return x;
}

Bytes quantize_rows(T type, const std::vector<float>& x, int64_t n_rows, int64_t n) {
    const TypeTraits& t = type_traits(type);
    Bytes out(row_bytes(t, n) * (size_t)n_rows);
    for (int64_t r = 0; r < n_rows; ++r) t.quantize_ref(x.data() + r * n, out.data() + row_bytes(t, n) * (size_t)r, n);
    return out;
}

// The activations of n_cols rows in a kernel table's format.
Bytes convert_cols(const GemmKernels& k, const std::vector<float>& x, int64_t n_cols, int64_t n) {
    Bytes out(k.act_row_bytes(n) * (size_t)n_cols);
    for (int64_t c = 0; c < n_cols; ++c) k.convert_act(x.data() + c * n, out.data() + k.act_row_bytes(n) * (size_t)c, n);
    return out;
}

// The same activations in the TypeTraits format (for vec_dot).
Bytes quantize_act_cols(T act_type, const std::vector<float>& x, int64_t n_cols, int64_t n) {
    const TypeTraits& t = type_traits(act_type);
    Bytes out(row_bytes(t, n) * (size_t)n_cols);
    for (int64_t c = 0; c < n_cols; ++c) t.quantize_act_ref(x.data() + c * n, out.data() + row_bytes(t, n) * (size_t)c, n);
    return out;
}

// sum |w_i x_i| over the dequantized weight row and the float activations: the scale of the rounding error of any
// summation order.
double abs_dot(T type, const uint8_t* wrow, const float* x, int64_t n) {
    std::vector<float> w((size_t)n);
    type_traits(type).dequantize(wrow, w.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs((double)w[(size_t)i] * x[i]);
    return s;
}

int64_t block_of(T type) { return type_traits(type).block_size; }

struct TypeLevel {
    T type;
    IsaLevel level;
};

std::vector<TypeLevel> type_levels() {
    std::vector<TypeLevel> out;
    for (IsaLevel level : {IsaLevel::kAvx2, IsaLevel::kAvx512}) {
        for (T type : kTypes) out.push_back({type, level});
    }
    return out;
}

class GemmTypes : public ::testing::TestWithParam<TypeLevel> {};

std::string param_name(const ::testing::TestParamInfo<TypeLevel>& info) {
    return std::string(type_traits(info.param.type).name) + "_" + isa_name(info.param.level);
}

std::string skip_reason(IsaLevel level) {
    return std::string(isa_name(level)) + " kernels not tested: this CPU lacks " + isa_missing_features(level);
}

TEST_P(GemmTypes, ActivationConversionIsBitIdentical) {
    const auto [type, level] = GetParam();
    if (!cpu_supports(level)) GTEST_SKIP() << skip_reason(level);
    const GemmKernels& ref = *gemm_kernels_ref(type, level);
    const GemmKernels& fast = *gemm_kernels(type, level);
    for (int64_t n : {block_of(type), 4 * block_of(type), 22 * block_of(type)}) {
        const auto x = random_floats(3 * n, 7);
        EXPECT_EQ(convert_cols(ref, x, 3, n), convert_cols(fast, x, 3, n)) << n;
    }
    // The ActQ8 values are the Q8_0 activation quantization.
    if (ref.act_type == T::Q8_0) {
        const int64_t n = 128;
        const auto x = random_floats(n, 8);
        const Bytes a = convert_cols(ref, x, 1, n);
        const Bytes q = quantize_act_cols(T::Q8_0, x, 1, n);
        for (int64_t b = 0; b < n / 32; ++b) {
            BlockQ8_0 blk;
            std::memcpy(&blk, q.data() + b * sizeof(BlockQ8_0), sizeof(blk));
            EXPECT_EQ(std::memcmp(a.data() + 32 * b, blk.qs, 32), 0);
            float d;
            int32_t s;
            std::memcpy(&d, a.data() + 32 * (n / 32) + 4 * b, 4);
            std::memcpy(&s, a.data() + 36 * (n / 32) + 4 * b, 4);
            EXPECT_EQ(d, fp16_to_fp32(blk.d));
            int32_t sum = 0;
            for (int8_t v : blk.qs) sum += v;
            EXPECT_EQ(s, sum);
        }
    }
}

TEST_P(GemmTypes, PackingIsBitIdentical) {
    const auto [type, level] = GetParam();
    if (!cpu_supports(level)) GTEST_SKIP() << skip_reason(level);
    const GemmKernels& ref = *gemm_kernels_ref(type, level);
    const GemmKernels& fast = *gemm_kernels(type, level);
    const int pr = ref.panel_rows;
    ASSERT_EQ(fast.panel_rows, pr);
    for (int64_t n : {(int64_t)256, (int64_t)768, (int64_t)(block_of(type) == 1 ? 37 : 256)}) {
        const auto w = random_floats(pr * n, 11);
        const Bytes q = quantize_rows(type, w, pr, n);
        const size_t rb = row_bytes(type_traits(type), n);
        for (int n_rows = 1; n_rows <= pr; ++n_rows) {
            Bytes a(ref.panel_bytes(n), 0x55), b(ref.panel_bytes(n), 0xAA);
            ref.pack(q.data(), rb, n_rows, n, a.data());
            fast.pack(q.data(), rb, n_rows, n, b.data());
            EXPECT_EQ(a, b) << "n_rows " << n_rows << " n " << n;
        }
    }
}

// The scalar references against the TypeTraits dot product, and the level's kernels against the references, for
// every column count the tiles produce and partial panels.
TEST_P(GemmTypes, KernelsMatchVecDot) {
    const auto [type, level] = GetParam();
    const TypeTraits& wt = type_traits(type);
    const GemmKernels& ref = *gemm_kernels_ref(type, level);
    const GemmKernels* fast = cpu_supports(level) ? gemm_kernels(type, level) : nullptr;
    const int pr = ref.panel_rows;
    for (int64_t n : {block_of(type), 3 * block_of(type), (int64_t)5632}) {
        if (n % block_of(type) != 0) continue;
        for (int n_rows : {pr, pr - 3, 9, 8, 1}) {
            if (n_rows > pr) continue;
            const int n_cols = kMaxCols;
            const auto wf = random_floats(pr * n, 21 + (uint32_t)n);
            const auto xf = random_floats(n_cols * n, 33 + (uint32_t)n, 0.5f);
            const Bytes w = quantize_rows(type, wf, pr, n);
            const size_t rb = row_bytes(wt, n);
            const Bytes act = convert_cols(ref, xf, n_cols, n);
            const size_t ab = ref.act_row_bytes(n);
            const Bytes vd_act = quantize_act_cols(wt.vec_dot_type, xf, n_cols, n);
            const size_t vb = row_bytes(type_traits(wt.vec_dot_type), n);

            Bytes panel(ref.panel_bytes(n));
            ref.pack(w.data(), rb, n_rows, n, panel.data());
            Bytes fpanel(ref.panel_bytes(n));
            if (fast != nullptr) fast->pack(w.data(), rb, n_rows, n, fpanel.data());
            for (int nc : {1, 2, 3, 4, 5, 6, 7, 9, kMaxCols}) {
                const size_t ny = (size_t)(pr * n_cols);
                std::vector<float> y_ref(ny, -1.0f), y_gemv(ny, -1.0f), y_fast(ny, -1.0f), y_fgemv(ny, -1.0f);
                ref.panel(n, panel.data(), n_rows, act.data(), ab, nc, y_ref.data(), pr);
                ref.gemv(n, w.data(), rb, n_rows, act.data(), ab, nc, y_gemv.data(), pr);
                if (fast != nullptr) {
                    fast->panel(n, fpanel.data(), n_rows, act.data(), ab, nc, y_fast.data(), pr);
                    fast->gemv(n, w.data(), rb, n_rows, act.data(), ab, nc, y_fgemv.data(), pr);
                }
                for (int c = 0; c < n_cols; ++c) {
                    for (int r = 0; r < pr; ++r) {
                        const size_t i = (size_t)(c * pr + r);
                        if (c >= nc || r >= n_rows) {  // untouched
                            EXPECT_EQ(y_ref[i], -1.0f);
                            EXPECT_EQ(y_gemv[i], -1.0f);
                            if (fast != nullptr) {
                                EXPECT_EQ(y_fast[i], -1.0f);
                                EXPECT_EQ(y_fgemv[i], -1.0f);
                            }
                            continue;
                        }
                        float vd;
                        wt.vec_dot_ref(n, &vd, w.data() + rb * (size_t)r, vd_act.data() + vb * (size_t)c);
                        const double scale = abs_dot(type, w.data() + rb * (size_t)r, xf.data() + c * n, n);
                        const double tol = 2e-6 * scale + 1e-30;
                        EXPECT_NEAR(y_ref[i], vd, tol) << wt.name << " n=" << n << " r=" << r << " c=" << c;
                        EXPECT_NEAR(y_gemv[i], vd, tol) << wt.name << " gemv n=" << n << " r=" << r << " c=" << c;
                        if (fast != nullptr) {
                            EXPECT_NEAR(y_fast[i], vd, tol) << wt.name << " " << isa_name(level) << " n=" << n << " r=" << r << " c=" << c;
                            EXPECT_NEAR(y_fgemv[i], vd, tol) << wt.name << " " << isa_name(level) << " gemv n=" << n << " r=" << r;
                        }
                    }
                }
                if (HasFailure()) return;
            }
        }
    }
    if (fast == nullptr) GTEST_SKIP() << "references checked; " << skip_reason(level);
}

// A token's GEMV result must not depend on how many tokens share the call (the server batches up to 16 decode
// tokens and promises the same tokens as a solo run): every column equals, bit for bit, the same column computed
// alone, for column counts that fill whole groups of columns and leave 1, 2 or 3 over.
TEST_P(GemmTypes, GemvColumnsAreIndependentOfTheirNeighbours) {
    const auto [type, level] = GetParam();
    const TypeTraits& wt = type_traits(type);
    for (bool fast : {false, true}) {
        if (fast && !cpu_supports(level)) GTEST_SKIP() << "references checked; " << skip_reason(level);
        const GemmKernels& k = fast ? *gemm_kernels(type, level) : *gemm_kernels_ref(type, level);
        const int64_t n = 7 * block_of(type) > 256 ? 7 * block_of(type) : 896;
        if (n % block_of(type) != 0) continue;
        for (int n_cols : {3, 6, 9, 16}) {
            const int n_rows = 5;
            const auto wf = random_floats(n_rows * n, 7);
            const auto xf = random_floats(n_cols * n, 8, 0.5f);
            const Bytes w = quantize_rows(type, wf, n_rows, n);
            const size_t rb = row_bytes(wt, n);
            const Bytes act = convert_cols(k, xf, n_cols, n);
            const size_t ab = k.act_row_bytes(n);
            std::vector<float> together((size_t)(n_rows * n_cols)), alone((size_t)n_rows);
            k.gemv(n, w.data(), rb, n_rows, act.data(), ab, n_cols, together.data(), n_rows);
            for (int c = 0; c < n_cols; ++c) {
                k.gemv(n, w.data(), rb, n_rows, act.data() + ab * (size_t)c, ab, 1, alone.data(), n_rows);
                for (int r = 0; r < n_rows; ++r) {
                    EXPECT_EQ(together[(size_t)(c * n_rows + r)], alone[(size_t)r]) << wt.name << " " << (fast ? isa_name(level) : "ref") << " r=" << r << " c=" << c << " of " << n_cols;
                }
            }
        }
    }
}

// Weights at their largest codes against activations at +-127: the int16 partial sums must not saturate.
TEST_P(GemmTypes, ExtremeCodesDoNotSaturate) {
    const auto [type, level] = GetParam();
    if (type == T::F16 || type == T::F32) GTEST_SKIP() << "float weights: nothing to saturate";
    const TypeTraits& wt = type_traits(type);
    const int64_t n = 512;
    const size_t rb = row_bytes(wt, n);
    for (int sign : {1, -1}) {
        Bytes w(rb * 8);
        std::mt19937 rng(5);
        for (size_t i = 0; i < w.size(); ++i) w[i] = (uint8_t)(rng() & 0xff);
        // Max codes everywhere except the scales, which stay finite and positive.
        const fp16_t one = fp32_to_fp16(0.01f);
        for (int r = 0; r < 8; ++r) {
            uint8_t* row = w.data() + rb * (size_t)r;
            for (int64_t b = 0; b < n / wt.block_size; ++b) {
                uint8_t* blk = row + (size_t)b * wt.block_bytes;
                switch (type) {
                    case T::Q4_0:
                        std::memcpy(blk, &one, 2);
                        std::memset(blk + 2, r % 2 ? 0xff : 0x00, 16);  // codes 15 or 0
                        break;
                    case T::Q8_0:
                        std::memcpy(blk, &one, 2);
                        std::memset(blk + 2, r % 2 ? 0x7f : 0x81, 32);  // +127 or -127
                        if (r == 7) std::memset(blk + 2, 0x80, 32);     // -128 (not made by the quantizer)
                        break;
                    case T::Q4_K: {
                        BlockQ4K* q = reinterpret_cast<BlockQ4K*>(blk);
                        q->d = one;
                        q->dmin = one;
                        std::memset(q->scales, 0xff, sizeof(q->scales));  // scales and mins 63
                        std::memset(q->qs, 0xff, sizeof(q->qs));
                        break;
                    }
                    case T::Q6_K: {
                        BlockQ6K* q = reinterpret_cast<BlockQ6K*>(blk);
                        q->d = one;
                        std::memset(q->ql, 0xff, sizeof(q->ql));
                        std::memset(q->qh, 0xff, sizeof(q->qh));
                        for (int k = 0; k < 16; ++k) q->scales[k] = (int8_t)(k % 2 ? 127 : -128);
                        break;
                    }
                    default: break;
                }
            }
        }
        std::vector<float> xf((size_t)n * 2, (float)sign);
        for (int64_t i = 0; i < n; ++i) xf[(size_t)(n + i)] = (i % 2 ? 1.0f : -1.0f) * (float)sign;
        const GemmKernels& ref = *gemm_kernels_ref(type, level);
        const Bytes act = convert_cols(ref, xf, 2, n);
        const size_t ab = ref.act_row_bytes(n);
        const Bytes vd_act = quantize_act_cols(wt.vec_dot_type, xf, 2, n);
        const size_t vb = row_bytes(type_traits(wt.vec_dot_type), n);
        std::vector<const GemmKernels*> ks = {&ref};
        if (cpu_supports(level)) ks.push_back(gemm_kernels(type, level));
        for (const GemmKernels* k : ks) {
            Bytes panel(k->panel_bytes(n));
            k->pack(w.data(), rb, 8, n, panel.data());
            std::vector<float> yp(16), yg(16);
            k->panel(n, panel.data(), 8, act.data(), ab, 2, yp.data(), 8);
            k->gemv(n, w.data(), rb, 8, act.data(), ab, 2, yg.data(), 8);
            for (int c = 0; c < 2; ++c) {
                for (int r = 0; r < 8; ++r) {
                    float vd;
                    wt.vec_dot_ref(n, &vd, w.data() + rb * (size_t)r, vd_act.data() + vb * (size_t)c);
                    const double tol = 1e-5 * std::fabs(vd) + 1e-6;
                    EXPECT_NEAR(yp[(size_t)(c * 8 + r)], vd, tol) << wt.name << " r=" << r << " c=" << c;
                    EXPECT_NEAR(yg[(size_t)(c * 8 + r)], vd, tol) << wt.name << " gemv r=" << r << " c=" << c;
                }
            }
        }
    }    if (!cpu_supports(level)) GTEST_SKIP() << "references checked; " << skip_reason(level);
}

INSTANTIATE_TEST_SUITE_P(All, GemmTypes, ::testing::ValuesIn(type_levels()), param_name);

// ---- matmul ----

struct Case {
    T type;
    int64_t n_in, n_out, n_tokens;
};

// y = W x through dequantized weights and float activations, in double.
std::vector<double> naive_matmul(T type, const Bytes& w, int64_t n_in, int64_t n_out, const std::vector<float>& x,
                                 int64_t n_tokens) {
    const TypeTraits& t = type_traits(type);
    std::vector<float> wf((size_t)(n_in * n_out));
    for (int64_t r = 0; r < n_out; ++r) t.dequantize(w.data() + row_bytes(t, n_in) * (size_t)r, wf.data() + r * n_in, n_in);
    std::vector<double> y((size_t)(n_out * n_tokens));
    for (int64_t tk = 0; tk < n_tokens; ++tk) {
        for (int64_t r = 0; r < n_out; ++r) {
            double s = 0;
            for (int64_t i = 0; i < n_in; ++i) s += (double)wf[(size_t)(r * n_in + i)] * x[(size_t)(tk * n_in + i)];
            y[(size_t)(tk * n_out + r)] = s;
        }
    }
    return y;
}

MatrixRef matrix_of(T type, const Bytes& w, int64_t n_in, int64_t n_out) {
    const TypeTraits& t = type_traits(type);
    return MatrixRef{&t, w.data(), n_in, n_out, row_bytes(t, n_in)};
}

void check_matmul(const Case& cs, ThreadPool& pool, MatmulScratch& scratch) {
    const TypeTraits& wt = type_traits(cs.type);
    const auto wf = random_floats(cs.n_in * cs.n_out, 100 + (uint32_t)cs.n_out);
    const auto xf = random_floats(cs.n_in * cs.n_tokens, 200 + (uint32_t)cs.n_tokens, 0.3f);
    const Bytes w = quantize_rows(cs.type, wf, cs.n_out, cs.n_in);
    const int64_t y_stride = cs.n_out + 3;  // a gap between token rows: nothing may be written there
    std::vector<float> y((size_t)(y_stride * cs.n_tokens), 1234.5f);
    matmul(pool, matrix_of(cs.type, w, cs.n_in, cs.n_out), xf.data(), cs.n_in, cs.n_tokens, y.data(), y_stride, scratch);

    const auto ref = naive_matmul(cs.type, w, cs.n_in, cs.n_out, xf, cs.n_tokens);
    const Bytes vd_act = quantize_act_cols(wt.vec_dot_type, xf, cs.n_tokens, cs.n_in);
    const size_t vb = row_bytes(type_traits(wt.vec_dot_type), cs.n_in);
    const size_t rb = row_bytes(wt, cs.n_in);
    for (int64_t t = 0; t < cs.n_tokens; ++t) {
        for (int64_t r = 0; r < y_stride; ++r) {
            const float got = y[(size_t)(t * y_stride + r)];
            if (r >= cs.n_out) {
                ASSERT_EQ(got, 1234.5f) << "wrote outside the output";
                continue;
            }
            const double scale = abs_dot(cs.type, w.data() + rb * (size_t)r, xf.data() + t * cs.n_in, cs.n_in);
            // Against the TypeTraits dot product: float reordering only.
            float vd;
            wt.vec_dot(cs.n_in, &vd, w.data() + rb * (size_t)r, vd_act.data() + vb * (size_t)t);
            ASSERT_NEAR(got, vd, 2e-6 * scale) << wt.name << " r=" << r << " t=" << t << " n_in=" << cs.n_in;
            // Against the float product: the activation quantization error (8-bit, with outliers setting the scale).
            ASSERT_NEAR(got, ref[(size_t)(t * cs.n_out + r)], 5e-2 * scale) << wt.name << " r=" << r << " t=" << t;
        }
    }
}

TEST(Matmul, MatchesReferenceOnRaggedShapes) {
    MatmulScratch scratch;
    for (int n_threads : {1, 2, 3}) {
        ThreadPool pool(n_threads);
        for (T type : {T::Q4_0, T::Q8_0, T::Q4_K, T::Q6_K, T::F16, T::Q5_0, T::F32}) {
            const int64_t b = type_traits(type).block_size == 1 ? 32 : type_traits(type).block_size;
            for (const auto& [n_in_blocks, n_out, n_tokens] :
                 std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {2, 13, 2}, {3, 29, 3}, {2, 37, 5},
                                                                    {1, 8, 4}, {3, 45, 8}, {4, 67, 19}, {2, 100, 70}}) {
                check_matmul(Case{type, b * n_in_blocks, n_out, n_tokens}, pool, scratch);
                if (HasFatalFailure()) return;
            }
        }
    }
}

TEST(Matmul, LargeShapesSplitOverRowsAndTokens) {
    MatmulScratch scratch;
    ThreadPool pool(2);
    check_matmul(Case{T::Q4_0, 2048, 72, 300}, pool, scratch);  // several token chunks
    check_matmul(Case{T::Q4_K, 1536, 203, 33}, pool, scratch);
    check_matmul(Case{T::Q6_K, 512, 1001, 2}, pool, scratch);
}

TEST(Matmul, MultiEqualsSeparateCalls) {
    ThreadPool pool(2);
    MatmulScratch s1, s2;
    const int64_t n_in = 512;
    const T types[] = {T::Q4_0, T::Q6_K, T::F16, T::Q4_K};
    const int64_t outs[] = {40, 17, 9, 64};
    std::vector<Bytes> ws;
    for (int j = 0; j < 4; ++j) ws.push_back(quantize_rows(types[j], random_floats(n_in * outs[j], 300 + (uint32_t)j), outs[j], n_in));
    for (int64_t n_tokens : {1, 2, 6, 9}) {  // 6: GEMV for Q4_K, panels for Q4_0 in one call
        const auto x = random_floats(n_in * n_tokens, 400, 0.3f);
        std::vector<std::vector<float>> ya(4), yb(4);
        MatmulJob jobs[4];
        for (int j = 0; j < 4; ++j) {
            ya[(size_t)j].assign((size_t)(outs[j] * n_tokens), 0.0f);
            yb[(size_t)j].assign((size_t)(outs[j] * n_tokens), 0.0f);
            jobs[j] = MatmulJob{matrix_of(types[j], ws[(size_t)j], n_in, outs[j]), ya[(size_t)j].data(), outs[j]};
            matmul(pool, jobs[j].w, x.data(), n_in, n_tokens, yb[(size_t)j].data(), outs[j], s2);
        }
        matmul_multi(pool, jobs, 4, x.data(), n_in, n_tokens, s1);
        for (int j = 0; j < 4; ++j) EXPECT_EQ(ya[(size_t)j], yb[(size_t)j]) << "job " << j << " n_tokens " << n_tokens;
    }
}

}  // namespace
}  // namespace llama_crab
