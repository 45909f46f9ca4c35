// The JSON the OpenAI API answers with: completion and chat completion objects, their streamed chunks, usage and
// logprobs. The per-choice results are gathered from worker events by ResponseBuilder.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "request_parse.h"
#include "task.h"

namespace llama_crab {
class Vocab;
}

namespace llama_crab::server {

const char* finish_reason_name(StopReason r);  // "stop" or "length"

struct ChoiceResult {
    std::string text;                    // with echo: the prompt text first
    size_t echo_bytes = 0;               // bytes of text that are the echoed prompt (logprobs text_offset starts there)
    std::vector<TokenLogprobs> logprobs;
    std::optional<StopReason> finish;
    int32_t n_prompt = 0;
    int32_t n_cached = 0;
    int32_t n_generated = 0;
};

// Builds the response objects of one request. `echo_texts` holds, per prompt, the text echoed before the
// completion (completions with echo).
class ResponseBuilder {
public:
    ResponseBuilder(ApiKind kind, std::string id, std::string model, std::string system_fingerprint, const Vocab& vocab,
                    int32_t n_choices, int32_t n_per_prompt, bool want_logprobs);

    std::vector<ChoiceResult>& choices() { return choices_; }
    // Chat with a forced tool call: finished outputs are returned as message.tool_calls (tool_calls.h).
    void set_tool_call(bool on) { tool_call_ = on; }
    bool tool_call() const { return tool_call_; }
    // The tool_calls of a finished choice, or null when it is not a whole call (then its text is the content).
    nlohmann::json tool_calls(int32_t choice) const;
    // Streaming: the delta carrying a finished choice's tool calls (each with its index).
    nlohmann::json tool_call_chunk(int32_t choice, bool include_usage_field) const;
    ApiKind kind() const { return kind_; }

    // Streaming: the chunk for one choice's new text/logprobs (and finish reason when it ends).
    nlohmann::json chunk(int32_t choice, const std::string& text, const std::vector<TokenLogprobs>& logprobs,
                         std::optional<StopReason> finish, bool include_usage_field) const;
    // Streaming chat: the first chunk of a choice, announcing the assistant role.
    nlohmann::json role_chunk(int32_t choice, bool include_usage_field) const;
    // Streaming with include_usage: the last chunk, with no choices.
    nlohmann::json usage_chunk() const;
    // The whole (non-streamed) response.
    nlohmann::json response() const;
    nlohmann::json usage() const;

private:
    nlohmann::json base(const char* object) const;
    nlohmann::json logprobs_json(const std::vector<TokenLogprobs>& lps, size_t text_offset) const;

    ApiKind kind_;
    std::string id_, model_, fingerprint_;
    const Vocab& vocab_;
    int64_t created_;
    int32_t n_per_prompt_;
    bool want_logprobs_;
    bool tool_call_ = false;
    std::vector<ChoiceResult> choices_;
};

}  // namespace llama_crab::server
