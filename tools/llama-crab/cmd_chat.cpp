// chat: an interactive conversation (a ChatSession) on the terminal, or one user turn per line of piped stdin.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "cli_common.h"
#include "cli_generation.h"
#include "commands.h"
#include "llama_crab/chat_session.h"

namespace llama_crab::cli {
namespace {

struct ChatFlags {
    GenerationFlags gen;
    std::string system;
    std::string session;
    std::string template_name;
};

const char* kHelp =
    "commands: /clear (forget the conversation, keep the system prompt), /save FILE, /load FILE, /exit\n";

// Handles a /command. Returns false when the loop should end.
bool run_command(const std::string& line, ChatSession& chat, const std::string& session_path) {
    const size_t space = line.find(' ');
    const std::string cmd = line.substr(0, space);
    std::string arg = space == std::string::npos ? "" : line.substr(space + 1);
    while (!arg.empty() && arg.back() == ' ') arg.pop_back();
    if (cmd == "/exit" || cmd == "/quit") return false;
    if (cmd == "/clear") {
        chat.clear();
        std::fprintf(stderr, "[conversation cleared]\n");
    } else if (cmd == "/save" || cmd == "/load") {
        if (arg.empty()) {
            std::fprintf(stderr, "error: %s needs a file name\n", cmd.c_str());
            return true;
        }
        const Status st = cmd == "/save" ? chat.save(arg) : chat.load(arg);
        if (!st.ok()) {
            std::fprintf(stderr, "error: %s\n", st.error().message.c_str());
        } else {
            std::fprintf(stderr, "[%s %s: %zu messages]\n", cmd == "/save" ? "saved" : "loaded", arg.c_str(), chat.messages().size());
        }
        return true;
    } else {
        std::fprintf(stderr, "unknown command %s; %s", cmd.c_str(), kHelp);
        return true;
    }
    if (!session_path.empty()) {
        if (auto st = chat.save(session_path); !st.ok()) fail(st.error());
    }
    return true;
}

void run_chat(const ChatFlags& f) {
    auto base = completion_options(f.gen);
    if (!base.ok()) return fail(base.error());
    auto llama = open_llama(f.gen);
    if (!llama.ok()) return fail(llama.error());

    ChatSessionOptions so;
    so.system_prompt = f.system;
    if (!f.template_name.empty()) {
        so.template_name = f.template_name;
    } else if (!llama->model().meta_string("tokenizer.chat_template")) {
        std::fprintf(stderr, "[the model has no chat template: using the built-in 'chatml' (--template NAME picks another)]\n");
    }
    ChatSession chat(*llama, so);
    if (!f.session.empty() && std::filesystem::exists(f.session)) {
        if (auto st = chat.load(f.session); !st.ok()) return fail(st.error());
        std::fprintf(stderr, "[resumed %s: %zu messages, %zu tokens in the KV cache]\n", f.session.c_str(), chat.messages().size(),
                     llama->kv_tokens().size());
    }
    ChatOptions options;
    static_cast<CompletionOptions&>(options) = *base;

    const bool interactive = ::isatty(STDIN_FILENO) == 1;
    if (interactive) std::fprintf(stderr, "%s", kHelp);
    std::string line;
    for (;;) {
        if (interactive) {
            std::printf("> ");
            std::fflush(stdout);
        }
        if (!std::getline(std::cin, line)) break;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        if (line[0] == '/') {
            if (!run_command(line, chat, f.session)) break;
            continue;
        }
        TextWriter reply_out;
        Result<ChatTurn> turn = make_error(ErrorCode::kInternal, "no turn");
        {
            CancelOnSigint ctrl_c(*llama);  // Ctrl-C stops the reply; outside a reply it ends the program
            turn = chat.send(line, options, [&](const CompletionChunk& c) {
                reply_out.write(c.text);
                return StreamAction::Continue;
            });
        }
        std::printf("\n");
        std::fflush(stdout);
        if (!turn.ok()) {
            // A failed turn (a message too long for the context, say) leaves the conversation as it was.
            std::fprintf(stderr, "error: %s\n", turn.error().message.c_str());
            exit_code() = 1;
            if (!interactive) break;
            continue;
        }
        if (turn->context_shifted) {
            std::fprintf(stderr, "[context full: dropped the %d oldest messages (%d KV tokens shifted out)]\n", turn->n_dropped_messages,
                         turn->n_shifted_tokens);
        }
        if (turn->completion.stop_reason == StopReason::Cancelled) std::fprintf(stderr, "[stopped]\n");
        if (!f.session.empty()) {
            if (auto st = chat.save(f.session); !st.ok()) {
                // The conversation is not on disk: say so (the message names the session file) and exit non-zero.
                fail(st.error());
                if (!interactive) break;
            }
        }
    }
}

}  // namespace

void register_chat_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("chat", "chat with a model through its chat template (one user turn per line of stdin when piped)");
    auto f = std::make_shared<ChatFlags>();
    f->gen.n_predict = 512;
    add_generation_flags(cmd, f->gen);
    cmd->add_option("--system", f->system, "system prompt");
    cmd->add_option("--session", f->session, "session file: resumed when it exists, saved after every turn");
    std::string names;
    for (const auto& n : ChatTemplate::builtin_names()) names += (names.empty() ? "" : ", ") + n;
    cmd->add_option("--template", f->template_name, "a built-in chat template instead of the model's own: " + names)
        ->check(CLI::IsMember(ChatTemplate::builtin_names()));
    cmd->callback([f] { run_chat(*f); });
}

}  // namespace llama_crab::cli
