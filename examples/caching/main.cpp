// caching: the manual, low-level prefix-cache pattern.
//
//   tokenize -> Batch::add_sequence -> Context::decode -> state_seq_export -> Cache::store
//   ... later, in a fresh sequence: Cache::lookup -> state_seq_import -> decode only the tokens after the hit
//
// Two questions share a long opening (think: a system prompt). The first turn is computed and its prompt state
// stored in a RamCache and in a DiskCache; the second turn restores the shared part from each cache, prefills only
// its own tokens, and generates the same text as recomputing everything.
//
// Usage: example_caching MODEL [CACHE_DIR]     (CACHE_DIR defaults to a folder in the system temp dir)
//
// Llama::create_completion does all of this automatically once a cache is attached with Llama::set_cache; this
// example shows the pieces for code that drives a Context itself.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "llama_crab/cache.h"
#include "llama_crab/context.h"
#include "llama_crab/llama.h"

using namespace llama_crab;

namespace {

constexpr SeqId kSeq = 0;
constexpr int kGenerate = 12;

const char* kOpening =
    "Once upon a time, there was a little robot named Bolt who lived in a big city with tall buildings. "
    "Every morning Bolt walked to the park, said hello to the birds and";
const char* kQuestion1 = " looked for his friend the cat.";
const char* kQuestion2 = " sat under a big green tree.";

// Decodes tokens[from..] of the sequence at positions from.., keeping the logits of the last one.
Status prefill(Context& ctx, const std::vector<Token>& tokens, size_t from) {
    Batch batch;
    batch.add_sequence(std::vector<Token>(tokens.begin() + (std::ptrdiff_t)from, tokens.end()), kSeq,
                       /*logits_all=*/false, (Pos)from);
    return ctx.decode(batch);
}

// Greedy generation after a prefill of n_past tokens.
Result<std::vector<Token>> generate(Context& ctx, const Llama& llama, size_t n_past) {
    std::vector<Token> out;
    for (int i = 0; i < kGenerate; ++i) {
        const float* logits = ctx.logits_ith(-1);
        const Token next = (Token)(std::max_element(logits, logits + ctx.n_vocab()) - logits);
        if (llama.is_eog(next)) break;
        out.push_back(next);
        Batch batch;
        batch.add(next, (Pos)(n_past + out.size() - 1), {kSeq}, true);
        LC_TRY(ctx.decode(batch));
    }
    return out;
}

// A new turn: restore the longest cached prefix into an empty sequence, prefill the rest, generate.
Result<std::vector<Token>> turn_from_cache(Context& ctx, Cache& cache, const Llama& llama, const std::vector<Token>& prompt,
                                           size_t* reused) {
    ctx.kv_clear();
    size_t n_past = 0;
    if (auto hit = cache.lookup(prompt, ctx.model().fingerprint(), ctx.kv_layout())) {
        // At least the last prompt token must be decoded: its logits start the generation.
        n_past = std::min((size_t)hit->n_past, prompt.size() - 1);
        const SequenceState state = n_past < hit->state.n_tokens() ? hit->state.prefix(n_past) : std::move(hit->state);
        LC_TRY(ctx.state_seq_import(kSeq, state));
    }
    *reused = n_past;
    LC_TRY(prefill(ctx, prompt, n_past));
    return generate(ctx, llama, prompt.size());
}

Result<std::unique_ptr<Context>> make_context(const Llama& llama) {
    ContextParams params;
    params.n_ctx = 512;
    return Context::create(llama.model_ptr(), params);
}

int run(const std::string& model_path, const std::string& cache_dir) {
    // Llama gives the tokenizer; the example drives its own Context on the same (shared, mmapped) model.
    auto llama = Llama::load(LlamaParams(model_path).with_n_ctx(64));
    if (!llama.ok()) return std::fprintf(stderr, "error: %s\n", llama.error().to_string().c_str()), 1;
    auto ctx = make_context(*llama);
    if (!ctx.ok()) return std::fprintf(stderr, "error: %s\n", ctx.error().to_string().c_str()), 1;

    // Keys are token ids, never text: tokenize once, use the ids everywhere.
    const std::vector<Token> prompt1 = llama->tokenize(std::string(kOpening) + kQuestion1);
    const std::vector<Token> prompt2 = llama->tokenize(std::string(kOpening) + kQuestion2);

    // Turn 1: compute, then store the prompt's state in both caches.
    if (auto st = prefill(**ctx, prompt1, 0); !st.ok()) return std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str()), 1;
    auto gen1 = generate(**ctx, *llama, prompt1.size());
    if (!gen1.ok()) return std::fprintf(stderr, "error: %s\n", gen1.error().to_string().c_str()), 1;
    std::printf("turn 1: %zu prompt tokens, generated:%s\n", prompt1.size(), llama->detokenize(*gen1).c_str());

