// cache: placeholder registration while the command is being written.
#include "commands.h"

namespace llama_crab::cli {

void register_cache_commands(CLI::App&) {}

}  // namespace llama_crab::cli
