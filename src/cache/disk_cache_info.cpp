// DiskCache::inspect: what a cache folder holds, read in one snapshot without changing the folder.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "cache/disk_cache_schema.h"
#include "cache/sqlite_db.h"
#include "llama_crab/cache.h"

namespace llama_crab {

using namespace cache_detail;

Result<DiskCacheInfo> DiskCache::inspect(const std::string& dir) {
    const std::string db_path = dir + "/index.sqlite";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(db_path, ec)) {
        return make_error(ErrorCode::kIo, fmt::format("disk cache '{}': no cache there (no index.sqlite)", dir));
    }
    DiskCacheInfo info;
    try {
        auto db = Db::open(db_path, 30000);
        Txn t(*db, false);
        {
            Stmt& s = db->q("SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('meta', 'roots', 'blocks', 'entries', 'entry_blocks')");
            s.step();
            const int64_t n_tables = s.col_int(0);
            s.reset();
            if (n_tables != 5) return make_error(ErrorCode::kInvalidFormat, fmt::format("disk cache '{}': index.sqlite is not a cache index", dir));
        }
        auto meta = [&](const char* name) {
            Stmt& s = db->q("SELECT value FROM meta WHERE name=?1");
            s.bind_text(1, name);
            const int64_t v = s.step() ? s.col_int(0) : 0;
            s.reset();
            return v;
        };
        const int64_t version = meta("version");
        if (version != kDiskCacheSchemaVersion) {
            return make_error(ErrorCode::kUnsupported, fmt::format("disk cache '{}': index schema version {} (this build uses {})",
                                                                   dir, version, kDiskCacheSchemaVersion));
        }
        info.entries = (size_t)meta("n_entries");
        info.blocks = (size_t)meta("n_blocks");
        info.size_bytes = (size_t)meta("total_bytes");
        info.capacity_bytes = (size_t)std::max<int64_t>(0, meta("capacity"));
        {
            Stmt& s = db->q("SELECT coalesce(sum(size), 0) FROM blocks");
            s.step();
            info.block_bytes = (size_t)s.col_int(0);
            s.reset();
        }
        // Per model + layout: entries and tokens from `entries`; distinct blocks through the entries' chains
        // (every block of a chain descends from the entry's root, so a block is counted under one root only).
        Stmt& s = db->q(
            "SELECT r.fingerprint, r.n_layer, r.n_head_kv, r.head_dim, r.kv_type, "
            "  (SELECT count(*) FROM entries e WHERE e.root = r.key), "
            "  (SELECT coalesce(sum(e.n_tokens), 0) FROM entries e WHERE e.root = r.key), "
            "  b.n_blocks, b.bytes, b.tokens "
            "FROM roots r LEFT JOIN ("
            "  SELECT root, count(*) AS n_blocks, sum(size) AS bytes, sum(n_tokens) AS tokens FROM ("
            "    SELECT DISTINCT e.root AS root, bl.id, bl.size AS size, bl.n_tokens AS n_tokens FROM entries e"
            "    JOIN entry_blocks eb ON eb.entry_id = e.id JOIN blocks bl ON bl.id = eb.block_id)"
            "  GROUP BY root) b ON b.root = r.key");
        while (s.step()) {
            DiskCacheModelInfo m;
            m.model_fingerprint = s.col_text(0);
            m.layout = KvLayout{(uint32_t)s.col_int(1), (uint32_t)s.col_int(2), (uint32_t)s.col_int(3), (uint32_t)s.col_int(4)};
            m.entries = (size_t)s.col_int(5);
            m.tokens = (size_t)s.col_int(6);
            m.blocks = (size_t)s.col_int(7);
            m.block_bytes = (size_t)s.col_int(8);
            m.raw_bytes = (size_t)s.col_int(9) * m.layout.token_bytes();
            if (m.entries > 0) info.models.push_back(std::move(m));
        }
        s.reset();
        t.commit();
    } catch (const SqlError& e) {
        return make_error(e.not_a_database() ? ErrorCode::kInvalidFormat : ErrorCode::kIo,
                          fmt::format("disk cache '{}': {}", dir, e.what()));
    }
    std::sort(info.models.begin(), info.models.end(),
              [](const DiskCacheModelInfo& a, const DiskCacheModelInfo& b) { return a.block_bytes > b.block_bytes; });
    return info;
}

}  // namespace llama_crab
