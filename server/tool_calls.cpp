#include "tool_calls.h"

#include <fmt/format.h>

#include "llama_crab/grammar.h"

namespace llama_crab::server {
namespace {

using nlohmann::json;

struct Tool {
    std::string name;
    std::string description;
    json parameters;
};

std::optional<ApiError> parse_tools(const json& tools, std::vector<Tool>& out) {
    if (!tools.is_array()) return bad_field("tools", "expected an array");
    for (size_t i = 0; i < tools.size(); ++i) {
        const std::string field = fmt::format("tools[{}]", i);
        const json& t = tools[i];
        if (!t.is_object()) return bad_field(field, "expected an object");
        auto type = t.find("type");
        if (type != t.end() && !(type->is_string() && type->get<std::string>() == "function")) {
            return bad_field(field + ".type", "only 'function' tools are supported");
        }
        auto f = t.find("function");
        if (f == t.end() || !f->is_object()) return bad_field(field + ".function", "is required and must be an object");
        auto name = f->find("name");
        if (name == f->end() || !name->is_string() || name->get<std::string>().empty()) {
            return bad_field(field + ".function.name", "is required and must be a non-empty string");
        }
        Tool tool;
        tool.name = name->get<std::string>();
        if (auto d = f->find("description"); d != f->end() && d->is_string()) tool.description = d->get<std::string>();
        tool.parameters = json{{"type", "object"}, {"additionalProperties", false}};  // no parameters: {}
        if (auto p = f->find("parameters"); p != f->end() && !p->is_null()) {
            if (!p->is_object()) return bad_field(field + ".function.parameters", "expected an object (a JSON schema)");
            if (!p->empty()) tool.parameters = *p;
        }
        out.push_back(std::move(tool));
    }
    return std::nullopt;
}

// The schema of one call of any of the tools: {"name": <const>, "arguments": <parameters>}.
json call_schema(const std::vector<Tool>& tools) {
    json any = json::array();
    for (const Tool& t : tools) {
        any.push_back(json{{"type", "object"},
                           {"properties", json{{"name", json{{"const", t.name}}}, {"arguments", t.parameters}}},
                           {"required", json::array({"name", "arguments"})},
                           {"additionalProperties", false}});
    }
    return any.size() == 1 ? any[0] : json{{"anyOf", any}};
}

std::string system_text(const std::vector<Tool>& tools) {
    std::string s = "You can call these tools. To call one, answer with only a JSON object "
                    "{\"name\": <tool name>, \"arguments\": <arguments object>}.\n\nTools:\n";
    for (const Tool& t : tools) {
        s += fmt::format("- {}: {}\n  parameters: {}\n", t.name, t.description.empty() ? "(no description)" : t.description,
                         t.parameters.dump());
    }
    return s;
}

}  // namespace

std::optional<ApiError> parse_tool_request(const json& body, GenerationRequest& out) {
    if (auto f = body.find("functions"); f != body.end() && !f->is_null() && !(f->is_array() && f->empty())) {
        return bad_field("functions", "the deprecated functions field is not supported; use tools");
    }
    auto it = body.find("tools");
    if (it == body.end() || it->is_null() || (it->is_array() && it->empty())) return std::nullopt;
    if (out.kind != ApiKind::kChat) return bad_field("tools", "tools are only supported on /v1/chat/completions");
    std::vector<Tool> tools;
    if (auto err = parse_tools(*it, tools)) return err;
    if (auto p = body.find("parallel_tool_calls"); p != body.end() && !p->is_null() && !p->is_boolean()) {
        return bad_field("parallel_tool_calls", "expected a boolean");
    }

    std::string choice = "auto";
    auto tc = body.find("tool_choice");
    if (tc != body.end() && !tc->is_null()) {
        if (tc->is_string()) {
            choice = tc->get<std::string>();
            if (choice != "auto" && choice != "none" && choice != "required") {
                return bad_field("tool_choice", fmt::format("'{}' is not one of auto, none, required or a function", choice));
            }
        } else if (tc->is_object()) {
            const json* name = nullptr;
            if (auto f = tc->find("function"); f != tc->end() && f->is_object()) {
                if (auto n = f->find("name"); n != f->end() && n->is_string()) name = &*n;
            }
            if (!name) return bad_field("tool_choice.function.name", "is required (a string)");
            const std::string wanted = name->get<std::string>();
            std::vector<Tool> named;
            for (const Tool& t : tools) if (t.name == wanted) named.push_back(t);
            if (named.empty()) return bad_field("tool_choice.function.name", fmt::format("'{}' is not one of the tools", wanted));
            tools = std::move(named);
            choice = "function";
        } else {
            return bad_field("tool_choice", "expected a string or an object");
        }
    }
    if (choice == "none") return std::nullopt;
    if (choice == "auto") {
        return bad_field("tool_choice", "'auto' is not supported yet (calls are not parsed out of free text); "
                                        "use 'required' or a named function");
    }
    if (!out.grammar.empty()) return bad_field("tool_choice", "cannot be combined with response_format, grammar or json_schema");
    auto g = json_schema_to_grammar(call_schema(tools).dump());
    if (!g.ok()) return bad_field("tools", g.error().message);
    out.grammar = std::move(g).value();
    out.tool_call = true;
    ChatMessage sys;
    sys.role = "system";
    sys.content = system_text(tools);
    if (!out.messages.empty() && out.messages[0].role == "system") {
        out.messages[0].content = sys.content + "\n" + out.messages[0].content;
    } else {
        out.messages.insert(out.messages.begin(), std::move(sys));
    }
    return std::nullopt;
}

json tool_calls_json(const std::string& text, const std::string& call_id) {
    const json call = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!call.is_object() || !call.contains("name") || !call["name"].is_string() || !call.contains("arguments")) return nullptr;
    return json::array({json{{"id", call_id},
                             {"type", "function"},
                             {"function", json{{"name", call["name"]}, {"arguments", call["arguments"].dump()}}}}});
}

}  // namespace llama_crab::server