    auto state = (*ctx)->state_seq_export(kSeq);  // prompt + generated tokens
    if (!state.ok()) return std::fprintf(stderr, "error: %s\n", state.error().to_string().c_str()), 1;
    CacheEntry entry{state->prefix(prompt1.size()), (int32_t)prompt1.size()};
    auto ram = std::make_shared<RamCache>(64u << 20);
    auto disk = DiskCache::open(cache_dir, 256u << 20);
    if (!disk.ok()) return std::fprintf(stderr, "error: %s\n", disk.error().to_string().c_str()), 1;
    for (Cache* cache : {static_cast<Cache*>(ram.get()), static_cast<Cache*>(disk->get())}) {
        if (auto st = cache->store(prompt1, entry); !st.ok()) return std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str()), 1;
    }
    std::printf("stored %zu tokens: RAM cache holds %zu bytes, disk cache %zu bytes (%s)\n", prompt1.size(), ram->size_bytes(),
                (*disk)->size_bytes(), cache_dir.c_str());

    // Turn 2 from the RAM cache, in the same context (its sequence emptied first).
    size_t reused = 0;
    auto gen_ram = turn_from_cache(**ctx, *ram, *llama, prompt2, &reused);
    if (!gen_ram.ok()) return std::fprintf(stderr, "error: %s\n", gen_ram.error().to_string().c_str()), 1;
    std::printf("ram hit: reused %zu of %zu prompt tokens, generated:%s\n", reused, prompt2.size(), llama->detokenize(*gen_ram).c_str());

    // Turn 2 from the disk cache through a new handle and a fresh context, as another process would do it.
    disk->reset();
    auto disk2 = DiskCache::open(cache_dir, 256u << 20);
    auto ctx2 = make_context(*llama);
    if (!disk2.ok() || !ctx2.ok()) return std::fprintf(stderr, "error: cannot reopen the cache or make a context\n"), 1;
    auto gen_disk = turn_from_cache(**ctx2, **disk2, *llama, prompt2, &reused);
    if (!gen_disk.ok()) return std::fprintf(stderr, "error: %s\n", gen_disk.error().to_string().c_str()), 1;
    std::printf("disk hit: reused %zu of %zu prompt tokens, generated:%s\n", reused, prompt2.size(), llama->detokenize(*gen_disk).c_str());

    // The reference: turn 2 recomputed from scratch.
    (*ctx2)->kv_clear();
    if (auto st = prefill(**ctx2, prompt2, 0); !st.ok()) return std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str()), 1;
    auto gen_ref = generate(**ctx2, *llama, prompt2.size());
    if (!gen_ref.ok()) return std::fprintf(stderr, "error: %s\n", gen_ref.error().to_string().c_str()), 1;
    std::printf("recomputed: generated:%s\n", llama->detokenize(*gen_ref).c_str());
    const bool same = *gen_ram == *gen_ref && *gen_disk == *gen_ref;
    std::printf("cached turns match the recomputed one: %s\n", same ? "yes" : "no");
    const CacheStats rs = ram->stats(), ds = (*disk2)->stats();
    std::printf("stats: ram %llu hits %llu misses, disk %llu hits %llu misses\n", (unsigned long long)rs.hits,
                (unsigned long long)rs.misses, (unsigned long long)ds.hits, (unsigned long long)ds.misses);
    return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s MODEL [CACHE_DIR]\n", argv[0]);
        return 2;
    }
    const std::string dir = argc == 3 ? argv[2] : (std::filesystem::temp_directory_path() / "llama-crab-example-cache").string();
    return run(argv[1], dir);
}
