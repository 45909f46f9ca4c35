// /v1/completions, /v1/chat/completions and /v1/models. A generation request is parsed, tokenised and checked
// against the model here (in the handler thread), then queued for the worker; the response is written from the
// worker's events by a chunked content provider that also notices when the client goes away.
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "openai_format.h"
#include "request_parse.h"
#include "routes.h"
#include "vocab/vocab.h"

namespace llama_crab::server {
namespace {

using nlohmann::json;
constexpr auto kPollInterval = std::chrono::milliseconds(25);

// One request in flight: the task given to the worker and what has been written back so far.
struct Exchange {
    std::shared_ptr<Task> task;
    ResponseBuilder builder;
    bool stream = false;
    bool include_usage = false;
    std::vector<std::string> echo;  // per prompt
    bool head_sent = false;
    int32_t n_done = 0;
    bool finished = false;
};

std::optional<ApiError> tokenize_prompts(RouteContext& rc, const GenerationRequest& gr, Task& task, std::vector<std::string>& echo) {
    const Vocab& vocab = rc.worker.vocab();
    if (gr.kind == ApiKind::kChat) {
        auto tokens = rc.worker.llama().tokenize_chat(gr.messages, true, rc.options.chat_template);
        if (!tokens.ok()) return bad_field("messages", "the chat template failed: " + tokens.error().message);
        task.prompts.push_back(std::move(tokens).value());
        echo.emplace_back();
    } else {
        for (const PromptInput& in : gr.prompts) {
            if (in.is_tokens) {
                task.prompts.push_back(in.tokens);
                echo.push_back(gr.echo ? vocab.detokenize(in.tokens, true, false) : "");
            } else {
                task.prompts.push_back(vocab.tokenize(in.text, true, true));
                echo.push_back(gr.echo ? in.text : "");
            }
        }
    }
    const char* field = gr.kind == ApiKind::kChat ? "messages" : "prompt";
    for (size_t p = 0; p < task.prompts.size(); ++p) {
        const auto& tokens = task.prompts[p];
        const std::string name = task.prompts.size() > 1 ? fmt::format("{}[{}]", field, p) : field;
        if (tokens.empty()) return bad_field(name, "is empty (no tokens)");
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (tokens[i] < 0 || tokens[i] >= rc.worker.n_vocab()) {
                return bad_field(name, fmt::format("token {} at index {} is out of range [0, {})", tokens[i], i, rc.worker.n_vocab()));
            }
        }
        if ((int32_t)tokens.size() >= rc.worker.n_ctx_slot()) {
            ApiError e = bad_field(name, fmt::format("the prompt has {} tokens but a slot's context holds {} (room is needed for at least "
                                                     "one generated token); shorten the prompt or start the server with a larger --ctx-size",
                                                     tokens.size(), rc.worker.n_ctx_slot()));
            e.code = "context_length_exceeded";
            return e;
        }
    }
    return std::nullopt;
}

std::optional<ApiError> make_settings(RouteContext& rc, const GenerationRequest& gr, GenerationSettings& s) {
    for (const auto& [tok, bias] : gr.sampling.logit_bias) {
        if (tok >= rc.worker.n_vocab()) {
            return bad_field("logit_bias", fmt::format("token {} is out of range [0, {})", tok, rc.worker.n_vocab()));
        }
    }
    s.sampling = gr.sampling;
    s.seed_given = gr.seed_given;
    s.stop = gr.stop;
    s.logprobs = gr.logprobs;
    s.ignore_eos = gr.ignore_eos;
    // Completions default to 16 tokens as in OpenAI's API; chat runs until the end of the turn or of the context.
    s.max_tokens = gr.max_tokens > 0 ? gr.max_tokens : (gr.kind == ApiKind::kCompletion ? 16 : rc.worker.n_ctx_slot());
    if (auto st = validate_sampling_params(s.sampling); !st.ok()) return bad_field("sampling", st.error().message);
    if (!gr.grammar.empty()) {
        auto g = rc.worker.make_grammar(gr.grammar);
        if (!g.ok()) return bad_field("grammar", g.error().message);
        s.grammar = std::move(g).value();
    }
    return std::nullopt;
}

bool write_sse(httplib::DataSink& sink, const json& j) {
    const std::string line = "data: " + json_text(j) + "\n\n";
    return sink.write(line.data(), line.size());
}

// Applies the worker's events to the exchange; streamed responses write their chunks as they come.
// Returns false when the client cannot be written to any more.
bool pump(Exchange& ex, httplib::DataSink& sink) {
    const int32_t n_choices = ex.task->n_choices();
    if (ex.stream && !ex.head_sent) {
        // Chat streams open each choice with the assistant role, as OpenAI's do; completions with echo open with the
        // prompt text.
        ex.head_sent = true;
        for (int32_t c = 0; c < n_choices; ++c) {
            const std::string& echo = ex.echo[(size_t)(c / ex.task->n_per_prompt)];
            if (ex.builder.kind() == ApiKind::kChat) {
                if (!write_sse(sink, ex.builder.role_chunk(c, ex.include_usage))) return false;
            } else if (!echo.empty()) {
                if (!write_sse(sink, ex.builder.chunk(c, echo, {}, std::nullopt, ex.include_usage))) return false;
            }
        }
        return true;
    }
    auto events = ex.task->events.pop_all(kPollInterval);
    if (!sink.is_writable()) return false;
    for (Event& ev : events) {
        ChoiceResult& r = ex.builder.choices()[(size_t)ev.choice];
        if (ev.kind == Event::Kind::kError) {
            ApiError err = server_error(ev.status, ev.message);
            if (ex.stream) {
                const std::string line = "data: " + json_text(err.to_json()) + "\n\ndata: [DONE]\n\n";
                if (!sink.write(line.data(), line.size())) return false;
            } else {
                const std::string body = json_text(err.to_json());
                if (!sink.write(body.data(), body.size())) return false;
            }
            ex.finished = true;
            sink.done();
            return true;
        }
        if (ev.kind == Event::Kind::kDelta) {
            r.text += ev.text;
            for (auto& lp : ev.logprobs) r.logprobs.push_back(lp);
            // A tool call streams as one delta when it is whole (below), not as JSON text.
            if (ex.stream && !ex.builder.tool_call() &&
                !write_sse(sink, ex.builder.chunk(ev.choice, ev.text, ev.logprobs, std::nullopt, ex.include_usage))) {
                return false;
            }
        } else {
            r.finish = ev.stop_reason;
            r.n_prompt = ev.n_prompt;
            r.n_cached = ev.n_cached;
            r.n_generated = ev.n_generated;
            ++ex.n_done;
            if (ex.stream && ex.builder.tool_call()) {
                const bool whole = !ex.builder.tool_calls(ev.choice).is_null();
                const json held = whole ? ex.builder.tool_call_chunk(ev.choice, ex.include_usage)
                                        : ex.builder.chunk(ev.choice, r.text, {}, std::nullopt, ex.include_usage);
                if (!write_sse(sink, held)) return false;
            }
            if (ex.stream && !write_sse(sink, ex.builder.chunk(ev.choice, "", {}, ev.stop_reason, ex.include_usage))) return false;
        }
    }
    if (ex.n_done < n_choices) return true;
    std::string tail;
    if (ex.stream) {
        if (ex.include_usage) tail += "data: " + json_text(ex.builder.usage_chunk()) + "\n\n";
        tail += "data: [DONE]\n\n";
    } else {
        tail = json_text(ex.builder.response());
    }
    if (!sink.write(tail.data(), tail.size())) return false;
    ex.finished = true;
    sink.done();
    return true;
}

void handle_generation(RouteContext& rc, ApiKind kind, const httplib::Request& req, httplib::Response& res) {
    auto reject = [&](const ApiError& e) {
        rc.metrics.requests_rejected++;
        send_error(res, e);
    };
    if (!require_ready(rc, res)) return;
    GenerationRequest gr;
    if (auto err = parse_generation_request(req.body, kind, gr)) return reject(*err);
    auto task = std::make_shared<Task>();
    task->id = rc.next_task_id++;
    task->n_per_prompt = gr.n;
    std::vector<std::string> echo;
    if (auto err = tokenize_prompts(rc, gr, *task, echo)) return reject(*err);
    if (auto err = make_settings(rc, gr, task->settings)) return reject(*err);

    const std::string id = fmt::format("{}-{}{}", kind == ApiKind::kChat ? "chatcmpl" : "cmpl", rc.id_prefix, task->id);
    auto ex = std::make_shared<Exchange>(Exchange{
        task, ResponseBuilder(kind, id, rc.model_alias, rc.worker.system_fingerprint(),
                              rc.worker.vocab(), task->n_choices(), task->n_per_prompt, gr.logprobs >= 0),
        gr.stream, gr.stream && gr.include_usage, echo});
    ex->builder.set_tool_call(gr.tool_call);
    for (int32_t c = 0; c < task->n_choices(); ++c) {
        ChoiceResult& r = ex->builder.choices()[(size_t)c];
        r.text = echo[(size_t)(c / task->n_per_prompt)];
        r.echo_bytes = r.text.size();
    }
    if (auto err = rc.worker.submit(task)) return reject(*err);
    (kind == ApiKind::kChat ? rc.metrics.requests_chat : rc.metrics.requests_completion)++;

    Worker* worker = &rc.worker;
    Metrics* metrics = &rc.metrics;
    auto provider = [ex](size_t, httplib::DataSink& sink) { return pump(*ex, sink); };
    // Runs when the response ends: a response that did not finish means the client went away.
    auto release = [ex, worker, metrics](bool) {
        if (ex->finished) return;
        ex->task->cancelled = true;
        metrics->requests_cancelled++;
        worker->wake();
    };
    if (gr.stream) {
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");
        res.set_chunked_content_provider("text/event-stream", provider, release);
    } else {
        res.set_chunked_content_provider("application/json", provider, release);
    }
}

// Standard base64 of the vector's bytes as little-endian float32 (what the openai client decodes).
std::string base64_floats(const std::vector<float>& v) {
    static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::vector<uint8_t> bytes(v.size() * 4);
    for (size_t i = 0; i < v.size(); ++i) {
        uint32_t u;
        std::memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; ++b) bytes[i * 4 + (size_t)b] = (uint8_t)(u >> (8 * b));
    }
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const uint32_t n = (uint32_t)bytes[i] << 16 | (i + 1 < bytes.size() ? (uint32_t)bytes[i + 1] << 8 : 0) |
                           (i + 2 < bytes.size() ? (uint32_t)bytes[i + 2] : 0);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
    }
    return out;
}

