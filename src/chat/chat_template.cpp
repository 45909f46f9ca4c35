// ChatTemplate: the public face of the chat-template engine, and the built-in formats (written as Jinja
// templates rendered by the same engine).
#include <algorithm>
#include <utility>

#include "chat/jinja.h"
#include "chat/jinja_text.h"
#include "llama_crab/chat.h"

namespace llama_crab {

struct ChatTemplate::Impl {
    std::string source;
    std::string builtin_name;
    std::shared_ptr<const jinja::TemplateAst> ast;
};

namespace {

struct BuiltinFormat {
    const char* name;
    const char* source;
};

// A leading system message is folded into the first user turn by the formats that have no system role.
#define LC_SPLIT_SYSTEM(sys_default)                                                           \
    "{%- if messages and messages[0]['role'] == 'system' -%}"                                  \
    "{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}"               \
    "{%- else -%}{%- set system = " sys_default " -%}{%- set rest = messages -%}{%- endif -%}"

constexpr BuiltinFormat kBuiltins[] = {
    {"chatml",
     "{%- for message in messages -%}"
     "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
     "{%- endfor -%}"
     "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"},
    {"llama2",
     LC_SPLIT_SYSTEM("none")
     "{%- for message in rest -%}"
     "{%- if message['role'] == 'user' -%}"
     "{{- bos_token + '[INST] ' -}}"
     "{%- if loop.first and system is not none -%}{{- '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' -}}{%- endif -%}"
     "{{- message['content'] | trim + ' [/INST]' -}}"
     "{%- elif message['role'] == 'assistant' -%}"
     "{{- ' ' + message['content'] | trim + ' ' + eos_token -}}"
     "{%- endif -%}"
     "{%- endfor -%}"},
    {"llama3",
     "{{- bos_token -}}"
     "{%- for message in messages -%}"
     "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
     "'<|eot_id|>' -}}"
     "{%- endfor -%}"
     "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"},
    {"mistral",
     LC_SPLIT_SYSTEM("none")
     "{{- bos_token -}}"
     "{%- for message in rest -%}"
     "{%- if message['role'] == 'user' -%}"
     "{{- '[INST] ' -}}"
     "{%- if loop.first and system is not none -%}{{- system + '\\n\\n' -}}{%- endif -%}"
     "{{- message['content'] + ' [/INST]' -}}"
     "{%- elif message['role'] == 'assistant' -%}"
     "{{- message['content'] + eos_token -}}"
     "{%- endif -%}"
     "{%- endfor -%}"},
    {"zephyr",
     "{%- for message in messages -%}"
     "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' -}}"
     "{%- endfor -%}"
     "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"},
    {"gemma",
     LC_SPLIT_SYSTEM("none")
     "{{- bos_token -}}"
     "{%- for message in rest -%}"
     "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
     "{%- set prefix = system + '\\n\\n' if loop.first and system is not none else '' -%}"
     "{{- '<start_of_turn>' + role + '\\n' + prefix + message['content'] | trim + '<end_of_turn>\\n' -}}"
     "{%- endfor -%}"
     "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"},
    {"phi3",
     "{%- for message in messages -%}"
     "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' -}}"
     "{%- endfor -%}"
     "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"},
    {"deepseek",
     "{{- bos_token -}}"
     "{%- for message in messages -%}"
     "{%- if message['role'] == 'system' -%}{{- message['content'] + '\\n\\n' -}}"
     "{%- elif message['role'] == 'user' -%}{{- '<\xef\xbd\x9cUser\xef\xbd\x9c>' + message['content'] -}}"
     "{%- elif message['role'] == 'assistant' -%}"
     "{{- '<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>' + message['content'] + "
     "'<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>' -}}"
     "{%- endif -%}"
     "{%- endfor -%}"
     "{%- if add_generation_prompt -%}{{- '<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>' -}}{%- endif -%}"},
};

#undef LC_SPLIT_SYSTEM

Error with_context(Error e, const char* what) {
    e.message = std::string(what) + ": " + e.message;
    return e;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::from_source(std::string jinja_source) {
    auto ast = jinja::parse(jinja_source);
    if (!ast.ok()) return with_context(ast.error(), "chat template");
    auto impl = std::make_shared<Impl>();
    impl->source = std::move(jinja_source);
    impl->ast = std::move(ast).value();
    return ChatTemplate(std::move(impl));
}

Result<ChatTemplate> ChatTemplate::builtin(std::string_view name) {
    for (const auto& b : kBuiltins) {
        if (name != b.name) continue;
        auto ast = jinja::parse(b.source);
        if (!ast.ok()) return with_context(ast.error(), "built-in chat template");
        auto impl = std::make_shared<Impl>();
        impl->source = b.source;
        impl->builtin_name = b.name;
        impl->ast = std::move(ast).value();
        return ChatTemplate(std::move(impl));
    }
    std::string known;
    for (const auto& b : kBuiltins) known += std::string(known.empty() ? "" : ", ") + b.name;
    return Error{ErrorCode::kInvalidArgument,
                 "unknown built-in chat template '" + std::string(name) + "' (known: " + known + ")"};
}

std::vector<std::string> ChatTemplate::builtin_names() {
    std::vector<std::string> names;
    for (const auto& b : kBuiltins) names.emplace_back(b.name);
    return names;
}

std::optional<std::string> ChatTemplate::detect_builtin(std::string_view src) {
    auto has = [&](std::string_view marker) { return src.find(marker) != std::string_view::npos; };
    if (has("<|im_start|>")) return "chatml";
    if (has("<|start_header_id|>")) return "llama3";
    if (has("<\xef\xbd\x9cUser\xef\xbd\x9c>") || has("<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>")) return "deepseek";
    if (has("<start_of_turn>")) return "gemma";
    if (has("<|user|>") && has("<|end|>")) return "phi3";
    if (has("<|user|>") && has("<|assistant|>")) return "zephyr";
    if (has("[INST]") && has("<<SYS>>")) return "llama2";
    if (has("[INST]")) return "mistral";
    return std::nullopt;
}

Result<std::string> ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                         const ChatRenderOptions& options) const {
    auto check = [](const std::string& s, const std::string& what) -> Status {
        if (!jinja::text::utf8_valid(s)) return Error{ErrorCode::kInvalidArgument, what + " is not valid UTF-8"};
        return {};
    };
    jinja::RenderContext ctx;
    std::vector<jinja::Value> msgs;
    msgs.reserve(messages.size());
    for (size_t i = 0; i < messages.size(); ++i) {
        const std::string where = std::string("messages[") + std::to_string(i) + "]";
        LC_TRY(check(messages[i].role, where + ".role"));
        LC_TRY(check(messages[i].content, where + ".content"));
        jinja::DictPtr d = jinja::make_dict();
        d->set(jinja::Value::string("role"), jinja::Value::string(messages[i].role));
        d->set(jinja::Value::string("content"), jinja::Value::string(messages[i].content));
        msgs.push_back(jinja::Value::dict(std::move(d)));
    }
    LC_TRY(check(options.bos_token, "bos_token"));
    LC_TRY(check(options.eos_token, "eos_token"));
    ctx.vars = {
        {"messages", jinja::Value::list(std::move(msgs))},
        {"tools", jinja::Value::none()},
        {"documents", jinja::Value::none()},
        {"add_generation_prompt", jinja::Value::boolean(options.add_generation_prompt)},
        {"bos_token", jinja::Value::string(options.bos_token)},
        {"eos_token", jinja::Value::string(options.eos_token)},
    };
    ctx.strftime_now = options.strftime_now;
    auto out = jinja::render(*impl_->ast, ctx);
    if (!out.ok()) return with_context(out.error(), "chat template");
    return out;
}

const std::string& ChatTemplate::source() const { return impl_->source; }
const std::string& ChatTemplate::builtin_name() const { return impl_->builtin_name; }

}  // namespace llama_crab
