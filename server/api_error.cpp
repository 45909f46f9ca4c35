#include "api_error.h"

namespace llama_crab::server {

nlohmann::json ApiError::to_json() const {
    nlohmann::json e = {{"message", message}, {"type", type}};
    e["param"] = param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param);
    e["code"] = code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code);
    return {{"error", e}};
}

ApiError bad_field(const std::string& field, const std::string& what) {
    ApiError e;
    e.status = 400;
    e.message = field + ": " + what;
    e.param = field;
    e.code = "invalid_value";
    return e;
}

ApiError server_error(int status, const std::string& message, const std::string& code) {
    ApiError e;
    e.status = status;
    e.message = message;
    e.type = status >= 500 ? "server_error" : "invalid_request_error";
    e.code = code;
    return e;
}

std::string json_text(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace llama_crab::server
