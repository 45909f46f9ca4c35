// The high-level API on the real stories260K model: greedy text equals llama.cpp's, prefix reuse, streaming,
// stop strings, cancellation, logprobs.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <thread>

#include "llama_crab/llama.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

class LlamaStories : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
        auto l = Llama::load(LlamaParams(testing::testdata_path("models/stories260K.gguf").string()).with_n_ctx(512).with_n_threads(2));
        ASSERT_TRUE(l.ok()) << l.error().to_string();
        llama_ = std::make_unique<Llama>(std::move(l).value());
        std::ifstream in(testing::testdata_path("refs/stories260K.json"));
        ref_ = json::parse(in)["text_cases"];
    }
    std::unique_ptr<Llama> llama_;
    json ref_;
};

TEST_F(LlamaStories, GreedyCompletionEqualsLlamaCppText) {
    for (const auto& c : ref_["cases"]) {
        llama_->reset();
        auto out = llama_->create_completion(c["prompt"].get<std::string>(), CompletionOptions::greedy(128));
        ASSERT_TRUE(out.ok()) << out.error().to_string();
        EXPECT_EQ(out->tokens, c["greedy"].get<std::vector<Token>>());
        EXPECT_EQ(out->text, c["continuation_text"]["text"].get<std::string>());
        EXPECT_EQ(out->n_prompt_tokens, (int32_t)c["prompt_tokens"].size());
        EXPECT_EQ(out->stop_reason, StopReason::Length);
        EXPECT_GT(out->timings.decode_tok_per_s, 0);
    }
}

TEST_F(LlamaStories, FollowUpPromptReusesTheKvCache) {
    const std::string first = ref_["cases"][0]["prompt"];
    auto a = llama_->create_completion(first, CompletionOptions::greedy(16));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->n_cached_prompt_tokens, 0);
    const std::string second = first + a->text + " The end.";
    auto b = llama_->create_completion(second, CompletionOptions::greedy(16));
    ASSERT_TRUE(b.ok());
    EXPECT_GE(b->n_cached_prompt_tokens, a->n_prompt_tokens + 10);
    EXPECT_EQ(b->timings.n_prefill, b->n_prompt_tokens - b->n_cached_prompt_tokens);
    // The same as a fresh run.
    llama_->reset();
    auto fresh = llama_->create_completion(second, CompletionOptions::greedy(16));
    ASSERT_TRUE(fresh.ok());
    EXPECT_EQ(fresh->n_cached_prompt_tokens, 0);
    EXPECT_EQ(fresh->tokens, b->tokens);
}

TEST_F(LlamaStories, StreamingChunksConcatenateToTheText) {
    std::string streamed;
    int32_t last_n = 0;
    auto out = llama_->create_completion_stream("Once upon a time", CompletionOptions::greedy(40), [&](const CompletionChunk& c) {
        streamed += c.text;
        EXPECT_GE(c.n_generated, last_n);
        last_n = c.n_generated;
        return StreamAction::Continue;
    });
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(streamed, out->text);
    int calls = 0;
    auto stopped = llama_->create_completion_stream("Once upon a time", CompletionOptions::greedy(40), [&](const CompletionChunk&) {
        return ++calls == 3 ? StreamAction::Stop : StreamAction::Continue;
    });
    ASSERT_TRUE(stopped.ok());
    EXPECT_EQ(stopped->stop_reason, StopReason::Cancelled);
    EXPECT_EQ(stopped->tokens.size(), 3u);
}

TEST_F(LlamaStories, StopStringsAreNeverEmitted) {
    auto full = llama_->create_completion("Once upon a time", CompletionOptions::greedy(60));
    ASSERT_TRUE(full.ok());
    // Pick a stop string from the middle of the greedy text, spanning a token boundary.
    const std::string& t = full->text;
    ASSERT_GT(t.size(), 40u);
    const std::string stop = t.substr(20, 6);
    auto o = CompletionOptions::greedy(60);
    o.stop = {stop};
    std::string streamed;
    auto out = llama_->create_completion_stream("Once upon a time", o, [&](const CompletionChunk& c) {
        streamed += c.text;
        return StreamAction::Continue;
    });
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->stop_reason, StopReason::Stop);
    EXPECT_EQ(out->text, t.substr(0, t.find(stop)));
    EXPECT_EQ(streamed, out->text);
    EXPECT_EQ(out->text.find(stop), std::string::npos);
}

TEST_F(LlamaStories, SeededSamplingIsReproducible) {
    CompletionOptions o;
    o.max_tokens = 30;
    o.seed = 42;
    o.sampling.temperature = 1.0f;
    auto a = llama_->create_completion("Once upon a time", o);
    auto b = llama_->create_completion("Once upon a time", o);
    o.seed = 43;
    auto c = llama_->create_completion("Once upon a time", o);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_EQ(a->tokens, b->tokens);
    EXPECT_NE(a->tokens, c->tokens);
}

TEST_F(LlamaStories, LogprobsEchoAndMinTokens) {
    auto o = CompletionOptions::greedy(5);
    o.logprobs = 3;
    o.echo = true;
    auto out = llama_->create_completion("Once upon a time", o);
    ASSERT_TRUE(out.ok());
    ASSERT_EQ(out->logprobs.size(), out->tokens.size());
    for (const auto& lp : out->logprobs) {
        ASSERT_EQ(lp.top.size(), 3u);
        EXPECT_EQ(lp.top[0].first, lp.token) << "greedy picks the most likely token";
        EXPECT_LE(lp.logprob, 0.0f);
        EXPECT_GE(lp.top[0].second, lp.top[1].second);
    }
    EXPECT_EQ(out->text.rfind("Once upon a time", 0), 0u);

    // Ban everything but EOS: without min_tokens generation ends at once.
    auto ban = CompletionOptions::greedy(5);
    const Token eos = 2;
    for (Token t = 0; t < (Token)llama_->context().n_vocab(); ++t) {
        if (t != eos) ban.logit_bias[t] = -INFINITY;
    }
    auto e = llama_->create_completion("Once", ban);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->stop_reason, StopReason::Eos);
    EXPECT_TRUE(e->tokens.empty());
}

TEST_F(LlamaStories, PromptLongerThanTheContextIsAnError) {
    auto small = Llama::load(LlamaParams(testing::testdata_path("models/stories260K.gguf").string()).with_n_ctx(16));
    ASSERT_TRUE(small.ok());
    std::string prompt;
    for (int i = 0; i < 20; ++i) prompt += " Once upon a time";
    auto out = small->create_completion(prompt, 4);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().message.find("context holds 16"), std::string::npos) << out.error().message;
    auto fits = small->create_completion("Once upon a time there was", CompletionOptions::greedy(100));
    ASSERT_TRUE(fits.ok());
    EXPECT_EQ(fits->stop_reason, StopReason::ContextFull);
}

TEST_F(LlamaStories, CancelFromAnotherThread) {
    CompletionOptions o = CompletionOptions::greedy(0);  // until the context is full
    std::atomic<int> chunks{0};
    std::thread canceller([&] {
        while (chunks.load() < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        llama_->cancel();
    });
    auto out = llama_->create_completion_stream("Once upon a time", o, [&](const CompletionChunk&) {
        chunks.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return StreamAction::Continue;
    });
    canceller.join();
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->stop_reason, StopReason::Cancelled);
    EXPECT_LT(out->tokens.size(), 400u);
}

}  // namespace
}  // namespace llama_crab
