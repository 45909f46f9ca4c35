// serve: placeholder registration while the command is being written.
#include "commands.h"

namespace llama_crab::cli {

void register_serve_command(CLI::App&) {}

}  // namespace llama_crab::cli
