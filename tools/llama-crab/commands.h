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

}  // namespace llama_crab::cli
