// Chat templates: a model's own Jinja2 `tokenizer.chat_template`, rendered by a built-in Jinja2-subset
// interpreter with the semantics of the reference environment (Hugging Face transformers'
// apply_chat_template: an immutable sandbox with trim_blocks and lstrip_blocks), plus built-in formats
// usable by name or as a fallback.
//
// Templates and messages are untrusted: rendering never crashes, and runs under limits on output size,
// evaluation steps, loop iterations and recursion. Every failure is returned as an Error whose message
// names the template line and the kind of failure (for raise_exception: "TemplateError: <message>").
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llama_crab/error.h"

namespace llama_crab {

struct ChatMessage {
    std::string role;
    std::string content;
};

struct ChatRenderOptions {
    bool add_generation_prompt = false;
    std::string bos_token;
    std::string eos_token;
    // What the template's strftime_now(format) returns. When empty, the local time formatted with
    // strftime(3). Tests inject a fixed clock here.
    std::function<std::string(const std::string& format)> strftime_now;
};

class ChatTemplate {
public:
    // Parses a Jinja2 template. Syntax errors (and unknown tags, filters or tests that Jinja rejects at
    // compile time) are reported here, with the line.
    static Result<ChatTemplate> from_source(std::string jinja_source);
    // A built-in format: chatml, llama2, llama3, mistral, zephyr, gemma, phi3, deepseek.
    static Result<ChatTemplate> builtin(std::string_view name);
    static std::vector<std::string> builtin_names();
    // Recognises a built-in format from a model's template text (by its special markers); used as a
    // fallback when the model's template cannot be rendered.
    static std::optional<std::string> detect_builtin(std::string_view jinja_source);

    // Renders with the variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, and
    // `tools` = `documents` = none. Thread-safe: a template can be rendered by several threads at once.
    Result<std::string> render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& options) const;

    const std::string& source() const;
    // The built-in name, or "" for a template made from source.
    const std::string& builtin_name() const;

    struct Impl;

private:
    explicit ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

}  // namespace llama_crab
