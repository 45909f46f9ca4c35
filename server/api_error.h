// Errors as the OpenAI API reports them: an HTTP status and {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace llama_crab::server {

struct ApiError {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";  // OpenAI's error types: invalid_request_error, server_error, ...
    std::string param;                             // the request field at fault ("" when none)
    std::string code;                              // a machine-readable reason ("" -> null)

    nlohmann::json to_json() const;
};

// A 400 naming the field: "<field>: <what>".
ApiError bad_field(const std::string& field, const std::string& what);
ApiError server_error(int status, const std::string& message, const std::string& code = "");

// JSON text that never throws: invalid UTF-8 (a token may end mid-character) is replaced with U+FFFD.
std::string json_text(const nlohmann::json& j);

}  // namespace llama_crab::server
