// Parsing and validating the bodies of OpenAI-style requests. Pure functions of the body text (no model), so they
// can be fuzzed: every malformed input gives an ApiError naming the field, never an exception or a crash.
// Checks that need the model (token ids against the vocabulary, prompt length against the context) happen later.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api_error.h"
#include "llama_crab/batch.h"
#include "llama_crab/chat.h"
#include "llama_crab/sampling.h"

namespace llama_crab::server {

enum class ApiKind { kCompletion, kChat };

// Limits on what one request may ask for.
inline constexpr int32_t kMaxChoices = 16;        // n
inline constexpr size_t kMaxPrompts = 16;         // prompts in one completions request
inline constexpr size_t kMaxStops = 16;
inline constexpr size_t kMaxStopBytes = 1024;
inline constexpr int32_t kMaxTopLogprobs = 20;
inline constexpr size_t kMaxJsonDepth = 64;
inline constexpr size_t kMaxEmbedInputs = 2048;   // inputs in one embeddings request (OpenAI's limit)

// A prompt as the client gave it: text to tokenise, or token ids.
struct PromptInput {
    std::string text;
    std::vector<Token> tokens;
    bool is_tokens = false;
};

struct GenerationRequest {
    ApiKind kind = ApiKind::kCompletion;
    std::string model;                   // as sent ("" when absent); responses carry the server's alias
    std::vector<PromptInput> prompts;    // completions: one or more
    std::vector<ChatMessage> messages;   // chat
    int32_t max_tokens = -1;             // -1: not given (completions: 16; chat: until the slot's context is full)
    SamplingParams sampling;             // llama-crab's defaults unless the request sets them
    bool seed_given = false;
    std::vector<std::string> stop;
    int32_t n = 1;
    int32_t logprobs = -1;               // -1: none; otherwise the number of alternatives per token (0..20)
    bool echo = false;                   // completions: prepend the prompt to the text
    bool stream = false;
    bool include_usage = false;          // stream_options.include_usage
    bool ignore_eos = false;             // extension: keep generating past end-of-generation tokens
    // Structured output: the GBNF grammar the output must follow ("" for none), from response_format
    // (json_object, json_schema) or llama.cpp's grammar / json_schema fields; already checked.
    std::string grammar;
    bool tool_call = false;              // chat: the output is one tool call (tool_choice required or a function)
};

// Parse a /v1/completions or /v1/chat/completions body. On failure returns the error (400 naming the field).
std::optional<ApiError> parse_generation_request(std::string_view body, ApiKind kind, GenerationRequest& out);

struct TokenizeRequest {
    std::string content;
    bool add_special = true;
    bool with_pieces = false;
};
std::optional<ApiError> parse_tokenize_request(std::string_view body, TokenizeRequest& out);

struct DetokenizeRequest {
    std::vector<Token> tokens;
};
std::optional<ApiError> parse_detokenize_request(std::string_view body, DetokenizeRequest& out);

// POST /v1/embeddings: "input" a string, an array of strings, an array of token ids or of token-id arrays;
// "encoding_format" float (default) or base64; "dimensions" is refused (the model's size is the only one).
struct EmbeddingRequest {
    std::string model;
    std::vector<PromptInput> inputs;
    bool base64 = false;
};
std::optional<ApiError> parse_embedding_request(std::string_view body, EmbeddingRequest& out);

// POST /slots/{id}?action=save|restore: {"filename": "..."}.
std::optional<ApiError> parse_slot_file_request(std::string_view body, std::string& filename);

}  // namespace llama_crab::server
