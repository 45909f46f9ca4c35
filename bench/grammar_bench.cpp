// Cost per token of the grammar stage (GrammarSampler::apply) on the 32k Llama SentencePiece vocabulary with the
// generic JSON grammar, at three kinds of position: the start of a document (few tokens allowed), inside a string
// (almost every token allowed) and inside a number. "Full" checks every candidate (top_k 0, mirostat); "TopK40"
// is the default chain's case (the grammar told k = 40 stops after the 40 most likely allowed tokens).
// Goal (issue 13): <= 10% of a 1B model's token time, about 2 ms at 50 tok/s.
// Test data: $LLAMA_CRAB_TESTDATA_DIR, default /work/shared/testdata.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "llama_crab/grammar.h"
#include "vocab/vocab.h"

namespace {

using namespace llama_crab;

struct Setup {
    std::vector<std::string> pieces;
    std::vector<Token> eog;
    std::shared_ptr<const Vocab> vocab;
};

const Setup* setup() {
    static const std::unique_ptr<Setup> s = []() -> std::unique_ptr<Setup> {
        const char* env = std::getenv("LLAMA_CRAB_TESTDATA_DIR");
        const std::string dir = env ? env : "/work/shared/testdata";
        auto file = GgufFile::open(dir + "/vocab/ggml-vocab-llama-spm.gguf");
        if (!file.ok()) return nullptr;
        auto vocab = Vocab::from_gguf(*file);
        if (!vocab.ok()) return nullptr;
        auto out = std::make_unique<Setup>();
        out->vocab = *vocab;
        for (int32_t t = 0; t < out->vocab->n_tokens(); ++t) {
            out->pieces.push_back(out->vocab->token_to_piece(t, false));
            if (out->vocab->is_eog(t)) out->eog.push_back(t);
        }
        return out;
    }();
    return s.get();
}

// A sampler advanced through `prefix` one byte-ish token at a time (single-character pieces where they exist).
std::unique_ptr<GrammarSampler> sampler_at(const Setup& s, const std::string& prefix) {
    auto g = std::move(GrammarSampler::create(json_grammar(), s.pieces, s.eog)).value();
    for (char c : prefix) {
        for (Token t = 0; t < (Token)s.pieces.size(); ++t) {
            if (s.pieces[(size_t)t] == std::string(1, c)) {
                g->accept(t);
                break;
            }
        }
    }
    return g;
}

std::vector<float> random_logits(size_t n) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> logits(n);
    for (float& l : logits) l = nd(rng);
    return logits;
}

