// Shared by the DiskCache implementation files: the index schema version (meta 'version'). A folder whose index
// has another version is refused rather than misread.
#pragma once

#include <cstdint>

namespace llama_crab::cache_detail {

inline constexpr int64_t kDiskCacheSchemaVersion = 2;  // 2: block files carry their tokens (block_file.h)

}  // namespace llama_crab::cache_detail
