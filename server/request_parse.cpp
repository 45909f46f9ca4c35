#include "request_parse.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "llama_crab/grammar.h"
#include "tool_calls.h"

namespace llama_crab::server {
namespace {

using nlohmann::json;
using MaybeError = std::optional<ApiError>;

const char* type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "an integer";
        case json::value_t::number_float: return "a number";
        default: return "an unsupported value";
    }
}

ApiError wrong_type(const std::string& field, const char* expected, const json& got) {
    return bad_field(field, fmt::format("expected {}, got {}", expected, type_name(got)));
}

// The nesting depth of JSON text, counted without parsing (brackets inside strings do not count), so that a
// pathologically deep body is refused before a recursive structure is ever built from it.
size_t json_depth(std::string_view text) {
    size_t depth = 0, max_depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            max_depth = std::max(max_depth, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}

MaybeError parse_object(std::string_view body, json& out) {
    if (json_depth(body) > kMaxJsonDepth) {
        return bad_field("body", fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth));
    }
    out = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (out.is_discarded()) return bad_field("body", "malformed JSON");
    if (!out.is_object()) return bad_field("body", fmt::format("expected a JSON object, got {}", type_name(out)));
    return std::nullopt;
}

// Typed access to the optional fields of one JSON object. A field that is absent or null keeps its default.
class Fields {
public:
    explicit Fields(const json& obj, std::string prefix = "") : obj_(obj), prefix_(std::move(prefix)) {}

    const json* get(const char* key) const {
        auto it = obj_.find(key);
        if (it == obj_.end() || it->is_null()) return nullptr;
        return &*it;
    }
    std::string name(const char* key) const { return prefix_ + key; }

    MaybeError boolean(const char* key, bool& out) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (!v->is_boolean()) return wrong_type(name(key), "a boolean", *v);
        out = v->get<bool>();
        return std::nullopt;
    }
    MaybeError string(const char* key, std::string& out) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (!v->is_string()) return wrong_type(name(key), "a string", *v);
        out = v->get<std::string>();
        return std::nullopt;
    }
    MaybeError number(const char* key, float& out, double lo, double hi) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (!v->is_number()) return wrong_type(name(key), "a number", *v);
        const double d = v->get<double>();
        if (!std::isfinite(d) || d < lo || d > hi) return bad_field(name(key), fmt::format("{} is out of range [{}, {}]", d, lo, hi));
        out = (float)d;
        return std::nullopt;
    }
    MaybeError integer(const char* key, int64_t& out, int64_t lo, int64_t hi, bool* given = nullptr) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        auto err = as_integer(*v, name(key), out, lo, hi);
        if (!err && given) *given = true;
        return err;
    }
    MaybeError integer32(const char* key, int32_t& out, int32_t lo, int32_t hi) const {
        int64_t v = out;
        auto err = integer(key, v, lo, hi);
        if (!err) out = (int32_t)v;
        return err;
    }

    static MaybeError as_integer(const json& v, const std::string& field, int64_t& out, int64_t lo, int64_t hi) {
        if (v.is_number_unsigned()) {
            const uint64_t u = v.get<uint64_t>();
            if (u > (uint64_t)std::numeric_limits<int64_t>::max() || (int64_t)u > hi) {
                return bad_field(field, fmt::format("{} is out of range [{}, {}]", u, lo, hi));
            }
            out = (int64_t)u;
        } else if (v.is_number_integer()) {
            out = v.get<int64_t>();
        } else if (v.is_number_float()) {
            // 16.0 is an integer written by a client that only has doubles.
            const double d = v.get<double>();
            if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return wrong_type(field, "an integer", v);
            out = (int64_t)d;
        } else {
            return wrong_type(field, "an integer", v);
        }
        if (out < lo || out > hi) return bad_field(field, fmt::format("{} is out of range [{}, {}]", out, lo, hi));
        return std::nullopt;
    }

private:
    const json& obj_;
    std::string prefix_;
};

#define LC_CHECK(expr)                          \
    do {                                        \
        if (auto lc_err_ = (expr)) return lc_err_; \
    } while (0)

constexpr int64_t kMaxTokenId = std::numeric_limits<int32_t>::max();

