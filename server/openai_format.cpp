#include "openai_format.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "tool_calls.h"
#include "vocab/vocab.h"

namespace llama_crab::server {
namespace {

using nlohmann::json;

// JSON has no -infinity; OpenAI reports impossible tokens with -9999.
double finite_logprob(float lp) { return std::isfinite(lp) ? (double)lp : -9999.0; }

json bytes_of(const std::string& s) {
    json out = json::array();
    for (unsigned char c : s) out.push_back((int)c);
    return out;
}

}  // namespace

const char* finish_reason_name(StopReason r) {
    switch (r) {
        case StopReason::Eos:
        case StopReason::Stop:
        case StopReason::Cancelled: return "stop";
        case StopReason::Length:
        case StopReason::ContextFull: return "length";
    }
    return "stop";
}

ResponseBuilder::ResponseBuilder(ApiKind kind, std::string id, std::string model, std::string system_fingerprint,
                                 const Vocab& vocab, int32_t n_choices, int32_t n_per_prompt, bool want_logprobs)
    : kind_(kind),
      id_(std::move(id)),
      model_(std::move(model)),
      fingerprint_(std::move(system_fingerprint)),
      vocab_(vocab),
      created_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()),
      n_per_prompt_(n_per_prompt),
      want_logprobs_(want_logprobs),
      choices_((size_t)n_choices) {}

json ResponseBuilder::base(const char* object) const {
    return {{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}, {"system_fingerprint", fingerprint_}};
}

json ResponseBuilder::logprobs_json(const std::vector<TokenLogprobs>& lps, size_t text_offset) const {
    if (!want_logprobs_) return nullptr;
    if (kind_ == ApiKind::kChat) {
        json content = json::array();
        for (const auto& lp : lps) {
            json top = json::array();
            for (const auto& [tok, l] : lp.top) {
                const std::string piece = vocab_.token_to_piece(tok, false);
                top.push_back({{"token", piece}, {"logprob", finite_logprob(l)}, {"bytes", bytes_of(piece)}});
            }
            content.push_back({{"token", lp.text}, {"logprob", finite_logprob(lp.logprob)}, {"bytes", bytes_of(lp.text)}, {"top_logprobs", top}});
        }
        return {{"content", content}, {"refusal", nullptr}};
    }
    // The legacy completions shape: parallel arrays.
    json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), offsets = json::array();
    for (const auto& lp : lps) {
        tokens.push_back(lp.text);
        token_logprobs.push_back(finite_logprob(lp.logprob));
        json top = json::object();
        for (const auto& [tok, l] : lp.top) top[vocab_.token_to_piece(tok, false)] = finite_logprob(l);
        top_logprobs.push_back(top);
        offsets.push_back(text_offset);
        text_offset += lp.text.size();
    }
    return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", offsets}};
}

json ResponseBuilder::chunk(int32_t choice, const std::string& text, const std::vector<TokenLogprobs>& logprobs,
                            std::optional<StopReason> finish, bool include_usage_field) const {
    const bool chat = kind_ == ApiKind::kChat;
    json c = {{"index", choice}};
    if (chat) {
        c["delta"] = text.empty() ? json::object() : json{{"content", text}};
    } else {
        c["text"] = text;
    }
    c["logprobs"] = logprobs.empty() ? json(nullptr) : logprobs_json(logprobs, 0);
    c["finish_reason"] = finish ? json(finish_reason_name(*finish)) : json(nullptr);
    if (finish && !tool_calls(choice).is_null()) c["finish_reason"] = "tool_calls";
    json out = base(chat ? "chat.completion.chunk" : "text_completion");
    out["choices"] = json::array({c});
    if (include_usage_field) out["usage"] = nullptr;
    return out;
}

json ResponseBuilder::tool_calls(int32_t choice) const {
    const ChoiceResult& r = choices_[(size_t)choice];
    if (!tool_call_ || !r.finish || *r.finish == StopReason::Length) return nullptr;
    return tool_calls_json(r.text, fmt::format("call_{}_{}", id_, choice));
}

json ResponseBuilder::tool_call_chunk(int32_t choice, bool include_usage_field) const {
    json calls = tool_calls(choice);
    for (size_t i = 0; i < calls.size(); ++i) calls[i]["index"] = i;
    json c = {{"index", choice}, {"delta", {{"tool_calls", calls}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    json out = base("chat.completion.chunk");
    out["choices"] = json::array({c});
    if (include_usage_field) out["usage"] = nullptr;
    return out;
}

json ResponseBuilder::role_chunk(int32_t choice, bool include_usage_field) const {
    json c = {{"index", choice}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    json out = base("chat.completion.chunk");
    out["choices"] = json::array({c});
    if (include_usage_field) out["usage"] = nullptr;
    return out;
}

json ResponseBuilder::usage() const {
    // A prompt's tokens count once, however many choices it has.
    int64_t prompt = 0, cached = 0, completion = 0;
    for (size_t i = 0; i < choices_.size(); ++i) {
        if (i % (size_t)n_per_prompt_ == 0) {
            prompt += choices_[i].n_prompt;
            cached += choices_[i].n_cached;
        }
        completion += choices_[i].n_generated;
    }
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion},
            {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json ResponseBuilder::usage_chunk() const {
    json out = base(kind_ == ApiKind::kChat ? "chat.completion.chunk" : "text_completion");
    out["choices"] = json::array();
    out["usage"] = usage();
    return out;
}

json ResponseBuilder::response() const {
    const bool chat = kind_ == ApiKind::kChat;
    json choices = json::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
        const ChoiceResult& r = choices_[i];
        json c = {{"index", i}};
        if (chat) {
            c["message"] = {{"role", "assistant"}, {"content", r.text}, {"refusal", nullptr}};
        } else {
            c["text"] = r.text;
        }
        c["logprobs"] = logprobs_json(r.logprobs, r.echo_bytes);
        c["finish_reason"] = finish_reason_name(r.finish.value_or(StopReason::Length));
        if (json calls = tool_calls((int32_t)i); !calls.is_null()) {
            c["message"] = {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", std::move(calls)}, {"refusal", nullptr}};
            c["finish_reason"] = "tool_calls";
        }
        choices.push_back(std::move(c));
    }
    json out = base(chat ? "chat.completion" : "text_completion");
    out["choices"] = std::move(choices);
    out["usage"] = usage();
    return out;
}

}  // namespace llama_crab::server
