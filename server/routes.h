// The HTTP endpoints. routes_openai.cpp: /v1/completions, /v1/chat/completions, /v1/models.
// routes_native.cpp: /health, /metrics, /tokenize, /detokenize, /slots, and the shared plumbing (auth, errors).
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <string>

#include "api_error.h"
#include "http_server.h"
#include "metrics.h"
#include "server_options.h"
#include "worker.h"

namespace llama_crab::server {

struct RouteContext {
    const ServerOptions& options;
    Worker& worker;
    Metrics& metrics;
    std::string model_alias;
    std::string id_prefix;  // random per process, so response ids do not repeat across restarts
    std::atomic<uint64_t> next_task_id{1};
};

void register_openai_routes(HttpServer& http, RouteContext& rc);
void register_native_routes(HttpServer& http, RouteContext& rc);
// Authentication (--api-key), OpenAI-shaped bodies for the HTTP layer's own errors (404, 408, 413, 431, 503...),
// status counting.
void install_middleware(HttpServer& http, RouteContext& rc);

void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200);
// A 503 also says when to come back (Retry-After).
void send_error(httplib::Response& res, const ApiError& error);
// 503 unless the worker has loaded the model.
bool require_ready(RouteContext& rc, httplib::Response& res);

}  // namespace llama_crab::server