void run(benchmark::State& state, const std::string& prefix, int32_t top_k) {
    const Setup* s = setup();
    if (s == nullptr) return state.SkipWithError("no test data (set LLAMA_CRAB_TESTDATA_DIR)");
    auto g = sampler_at(*s, prefix);
    g->set_top_k(top_k);
    const std::vector<float> logits = random_logits(s->pieces.size());
    Candidates c;
    size_t kept = 0;
    for (auto _ : state) {
        c.fill(logits.data(), (int64_t)logits.size());
        g->apply(c);
        kept = c.size();
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["vocab"] = (double)s->pieces.size();
    state.counters["kept"] = (double)kept;
    state.SetItemsProcessed(state.iterations());
}

void BM_GrammarFull_Start(benchmark::State& st) { run(st, "", 0); }
void BM_GrammarFull_InString(benchmark::State& st) { run(st, "{\"name\": \"Li", 0); }
void BM_GrammarFull_InNumber(benchmark::State& st) { run(st, "{\"a\": [12", 0); }
void BM_GrammarTopK40_Start(benchmark::State& st) { run(st, "", 40); }
void BM_GrammarTopK40_InString(benchmark::State& st) { run(st, "{\"name\": \"Li", 40); }
void BM_GrammarTopK40_InNumber(benchmark::State& st) { run(st, "{\"a\": [12", 40); }

// The first visit of a state: no cached mask, the transitions memo still warm from the prefix.
void run_cold(benchmark::State& state, const std::string& prefix, int32_t top_k) {
    const Setup* s = setup();
    if (s == nullptr) return state.SkipWithError("no test data (set LLAMA_CRAB_TESTDATA_DIR)");
    const std::vector<float> logits = random_logits(s->pieces.size());
    Candidates c;
    for (auto _ : state) {
        state.PauseTiming();
        auto g = sampler_at(*s, prefix);
        g->set_top_k(top_k);
        c.fill(logits.data(), (int64_t)logits.size());
        state.ResumeTiming();
        g->apply(c);
        benchmark::DoNotOptimize(c.data());
    }
}

void BM_GrammarColdFull_Start(benchmark::State& st) { run_cold(st, "", 0); }
void BM_GrammarColdFull_InString(benchmark::State& st) { run_cold(st, "{\"name\": \"Li", 0); }
void BM_GrammarColdTopK40_Start(benchmark::State& st) { run_cold(st, "", 40); }
void BM_GrammarColdTopK40_InString(benchmark::State& st) { run_cold(st, "{\"name\": \"Li", 40); }

// A whole document, token by token from a fresh sampler: apply + accept per token, cold states included.
// Time per item = average grammar cost per generated token.
void run_document(benchmark::State& state, int32_t top_k) {
    const Setup* s = setup();
    if (s == nullptr) return state.SkipWithError("no test data (set LLAMA_CRAB_TESTDATA_DIR)");
    const std::string doc = R"({"name": "Lily", "age": 7, "friends": [{"name": "Tom", "likes": ["red balls", "the park"]},
 {"name": "Sue", "score": -12.5e3, "ok": true}], "story": "Once upon a time, there was a little girl.", "x": null})";
    const std::vector<int32_t> tokens = s->vocab->tokenize(doc, false, false);
    const std::vector<float> logits = random_logits(s->pieces.size());
    Candidates c;
    for (auto _ : state) {
        state.PauseTiming();
        auto g = std::move(GrammarSampler::create(json_grammar(), s->pieces, s->eog)).value();
        g->set_top_k(top_k);
        state.ResumeTiming();
        for (int32_t t : tokens) {
            c.fill(logits.data(), (int64_t)logits.size());
            g->apply(c);
            g->accept(t);
        }
    }
    state.SetItemsProcessed(state.iterations() * (int64_t)tokens.size());
    state.counters["tokens"] = (double)tokens.size();
}
void BM_GrammarDocumentFull(benchmark::State& st) { run_document(st, 0); }
void BM_GrammarDocumentTopK40(benchmark::State& st) { run_document(st, 40); }

// Making the sampler (what every constrained request pays once): grammar compile + vocabulary tables.
void BM_GrammarCreate(benchmark::State& state) {
    const Setup* s = setup();
    if (s == nullptr) return state.SkipWithError("no test data (set LLAMA_CRAB_TESTDATA_DIR)");
    for (auto _ : state) benchmark::DoNotOptimize(GrammarSampler::create(json_grammar(), s->pieces, s->eog));
}

// Baseline: filling the candidates alone (the part of the step the grammar does not add).
void BM_FillOnly(benchmark::State& state) {
    std::vector<float> logits(32000, 0.5f);
    Candidates c;
    for (auto _ : state) {
        c.fill(logits.data(), (int64_t)logits.size());
        benchmark::DoNotOptimize(c.data());
    }
}

BENCHMARK(BM_GrammarFull_Start)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarFull_InString)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarFull_InNumber)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarTopK40_Start)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarTopK40_InString)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarTopK40_InNumber)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarColdFull_Start)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarColdFull_InString)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarColdTopK40_Start)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarColdTopK40_InString)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrammarDocumentFull)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GrammarDocumentTopK40)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GrammarCreate)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FillOnly)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
