// Chat completions: render the messages with the model's template (or a built-in one), then complete.
#include <fmt/format.h>

#include "llama/llama_impl.h"

namespace llama_crab {

Result<std::string> Llama::apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                               const std::optional<std::string>& template_name) const {
    LC_TRY(impl_->require_vocab());
    const Vocab& v = *impl_->vocab;
    ChatRenderOptions ro;
    ro.add_generation_prompt = add_generation_prompt;
    if (v.bos() >= 0) ro.bos_token = std::string(v.token_text(v.bos()));
    if (v.eos() >= 0) ro.eos_token = std::string(v.token_text(v.eos()));

    if (template_name) {
        LC_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::builtin(*template_name));
        return t.render(messages, ro);
    }
    const auto source = impl_->model->meta_string("tokenizer.chat_template");
    if (!source) {
        // No template in the file: the family's own format, else ChatML (the most common convention).
        const std::string& arch = impl_->model->hparams().arch;
        const char* name = arch == "gemma2" || arch == "gemma3" ? "gemma" : arch == "phi3" ? "phi3" : "chatml";
        LC_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::builtin(name));
        return t.render(messages, ro);
    }
    auto t = ChatTemplate::from_source(*source);
    if (t.ok()) {
        auto r = t->render(messages, ro);
        if (r.ok()) return r;
        // The interpreter could not render it: fall back to the built-in format the template looks like.
        if (auto name = ChatTemplate::detect_builtin(*source)) {
            LC_ASSIGN_OR_RETURN(ChatTemplate b, ChatTemplate::builtin(*name));
            return b.render(messages, ro);
        }
        return r.error();
    }
    if (auto name = ChatTemplate::detect_builtin(*source)) {
        LC_ASSIGN_OR_RETURN(ChatTemplate b, ChatTemplate::builtin(*name));
        return b.render(messages, ro);
    }
    return t.error();
}

Result<Completion> Llama::create_chat_completion(const std::vector<ChatMessage>& messages, const ChatOptions& options) {
    return create_chat_completion_stream(messages, options, nullptr);
}

Result<Completion> Llama::create_chat_completion_stream(const std::vector<ChatMessage>& messages, const ChatOptions& options,
                                                        const StreamCallback& callback) {
    if (messages.empty()) return make_error(ErrorCode::kInvalidArgument, "chat: no messages");
    LC_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize_chat(messages, true, options.template_name));
    return impl_->run(tokens, options, callback);
}

Result<std::vector<Token>> Llama::tokenize_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                                const std::optional<std::string>& template_name) const {
    LC_ASSIGN_OR_RETURN(std::string prompt, apply_chat_template(messages, add_generation_prompt, template_name));
    // The template writes the BOS token itself when it wants one; add it only when the text lacks it.
    const Vocab& v = *impl_->vocab;
    const bool has_bos = v.bos() >= 0 && prompt.rfind(std::string(v.token_text(v.bos())), 0) == 0;
    std::vector<Token> tokens = v.tokenize(prompt, false, true);
    if (!has_bos && v.add_bos() && v.bos() >= 0) tokens.insert(tokens.begin(), v.bos());
    return tokens;
}

}  // namespace llama_crab
