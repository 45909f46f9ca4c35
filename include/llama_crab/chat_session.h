// Stateful chat: a conversation whose turns prefill only what is new.
//
//   llama_crab::ChatSessionOptions opts;
//   opts.system_prompt = "You are terse.";
//   llama_crab::ChatSession chat(llama, opts);
//   auto turn = chat.send("Hello!");            // prefills system + first message
//   auto next = chat.send("And then?");          // prefills only the new user message (and the template's glue)
//   chat.save("chat.session");                   // history + KV; ChatSession::load resumes it in another process
//
// Each turn renders the whole history through the chat template and hands the tokens to the completion path,
// which keeps the longest common prefix with what the KV cache holds; the reply's own tokens are already in
// the KV cache, so only the end-of-turn markup and the new message are decoded.
//
// Context shift: when history + the reserve for the reply no longer fit in n_ctx, the oldest turns after the
// system prompt are dropped, and their KV is removed with seq_rm plus seq_add (K re-rotated) instead of
// recomputing everything after them. The kept turns then carry attention state computed while the dropped
// turns were present (as in llama.cpp's context shift); the turn reports the shift.
//
// A session uses the Llama's completion sequence: one ChatSession per Llama at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llama_crab/chat.h"
#include "llama_crab/error.h"
#include "llama_crab/llama.h"

namespace llama_crab {

struct ChatSessionOptions {
    std::string system_prompt;                 // empty: no system message
    std::optional<std::string> template_name;  // a built-in template instead of the model's own
    // Tokens kept free for the reply when deciding whether to shift: the turn's max_tokens when it is > 0,
    // else this many (0: a quarter of the context); never more than half the context.
    int32_t reply_reserve = 0;
};

struct ChatTurn {
    Completion completion;           // completion.text is the reply; n_cached_prompt_tokens were not prefilled
    bool context_shifted = false;    // older turns were dropped to make room
    int32_t n_dropped_messages = 0;  // messages dropped by the shift
    int32_t n_shifted_tokens = 0;    // KV tokens removed by seq_rm + seq_add (not recomputed)
};

class ChatSession {
public:
    explicit ChatSession(Llama& llama, ChatSessionOptions options = {});

    // Adds a user message, generates the assistant's reply (streamed through callback when given) and adds it
    // to the history. A reply that ended with StopReason::Cancelled is kept as far as it got.
    Result<ChatTurn> send(const std::string& user_message, const ChatOptions& options = {},
                          const StreamCallback& callback = nullptr);

    // The history: the system message (if any), then user/assistant turns.
    const std::vector<ChatMessage>& messages() const { return messages_; }
    const ChatSessionOptions& options() const { return options_; }
    // Forgets the turns, keeps the system prompt. The KV cache keeps what the next turn can still reuse.
    void clear();
    // Replaces the history with these messages (a conversation kept elsewhere). The KV cache is kept: the next
    // turn reuses the longest prefix it still shares with the new history.
    void set_messages(std::vector<ChatMessage> messages) { messages_ = std::move(messages); }

    // Writes the history and the KV state of the conversation to one file (temp file, fsync, rename).
    Status save(const std::string& path) const;
    // Replaces this session with the one in the file; on any error (bad file, other model, no room) the
    // session and the KV cache are left as they were.
    Status load(const std::string& path);

private:
    // Drops the oldest turns until tokens (the rendered history, updated) plus reserve fit in the context.
    Result<int32_t> shift_to_fit(std::vector<Token>& tokens, int32_t reserve, ChatTurn& turn,
                                 std::vector<ChatMessage>& history);

    Llama* llama_;
    ChatSessionOptions options_;
    std::vector<ChatMessage> messages_;
};

}  // namespace llama_crab