// POST /v1/embeddings: parsed and tokenised here, embedded on the worker thread (Worker::embed), pooled as the
// model says, L2-normalised.
void handle_embeddings(RouteContext& rc, const httplib::Request& req, httplib::Response& res) {
    if (!require_ready(rc, res)) return;
    EmbeddingRequest er;
    if (auto err = parse_embedding_request(req.body, er)) return send_error(res, *err);
    const Vocab& vocab = rc.worker.vocab();
    std::vector<std::vector<Token>> inputs;
    for (size_t i = 0; i < er.inputs.size(); ++i) {
        const PromptInput& in = er.inputs[i];
        inputs.push_back(in.is_tokens ? in.tokens : vocab.tokenize(in.text, true, false));
        const std::string name = er.inputs.size() > 1 ? fmt::format("input[{}]", i) : "input";
        for (size_t k = 0; k < inputs.back().size(); ++k) {
            const Token t = inputs.back()[k];
            if (t < 0 || t >= rc.worker.n_vocab()) {
                return send_error(res, bad_field(name, fmt::format("token {} at index {} is out of range [0, {})", t, k, rc.worker.n_vocab())));
            }
        }
        if ((int32_t)inputs.back().size() > rc.worker.n_ctx_slot()) {
            ApiError e = bad_field(name, fmt::format("has {} tokens but a slot's context holds {}; shorten it or start the server "
                                                     "with a larger --ctx-size",
                                                     inputs.back().size(), rc.worker.n_ctx_slot()));
            e.code = "context_length_exceeded";
            return send_error(res, e);
        }
    }
    auto out = rc.worker.embed(std::move(inputs));
    if (!out.ok()) {
        const bool user = out.error().code == ErrorCode::kInvalidArgument || out.error().code == ErrorCode::kUnsupported;
        return send_error(res, server_error(user ? 400 : 503, "embeddings: " + out.error().message));
    }
    json data = json::array();
    for (size_t i = 0; i < out->vectors.size(); ++i) {
        json item = {{"object", "embedding"}, {"index", i}};
        if (er.base64) {
            item["embedding"] = base64_floats(out->vectors[i]);
        } else {
            item["embedding"] = out->vectors[i];
        }
        data.push_back(std::move(item));
    }
    send_json(res, {{"object", "list"},
                    {"data", std::move(data)},
                    {"model", rc.model_alias},
                    {"usage", {{"prompt_tokens", out->total_tokens}, {"total_tokens", out->total_tokens}}}});
}

