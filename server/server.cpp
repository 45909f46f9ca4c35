#include "server.h"

namespace llama_crab::server {

const char* server_version() { return "0.1.0"; }

}  // namespace llama_crab::server
