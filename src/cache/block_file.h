// The file holding one cache block on disk: a small header, the zstd-compressed KV bytes, a checksum.
//
//   offset 0   magic "LCBLOCK1"                         8 bytes
//          8   n_tokens                                u32
//         12   reserved (0)                            u32
//         16   raw KV bytes                            u64
//         24   block key                               16 bytes
//         40   compressed length C                     u64
//         48   zstd frame                              C bytes
//     48 + C   XXH3-64 of every byte before it         u64
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cache/cache_keys.h"
#include "llama_crab/error.h"

namespace llama_crab::cache_detail {

inline constexpr size_t kBlockFileHeader = 48;

std::vector<uint8_t> encode_block_file(const Key128& key, uint32_t n_tokens, const uint8_t* kv, size_t kv_bytes, int level);

// Checks the file against what the index says (key, token count, raw size) and decompresses the KV into dst,
// which has room for exactly raw_bytes. Any mismatch is kInvalidFormat / kChecksum naming the field.
Status decode_block_file(const uint8_t* data, size_t size, const Key128& key, uint32_t n_tokens, size_t raw_bytes,
                         uint8_t* dst);

// Whole-file read (kIo on failure; kNotFound-like failures carry ENOENT in *err_no).
Result<std::vector<uint8_t>> read_whole_file(const std::string& path, int* err_no = nullptr);

}  // namespace llama_crab::cache_detail
