// Shared helpers of the CLI subcommands.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama_crab/context.h"
#include "llama_crab/error.h"
#include "llama_crab/model.h"
#include "llama_crab/system.h"

namespace llama_crab::cli {

// Prints "error: ..." to stderr and sets a non-zero exit code.
void fail(const std::string& message);
void fail(const Error& error);

// "1,2,3" -> ids; an error names the bad item.
Result<std::vector<Token>> parse_token_list(const std::string& text);
Result<std::vector<int>> parse_int_list(const std::string& text, const char* flag);

// The model to use: the given path, or the built-in default model (made on first use in the cache folder).
Result<std::string> resolve_model_path(const std::string& given);
Result<std::shared_ptr<Model>> load_model(const std::string& given, bool show_progress = false);

Result<KvType> parse_kv_type(const std::string& s);

// Where the CLI keeps generated files: $LLAMA_CRAB_CACHE, else $XDG_CACHE_HOME/llama-crab, else ~/.cache/llama-crab.
std::string cache_folder();

}  // namespace llama_crab::cli
