// Tokenisation throughput (bytes/s) on ~1 MB of mixed text (English prose, code, numbers, whitespace runs,
// Cyrillic, CJK, emoji) for the Llama SentencePiece and Llama 3 BPE vocabularies, plus a few other BPE families.
// Test data: $LLAMA_CRAB_TESTDATA_DIR, default /work/shared/testdata.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "vocab/vocab.h"

namespace {

std::string testdata_dir() {
    const char* env = std::getenv("LLAMA_CRAB_TESTDATA_DIR");
    return env ? env : "/work/shared/testdata";
}

std::shared_ptr<const llama_crab::Vocab> load(const std::string& name) {
    static std::map<std::string, std::shared_ptr<const llama_crab::Vocab>> cache;
    auto it = cache.find(name);
    if (it != cache.end()) return it->second;
    auto file = llama_crab::GgufFile::open(testdata_dir() + "/vocab/" + name);
    if (!file.ok()) return nullptr;
    auto vocab = llama_crab::Vocab::from_gguf(*file);
    if (!vocab.ok()) return nullptr;
    return cache[name] = *vocab;
}

// Deterministic ~1 MB mix: paragraphs of several kinds, each repeated with a varying number so that the text is not
// one paragraph copied.
const std::string& mixed_text() {
    static const std::string text = [] {
        const char* parts[] = {
            "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
            "One day, she saw a big, red ball. \"Can I play with it?\" she asked her mom. It's a sunny day!\n\n",
            "int main(int argc, char** argv) {\n    for (int i = 0; i < argc; ++i) {\n        printf(\"%s\\n\", "
            "argv[i]);\n    }\n    return 0;\n}\n",
            "The quick brown fox jumps over the lazy dog 1234567890 times; 3.14159 != 2.71828 && x <= y.\n",
            "    indented   text\twith\ttabs   and    many     spaces  \n\n\n",
            "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80! "
            "\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8" "apple" "\xe5\xb7\xa5\xe4\xbd\x9c" "1314151"
            "\xe5\xa4\xa9\xef\xbd\x9e \xf0\x9f\x9a\x80 (normal) \xf0\x9f\x98\xb6\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f "
            "\xe2\x9c\x85 C\xe1\xbb\xad" "a Vi\xe1\xbb\x87t \xc3\x84pfel\n",
        };
        std::string s;
        for (int i = 0; s.size() < (1u << 20); ++i) {
            s += parts[i % 5];
            s += std::to_string(i * 7919 % 100003);
            s += ' ';
        }
        return s;
    }();
    return text;
}

void run(benchmark::State& state, const std::string& vocab_name) {
    auto vocab = load(vocab_name);
    if (!vocab) {
        std::string message = "cannot load ";
        message += testdata_dir();
        message += "/vocab/";
        message += vocab_name;
        state.SkipWithError(message.c_str());
        return;
    }
    const std::string& text = mixed_text();
    size_t n_tokens = 0;
    for (auto _ : state) {
        auto ids = vocab->tokenize(text, /*add_special=*/true, /*parse_special=*/false);
        n_tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
    state.counters["tokens"] = static_cast<double>(n_tokens);
    state.counters["MB"] = static_cast<double>(text.size()) / 1e6;
}

void run_detok(benchmark::State& state, const std::string& vocab_name) {
    auto vocab = load(vocab_name);
    if (!vocab) {
        state.SkipWithError("cannot load vocab");
        return;
    }
    const std::string& text = mixed_text();
    const auto ids = vocab->tokenize(text, false, false);
    for (auto _ : state) {
        std::string out = vocab->detokenize(ids, false, false);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
}

}  // namespace

BENCHMARK_CAPTURE(run, llama_spm, std::string("ggml-vocab-llama-spm.gguf"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, llama_bpe, std::string("ggml-vocab-llama-bpe.gguf"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, qwen2, std::string("ggml-vocab-qwen2.gguf"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, gpt_2, std::string("ggml-vocab-gpt-2.gguf"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, deepseek_llm, std::string("ggml-vocab-deepseek-llm.gguf"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run_detok, llama_spm, std::string("ggml-vocab-llama-spm.gguf"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run_detok, llama_bpe, std::string("ggml-vocab-llama-bpe.gguf"))->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