MaybeError parse_token_array(const json& arr, const std::string& field, std::vector<Token>& out) {
    out.clear();
    out.reserve(arr.size());
    for (size_t i = 0; i < arr.size(); ++i) {
        int64_t t = 0;
        LC_CHECK(Fields::as_integer(arr[i], fmt::format("{}[{}]", field, i), t, 0, kMaxTokenId));
        out.push_back((Token)t);
    }
    return std::nullopt;
}

// "prompt" (or "input"): a string, an array of strings, an array of token ids or an array of token-id arrays.
MaybeError parse_prompts(const Fields& f, std::vector<PromptInput>& out, const char* key = "prompt", size_t max_prompts = kMaxPrompts) {
    const std::string field = key;
    const json* p = f.get(key);
    if (!p) return bad_field(field, "is required");
    if (p->is_string()) {
        out.push_back({p->get<std::string>(), {}, false});
        return std::nullopt;
    }
    if (!p->is_array()) return wrong_type(field, "a string or an array", *p);
    if (p->empty()) return bad_field(field, "is an empty array");
    if ((*p)[0].is_number()) {
        PromptInput in;
        in.is_tokens = true;
        LC_CHECK(parse_token_array(*p, field, in.tokens));
        out.push_back(std::move(in));
        return std::nullopt;
    }
    if (p->size() > max_prompts) return bad_field(field, fmt::format("has {} prompts; at most {} are allowed", p->size(), max_prompts));
    for (size_t i = 0; i < p->size(); ++i) {
        const json& e = (*p)[i];
        const std::string name = fmt::format("{}[{}]", field, i);
        PromptInput in;
        if (e.is_string()) {
            in.text = e.get<std::string>();
        } else if (e.is_array()) {
            if (e.empty()) return bad_field(name, "is an empty token array");
            in.is_tokens = true;
            LC_CHECK(parse_token_array(e, name, in.tokens));
        } else {
            return wrong_type(name, "a string or an array of token ids", e);
        }
        out.push_back(std::move(in));
    }
    return std::nullopt;
}

// A message's content: a string, or an array of {"type": "text", "text": "..."} parts (joined with newlines).
MaybeError parse_content(const json& c, const std::string& field, std::string& out) {
    if (c.is_null()) return std::nullopt;
    if (c.is_string()) {
        out = c.get<std::string>();
        return std::nullopt;
    }
    if (!c.is_array()) return wrong_type(field, "a string or an array of content parts", c);
    for (size_t i = 0; i < c.size(); ++i) {
        const std::string name = fmt::format("{}[{}]", field, i);
        if (!c[i].is_object()) return wrong_type(name, "an object", c[i]);
        Fields part(c[i], name + ".");
        std::string type, text;
        LC_CHECK(part.string("type", type));
        if (type != "text") return bad_field(name + ".type", fmt::format("content parts of type '{}' are not supported (only 'text')", type));
        LC_CHECK(part.string("text", text));
        if (!out.empty()) out += "\n";
        out += text;
    }
    return std::nullopt;
}

MaybeError parse_messages(const Fields& f, std::vector<ChatMessage>& out) {
    const json* m = f.get("messages");
    if (!m) return bad_field("messages", "is required");
    if (!m->is_array()) return wrong_type("messages", "an array", *m);
    if (m->empty()) return bad_field("messages", "is an empty array");
    for (size_t i = 0; i < m->size(); ++i) {
        const std::string name = fmt::format("messages[{}]", i);
        const json& e = (*m)[i];
        if (!e.is_object()) return wrong_type(name, "an object", e);
        Fields mf(e, name + ".");
        ChatMessage msg;
        LC_CHECK(mf.string("role", msg.role));
        if (msg.role.empty()) return bad_field(name + ".role", "is required");
        if (msg.role == "developer") msg.role = "system";  // OpenAI's newer name for the system role
        if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool") {
            return bad_field(name + ".role", fmt::format("'{}' is not one of system, developer, user, assistant, tool", msg.role));
        }
        if (auto it = e.find("content"); it != e.end()) LC_CHECK(parse_content(*it, name + ".content", msg.content));
        out.push_back(std::move(msg));
    }
    return std::nullopt;
}

