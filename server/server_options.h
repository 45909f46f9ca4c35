// Everything `llama-crab serve` can be told (see docs/server.md for the flags).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "llama_crab/context.h"

namespace llama_crab::server {

#define LLAMA_CRAB_SERVER_VERSION "0.1.0"

struct ServerOptions {
    std::string model_path;          // resolved by the CLI (the built-in default model when --model is absent)
    std::string model_alias;         // name reported by /v1/models; default: the file name without .gguf
    std::string host = "127.0.0.1";
    int port = 8080;                 // 0: any free port (the chosen one is printed)
    int32_t n_slots = 4;
    int32_t n_ctx_slot = 0;          // tokens of context per slot; 0: min(2048, the model's trained context)
    int32_t n_batch = 512;           // most tokens one worker step decodes (new tokens of every slot + prefill)
    int32_t n_threads = 0;           // 0: all cores
    KvType kv_type = KvType::kF16;
    std::optional<std::string> chat_template;  // a built-in template name instead of the model's own
    std::string cache_dir;           // DiskCache folder ("" = none)
    size_t cache_bytes = size_t(4) << 30;
    size_t ram_cache_bytes = 0;      // RamCache budget (0 = none)
    std::string api_key;             // "" = no authentication
    std::string slot_save_dir;       // "" = slot save/restore disabled
    size_t max_body_bytes = size_t(8) << 20;
    int32_t max_queue = 256;         // choices waiting for a slot before new requests get 503
    int32_t http_threads = 0;        // 0: max(16, 4 x slots)
    int32_t max_connections = 1024;  // open connections, idle ones included; the excess is answered 503
    int32_t max_connections_per_client = 256;  // open connections from one client address
    double header_timeout_s = 10;    // first byte of a request to the end of its headers (408)
    double body_timeout_s = 10;      // longest wait for more of a request body (408)
    double keep_alive_timeout_s = 5; // an idle connection between requests is closed after this
};

}  // namespace llama_crab::server
