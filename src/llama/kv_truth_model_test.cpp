// What Llama believes its KV cache holds comes from the context's cells (issue 12): work done through
// llama.context() can never make a completion reuse a prefix that is not there, or report one as cached.
#include <gtest/gtest.h>

#include <algorithm>

#include "llama_crab/cache.h"
#include "llama_crab/chat_session.h"
#include "llama_crab/llama.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

constexpr const char* kPrompt = "Once upon a time there was a little girl named Lily. She liked to play";

std::unique_ptr<Llama> load_stories(int32_t n_ctx = 256) {
    auto l = Llama::load(LlamaParams(testing::testdata_path("models/stories260K.gguf").string()).with_n_ctx(n_ctx).with_n_threads(2));
    EXPECT_TRUE(l.ok()) << l.error().to_string();
    return l.ok() ? std::make_unique<Llama>(std::move(l).value()) : nullptr;
}

// Decodes tokens[from..] into sequence 0 of the context from position `from`: the caching guide's manual path.
Status decode_from(Context& ctx, const std::vector<Token>& tokens, size_t from) {
    Batch b;
    b.add_sequence(std::vector<Token>(tokens.begin() + (std::ptrdiff_t)from, tokens.end()), 0, false, (Pos)from);
    return ctx.decode(b);
}

class KvTruth : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
        llama_ = load_stories();
        ASSERT_TRUE(llama_);
        auto fresh = load_stories();
        ASSERT_TRUE(fresh);
        auto out = fresh->create_completion(kPrompt, CompletionOptions::greedy(24));
        ASSERT_TRUE(out.ok()) << out.error().to_string();
        fresh_ = *out;
    }
    std::unique_ptr<Llama> llama_;
    Completion fresh_;
};

TEST_F(KvTruth, KvClearThroughTheContextIsSeen) {
    auto a = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(a.ok()) << a.error().to_string();
    llama_->context().kv_clear();
    EXPECT_TRUE(llama_->kv_tokens().empty());
    auto b = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    EXPECT_EQ(b->n_cached_prompt_tokens, 0);
    EXPECT_EQ(b->tokens, fresh_.tokens);
    EXPECT_EQ(b->text, fresh_.text);
}

TEST_F(KvTruth, SeqRmThroughTheContextIsSeen) {
    auto a = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(a.ok()) << a.error().to_string();
    // Keep positions 0..4 only: at most those 5 tokens can be reused.
    ASSERT_TRUE(llama_->context().seq_rm(0, 5, -1));
    EXPECT_EQ(llama_->kv_tokens().size(), 5u);
    auto b = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    EXPECT_EQ(b->n_cached_prompt_tokens, 5);
    EXPECT_EQ(b->tokens, fresh_.tokens);
}

TEST_F(KvTruth, SystemPromptDecodedThroughTheContextIsReused) {
    const std::vector<Token> prompt = llama_->tokenize(kPrompt);
    const std::vector<Token> system(prompt.begin(), prompt.begin() + 8);
    ASSERT_TRUE(decode_from(llama_->context(), system, 0).ok());
    EXPECT_EQ(llama_->kv_tokens(), system);
    auto b = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    EXPECT_LE(b->n_cached_prompt_tokens, (int32_t)system.size());
    EXPECT_EQ(b->tokens, fresh_.tokens);
    EXPECT_EQ(b->text, fresh_.text);
}

TEST_F(KvTruth, OtherTokensDecodedThroughTheContextAreNotReused) {
    const std::vector<Token> other = llama_->tokenize("The dog ran to the park and");
    ASSERT_TRUE(decode_from(llama_->context(), other, 0).ok());
    auto b = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    // Both start with BOS: at most that one token is shared.
    EXPECT_LE(b->n_cached_prompt_tokens, 1);
    EXPECT_EQ(b->tokens, fresh_.tokens);
}

TEST_F(KvTruth, SequenceNotStartingAtZeroIsNotReused) {
    const std::vector<Token> prompt = llama_->tokenize(kPrompt);
    Batch b;
    for (size_t i = 0; i < 6; ++i) b.add(prompt[i], (Pos)(i + 3), {0}, false);
    ASSERT_TRUE(llama_->context().decode(b).ok());
    EXPECT_TRUE(llama_->kv_tokens().empty());
    auto out = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(out.ok()) << out.error().to_string();
    EXPECT_EQ(out->n_cached_prompt_tokens, 0);
    EXPECT_EQ(out->tokens, fresh_.tokens);
}

