// Crash-safe file replacement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "llama_crab/error.h"

namespace llama_crab {

// Writes a byte buffer to path atomically: a temp file in the same folder, fsync, rename, fsync the folder.
// A reader sees either the old file or the whole new one, even if the process dies mid-write.
Status write_file_atomic(const std::string& path, const uint8_t* data, size_t size);

}  // namespace llama_crab
