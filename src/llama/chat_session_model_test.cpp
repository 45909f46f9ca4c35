// ChatSession on the stories260K model (ChatML fallback template): later turns prefill only the new message,
// the context shift keeps the system prompt, and save/load resumes a session exactly.
#include <gtest/gtest.h>

#include <ctime>

#include <chrono>

#include "llama_crab/chat_session.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

std::unique_ptr<Llama> load_stories(int32_t n_ctx) {
    auto l = Llama::load(LlamaParams(testing::testdata_path("models/stories260K.gguf").string()).with_n_ctx(n_ctx).with_n_threads(2));
    EXPECT_TRUE(l.ok()) << l.error().to_string();
    return l.ok() ? std::make_unique<Llama>(std::move(l).value()) : nullptr;
}

ChatSessionOptions with_system(std::string system) {
    ChatSessionOptions o;
    o.system_prompt = std::move(system);
    return o;
}

ChatOptions greedy(int32_t max_tokens) {
    ChatOptions o;
    o.max_tokens = max_tokens;
    o.sampling.temperature = 0.0f;
    return o;
}

class ChatSessionStories : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
        llama_ = load_stories(1024);
        ASSERT_TRUE(llama_);
    }
    std::unique_ptr<Llama> llama_;
};

TEST_F(ChatSessionStories, LaterTurnsPrefillOnlyTheNewMessage) {
    ChatSession chat(*llama_, with_system("You tell short stories."));
    auto t1 = chat.send("Tell me about a cat.", greedy(24));
    ASSERT_TRUE(t1.ok()) << t1.error().to_string();
    EXPECT_EQ(t1->completion.n_cached_prompt_tokens, 0);
    ASSERT_EQ(chat.messages().size(), 3u);
    EXPECT_EQ(chat.messages()[2].role, "assistant");
    EXPECT_EQ(chat.messages()[2].content, t1->completion.text);

    const size_t kv_after_t1 = llama_->kv_tokens().size();
    auto t2 = chat.send("And a dog?", greedy(24));
    ASSERT_TRUE(t2.ok()) << t2.error().to_string();
    // Everything up to the first reply's end is reused; only the end-of-turn markup and the new message are decoded.
    const int32_t prefilled = t2->completion.n_prompt_tokens - t2->completion.n_cached_prompt_tokens;
    auto new_part = llama_->tokenize("<|im_end|>\n<|im_start|>user\nAnd a dog?<|im_end|>\n<|im_start|>assistant\n", false, true);
    EXPECT_GE(t2->completion.n_cached_prompt_tokens, (int32_t)kv_after_t1 - 2);
    EXPECT_LE(prefilled, (int32_t)new_part.size() + 3);
    EXPECT_FALSE(t2->context_shifted);

    // The same conversation recomputed from scratch gives the same reply: reuse changes cost, not output.
    llama_->reset();
    auto again = llama_->create_chat_completion(
        {{"system", "You tell short stories."}, {"user", "Tell me about a cat."}, {"assistant", t1->completion.text}, {"user", "And a dog?"}},
        greedy(24));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->tokens, t2->completion.tokens);
}

TEST_F(ChatSessionStories, ContextShiftKeepsTheSystemPromptAndRecentTurns) {
    auto small = load_stories(160);
    ASSERT_TRUE(small);
    const std::string system = "You are a storyteller.";
    ChatSession chat(*small, with_system(system));
    const auto system_tokens = small->tokenize_chat({{"system", system}}, false);
    ASSERT_TRUE(system_tokens.ok());
    bool shifted = false;
    for (int i = 0; i < 8 && !shifted; ++i) {
        auto t = chat.send("Tell me more about the little red ball, please.", greedy(20));
        ASSERT_TRUE(t.ok()) << "turn " << i << ": " << t.error().to_string();
        if (t->context_shifted) {
            shifted = true;
            EXPECT_GT(t->n_dropped_messages, 0);
            EXPECT_GT(t->n_shifted_tokens, 0);
            // The shifted KV keeps the system prompt in front, so it was not prefilled again.
            EXPECT_GE(t->completion.n_cached_prompt_tokens, (int32_t)system_tokens->size());
        }
        EXPECT_LE((int64_t)small->kv_tokens().size(), 160);
    }
    EXPECT_TRUE(shifted) << "8 turns of ~45 tokens should overflow a 160-token context";
    ASSERT_FALSE(chat.messages().empty());
    EXPECT_EQ(chat.messages()[0].role, "system");
    EXPECT_EQ(chat.messages()[0].content, system);
    // The KV cache still starts with the system prompt's tokens, at positions 0..n-1.
    const auto& kv = small->kv_tokens();
    ASSERT_GE(kv.size(), system_tokens->size());
    EXPECT_TRUE(std::equal(system_tokens->begin(), system_tokens->end(), kv.begin()));
    EXPECT_EQ(small->context().seq_pos_max(0), (Pos)kv.size() - 1);
}

