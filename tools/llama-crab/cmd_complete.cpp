// complete: continue a text prompt, streaming the text as it is generated.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli_common.h"
#include "llama_crab/grammar.h"
#include "cli_generation.h"
#include "commands.h"

namespace llama_crab::cli {
namespace {

using nlohmann::json;

struct CompleteFlags {
    GenerationFlags gen;
    std::string prompt;
    std::string file;
    bool json_out = false;
    bool echo = false;
    int logprobs = 0;
    std::string grammar_file;
    std::string json_schema;  // a file, or the schema itself when it starts with '{'
};

json timings_json(const Timings& t) {
    return json{{"load_ms", t.load_ms},           {"prefill_ms", t.prefill_ms}, {"prefill_tok_per_s", t.prefill_tok_per_s},
                {"n_prefill", t.n_prefill},       {"decode_ms", t.decode_ms},   {"decode_tok_per_s", t.decode_tok_per_s},
                {"n_decode", t.n_decode}};
}

json completion_json(const Completion& c) {
    json j{{"text", c.text},
           {"tokens", c.tokens},
           {"stop_reason", stop_reason_name(c.stop_reason)},
           {"n_prompt_tokens", c.n_prompt_tokens},
           {"n_cached_prompt_tokens", c.n_cached_prompt_tokens},
           {"timings", timings_json(c.timings)}};
    if (c.stop_reason == StopReason::Stop) j["stop_string"] = c.stop_string;
    if (!c.logprobs.empty()) {
        json lps = json::array();
        for (const auto& t : c.logprobs) {
            json top = json::array();
            for (const auto& [tok, lp] : t.top) top.push_back({{"token", tok}, {"logprob", lp}});
            lps.push_back({{"token", t.token}, {"text", t.text}, {"logprob", t.logprob}, {"top", std::move(top)}});
        }
        j["logprobs"] = std::move(lps);
    }
    return j;
}

Result<std::string> read_text_file(const std::string& path, const char* flag) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(ErrorCode::kIo, fmt::format("{}: cannot open '{}'", flag, path));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Result<std::string> read_prompt(const CompleteFlags& f) {
    if (!f.file.empty()) return read_text_file(f.file, "--file");
    return f.prompt;
}

// --grammar FILE and --json-schema FILE|JSON into the options, checked before the model is loaded.
Status add_structured_output(const CompleteFlags& f, CompletionOptions& o) {
    if (!f.grammar_file.empty()) {
        LC_ASSIGN_OR_RETURN(o.grammar, read_text_file(f.grammar_file, "--grammar"));
    }
    if (!f.json_schema.empty()) {
        const size_t start = f.json_schema.find_first_not_of(" \t\r\n");
        if (start != std::string::npos && f.json_schema[start] == '{') {
            o.json_schema = f.json_schema;
        } else {
            LC_ASSIGN_OR_RETURN(o.json_schema, read_text_file(f.json_schema, "--json-schema"));
        }
    }
    auto g = resolve_grammar(o.grammar, o.json_schema);
    if (!g.ok()) {
        const char* flag = o.grammar.empty() ? "--json-schema" : "--grammar";
        return make_error(g.error().code, fmt::format("{}: {}", flag, g.error().message));
    }
    return {};
}

void run_complete(const CompleteFlags& f) {
    auto prompt = read_prompt(f);
    if (!prompt.ok()) return fail(prompt.error());
    if (prompt->empty()) return fail("the prompt is empty: give --prompt TEXT or --file F");
    auto options = completion_options(f.gen);
    if (!options.ok()) return fail(options.error());
    options->echo = f.echo;
    options->logprobs = f.logprobs;
    if (auto st = add_structured_output(f, *options); !st.ok()) return fail(st.error());
    auto llama = open_llama(f.gen);
    if (!llama.ok()) return fail(llama.error());

    const bool stream = !f.json_out;
    TextWriter text_out;
    if (stream && f.echo) text_out.write(*prompt);
    Result<Completion> out = make_error(ErrorCode::kInternal, "no completion");
    {
        CancelOnSigint ctrl_c(*llama);  // Ctrl-C ends the text (StopReason::Cancelled) instead of the process
        out = llama->create_completion_stream(*prompt, *options, [&](const CompletionChunk& c) {
            if (stream) text_out.write(c.text);
            return StreamAction::Continue;
        });
    }
    // On a terminal the text always ends with a newline: after an error too, so neither the message nor
    // the shell prompt runs into the text.
    text_out.end_line();
    if (!out.ok()) return fail(out.error());
    // Interrupted: the text so far was printed; exit as a process stopped by SIGINT does (128 + 2).
    if (out->stop_reason == StopReason::Cancelled) exit_code() = 130;
    if (!out->cache_store.ok()) std::fprintf(stderr, "warning: prompt not stored in the prefix cache: %s\n", out->cache_store.error().message.c_str());
    if (f.json_out) {
        // Replace invalid UTF-8 (a model can end mid-character) rather than fail to print the result.
        std::printf("%s\n", completion_json(*out).dump(-1, ' ', false, json::error_handler_t::replace).c_str());
        return;
    }
    // Piped output is exactly the generated text; a terminal gets a summary.
    if (::isatty(STDERR_FILENO) == 1) {
        const Timings& t = out->timings;
        std::fprintf(stderr, "[%s; prompt %d tokens (%d cached), prefill %.1f ms (%.1f tok/s), %d tokens at %.1f tok/s]\n",
                     stop_reason_name(out->stop_reason), out->n_prompt_tokens, out->n_cached_prompt_tokens, t.prefill_ms,
                     t.prefill_tok_per_s, t.n_decode, t.decode_tok_per_s);
    }
}

}  // namespace

void register_complete_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("complete", "continue a text prompt, streaming the generated text");
    auto f = std::make_shared<CompleteFlags>();
    add_generation_flags(cmd, f->gen);
    auto* prompt = cmd->add_option("--prompt,-p", f->prompt, "the prompt text");
    auto* file = cmd->add_option("--file,-f", f->file, "read the prompt from a file");
    prompt->excludes(file);
    cmd->add_flag("--json", f->json_out, "print the result as one JSON object (text, tokens, stop_reason, n_prompt_tokens, "
                                          "n_cached_prompt_tokens, timings) instead of streaming");
    cmd->add_flag("--echo", f->echo, "print the prompt before the generated text");
    cmd->add_option("--logprobs", f->logprobs, "with --json: the top-N log-probabilities of each generated token")
        ->check(CLI::Range(0, 100));
    auto* grammar = cmd->add_option("--grammar", f->grammar_file, "constrain the text to a GBNF grammar (llama.cpp syntax) read from FILE");
    cmd->add_option("--json-schema", f->json_schema,
                    "constrain the text to JSON valid under a JSON schema: a FILE, or the schema itself ('{...}')")
        ->excludes(grammar);
    cmd->callback([f] { run_complete(*f); });
}

}  // namespace llama_crab::cli
