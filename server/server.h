// The OpenAI-compatible HTTP server (see docs/server.md).
#pragma once

namespace llama_crab::server {

// Version string reported by /v1/models and /health.
const char* server_version();

}  // namespace llama_crab::server