TEST_F(ChatSessionStories, MessageLargerThanTheContextIsAnErrorAndChangesNothing) {
    auto small = load_stories(64);
    ASSERT_TRUE(small);
    ChatSession chat(*small);
    std::string huge;
    for (int i = 0; i < 100; ++i) huge += "word ";
    auto t = chat.send(huge, greedy(8));
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(t.error().message.find("context"), std::string::npos);
    EXPECT_TRUE(chat.messages().empty());
}

TEST_F(ChatSessionStories, SaveAndLoadResumeExactly) {
    testing::TempDir dir;
    const std::string path = (dir / "chat.session").string();
    ChatSession chat(*llama_, with_system("Be brief."));
    ASSERT_TRUE(chat.send("Once upon a time", greedy(16)).ok());
    ASSERT_TRUE(chat.save(path).ok());
    auto uninterrupted = chat.send("What happened next?", greedy(16));
    ASSERT_TRUE(uninterrupted.ok());

    auto other = load_stories(1024);
    ASSERT_TRUE(other);
    ChatSession resumed(*other);
    ASSERT_TRUE(resumed.load(path).ok());
    EXPECT_EQ(resumed.messages().size(), 3u);
    EXPECT_EQ(resumed.options().system_prompt, "Be brief.");
    auto next = resumed.send("What happened next?", greedy(16));
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next->completion.tokens, uninterrupted->completion.tokens);
    // Loaded KV is reused: only the new turn is prefilled.
    EXPECT_GT(next->completion.n_cached_prompt_tokens, 10);
}

TEST_F(ChatSessionStories, DamagedSessionFilesAreRefusedWithoutChangingTheSession) {
    testing::TempDir dir;
    const std::string path = (dir / "chat.session").string();
    ChatSession chat(*llama_, with_system("Be brief."));
    ASSERT_TRUE(chat.send("Hello", greedy(8)).ok());
    ASSERT_TRUE(chat.save(path).ok());
    const auto good = testing::read_file_bytes(path);

    auto fresh = load_stories(1024);
    ASSERT_TRUE(fresh);
    ChatSession target(*fresh, with_system("untouched"));
    auto try_bytes = [&](const std::vector<uint8_t>& bytes) {
        testing::write_file_bytes(path, bytes);
        const Status st = target.load(path);
        EXPECT_FALSE(st.ok());
        EXPECT_EQ(target.options().system_prompt, "untouched");
        EXPECT_TRUE(fresh->kv_tokens().empty());
        return st.ok() ? ErrorCode::kOk : st.error().code;
    };
    for (size_t cut : {size_t{0}, size_t{7}, size_t{40}, good.size() / 2, good.size() - 1}) {
        try_bytes(std::vector<uint8_t>(good.begin(), good.begin() + (ptrdiff_t)cut));
    }
    for (size_t at : {size_t{0}, size_t{20}, size_t{100}, good.size() / 2, good.size() - 3}) {
        auto bad = good;
        bad[at] ^= 0x10;
        try_bytes(bad);
    }
    auto bad_version = good;
    bad_version[8] = 9;
    EXPECT_EQ(try_bytes(bad_version), ErrorCode::kUnsupported);
    auto bad_json = good;
    bad_json[100] ^= 0x01;  // inside the history JSON
    EXPECT_EQ(try_bytes(bad_json), ErrorCode::kChecksum);
    EXPECT_FALSE(target.load((dir / "missing").string()).ok());
}

// A reply cut mid-character (by max_tokens) is bytes, not UTF-8; the session still saves, losslessly.
TEST_F(ChatSessionStories, HistoryWithInvalidUtf8IsSavedAndLoadedExactly) {
    testing::TempDir dir;
    const std::string path = (dir / "chat.session").string();
    ChatSession chat(*llama_, with_system("sys \xF2\x85"));
    const std::vector<ChatMessage> history = {{"system", "sys \xF2\x85"},
                                              {"user", "hi"},
                                              {"assistant", "time\xF2\x85\xB2on\x98 and \xE2\x82"},
                                              {"user", "plain \"quoted\" text"},
                                              {"assistant", "\xC3"}};
    chat.set_messages(history);
    const Status st = chat.save(path);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    ChatSession resumed(*llama_);
    const Status ld = resumed.load(path);
    ASSERT_TRUE(ld.ok()) << ld.error().to_string();
    ASSERT_EQ(resumed.messages().size(), history.size());
    for (size_t i = 0; i < history.size(); ++i) {
        EXPECT_EQ(resumed.messages()[i].role, history[i].role);
        EXPECT_EQ(resumed.messages()[i].content, history[i].content) << i;
    }
    EXPECT_EQ(resumed.options().system_prompt, "sys \xF2\x85");
}

