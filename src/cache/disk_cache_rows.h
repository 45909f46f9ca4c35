// Shared by the DiskCache implementation files: what the budget counts per index row, and the small row helpers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "cache/cache_folder.h"
#include "cache/cache_keys.h"
#include "cache/sqlite_db.h"

namespace llama_crab::cache_detail {

// Budget estimate of the index rows (see disk_cache.cpp).
inline constexpr int64_t kEntryRowBytes = 160;
inline constexpr int64_t kRefRowBytes = 48;
// Row integers come from a file anyone can edit (cache_index_fuzz found the overflow): they are clamped to what a
// row of ours can hold before any arithmetic. A block holds at most kCacheBlockTokens tokens and its file is far
// below kMaxBlockFileBytes (64 tokens of a 70B model's KV are ~21 MB).
inline constexpr int64_t kMaxBlockFileBytes = int64_t{1} << 30;
inline int64_t block_row_bytes(int64_t n_tokens) {
    return 112 + 8 * std::clamp<int64_t>(n_tokens, 0, (int64_t)kCacheBlockTokens);
}
inline int64_t block_file_bytes(int64_t size) { return std::clamp<int64_t>(size, 0, kMaxBlockFileBytes); }

inline Key128 key_of(const std::string& b) {
    Key128 k;
    Key128::from_bytes(b.data(), b.size(), &k);
    return k;
}

// A block row is believed only when its key is 16 bytes and its stored file name is the one derived from it.
inline bool row_names_its_file(const std::string& key_blob, const std::string& file) {
    return key_blob.size() == 16 && file == block_file_name(key_of(key_blob));
}

inline int64_t meta_get(Db& db, const char* name) {
    Stmt& s = db.q("SELECT value FROM meta WHERE name=?1");
    s.bind_text(1, name);
    const int64_t v = s.step() ? s.col_int(0) : 0;
    s.reset();
    return v;
}

// The full consistency check of DiskCache::check_consistency (caller holds the BlocksLock and the write
// transaction): "" when consistent, else the first problem found.
std::string consistency_problem(Db& db, const CacheFolder& folder, size_t capacity);

}  // namespace llama_crab::cache_detail
