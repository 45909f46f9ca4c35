// Sampling cost per token for typical vocabulary sizes.
#include "llama_crab/sampling.h"

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

namespace {

using namespace llama_crab;

std::vector<float> make_logits(int64_t n) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = nd(rng);
    return x;
}

void run_chain(benchmark::State& state, const SamplingParams& p) {
    const int64_t n = state.range(0);
    const auto x = make_logits(n);
    SamplerChain chain = std::move(SamplerChain::from_params(p)).value();
    for (auto _ : state) benchmark::DoNotOptimize(chain.sample_and_accept(x.data(), n));
    state.SetItemsProcessed(state.iterations());
}

void BM_Greedy(benchmark::State& state) {
    SamplingParams p;
    p.temperature = 0.0f;
    run_chain(state, p);
}

void BM_DefaultChain(benchmark::State& state) {
    SamplingParams p;
    p.seed = 1;
    p.repeat_penalty = 1.1f;
    run_chain(state, p);
}

void BM_TopPNoTopK(benchmark::State& state) {
    SamplingParams p;
    p.seed = 1;
    p.top_k = 0;
    run_chain(state, p);
}

void BM_MirostatV2(benchmark::State& state) {
    SamplingParams p;
    p.seed = 1;
    p.mirostat = 2;
    run_chain(state, p);
}

void BM_Logprobs(benchmark::State& state) {
    const int64_t n = state.range(0);
    const auto x = make_logits(n);
    Logprobs out;
    for (auto _ : state) {
        compute_logprobs(x.data(), n, 5, 7, out);
        benchmark::DoNotOptimize(out.token_logprob);
    }
}

BENCHMARK(BM_Greedy)->Arg(32000)->Arg(152064);
BENCHMARK(BM_DefaultChain)->Arg(32000)->Arg(152064);
BENCHMARK(BM_TopPNoTopK)->Arg(32000)->Arg(152064);
BENCHMARK(BM_MirostatV2)->Arg(32000)->Arg(152064);
BENCHMARK(BM_Logprobs)->Arg(32000)->Arg(152064);

}  // namespace

BENCHMARK_MAIN();
