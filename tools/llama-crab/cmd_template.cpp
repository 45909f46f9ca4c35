// template render: render a chat template (a model's own, a .jinja file, or a built-in format) for a list
// of messages and print the prompt exactly.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "gguf/gguf.h"
#include "llama_crab/chat.h"

namespace llama_crab::cli {
namespace {

struct RenderOptions {
    std::string model;
    std::string template_arg;   // --template: a built-in name, else a Jinja file
    std::string template_file;  // --template-file
    std::string builtin;        // --builtin (the older spelling of --template NAME)
    std::string messages_file;
    bool add_generation_prompt = false;
    std::string bos_text, eos_text;                      // as given on the command line
    std::optional<std::string> bos_token, eos_token;     // nullopt: not given
};

Result<std::string> read_text(const std::string& path, const char* what) {
    if (path == "-") {
        std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
        return s;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) return make_error(ErrorCode::kIo, std::string("cannot open ") + what + " '" + path + "'");
    std::stringstream s;
    s << f.rdbuf();
    if (f.bad()) return make_error(ErrorCode::kIo, std::string("cannot read ") + what + " '" + path + "'");
    return s.str();
}

Result<std::vector<ChatMessage>> parse_messages(const std::string& text, const std::string& path) {
    nlohmann::ordered_json j;
    try {
        j = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        return make_error(ErrorCode::kInvalidFormat, std::string("messages file '") + path + "' is not valid JSON: " + e.what());
    }
    if (!j.is_array()) {
        return make_error(ErrorCode::kInvalidFormat,
                          "messages file '" + path + "' must hold a JSON list of {\"role\", \"content\"} objects");
    }
    std::vector<ChatMessage> out;
    for (size_t i = 0; i < j.size(); ++i) {
        const auto& m = j[i];
        const std::string where = std::string("messages[") + std::to_string(i) + "]";
        if (!m.is_object()) return make_error(ErrorCode::kInvalidFormat, where + " is not an object");
        for (const char* field : {"role", "content"}) {
            if (!m.contains(field) || !m[field].is_string()) {
                return make_error(ErrorCode::kInvalidFormat, where + "." + field + " must be a string");
            }
        }
        out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    return out;
}

// The token string of the id stored under `id_key`, or nullopt when the model does not say.
Result<std::optional<std::string>> special_token(const GgufFile& gguf, const char* id_key) {
    LC_ASSIGN_OR_RETURN(auto id, gguf.get_int(id_key));
    if (!id) return std::optional<std::string>();
    const GgufValue* tokens = gguf.find("tokenizer.ggml.tokens");
    if (!tokens || tokens->type != GgufType::ARRAY || tokens->elem_type != GgufType::STRING) {
        return make_error(ErrorCode::kInvalidFormat, "the model has no tokenizer.ggml.tokens string array");
    }
    if (*id < 0 || static_cast<uint64_t>(*id) >= tokens->array.size()) {
        return make_error(ErrorCode::kInvalidFormat, std::string(id_key) + " = " + std::to_string(*id) +
                                                         " is outside tokenizer.ggml.tokens (" +
                                                         std::to_string(tokens->array.size()) + " tokens)");
    }
    return std::optional<std::string>(std::string(tokens->array[static_cast<size_t>(*id)].str));
}

bool is_builtin_name(const std::string& name) {
    const auto names = ChatTemplate::builtin_names();
    return std::find(names.begin(), names.end(), name) != names.end();
}

std::string builtin_list() {
    std::string names;
    for (const auto& n : ChatTemplate::builtin_names()) names += (names.empty() ? "" : ", ") + n;
    return names;
}

Status run_render(RenderOptions o) {
    const int sources = !o.model.empty() + !o.template_arg.empty() + !o.template_file.empty() + !o.builtin.empty();
    if (sources != 1) {
        return make_error(ErrorCode::kInvalidArgument, "give exactly one of --model, --template or --template-file");
    }
    // --template NAME means a built-in template, as in `chat` and `serve`; a value that is not a built-in name
    // is read as a Jinja file (what --template-file says explicitly).
    if (!o.template_arg.empty()) {
        if (is_builtin_name(o.template_arg)) {
            o.builtin = o.template_arg;
        } else if (std::filesystem::is_regular_file(o.template_arg)) {
            o.template_file = o.template_arg;
        } else {
            return make_error(ErrorCode::kInvalidArgument, "--template '" + o.template_arg + "' is neither a built-in template (" +
                                                               builtin_list() + ") nor a Jinja file");
        }
    }
    Result<ChatTemplate> tmpl = make_error(ErrorCode::kInternal, "no template");
    if (!o.model.empty()) {
        LC_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(o.model));
        LC_ASSIGN_OR_RETURN(auto source, gguf.get_string("tokenizer.chat_template"));
        if (!source) {
            return make_error(ErrorCode::kInvalidArgument,
                              "model '" + o.model + "' has no tokenizer.chat_template (use --template or --builtin)");
        }
        if (!o.bos_token) {
            LC_ASSIGN_OR_RETURN(o.bos_token, special_token(gguf, "tokenizer.ggml.bos_token_id"));
        }
        if (!o.eos_token) {
            LC_ASSIGN_OR_RETURN(o.eos_token, special_token(gguf, "tokenizer.ggml.eos_token_id"));
        }
        tmpl = ChatTemplate::from_source(std::move(*source));
    } else if (!o.template_file.empty()) {
        LC_ASSIGN_OR_RETURN(std::string source, read_text(o.template_file, "template"));
        tmpl = ChatTemplate::from_source(std::move(source));
    } else {
        tmpl = ChatTemplate::builtin(o.builtin);
    }
    if (!tmpl.ok()) return tmpl.error();

    LC_ASSIGN_OR_RETURN(std::string messages_text, read_text(o.messages_file, "messages file"));
    LC_ASSIGN_OR_RETURN(std::vector<ChatMessage> messages, parse_messages(messages_text, o.messages_file));

    ChatRenderOptions ro;
    ro.add_generation_prompt = o.add_generation_prompt;
    ro.bos_token = o.bos_token.value_or("");
    ro.eos_token = o.eos_token.value_or("");
    LC_ASSIGN_OR_RETURN(std::string prompt, tmpl->render(messages, ro));
    if (std::fwrite(prompt.data(), 1, prompt.size(), stdout) != prompt.size() || std::fflush(stdout) != 0) {
        return make_error(ErrorCode::kIo, "cannot write the rendered prompt to stdout");
    }
    return {};
}

}  // namespace

void register_template_commands(CLI::App& app) {
    CLI::App* tmpl = app.add_subcommand("template", "chat templates");
    tmpl->require_subcommand(1);
    auto o = std::make_shared<RenderOptions>();
    CLI::App* render = tmpl->add_subcommand(
        "render", "render a chat template for a list of messages and print the prompt exactly (no newline added)");
    render->add_option("--model,-m", o->model, "GGUF model whose tokenizer.chat_template to use");
    render->add_option("--template", o->template_arg,
                       "a built-in template, as in chat and serve: " + builtin_list() + " (another value: a Jinja file)");
    render->add_option("--template-file", o->template_file, "a Jinja2 template file");
    render->add_option("--builtin", o->builtin, "the same as --template NAME")->check(CLI::IsMember(ChatTemplate::builtin_names()));
    render->add_option("--messages", o->messages_file,
                       "JSON file (or - for stdin) holding a list of {\"role\": ..., \"content\": ...}")
        ->required();
    render->add_flag("--add-generation-prompt", o->add_generation_prompt, "end with the assistant turn header");
    CLI::Option* bos = render->add_option("--bos-token", o->bos_text, "bos_token (default: the model's, else empty)");
    CLI::Option* eos = render->add_option("--eos-token", o->eos_text, "eos_token (default: the model's, else empty)");
    render->callback([o, bos, eos] {
        if (bos->count() > 0) o->bos_token = o->bos_text;
        if (eos->count() > 0) o->eos_token = o->eos_text;
        Status st = run_render(*o);
        if (!st.ok()) fail(st.error());
    });
}

}  // namespace llama_crab::cli