MaybeError parse_stop(const Fields& f, std::vector<std::string>& out) {
    const json* s = f.get("stop");
    if (!s) return std::nullopt;
    auto add = [&](const json& v, const std::string& name) -> MaybeError {
        if (!v.is_string()) return wrong_type(name, "a string", v);
        std::string text = v.get<std::string>();
        if (text.size() > kMaxStopBytes) return bad_field(name, fmt::format("is longer than {} bytes", kMaxStopBytes));
        if (!text.empty()) out.push_back(std::move(text));
        return std::nullopt;
    };
    if (s->is_string()) return add(*s, "stop");
    if (!s->is_array()) return wrong_type("stop", "a string or an array of strings", *s);
    if (s->size() > kMaxStops) return bad_field("stop", fmt::format("has {} entries; at most {} are allowed", s->size(), kMaxStops));
    for (size_t i = 0; i < s->size(); ++i) LC_CHECK(add((*s)[i], fmt::format("stop[{}]", i)));
    return std::nullopt;
}

// "logit_bias": {"<token id>": bias in [-100, 100]}; -100 bans the token, as in OpenAI's API.
MaybeError parse_logit_bias(const Fields& f, std::map<Token, float>& out) {
    const json* lb = f.get("logit_bias");
    if (!lb) return std::nullopt;
    if (!lb->is_object()) return wrong_type("logit_bias", "an object mapping token ids to numbers", *lb);
    for (const auto& [key, value] : lb->items()) {
        const std::string name = "logit_bias." + key;
        int64_t id = -1;
        bool digits = !key.empty() && key.size() <= 10;
        for (char c : key) digits = digits && c >= '0' && c <= '9';
        if (digits) id = std::stoll(key);
        if (!digits || id > kMaxTokenId) return bad_field("logit_bias", fmt::format("key '{}' is not a token id", key));
        if (!value.is_number()) return wrong_type(name, "a number", value);
        const double bias = value.get<double>();
        if (!std::isfinite(bias) || bias < -100.0 || bias > 100.0) {
            return bad_field(name, fmt::format("{} is out of range [-100, 100]", bias));
        }
        out[(Token)id] = bias <= -100.0 ? -INFINITY : (float)bias;
    }
    return std::nullopt;
}

MaybeError parse_sampling(const Fields& f, GenerationRequest& r) {
    SamplingParams& s = r.sampling;
    LC_CHECK(f.number("temperature", s.temperature, 0.0, 2.0));
    LC_CHECK(f.number("top_p", s.top_p, 0.0, 1.0));
    if (s.top_p <= 0.0f) {
        // top_p 0 keeps only the most likely token: greedy.
        s.top_p = 1.0f;
        s.temperature = 0.0f;
    }
    LC_CHECK(f.integer32("top_k", s.top_k, -1, std::numeric_limits<int32_t>::max()));
    LC_CHECK(f.number("min_p", s.min_p, 0.0, 1.0));
    LC_CHECK(f.number("typical_p", s.typical_p, 1e-6, 1.0));
    LC_CHECK(f.number("presence_penalty", s.presence_penalty, -2.0, 2.0));
    LC_CHECK(f.number("frequency_penalty", s.frequency_penalty, -2.0, 2.0));
    LC_CHECK(f.number("repeat_penalty", s.repeat_penalty, 1e-3, 10.0));
    LC_CHECK(f.integer32("repeat_last_n", s.repeat_last_n, 0, 1 << 20));
    int64_t seed = 0;
    LC_CHECK(f.integer("seed", seed, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &r.seed_given));
    if (r.seed_given) s.seed = (uint32_t)(uint64_t)seed;  // OpenAI seeds are 64-bit; ours are 32
    LC_CHECK(parse_logit_bias(f, s.logit_bias));
    return std::nullopt;
}

// Fields we do not implement are refused rather than silently ignored when they would change the answer.
MaybeError refuse_unsupported(const Fields& f, ApiKind kind) {
    if (kind == ApiKind::kCompletion) {
        if (const json* sfx = f.get("suffix")) {
            if (!sfx->is_string()) return wrong_type("suffix", "a string", *sfx);
            if (!sfx->get<std::string>().empty()) return bad_field("suffix", "is not supported");
        }
    }
    return std::nullopt;
}

