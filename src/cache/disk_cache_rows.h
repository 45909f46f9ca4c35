// Shared by the DiskCache implementation files: what the budget counts per index row, and the small row helpers.
#pragma once

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
inline int64_t block_row_bytes(size_t n_tokens) { return 112 + 8 * (int64_t)n_tokens; }

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
