// The file holding one cache block on disk: a small header, the block's own tokens, the zstd-compressed KV
// bytes, a checksum. All integers little-endian.
//
//   offset 0        magic "LCBLOCK2"                         8 bytes
//          8        n_tokens N                              u32
//         12        reserved (0)                            u32
//         16        raw KV bytes                            u64
//         24        block key                               16 bytes
//         40        parent key                              16 bytes
//         56        compressed length C                     u64
//         64        tokens                                  N x i32
//     64 + 4N       zstd frame                              C bytes
//     64 + 4N + C   XXH3-64 of every byte before it         u64
//
// The file proves what it holds: decode checks that node_key(parent, tokens) is the key, and that key, parent,
// tokens and sizes are the ones the caller expects. A forged index row or a swapped file is a refused read,
// never a KV state for other tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cache/cache_keys.h"
#include "llama_crab/error.h"

namespace llama_crab::cache_detail {

inline constexpr size_t kBlockFileHeader = 64;

// What a block file must hold: its key, its parent's key and its tokens (their count is n_tokens).
struct BlockIdentity {
    Key128 key;
    Key128 parent;
    std::span<const Token> tokens;
};

std::vector<uint8_t> encode_block_file(const BlockIdentity& id, const uint8_t* kv, size_t kv_bytes, int level);

// Checks the file against `expected` (key, parent, tokens, and that the key is the chain hash of parent and
// tokens) and decompresses the KV into dst, which has room for exactly raw_bytes. Any mismatch is
// kInvalidFormat / kChecksum naming the field and offset.
Status decode_block_file(const uint8_t* data, size_t size, const BlockIdentity& expected, size_t raw_bytes, uint8_t* dst);

// Whole-file read of `name` inside the folder dir_fd: never follows a symlink, never blocks on a FIFO, refuses
// anything but a regular file (kIo naming the file).
Result<std::vector<uint8_t>> read_block_file(int dir_fd, const std::string& name);

}  // namespace llama_crab::cache_detail