TEST_F(ChatSessionStories, SaveFailureNamesTheSessionPath) {
    testing::TempDir dir;
    const std::string path = (dir / "no-such-folder" / "chat.session").string();
    ChatSession chat(*llama_);
    const Status st = chat.save(path);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("'" + path + "'"), std::string::npos) << st.error().message;
    EXPECT_EQ(st.error().message.find(".tmp-"), std::string::npos) << st.error().message;
}

// n alternating user/assistant messages.
std::vector<ChatMessage> long_history(size_t n) {
    std::vector<ChatMessage> msgs;
    for (size_t i = 0; i < n; ++i) msgs.push_back({i % 2 == 0 ? "user" : "assistant", "message " + std::to_string(i) + " says hi"});
    return msgs;
}

// CPU seconds of the calling thread (where rendering, tokenising and the shift search run): unlike wall-clock
// time, it does not grow when a busy machine deschedules the test.
double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double seconds_for_turn(Llama& llama, size_t n_messages) {
    double best = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
        ChatSession chat(llama);
        chat.set_messages(long_history(n_messages));
        const double t0 = thread_cpu_seconds();
        auto t = chat.send("hello", greedy(1));
        const double s = thread_cpu_seconds() - t0;
        EXPECT_TRUE(t.ok()) << t.error().to_string();
        if (t.ok()) {
            EXPECT_TRUE(t->context_shifted);
        }
        best = std::min(best, s);
    }
    return best;
}

// A reply limit as large as the context (chat -n 512 on a 512-token model) still leaves room for the prompt.
TEST_F(ChatSessionStories, ReplyLimitLargerThanTheContextStillChats) {
    auto small = load_stories(128);
    ASSERT_TRUE(small);
    ChatSession chat(*small);
    for (int i = 0; i < 3; ++i) {
        auto t = chat.send("Tell me a story.", greedy(512));
        ASSERT_TRUE(t.ok()) << "turn " << i << ": " << t.error().to_string();
        EXPECT_LE((int64_t)small->kv_tokens().size(), 128);
    }
}

// The shift drops the fewest turns that make room: one pair fewer would not fit.
TEST_F(ChatSessionStories, ContextShiftDropsTheFewestTurns) {
    auto small = load_stories(256);
    ASSERT_TRUE(small);
    for (size_t n : {10, 60, 400, 2000}) {
        std::vector<ChatMessage> history;
        for (size_t i = 0; i < n; ++i) {
            std::string text = "m" + std::to_string(i);
            for (size_t w = 0; w < (i * 7) % 11; ++w) text += " word";
            history.push_back({i % 2 == 0 ? "user" : "assistant", text});
        }
        ChatSession chat(*small);
        chat.set_messages(history);
        auto t = chat.send("hello", greedy(4));
        ASSERT_TRUE(t.ok()) << t.error().to_string();
        ASSERT_TRUE(t->context_shifted) << n;
        const size_t d = (size_t)t->n_dropped_messages;
        ASSERT_GE(d, 2u);
        ASSERT_EQ(d % 2, 0u);
        auto render = [&](size_t drop) {
            std::vector<ChatMessage> h(history.begin() + (ptrdiff_t)drop, history.end());
            h.push_back({"user", "hello"});
            auto tokens = small->tokenize_chat(h, true);
            EXPECT_TRUE(tokens.ok());
            return tokens.ok() ? tokens->size() : 0;
        };
        EXPECT_LE(render(d) + 4, 256u) << n;
        EXPECT_GT(render(d - 2) + 4, 256u) << n;
    }
}

// A turn of a long session costs time linear in the history: the shift that drops old turns must not
// re-render the history once per dropped turn (12,000 messages took > 20 s a turn). Measured as the cost
// ratio (CPU time of this thread) of a 4x longer history in this process, with a generous bound (linear: ~4,
// quadratic: ~16).
TEST_F(ChatSessionStories, LongHistoryTurnCostIsLinearInTheHistory) {
    auto small = load_stories(256);
    ASSERT_TRUE(small);
    const double t_small = seconds_for_turn(*small, 3000);
    const double t_large = seconds_for_turn(*small, 12000);
    std::fprintf(stderr, "turn with 3000 messages: %.3f CPU s, 12000 messages: %.3f CPU s\n", t_small, t_large);
    EXPECT_LT(t_large, 10.0 * std::max(t_small, 0.005));
}

}  // namespace
}  // namespace llama_crab
