// Tool calls on /v1/chat/completions in a generic format: the tools are described in a system message and, under
// tool_choice "required" or a named function, the output is constrained (through the library's JSON schema
// grammar) to one call {"name": ..., "arguments": {...}} of the given schemas, then returned as
// choices[].message.tool_calls. Pure functions of the request, like request_parse.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "api_error.h"
#include "request_parse.h"

namespace llama_crab::server {

// Reads `tools`, `tool_choice` and `parallel_tool_calls` from the body. With "none" (or no tools) nothing changes;
// with "required" or a named function it adds the system message, sets out.grammar and out.tool_call. "auto" is
// refused: the output is not parsed for optional calls yet. Call after the messages and the grammar are parsed.
std::optional<ApiError> parse_tool_request(const nlohmann::json& body, GenerationRequest& out);

// The OpenAI tool_calls array for a constrained output text, or null when the text is not a whole call (a run
// cut by max_tokens). `call_id` becomes the call's id.
nlohmann::json tool_calls_json(const std::string& text, const std::string& call_id);

}  // namespace llama_crab::server
