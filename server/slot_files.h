// Where slot save/restore files live: only plain file names inside --slot-save-dir, so a request can never
// read or write anywhere else (no separators, no "..", no hidden files, no symlinks).
#pragma once

#include <optional>
#include <string>

#include "api_error.h"

namespace llama_crab::server {

// On success sets `path` to dir/filename. Errors are 400s naming "filename" (403 when saving is disabled).
std::optional<ApiError> resolve_slot_file(const std::string& dir, const std::string& filename, std::string& path);

}  // namespace llama_crab::server
