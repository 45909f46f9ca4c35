// /health, /metrics, /tokenize, /detokenize, /slots and /slots/{id}; authentication and error plumbing.
#include <fmt/format.h>

#include "request_parse.h"
#include "routes.h"
#include "slot_files.h"
#include "vocab/vocab.h"

namespace llama_crab::server {
namespace {

using nlohmann::json;

// Compares without an early exit, so the time taken does not reveal how much of the key was right.
bool constant_time_equal(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

const char* status_text(int status) {
    switch (status) {
        case 400: return "bad request";
        case 401: return "unauthorized";
        case 404: return "not found";
        case 405: return "method not allowed";
        case 413: return "payload too large";
        case 414: return "URI too long";
        case 415: return "unsupported media type";
        case 416: return "range not satisfiable";
        default: return status >= 500 ? "internal server error" : "request failed";
    }
}

void handle_tokenize(RouteContext& rc, const httplib::Request& req, httplib::Response& res) {
    if (!require_ready(rc, res)) return;
    TokenizeRequest tr;
    if (auto err = parse_tokenize_request(req.body, tr)) return send_error(res, *err);
    const Vocab& vocab = rc.worker.vocab();
    const auto tokens = vocab.tokenize(tr.content, tr.add_special, true);
    json out = json::array();
    for (Token t : tokens) {
        if (tr.with_pieces) {
            out.push_back({{"id", t}, {"piece", vocab.token_to_piece(t, true)}});
        } else {
            out.push_back(t);
        }
    }
    send_json(res, {{"tokens", out}});
}

void handle_detokenize(RouteContext& rc, const httplib::Request& req, httplib::Response& res) {
    if (!require_ready(rc, res)) return;
    DetokenizeRequest dr;
    if (auto err = parse_detokenize_request(req.body, dr)) return send_error(res, *err);
    for (size_t i = 0; i < dr.tokens.size(); ++i) {
        if (dr.tokens[i] >= rc.worker.n_vocab()) {
            return send_error(res, bad_field(fmt::format("tokens[{}]", i), fmt::format("{} is out of range [0, {})", dr.tokens[i], rc.worker.n_vocab())));
        }
    }
    send_json(res, {{"content", rc.worker.vocab().detokenize(dr.tokens, false, false)}});
}

void handle_slot_action(RouteContext& rc, const httplib::Request& req, httplib::Response& res) {
    if (!require_ready(rc, res)) return;
    int64_t id = -1;
    const std::string id_text = req.matches[1];
    if (id_text.size() > 6) return send_error(res, server_error(404, fmt::format("slot {} does not exist", id_text), "slot_not_found"));
    id = std::stoll(id_text);
    const std::string action = req.get_param_value("action");
    SlotAction a;
    if (action == "save") {
        a = SlotAction::kSave;
    } else if (action == "restore") {
        a = SlotAction::kRestore;
    } else if (action == "erase") {
        a = SlotAction::kErase;
    } else {
        return send_error(res, bad_field("action", fmt::format("'{}' is not one of save, restore, erase", action)));
    }
    std::string path;
    if (a != SlotAction::kErase) {
        std::string filename;
        if (auto err = parse_slot_file_request(req.body, filename)) return send_error(res, *err);
        if (auto err = resolve_slot_file(rc.options.slot_save_dir, filename, path)) return send_error(res, *err);
    }
    auto result = rc.worker.slot_action((int32_t)id, a, path);
    if (result.error) return send_error(res, *result.error);
    send_json(res, result.body);
}

}  // namespace

void send_json(httplib::Response& res, const json& body, int status) {
    res.status = status;
    res.set_content(json_text(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) {
    if (error.status == 503 && !res.has_header("Retry-After")) res.set_header("Retry-After", "1");
    send_json(res, error.to_json(), error.status);
}

bool require_ready(RouteContext& rc, httplib::Response& res) {
    switch (rc.worker.state()) {
        case Worker::State::kReady: return true;
        case Worker::State::kLoading: send_error(res, server_error(503, "the model is still loading", "model_loading")); return false;
        case Worker::State::kFailed: send_error(res, server_error(500, "the model failed to load: " + rc.worker.load_error(), "model_load_failed")); return false;
    }
    return false;
}

void install_middleware(HttpServer& http, RouteContext& rc) {
    http.set_pre_routing_handler([&rc](const httplib::Request& req, httplib::Response& res) {
        if (rc.options.api_key.empty() || req.path == "/health") return HttpServer::HandlerResponse::kUnhandled;
        const std::string auth = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        if (auth.rfind(prefix, 0) == 0 && constant_time_equal(auth.substr(prefix.size()), rc.options.api_key)) {
            return HttpServer::HandlerResponse::kUnhandled;
        }
        ApiError e = server_error(401, auth.empty() ? "missing API key: send 'Authorization: Bearer KEY'" : "invalid API key", "invalid_api_key");
        e.type = "authentication_error";
        send_error(res, e);
        return HttpServer::HandlerResponse::kHandled;
    });
    // The HTTP layer's own errors (no route, limits, timeouts, malformed HTTP, full queues) come with an empty body
    // and the reason in Response::reason: give them the OpenAI shape too.
    http.set_error_handler([&rc](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        std::string message = fmt::format("{}: {} {}", status_text(res.status), req.method, req.path);
        if (!res.reason.empty()) message = res.reason;
        if (res.status == 413) message = fmt::format("the request body exceeds the limit of {} bytes", rc.options.max_body_bytes);
        if (res.status == 404) message = fmt::format("no endpoint {} {}", req.method, req.path);
        const int status = res.status;
        send_error(res, server_error(status, message));
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        send_error(res, server_error(500, "internal error: " + what));
    });
    http.set_logger([&rc](const httplib::Request&, const httplib::Response& res) { rc.metrics.count_http_status(res.status); });
}

void register_native_routes(HttpServer& http, RouteContext& rc) {
    http.get("/health", [&rc](const httplib::Request&, httplib::Response& res) {
        switch (rc.worker.state()) {
            case Worker::State::kReady: return send_json(res, {{"status", "ok"}});
            case Worker::State::kLoading: return send_json(res, {{"status", "loading model"}}, 503);
            case Worker::State::kFailed: return send_json(res, {{"status", "error"}, {"message", rc.worker.load_error()}}, 500);
        }
    });
    http.get("/metrics", [&rc](const httplib::Request&, httplib::Response& res) {
        res.set_content(rc.metrics.render(rc.worker.cache_stats()), "text/plain; version=0.0.4");
    });
    http.post("/tokenize", [&rc](const httplib::Request& req, httplib::Response& res) { handle_tokenize(rc, req, res); });
    http.post("/detokenize", [&rc](const httplib::Request& req, httplib::Response& res) { handle_detokenize(rc, req, res); });
    http.get("/slots", [&rc](const httplib::Request&, httplib::Response& res) {
        if (!require_ready(rc, res)) return;
        json out = json::array();
        for (const SlotInfo& s : rc.worker.slots()) {
            out.push_back({{"id", s.id},
                           {"state", slot_phase_name(s.phase)},
                           {"is_processing", s.phase != SlotPhase::kIdle},
                           {"n_ctx", rc.worker.n_ctx_slot()},
                           {"n_tokens", s.n_tokens},
                           {"task_id", s.task_id == 0 ? json(nullptr) : json(s.task_id)},
                           {"n_prompt_tokens", s.n_prompt},
                           {"n_generated", s.n_generated}});
        }
        send_json(res, out);
    });
    http.post(R"(/slots/(\d+))", [&rc](const httplib::Request& req, httplib::Response& res) { handle_slot_action(rc, req, res); });
}

}  // namespace llama_crab::server
