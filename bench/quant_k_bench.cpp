// Micro-benchmarks of the k-quant kernels: dot products (scalar, AVX2, AVX2 1x4) over a 4096-value row held in
// L1/L2, and the Q8_K activation quantizer. Counters report values per second per column.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "ops/quant_k.h"
#include "ops/tensor_type.h"

namespace {

using namespace llama_crab;

constexpr int64_t kN = 4096;

struct Data {
    std::vector<uint8_t> x, y;  // one weight row, four Q8_K rows
    size_t stride = 0;
};

Data make_data(TensorType type) {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> f(4 * kN);
    for (float& v : f) v = dist(rng);
    const TypeTraits& t = type_traits(type);
    Data d;
    d.x.resize(row_bytes(t, kN));
    t.quantize_ref(f.data(), d.x.data(), kN);
    d.stride = (size_t)(kN / kQK_K) * sizeof(BlockQ8K);
    d.y.resize(4 * d.stride);
    quantize_q8_k_ref(f.data(), d.y.data(), 4 * kN);
    return d;
}

enum class Kernel { kRef, kFast, kFast1x4 };

void BM_dot(benchmark::State& state, TensorType type, Kernel kernel) {
    const TypeTraits& t = type_traits(type);
    if (kernel != Kernel::kRef && !cpu_has_avx2()) {
        state.SkipWithError("no AVX2");
        return;
    }
    const Data d = make_data(type);
    float s[4];
    for (auto _ : state) {
        switch (kernel) {
            case Kernel::kRef: t.vec_dot_ref(kN, s, d.x.data(), d.y.data()); break;
            case Kernel::kFast: t.vec_dot(kN, s, d.x.data(), d.y.data()); break;
            case Kernel::kFast1x4: t.vec_dot_1x4(kN, s, d.x.data(), d.y.data(), d.stride); break;
        }
        benchmark::DoNotOptimize(s);
    }
    const int cols = kernel == Kernel::kFast1x4 ? 4 : 1;
    state.counters["values/s"] =
        benchmark::Counter((double)kN * cols * (double)state.iterations(), benchmark::Counter::kIsRate);
}

void BM_quantize_q8_k(benchmark::State& state, bool fast) {
    if (fast && !cpu_has_avx2()) {
        state.SkipWithError("no AVX2");
        return;
    }
    std::mt19937 rng(2);
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> f(kN);
    for (float& v : f) v = dist(rng);
    std::vector<uint8_t> q((size_t)(kN / kQK_K) * sizeof(BlockQ8K));
    for (auto _ : state) {
        (fast ? quantize_q8_k_avx2 : quantize_q8_k_ref)(f.data(), q.data(), kN);
        benchmark::DoNotOptimize(q.data());
    }
    state.counters["values/s"] =
        benchmark::Counter((double)kN * (double)state.iterations(), benchmark::Counter::kIsRate);
}

#define LC_DOT_BENCH(T)                                                         \
    BENCHMARK_CAPTURE(BM_dot, T##_ref, TensorType::T, Kernel::kRef);            \
    BENCHMARK_CAPTURE(BM_dot, T##_fast, TensorType::T, Kernel::kFast);          \
    BENCHMARK_CAPTURE(BM_dot, T##_fast_1x4, TensorType::T, Kernel::kFast1x4);
LC_DOT_BENCH(Q2_K)
LC_DOT_BENCH(Q3_K)
LC_DOT_BENCH(Q4_K)
LC_DOT_BENCH(Q5_K)
LC_DOT_BENCH(Q6_K)
#undef LC_DOT_BENCH

BENCHMARK_CAPTURE(BM_quantize_q8_k, ref, false);
BENCHMARK_CAPTURE(BM_quantize_q8_k, avx2, true);

}  // namespace

BENCHMARK_MAIN();