json model_json(RouteContext& rc) {
    const Model& m = rc.worker.llama().model();
    return {{"id", rc.model_alias},
            {"object", "model"},
            {"created", 0},
            {"owned_by", "llama-crab"},
            {"meta",
             {{"description", m.description()},
              {"n_params", m.n_params()},
              {"size_bytes", m.size_bytes()},
              {"n_vocab", rc.worker.n_vocab()},
              {"n_ctx_train", m.hparams().n_ctx_train},
              {"n_ctx_slot", rc.worker.n_ctx_slot()},
              {"n_slots", rc.options.n_slots}}}};
}

}  // namespace

void register_openai_routes(HttpServer& http, RouteContext& rc) {
    for (const char* path : {"/v1/completions", "/completions"}) {
        http.post(path, [&rc](const httplib::Request& req, httplib::Response& res) { handle_generation(rc, ApiKind::kCompletion, req, res); });
    }
    for (const char* path : {"/v1/chat/completions", "/chat/completions"}) {
        http.post(path, [&rc](const httplib::Request& req, httplib::Response& res) { handle_generation(rc, ApiKind::kChat, req, res); });
    }
    for (const char* path : {"/v1/embeddings", "/embeddings"}) {
        http.post(path, [&rc](const httplib::Request& req, httplib::Response& res) { handle_embeddings(rc, req, res); });
    }
    for (const char* path : {"/v1/models", "/models"}) {
        http.get(path, [&rc](const httplib::Request&, httplib::Response& res) {
            if (!require_ready(rc, res)) return;
            send_json(res, {{"object", "list"}, {"data", json::array({model_json(rc)})}});
        });
    }
    http.get(R"(/v1/models/(.+))", [&rc](const httplib::Request& req, httplib::Response& res) {
        if (!require_ready(rc, res)) return;
        if (req.matches[1] != rc.model_alias) {
            ApiError e = server_error(404, fmt::format("the model '{}' does not exist; this server serves '{}'", req.matches[1].str(), rc.model_alias),
                                      "model_not_found");
            return send_error(res, e);
        }
        send_json(res, model_json(rc));
    });
}

}  // namespace llama_crab::server
