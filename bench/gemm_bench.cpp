// Micro-benchmarks of the GEMM / GEMV kernels (ops/gemm.h) and of matmul.
//  - BM_panel: one panel (8 or 16 rows) against 64 tokens (n = 2048, in cache): kernel compute rate; items = MACs.
//  - BM_pack: repacking one panel.
//  - BM_gemv: a matrix of n_out rows x 2048 against one token; bytes = weight bytes (large n_out: memory bound).
//  - BM_matmul / BM_matmul_old: whole matmuls on a pool (threads = arg), the new kernels vs the TypeTraits dot
//    products (1x4 + single), for prompt (tokens > 3) and decode shapes.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "ops/gemm.h"
#include "ops/matmul.h"
#include "util/thread_pool.h"

namespace llama_crab {
namespace {

using T = TensorType;

std::vector<uint8_t> random_matrix(T type, int64_t n_rows, int64_t n) {
    std::mt19937 rng(1);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> row((size_t)n);
    const TypeTraits& t = type_traits(type);
    std::vector<uint8_t> out(row_bytes(t, n) * (size_t)n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
        for (float& v : row) v = g(rng);
        t.quantize_ref(row.data(), out.data() + row_bytes(t, n) * (size_t)r, n);
    }
    return out;
}

std::vector<float> random_act(int64_t n) {
    std::mt19937 rng(2);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x((size_t)n);
    for (float& v : x) v = g(rng);
    return x;
}

void BM_panel(benchmark::State& state, T type) {
    if (!cpu_has_avx2()) return state.SkipWithError("no AVX2");
    const int n_cols = (int)state.range(0);
    const int64_t n = 2048, n_tok = 64;
    const GemmKernels& k = *gemm_kernels(type, cpu_isa());
    const int pr = k.panel_rows;
    const auto w = random_matrix(type, pr, n);
    const auto x = random_act(n * n_tok);
    std::vector<uint8_t> act(k.act_row_bytes(n) * n_tok), panel(k.panel_bytes(n));
    for (int64_t t = 0; t < n_tok; ++t) k.convert_act(x.data() + t * n, act.data() + k.act_row_bytes(n) * t, n);
    k.pack(w.data(), row_bytes(type_traits(type), n), pr, n, panel.data());
    std::vector<float> y((size_t)(pr * n_tok));
    for (auto _ : state) {
        for (int64_t t = 0; t + n_cols <= n_tok; t += n_cols) {
            k.panel(n, panel.data(), pr, act.data() + k.act_row_bytes(n) * t, k.act_row_bytes(n), n_cols, y.data() + pr * t, pr);
        }
        benchmark::DoNotOptimize(y.data());
    }
    state.SetItemsProcessed(state.iterations() * pr * n * (n_tok / n_cols * n_cols));
}

void BM_pack(benchmark::State& state, T type) {
    if (!cpu_has_avx2()) return state.SkipWithError("no AVX2");
    const int64_t n = 2048;
    const GemmKernels& k = *gemm_kernels(type, cpu_isa());
    const auto w = random_matrix(type, k.panel_rows, n);
    std::vector<uint8_t> panel(k.panel_bytes(n));
    for (auto _ : state) {
        k.pack(w.data(), row_bytes(type_traits(type), n), k.panel_rows, n, panel.data());
        benchmark::DoNotOptimize(panel.data());
    }
    state.SetItemsProcessed(state.iterations() * k.panel_rows * n);
}

// Packing every panel of a matrix larger than L3 (weights streamed from memory, as in prompt processing).
void BM_pack_stream(benchmark::State& state, T type) {
    if (!cpu_has_avx2()) return state.SkipWithError("no AVX2");
    const int64_t n = 2048, n_out = 16384;
    const GemmKernels& k = *gemm_kernels(type, cpu_isa());
    const auto w = random_matrix(type, n_out, n);
    const size_t rb = row_bytes(type_traits(type), n);
    std::vector<uint8_t> panel(k.panel_bytes(n));
    for (auto _ : state) {
        for (int64_t r = 0; r < n_out; r += k.panel_rows) k.pack(w.data() + rb * (size_t)r, rb, k.panel_rows, n, panel.data());
        benchmark::DoNotOptimize(panel.data());
    }
    state.SetBytesProcessed(state.iterations() * (int64_t)w.size());
}

void BM_gemv(benchmark::State& state, T type) {
    if (!cpu_has_avx2()) return state.SkipWithError("no AVX2");
    const int64_t n = 2048, n_out = state.range(0);
    const GemmKernels& k = *gemm_kernels(type, cpu_isa());
    const auto w = random_matrix(type, n_out, n);
    const auto x = random_act(n);
    std::vector<uint8_t> act(k.act_row_bytes(n));
    k.convert_act(x.data(), act.data(), n);
    std::vector<float> y((size_t)n_out);
    const size_t rb = row_bytes(type_traits(type), n);
    for (auto _ : state) {
        k.gemv(n, w.data(), rb, n_out, act.data(), act.size(), 1, y.data(), n_out);
        benchmark::DoNotOptimize(y.data());
    }
    state.SetBytesProcessed(state.iterations() * (int64_t)w.size());
}

// The GEMV / GEMM crossover of a decode step of arg tokens on one thread: the ffn_up shape of the 1.1B model
// (5632 x 2048, 6.5 MB at Q4_0: streamed from L3 / memory), through the GEMV (rows in place) or through panels
// (pack + panel kernel, as matmul's panel path does). items = MACs.
void BM_decode_step(benchmark::State& state, T type, bool panels) {
    if (!cpu_has_avx2()) return state.SkipWithError("no AVX2");
    const int64_t n = 2048, n_out = 5632, n_tok = state.range(0);
    const GemmKernels& k = *gemm_kernels(type, cpu_isa());
    const auto w = random_matrix(type, n_out, n);
    const auto x = random_act(n * n_tok);
    const size_t ab = k.act_row_bytes(n), rb = row_bytes(type_traits(type), n);
    std::vector<uint8_t> act(ab * (size_t)n_tok), panel(k.panel_bytes(n));
    for (int64_t t = 0; t < n_tok; ++t) k.convert_act(x.data() + t * n, act.data() + ab * (size_t)t, n);
    std::vector<float> y((size_t)(n_out * n_tok));
    for (auto _ : state) {
        if (panels) {
            for (int64_t r = 0; r < n_out; r += k.panel_rows) {
                k.pack(w.data() + rb * (size_t)r, rb, k.panel_rows, n, panel.data());
                k.panel(n, panel.data(), k.panel_rows, act.data(), ab, (int)n_tok, y.data() + r, n_out);
            }
        } else {
            k.gemv(n, w.data(), rb, n_out, act.data(), ab, n_tok, y.data(), n_out);
        }
        benchmark::DoNotOptimize(y.data());
    }
    state.SetItemsProcessed(state.iterations() * n * n_out * n_tok);
}

// The TypeTraits path as it was before the GEMM kernels (for comparison): 1x4 dots over tokens.
void old_matmul(ThreadPool& pool, const MatrixRef& w, const std::vector<uint8_t>& act, size_t act_row, int64_t n_tok,
                float* y) {
    const int64_t n_threads = pool.size();
    int64_t rpt = std::max<int64_t>(4, w.n_out / (n_threads * 8));
    rpt = (rpt + 3) / 4 * 4;
    const int64_t n_rt = (w.n_out + rpt - 1) / rpt, n_tt = (n_tok + 63) / 64;
    pool.parallel_for(n_rt * n_tt, [&](int64_t task, int) {
        const int64_t r0 = task % n_rt * rpt, r1 = std::min(w.n_out, r0 + rpt);
        const int64_t t0 = task / n_rt * 64, t1 = std::min(n_tok, t0 + 64);
        for (int64_t r = r0; r < r1; ++r) {
            const uint8_t* wr = w.data + (size_t)r * w.row_bytes;
            int64_t t = t0;
            float s[4];
            for (; t + 4 <= t1; t += 4) {
                w.traits->vec_dot_1x4(w.n_in, s, wr, act.data() + (size_t)t * act_row, act_row);
                for (int j = 0; j < 4; ++j) y[(t + j) * w.n_out + r] = s[j];
            }
            for (; t < t1; ++t) w.traits->vec_dot(w.n_in, &y[t * w.n_out + r], wr, act.data() + (size_t)t * act_row);
        }
    });
}

void BM_matmul(benchmark::State& state, T type, bool old) {
    const int64_t n_in = state.range(0), n_out = state.range(1), n_tok = state.range(2);
    const int n_threads = (int)state.range(3);
    ThreadPool pool(n_threads);
    const TypeTraits& t = type_traits(type);
    const auto w = random_matrix(type, n_out, n_in);
    const auto x = random_act(n_in * n_tok);
    const MatrixRef m{&t, w.data(), n_in, n_out, row_bytes(t, n_in)};
    std::vector<float> y((size_t)(n_out * n_tok));
    MatmulScratch scratch;
    const TypeTraits& at = type_traits(t.vec_dot_type);
    std::vector<uint8_t> act(row_bytes(at, n_in) * (size_t)n_tok);
    for (auto _ : state) {
        if (old) {
            for (int64_t i = 0; i < n_tok; ++i) at.quantize_act(x.data() + i * n_in, act.data() + row_bytes(at, n_in) * i, n_in);
            old_matmul(pool, m, act, row_bytes(at, n_in), n_tok, y.data());
        } else {
            matmul(pool, m, x.data(), n_in, n_tok, y.data(), n_out, scratch);
        }
        benchmark::DoNotOptimize(y.data());
    }
    state.SetItemsProcessed(state.iterations() * n_in * n_out * n_tok);
}

#define LC_KERNEL_BENCH(TYPE, NAME)                                                                     \
    BENCHMARK_CAPTURE(BM_panel, NAME, TYPE)->Arg(1)->Arg(4)->Arg(16);                                    \
    BENCHMARK_CAPTURE(BM_pack, NAME, TYPE);                                                             \
    BENCHMARK_CAPTURE(BM_pack_stream, NAME, TYPE);                                                      \
    BENCHMARK_CAPTURE(BM_gemv, NAME, TYPE)->Arg(256)->Arg(8192);                                        \
    BENCHMARK_CAPTURE(BM_matmul, NAME, TYPE, false)->Args({2048, 2048, 512, 2})->Args({2048, 5632, 1, 2})->UseRealTime(); \
    BENCHMARK_CAPTURE(BM_matmul, NAME##_old, TYPE, true)->Args({2048, 2048, 512, 2})->Args({2048, 5632, 1, 2})->UseRealTime();

LC_KERNEL_BENCH(T::Q4_0, q4_0)
#define LC_DECODE_BENCH(TYPE, NAME)                                                                                 \
    BENCHMARK_CAPTURE(BM_decode_step, NAME##_gemv, TYPE, false)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(12)->Arg(16); \
    BENCHMARK_CAPTURE(BM_decode_step, NAME##_panel, TYPE, true)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(12)->Arg(16);
LC_DECODE_BENCH(T::Q4_0, q4_0)
LC_DECODE_BENCH(T::Q8_0, q8_0)
LC_DECODE_BENCH(T::Q4_K, q4_k)
LC_DECODE_BENCH(T::Q6_K, q6_k)
// The 52M model's prompt shapes (ffn_up / ffn_down / wq), one and two threads.
BENCHMARK_CAPTURE(BM_matmul, q4_0_small, T::Q4_0, false)
    ->Args({512, 1536, 512, 1})->Args({1536, 512, 512, 1})->Args({512, 512, 512, 1})
    ->Args({512, 1536, 512, 2})->Args({1536, 512, 512, 2})->Args({512, 512, 512, 2})->UseRealTime();
LC_KERNEL_BENCH(T::Q8_0, q8_0)
LC_KERNEL_BENCH(T::Q4_K, q4_k)
LC_KERNEL_BENCH(T::Q6_K, q6_k)
LC_KERNEL_BENCH(T::F16, f16)
LC_KERNEL_BENCH(T::F32, f32)

}  // namespace
}  // namespace llama_crab

BENCHMARK_MAIN();
