// Subcommands of the llama-crab CLI. Each register_* function adds its subcommands to the app and
// sets their callbacks; a callback sets the process exit code through exit_code().
#pragma once

#include <CLI/CLI.hpp>

namespace llama_crab::cli {

int& exit_code();

void register_model_commands(CLI::App& app);   // info, eval, generate (cmd_model.cpp)
void register_make_model_command(CLI::App& app);  // make-model (cmd_make_model.cpp)
void register_bench_commands(CLI::App& app);   // bench (cmd_bench.cpp)
void register_vocab_commands(CLI::App& app);   // tokenize, detokenize (cmd_vocab.cpp)
void register_template_commands(CLI::App& app);  // template render (cmd_template.cpp)
void register_complete_command(CLI::App& app);   // complete (cmd_complete.cpp)
void register_chat_command(CLI::App& app);       // chat (cmd_chat.cpp)
void register_cache_commands(CLI::App& app);     // cache stats|clear, bench-cache (cmd_cache.cpp, cmd_bench_cache.cpp)
void register_embed_command(CLI::App& app);      // embed (cmd_embed.cpp)
void register_serve_command(CLI::App& app);      // serve (cmd_serve.cpp; the server itself is in server/)

}  // namespace llama_crab::cli
