// libFuzzer target: arbitrary bytes as the body of every request the server parses (completions, chat
// completions, tokenize, detokenize, slot files) and as a slot file name. Parsing must never crash, hang or
// throw; every refusal must be a 4xx naming a field.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api_error.h"
#include "request_parse.h"
#include "slot_files.h"

namespace {

using namespace llama_crab::server;

void require_clean(const std::optional<ApiError>& err) {
    if (!err) return;
    if (err->status < 400 || err->status >= 500 || err->message.empty()) std::abort();
    (void)json_text(err->to_json());  // the error itself must serialise
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    for (ApiKind kind : {ApiKind::kCompletion, ApiKind::kChat}) {
        GenerationRequest r;
        auto err = parse_generation_request(body, kind, r);
        require_clean(err);
        if (!err) {
            // What was accepted is within the documented limits.
            if (r.n < 1 || r.n > kMaxChoices || r.stop.size() > kMaxStops || r.logprobs > kMaxTopLogprobs) std::abort();
            if (kind == ApiKind::kCompletion && (r.prompts.empty() || r.prompts.size() > kMaxPrompts)) std::abort();
            if (kind == ApiKind::kChat && r.messages.empty()) std::abort();
            for (const auto& p : r.prompts) {
                for (auto t : p.tokens) {
                    if (t < 0) std::abort();
                }
            }
        }
    }
    EmbeddingRequest e;
    auto embed_err = parse_embedding_request(body, e);
    require_clean(embed_err);
    if (!embed_err) {
        if (e.inputs.empty() || e.inputs.size() > kMaxEmbedInputs) std::abort();
        for (const auto& in : e.inputs) {
            if (in.is_tokens ? in.tokens.empty() : in.text.empty()) std::abort();
        }
    }
    TokenizeRequest t;
    require_clean(parse_tokenize_request(body, t));
    DetokenizeRequest d;
    require_clean(parse_detokenize_request(body, d));
    std::string filename, path;
    require_clean(parse_slot_file_request(body, filename));
    const std::string dir = "/nonexistent-llama-crab-slot-dir";
    auto err = resolve_slot_file(dir, std::string(body.substr(0, 300)), path);
    // An accepted name is one plain component directly inside the folder.
    if (!err && (path.rfind(dir + "/", 0) != 0 || path.find('/', dir.size() + 1) != std::string::npos || path.find("..") == dir.size() + 1)) {
        std::abort();
    }
    return 0;
}