// A JSON schema given as an object (or as JSON text in a string, as some clients send it), as JSON text.
MaybeError schema_text(const json& v, const std::string& field, std::string& out) {
    if (v.is_string()) {
        const json parsed = json::parse(v.get<std::string>(), nullptr, /*allow_exceptions=*/false);
        if (parsed.is_discarded() || !parsed.is_object()) return bad_field(field, "is a string that is not a JSON object");
        out = parsed.dump();
    } else if (v.is_object() || v.is_boolean()) {
        out = v.dump();
    } else {
        return wrong_type(field, "an object", v);
    }
    return std::nullopt;
}

// response_format ({"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema", "strict"}})
// and llama.cpp's "grammar" (GBNF) and "json_schema" (an object): at most one constraint, resolved to the grammar
// text through the library, so that a bad grammar or schema is a 400 naming the field and the place.
MaybeError parse_structured_output(const Fields& f, std::string& gbnf) {
    std::string grammar, schema;
    std::string field;       // the one request field that asks for a constraint
    std::string err_field;   // where a bad grammar or schema is reported
    auto claim = [&](const std::string& name) -> MaybeError {
        if (!field.empty()) return bad_field(name, fmt::format("cannot be combined with {}; give one constraint", field));
        field = name;
        return std::nullopt;
    };
    if (const json* rf = f.get("response_format")) {
        if (!rf->is_object()) return wrong_type("response_format", "an object", *rf);
        const Fields rff(*rf, "response_format.");
        std::string type;
        LC_CHECK(rff.string("type", type));
        if (type == "json_object") {
            // OpenAI's json_object mode promises an object. The schema converter's grammar also keeps whitespace to one
            // optional space, where json_grammar() lets a weak model emit whitespace until max_tokens.
            LC_CHECK(claim("response_format"));
            schema = R"({"type": "object"})";
        } else if (type == "json_schema") {
            LC_CHECK(claim("response_format"));
            const json* js = rff.get("json_schema");
            if (!js) return bad_field("response_format.json_schema", "is required when type is 'json_schema'");
            if (!js->is_object()) return wrong_type("response_format.json_schema", "an object", *js);
            const Fields jsf(*js, "response_format.json_schema.");
            std::string name;
            bool strict = false;
            LC_CHECK(jsf.string("name", name));
            LC_CHECK(jsf.boolean("strict", strict));
            const json* sc = jsf.get("schema");
            if (!sc) return bad_field("response_format.json_schema.schema", "is required");
            LC_CHECK(schema_text(*sc, "response_format.json_schema.schema", schema));
            err_field = "response_format.json_schema.schema";
        } else if (!type.empty() && type != "text") {
            return bad_field("response_format.type", fmt::format("'{}' is not one of text, json_object, json_schema", type));
        }
    }
    if (f.get("grammar")) {
        LC_CHECK(claim("grammar"));
        LC_CHECK(f.string("grammar", grammar));
        if (grammar.empty()) field.clear();
    }
    const json* js = f.get("json_schema");
    if (js && !(js->is_object() && js->empty())) {  // llama.cpp's clients send {} for none
        LC_CHECK(claim("json_schema"));
        LC_CHECK(schema_text(*js, "json_schema", schema));
    }
    if (field.empty()) return std::nullopt;
    auto resolved = resolve_grammar(grammar, schema);
    if (!resolved.ok()) return bad_field(err_field.empty() ? field : err_field, resolved.error().message);
    gbnf = std::move(resolved).value();
    return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_generation_request(std::string_view body, ApiKind kind, GenerationRequest& r) {
    json j;
    LC_CHECK(parse_object(body, j));
    const Fields f(j);
    r = GenerationRequest{};
    r.kind = kind;
    LC_CHECK(f.string("model", r.model));
    LC_CHECK(refuse_unsupported(f, kind));
    if (kind == ApiKind::kCompletion) {
        LC_CHECK(parse_prompts(f, r.prompts));
    } else {
        LC_CHECK(parse_messages(f, r.messages));
    }
    LC_CHECK(f.integer32("max_tokens", r.max_tokens, 1, std::numeric_limits<int32_t>::max()));
    if (kind == ApiKind::kChat) LC_CHECK(f.integer32("max_completion_tokens", r.max_tokens, 1, std::numeric_limits<int32_t>::max()));
    LC_CHECK(parse_sampling(f, r));
    LC_CHECK(parse_stop(f, r.stop));
    LC_CHECK(f.integer32("n", r.n, 1, kMaxChoices));
    if (const json* best_of = f.get("best_of")) {
        int64_t b = 0;
        LC_CHECK(Fields::as_integer(*best_of, "best_of", b, 1, kMaxChoices));
        if (b != r.n) return bad_field("best_of", "only best_of equal to n is supported");
    }
    if (kind == ApiKind::kCompletion) {
        LC_CHECK(f.integer32("logprobs", r.logprobs, 0, kMaxTopLogprobs));
        LC_CHECK(f.boolean("echo", r.echo));
    } else {
        bool want = false;
        LC_CHECK(f.boolean("logprobs", want));
        int32_t top = 0;
        LC_CHECK(f.integer32("top_logprobs", top, 0, kMaxTopLogprobs));
        if (f.get("top_logprobs") && !want) return bad_field("top_logprobs", "requires logprobs to be true");
        r.logprobs = want ? top : -1;
    }
    LC_CHECK(f.boolean("stream", r.stream));
    if (const json* so = f.get("stream_options")) {
        if (!so->is_object()) return wrong_type("stream_options", "an object", *so);
        LC_CHECK(Fields(*so, "stream_options.").boolean("include_usage", r.include_usage));
    }
    LC_CHECK(f.boolean("ignore_eos", r.ignore_eos));
    LC_CHECK(parse_structured_output(f, r.grammar));
    LC_CHECK(parse_tool_request(j, r));
    std::string user;
    LC_CHECK(f.string("user", user));
    return std::nullopt;
}

std::optional<ApiError> parse_tokenize_request(std::string_view body, TokenizeRequest& out) {
    json j;
    LC_CHECK(parse_object(body, j));
    const Fields f(j);
    if (!f.get("content")) return bad_field("content", "is required");
    LC_CHECK(f.string("content", out.content));
    LC_CHECK(f.boolean("add_special", out.add_special));
    LC_CHECK(f.boolean("with_pieces", out.with_pieces));
    return std::nullopt;
}

std::optional<ApiError> parse_detokenize_request(std::string_view body, DetokenizeRequest& out) {
    json j;
    LC_CHECK(parse_object(body, j));
    const Fields f(j);
    const json* t = f.get("tokens");
    if (!t) return bad_field("tokens", "is required");
    if (!t->is_array()) return wrong_type("tokens", "an array of token ids", *t);
    return parse_token_array(*t, "tokens", out.tokens);
}

std::optional<ApiError> parse_embedding_request(std::string_view body, EmbeddingRequest& out) {
    json j;
    LC_CHECK(parse_object(body, j));
    const Fields f(j);
    LC_CHECK(f.string("model", out.model));
    if (f.get("dimensions")) {
        return bad_field("dimensions", "is not supported: the vectors always have the model's embedding size");
    }
    std::string format = "float";
    LC_CHECK(f.string("encoding_format", format));
    if (format != "float" && format != "base64") {
        return bad_field("encoding_format", fmt::format("'{}' is not one of float, base64", format));
    }
    out.base64 = format == "base64";
    LC_CHECK(parse_prompts(f, out.inputs, "input", kMaxEmbedInputs));
    for (size_t i = 0; i < out.inputs.size(); ++i) {
        const PromptInput& in = out.inputs[i];
        const std::string name = out.inputs.size() > 1 || j["input"].is_array() ? fmt::format("input[{}]", i) : "input";
        if (!in.is_tokens && in.text.empty()) return bad_field(name, "is an empty string");
        if (in.is_tokens && in.tokens.empty()) return bad_field(name, "is an empty token array");
    }
    return std::nullopt;
}

std::optional<ApiError> parse_slot_file_request(std::string_view body, std::string& filename) {
    json j;
    LC_CHECK(parse_object(body, j));
    const Fields f(j);
    if (!f.get("filename")) return bad_field("filename", "is required");
    return f.string("filename", filename);
}

}  // namespace llama_crab::server
