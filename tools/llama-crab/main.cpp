// llama-crab: run GGUF language models on the CPU.
#include <cstdio>

#include "cli_flags.h"
#include "commands.h"

namespace llama_crab::cli {
int& exit_code() {
    static int code = 0;
    return code;
}
}  // namespace llama_crab::cli

int main(int argc, char** argv) {
    CLI::App app{"llama-crab: run llama-family GGUF models on the CPU"};
    app.require_subcommand(1);
    llama_crab::cli::register_model_commands(app);
    llama_crab::cli::register_make_model_command(app);
    llama_crab::cli::register_bench_commands(app);
    llama_crab::cli::register_vocab_commands(app);
    llama_crab::cli::register_template_commands(app);
    llama_crab::cli::register_complete_command(app);
    llama_crab::cli::register_chat_command(app);
    llama_crab::cli::register_cache_commands(app);
    llama_crab::cli::register_embed_command(app);
    llama_crab::cli::register_serve_command(app);
    return llama_crab::cli::run_cli(app, argc, argv);
}
