// Micro-benchmarks of the basic types: vec_dot (scalar vs AVX2), the 1x4 kernels, and activation quantizers.
// Rows are 4096 values, the hidden size of a 7B model; a working set of a few rows stays in cache, so these
// numbers are compute throughput, not memory bandwidth.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "ops/quant_basic.h"

namespace llama_crab {
namespace {

constexpr int64_t kN = 4096;

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

std::vector<float> random_floats(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x((size_t)n);
    for (float& v : x) v = g(rng);
    return x;
}

std::vector<uint8_t> quantized(const TypeTraits& t, QuantizeFn fn, int64_t n, uint32_t seed) {
    std::vector<uint8_t> out(row_bytes(t, n));
    fn(random_floats(n, seed).data(), out.data(), n);
    return out;
}

void BM_vec_dot(benchmark::State& state, TensorType type, bool avx2) {
    if (avx2 && !cpu_has_avx2()) {
        state.SkipWithError("no AVX2");
        return;
    }
    const TypeTraits& tx = (avx2 ? tables().avx2 : tables().scalar)[(int)type];
    const TypeTraits& ty = tables().scalar[(int)tx.vec_dot_type];
    const auto x = quantized(tx, tx.quantize_ref, kN, 1);
    const auto y = quantized(ty, ty.quantize_act_ref, kN, 2);
    float s = 0.0f;
    for (auto _ : state) {
        tx.vec_dot(kN, &s, x.data(), y.data());
        benchmark::DoNotOptimize(s);
    }
    state.SetItemsProcessed(state.iterations() * kN);
    state.SetBytesProcessed(state.iterations() * (int64_t)row_bytes(tx, kN));
}

void BM_vec_dot_1x4(benchmark::State& state, TensorType type, bool avx2) {
    if (avx2 && !cpu_has_avx2()) {
        state.SkipWithError("no AVX2");
        return;
    }
    const TypeTraits& tx = (avx2 ? tables().avx2 : tables().scalar)[(int)type];
    const TypeTraits& ty = tables().scalar[(int)tx.vec_dot_type];
    const auto x = quantized(tx, tx.quantize_ref, kN, 1);
    const size_t stride = row_bytes(ty, kN);
    std::vector<uint8_t> y;
    for (uint32_t j = 0; j < 4; ++j) {
        const auto row = quantized(ty, ty.quantize_act_ref, kN, 10 + j);
        y.insert(y.end(), row.begin(), row.end());
    }
    float s[4];
    for (auto _ : state) {
        tx.vec_dot_1x4(kN, s, x.data(), y.data(), stride);
        benchmark::DoNotOptimize(s);
    }
    state.SetItemsProcessed(state.iterations() * kN * 4);  // multiply-adds
}

void BM_quantize_act(benchmark::State& state, TensorType type, bool avx2) {
    if (avx2 && !cpu_has_avx2()) {
        state.SkipWithError("no AVX2");
        return;
    }
    const TypeTraits& t = (avx2 ? tables().avx2 : tables().scalar)[(int)type];
    const auto x = random_floats(kN, 3);
    std::vector<uint8_t> out(row_bytes(t, kN));
    for (auto _ : state) {
        t.quantize_act(x.data(), out.data(), kN);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * kN);
}

#define LC_DOT_BENCH(T)                                                          \
    BENCHMARK_CAPTURE(BM_vec_dot, T##_scalar, TensorType::T, false);            \
    BENCHMARK_CAPTURE(BM_vec_dot, T##_avx2, TensorType::T, true);               \
    BENCHMARK_CAPTURE(BM_vec_dot_1x4, T##_scalar, TensorType::T, false);        \
    BENCHMARK_CAPTURE(BM_vec_dot_1x4, T##_avx2, TensorType::T, true)

LC_DOT_BENCH(F32);
LC_DOT_BENCH(F16);
LC_DOT_BENCH(BF16);
LC_DOT_BENCH(Q4_0);
LC_DOT_BENCH(Q4_1);
LC_DOT_BENCH(Q5_0);
LC_DOT_BENCH(Q5_1);
LC_DOT_BENCH(Q8_0);

#define LC_ACT_BENCH(T)                                                          \
    BENCHMARK_CAPTURE(BM_quantize_act, T##_scalar, TensorType::T, false);       \
    BENCHMARK_CAPTURE(BM_quantize_act, T##_avx2, TensorType::T, true)

LC_ACT_BENCH(F16);
LC_ACT_BENCH(BF16);
LC_ACT_BENCH(Q8_0);
LC_ACT_BENCH(Q8_1);

}  // namespace
}  // namespace llama_crab

BENCHMARK_MAIN();
