#include "commands.h"

namespace llama_crab::cli {
void register_model_commands(CLI::App&) {}
}  // namespace llama_crab::cli