// docs/caching.md, "The manual path", run on llama.context() for two turns, then the automatic path.
TEST_F(KvTruth, ManualMultiTurnLoopThenCreateCompletion) {
    Context& ctx = llama_->context();
    RamCache cache(64u << 20);
    for (const char* text : {"Once upon a time there was a robot. It liked to", "Once upon a time there was a robot. It went to"}) {
        const std::vector<Token> prompt = llama_->tokenize(text);
        ctx.kv_clear();
        size_t n_past = 0;
        if (auto hit = cache.lookup(prompt, ctx.model().fingerprint(), ctx.kv_layout())) {
            n_past = std::min((size_t)hit->n_past, prompt.size() - 1);
            if (n_past < hit->state.n_tokens()) hit->state = hit->state.prefix(n_past);
            ASSERT_TRUE(ctx.state_seq_import(0, hit->state).ok());
        }
        ASSERT_TRUE(decode_from(ctx, prompt, n_past).ok());
        auto state = ctx.state_seq_export(0);
        ASSERT_TRUE(state.ok());
        ASSERT_TRUE(cache.store(prompt, CacheEntry{std::move(state).value(), (int32_t)prompt.size()}).ok());
    }
    const size_t held = llama_->kv_tokens().size();
    auto out = llama_->create_completion(kPrompt, CompletionOptions::greedy(24));
    ASSERT_TRUE(out.ok()) << out.error().to_string();
    EXPECT_LE(out->n_cached_prompt_tokens, (int32_t)held);
    EXPECT_EQ(out->tokens, fresh_.tokens);
    EXPECT_EQ(out->text, fresh_.text);
}

TEST_F(KvTruth, ShiftThroughTheContextIsNeverStoredInTheCache) {
    auto cache = std::make_shared<RamCache>(64u << 20);
    const std::vector<Token> prompt = llama_->tokenize(kPrompt);
    ASSERT_TRUE(decode_from(llama_->context(), prompt, 0).ok());
    // Drop positions [2, 4) and move the rest back: the tokens after the cut keep attention over dropped ones.
    Context& ctx = llama_->context();
    ASSERT_TRUE(ctx.seq_rm(0, 2, 4));
    ctx.seq_add(0, 4, -1, -2);
    std::vector<Token> shifted = prompt;
    shifted.erase(shifted.begin() + 2, shifted.begin() + 4);
    ASSERT_EQ(llama_->kv_tokens(), shifted);

    llama_->set_cache(cache);
    CompletionOptions o = CompletionOptions::greedy(4);
    o.cache_generated = true;
    std::vector<Token> next = shifted;
    next.push_back(prompt.back());
    auto out = llama_->create_completion_tokens(next, o);
    ASSERT_TRUE(out.ok()) << out.error().to_string();
    EXPECT_EQ(out->n_cached_prompt_tokens, (int32_t)shifted.size());
    // Only the two unshifted tokens may be stored: a lookup of the whole prompt finds at most those.
    auto hit = cache->lookup(next, llama_->model().fingerprint(), ctx.kv_layout());
    if (hit) {
        EXPECT_LE(hit->n_past, 2);
    }
}

TEST_F(KvTruth, ChatTurnAfterKvClearIsAFreshTurn) {
    ChatOptions o;
    o.max_tokens = 16;
    o.sampling.temperature = 0.0f;
    auto fresh_llama = load_stories();
    ASSERT_TRUE(fresh_llama);
    ChatSession fresh(*fresh_llama);
    ChatSession chat(*llama_);
    for (ChatSession* s : {&fresh, &chat}) {
        auto t = s->send("Tell me about a cat.", o);
        ASSERT_TRUE(t.ok()) << t.error().to_string();
    }
    llama_->context().kv_clear();
    auto want = fresh.send("And a dog?", o);
    auto got = chat.send("And a dog?", o);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_GT(want->completion.n_cached_prompt_tokens, 0);
    EXPECT_EQ(got->completion.n_cached_prompt_tokens, 0);
    EXPECT_EQ(got->completion.tokens, want->completion.tokens);
    EXPECT_EQ(got->completion.text, want->completion.text);
}

}  // namespace
}  // namespace llama_crab
