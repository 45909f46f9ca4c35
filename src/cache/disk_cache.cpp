// DiskCache: the block scheme of cache_keys.h on disk.
//
// Folder layout: index.sqlite (WAL mode; the source of truth), blocks/ (one zstd file per block, see
// block_file.h, named <key>-<random>.blk so no two writers ever use the same path) and tmp/ (files being
// written).
//
// Schema:
//   meta(name, value)                      schema version, total_bytes, n_entries, n_blocks, clock (LRU ticks),
//                                          capacity (of the latest open; informational)
//   roots(key, fingerprint, layout...)     one per model fingerprint + KV layout, for layout-less lookups
//   blocks(id, key UNIQUE, parent, tokens, n_tokens, refcount, size, file)   index (parent, tokens)
//   entries(id, key UNIQUE, root, fingerprint, n_tokens, size, last_use)     index (last_use)
//   entry_blocks(entry_id, idx, block_id)  an entry's chain; index (block_id)
// `tokens` is stored so that BLOB order is token order: the children of a node sorted by tokens give the
// longest partial match next to the query's insertion point, in O(log n) through the (parent, tokens) index.
//
// Crash and concurrency safety:
//  * A store compresses and writes its new blocks to tmp/ (flock held, fsync) outside any transaction, then in
//    one BEGIN IMMEDIATE transaction re-resolves the chain, renames its temp files into blocks/ (fsync of the
//    folder), inserts the rows, evicts LRU entries to the budget and commits. Files of blocks whose refcount
//    reached 0 are unlinked only after the commit. So a committed row always names a complete file, and a crash
//    leaves at most unreferenced files, never a row without its file: an entry is absent or fully valid.
//  * gc (run by open) removes, under the write lock, block files no committed row names (renames happen only
//    under that lock, so a file renamed by a live writer is always committed or rolled back first) and tmp/
//    files whose writer's flock is gone (the writer died).
//  * Readers take a snapshot, then read the files outside the transaction; a file evicted meanwhile is a retry,
//    a file that is missing or fails its checksum while its row still exists is corrupt: its block and every
//    entry using it are removed, and the lookup retries (a shorter valid prefix may remain).
//
// Budget: size_bytes() = block file sizes + an estimate of the index rows (kEntryRowBytes per entry,
// kRefRowBytes per chain link, block_row_bytes() per block), kept in meta.total_bytes by every transaction.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <mutex>
#include <random>
#include <sys/file.h>
#include <unistd.h>
#include <unordered_set>

#include <fmt/format.h>

#include "cache/block_file.h"
#include "cache/cache_keys.h"
#include "cache/disk_cache_schema.h"
#include "cache/disk_cache_testing.h"
#include "cache/sqlite_db.h"
#include "llama_crab/cache.h"

namespace llama_crab {

using namespace cache_detail;
namespace fs = std::filesystem;

namespace {

CrashHook g_crash_hook = nullptr;
void crash_point(const char* point) {
    if (g_crash_hook) g_crash_hook(point);
}

constexpr int64_t kSchemaVersion = kDiskCacheSchemaVersion;
constexpr int64_t kEntryRowBytes = 160;
constexpr int64_t kRefRowBytes = 48;
int64_t block_row_bytes(size_t n_tokens) { return 112 + 8 * (int64_t)n_tokens; }

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roots(key BLOB PRIMARY KEY, fingerprint TEXT NOT NULL, n_layer INTEGER NOT NULL,
  n_head_kv INTEGER NOT NULL, head_dim INTEGER NOT NULL, kv_type INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS roots_by_fingerprint ON roots(fingerprint);
CREATE TABLE IF NOT EXISTS blocks(id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, parent BLOB NOT NULL,
  tokens BLOB NOT NULL, n_tokens INTEGER NOT NULL, refcount INTEGER NOT NULL, size INTEGER NOT NULL,
  file TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS blocks_by_parent ON blocks(parent, tokens);
CREATE TABLE IF NOT EXISTS entries(id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, root BLOB NOT NULL,
  fingerprint TEXT NOT NULL, n_tokens INTEGER NOT NULL, size INTEGER NOT NULL, last_use INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_last_use ON entries(last_use);
CREATE TABLE IF NOT EXISTS entry_blocks(entry_id INTEGER NOT NULL, idx INTEGER NOT NULL, block_id INTEGER NOT NULL,
  PRIMARY KEY(entry_id, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entry_blocks_by_block ON entry_blocks(block_id);
INSERT OR IGNORE INTO meta VALUES('version', 1), ('total_bytes', 0), ('n_entries', 0), ('n_blocks', 0), ('clock', 0);
)";

std::string random_suffix() {
    std::random_device rd;
    return fmt::format("{:08x}{:08x}{:08x}", (uint32_t)::getpid(), rd(), rd());
}

Error io_error(const std::string& what, const std::string& path, int err) {
    return make_error(ErrorCode::kIo, fmt::format("disk cache: {} '{}': {}", what, path, std::strerror(err)));
}

Status fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open folder", dir, errno);
    const int rc = ::fsync(fd);
    const int e = errno;
    ::close(fd);
    if (rc != 0) return io_error("cannot sync folder", dir, e);
    return {};
}

// A block file being written in tmp/: locked (gc leaves it alone while the lock is held), removed on
// destruction unless moved into blocks/.
struct TempBlock {
    std::string tmp_path;
    std::string name;  // final file name in blocks/
    int fd = -1;
    int64_t size = 0;
    bool moved = false;
    ~TempBlock() {
        if (!moved && !tmp_path.empty()) ::unlink(tmp_path.c_str());
        if (fd >= 0) ::close(fd);
    }
};

struct BlockRow {
    int64_t id = 0;
    Key128 key, parent;
    std::vector<Token> tokens;
    int64_t refcount = 0;
    int64_t size = 0;
    std::string file;
};

Key128 key_of(const std::string& b) {
    Key128 k;
    Key128::from_bytes(b.data(), b.size(), &k);
    return k;
}

int64_t meta_get(Db& db, const char* name) {
    Stmt& s = db.q("SELECT value FROM meta WHERE name=?1");
    s.bind_text(1, name);
    const int64_t v = s.step() ? s.col_int(0) : 0;
    s.reset();
    return v;
}

void meta_add(Db& db, const char* name, int64_t delta) {
    if (delta == 0) return;
    db.q("UPDATE meta SET value=value+?1 WHERE name=?2").bind(1, delta).bind_text(2, name).run();
}

int64_t next_tick(Db& db) {
    meta_add(db, "clock", 1);
    return meta_get(db, "clock");
}

std::optional<BlockRow> find_block(Db& db, const Key128& key) {
    Stmt& s = db.q("SELECT id, parent, tokens, refcount, size, file FROM blocks WHERE key=?1");
    s.bind_blob(1, key.bytes());
    if (!s.step()) {
        s.reset();
        return std::nullopt;
    }
    BlockRow r;
    r.id = s.col_int(0);
    r.key = key;
    r.parent = key_of(s.col_blob(1));
    const std::string t = s.col_blob(2);
    decode_tokens_sortable(t.data(), t.size(), &r.tokens);
    r.refcount = s.col_int(3);
    r.size = s.col_int(4);
    r.file = s.col_text(5);
    s.reset();
    return r;
}

// Removes an entry, releases its blocks, returns the bytes freed; files of freed blocks go to *unlink_after.
int64_t drop_entry(Db& db, int64_t entry_id, std::vector<std::string>* unlink_after) {
    std::vector<int64_t> blocks;
    {
        Stmt& s = db.q("SELECT block_id FROM entry_blocks WHERE entry_id=?1");
        s.bind(1, entry_id);
        while (s.step()) blocks.push_back(s.col_int(0));
        s.reset();
    }
    db.q("DELETE FROM entry_blocks WHERE entry_id=?1").bind(1, entry_id).run();
    db.q("DELETE FROM entries WHERE id=?1").bind(1, entry_id).run();
    int64_t freed = kEntryRowBytes + (int64_t)blocks.size() * kRefRowBytes;
    int64_t freed_blocks = 0;
    for (int64_t b : blocks) {
        db.q("UPDATE blocks SET refcount=refcount-1 WHERE id=?1").bind(1, b).run();
        Stmt& s = db.q("SELECT refcount, size, file, n_tokens FROM blocks WHERE id=?1");
        s.bind(1, b);
        if (!s.step()) {
            s.reset();
            continue;
        }
        const int64_t rc = s.col_int(0), size = s.col_int(1), nt = s.col_int(3);
        std::string file = s.col_text(2);
        s.reset();
        if (rc <= 0) {
            db.q("DELETE FROM blocks WHERE id=?1").bind(1, b).run();
            freed += size + block_row_bytes((size_t)nt);
            ++freed_blocks;
            unlink_after->push_back(std::move(file));
        }
    }
    meta_add(db, "total_bytes", -freed);
    meta_add(db, "n_entries", -1);
    meta_add(db, "n_blocks", -freed_blocks);
    return freed;
}

}  // namespace

void cache_detail::set_disk_cache_crash_hook(CrashHook hook) { g_crash_hook = hook; }

struct DiskCache::Impl {
    std::string dir, blocks_dir, tmp_dir, db_path;
    size_t capacity = 0;
    DiskCacheOptions opt;
    std::mutex pool_mu;
    std::vector<std::unique_ptr<Db>> pool;
    mutable std::mutex stats_mu;
    CacheStats stats;

    // A pooled connection: one per concurrent operation (SQLite connections are not shared across threads).
    class Conn {
    public:
        explicit Conn(Impl& impl) : impl_(impl) {
            {
                std::lock_guard<std::mutex> lock(impl_.pool_mu);
                if (!impl_.pool.empty()) {
                    db_ = std::move(impl_.pool.back());
                    impl_.pool.pop_back();
                }
            }
            if (!db_) {
                db_ = Db::open(impl_.db_path, impl_.opt.busy_timeout_ms);
                db_->exec("PRAGMA synchronous=NORMAL");
            }
        }
        ~Conn() {
            std::lock_guard<std::mutex> lock(impl_.pool_mu);
            impl_.pool.push_back(std::move(db_));
        }
        Db& operator*() { return *db_; }

    private:
        Impl& impl_;
        std::unique_ptr<Db> db_;
    };

    std::string block_path(const std::string& name) const { return blocks_dir + "/" + name; }

    Result<std::unique_ptr<TempBlock>> write_temp(const Key128& key, const uint8_t* kv, size_t kv_bytes, uint32_t n_tokens) {
        const std::vector<uint8_t> bytes = encode_block_file(key, n_tokens, kv, kv_bytes, opt.zstd_level);
        auto t = std::make_unique<TempBlock>();
        const std::string suffix = random_suffix();
        t->name = key.hex() + "-" + suffix + ".blk";
        t->tmp_path = tmp_dir + "/" + key.hex() + "-" + suffix + ".tmp";
        t->fd = ::open(t->tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (t->fd < 0) {
            const int e = errno;
            t->tmp_path.clear();
            return io_error("cannot create", tmp_dir + "/" + key.hex() + "-" + suffix + ".tmp", e);
        }
        if (::flock(t->fd, LOCK_EX) != 0) return io_error("cannot lock", t->tmp_path, errno);
        size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t w = ::write(t->fd, bytes.data() + done, bytes.size() - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return io_error("cannot write", t->tmp_path, errno);
            done += (size_t)w;
        }
        if (opt.fsync && ::fdatasync(t->fd) != 0) return io_error("cannot sync", t->tmp_path, errno);
        t->size = (int64_t)bytes.size();
        return t;
    }

    // Moves a temp block into blocks/ (caller holds the write transaction). If gc took the temp file (its
    // writer looked dead in the instant between create and lock), writes it again.
    Status publish(std::unique_ptr<TempBlock>& t, const Key128& key, const uint8_t* kv, size_t kv_bytes, uint32_t n_tokens) {
        if (::rename(t->tmp_path.c_str(), block_path(t->name).c_str()) == 0) {
            t->moved = true;
            return {};
        }
        if (errno != ENOENT) return io_error("cannot rename", t->tmp_path, errno);
        LC_ASSIGN_OR_RETURN(t, write_temp(key, kv, kv_bytes, n_tokens));
        if (::rename(t->tmp_path.c_str(), block_path(t->name).c_str()) != 0) return io_error("cannot rename", t->tmp_path, errno);
        t->moved = true;
        return {};
    }

    void unlink_files(const std::vector<std::string>& names) {
        for (const auto& n : names) ::unlink(block_path(n).c_str());
    }

    Status store(const std::vector<Token>& tokens, const SequenceState& st, size_t n);
    Status store_once(const std::vector<Token>& tokens, const SequenceState& st, size_t n, bool* refreshed);

    struct Node {
        int64_t id = 0;
        Key128 key;
        std::string file;
        uint32_t n_tokens = 0;
        size_t used = 0;  // tokens of this node in the match
    };
    struct Match {
        KvLayout layout;
        std::vector<Node> nodes;
        size_t n = 0;
        int64_t touch_entry = 0;
    };
    Match walk(Db& db, const Key128& root, const KvLayout& layout, const std::vector<Token>& q);
    // 0: hit (out filled); 1: miss; 2: retry (a block vanished or was corrupt and has been removed).
    int lookup_once(Db& db, const std::vector<Token>& q, const std::string& fp, const KvLayout* layout, CacheEntry* out);
    void purge_block(Db& db, int64_t block_id, const std::string& file);
    int64_t evict_to(Db& db, int64_t budget, int64_t keep_entry, std::vector<std::string>* unlink_after);
    void gc_locked(Db& db);
    std::string consistency_problem(Db& db);
};

DiskCache::DiskCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DiskCache::~DiskCache() = default;

Result<std::shared_ptr<DiskCache>> DiskCache::open(const std::string& dir, size_t capacity_bytes, const DiskCacheOptions& options) {
    auto impl = std::make_unique<Impl>();
    impl->dir = dir;
    impl->blocks_dir = dir + "/blocks";
    impl->tmp_dir = dir + "/tmp";
    impl->db_path = dir + "/index.sqlite";
    impl->capacity = capacity_bytes;
    impl->opt = options;
    std::error_code ec;
    for (const auto& d : {impl->dir, impl->blocks_dir, impl->tmp_dir}) {
        fs::create_directories(d, ec);
        if (ec) return make_error(ErrorCode::kIo, fmt::format("disk cache: cannot create folder '{}': {}", d, ec.message()));
    }
    try {
        Impl::Conn c(*impl);
        Db& db = *c;
        for (int attempt = 0;; ++attempt) {  // switching to WAL needs a moment alone with the file
            try {
                db.exec("PRAGMA journal_mode=WAL");
                break;
            } catch (const SqlError& e) {
                if (!e.busy() || attempt > 100) throw;
                ::usleep(10000);
            }
        }
        {
            Txn t(db, true);
            db.exec(kSchema);
            const int64_t v = meta_get(db, "version");
            if (v != kSchemaVersion) {
                return make_error(ErrorCode::kUnsupported,
                                  fmt::format("disk cache '{}': index schema version {} (this build uses {})", dir, v, kSchemaVersion));
            }
            std::vector<std::string> unlink_after;
            impl->evict_to(db, (int64_t)capacity_bytes, 0, &unlink_after);  // the budget may have shrunk
            // Informational (DiskCache::inspect): the budget of the latest opener.
            db.q("INSERT OR REPLACE INTO meta VALUES('capacity', ?1)")
                .bind(1, (int64_t)std::min<size_t>(capacity_bytes, (size_t)INT64_MAX))
                .run();
            impl->gc_locked(db);
            t.commit();
            impl->unlink_files(unlink_after);
        }
    } catch (const SqlError& e) {
        return make_error(e.not_a_database() ? ErrorCode::kInvalidFormat : ErrorCode::kIo,
                          fmt::format("disk cache '{}': {}", dir, e.what()));
    }
    return std::shared_ptr<DiskCache>(new DiskCache(std::move(impl)));
}

int64_t DiskCache::Impl::evict_to(Db& db, int64_t budget, int64_t keep_entry, std::vector<std::string>* unlink_after) {
    int64_t evicted = 0;
    int64_t total = meta_get(db, "total_bytes");
    while (total > budget) {
        Stmt& s = db.q("SELECT id FROM entries WHERE id<>?1 ORDER BY last_use ASC LIMIT 1");
        s.bind(1, keep_entry);
        if (!s.step()) {
            s.reset();
            break;
        }
        const int64_t victim = s.col_int(0);
        s.reset();
        total -= drop_entry(db, victim, unlink_after);
        ++evicted;
    }
    return evicted;
}

void DiskCache::Impl::gc_locked(Db& db) {
    std::unordered_set<std::string> referenced;
    {
        Stmt& s = db.q("SELECT file FROM blocks");
        while (s.step()) referenced.insert(s.col_text(0));
        s.reset();
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(blocks_dir, ec)) {
        const std::string name = e.path().filename().string();
        if (!referenced.count(name)) ::unlink(e.path().c_str());
    }
    for (const auto& e : fs::directory_iterator(tmp_dir, ec)) {
        const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(e.path().c_str());  // its writer is gone
        ::close(fd);
    }
    db.exec("DELETE FROM roots WHERE key NOT IN (SELECT root FROM entries)");
}

Status DiskCache::gc() {
    try {
        Impl::Conn c(*impl_);
        Txn t(*c, true);
        impl_->gc_locked(*c);
        t.commit();
        return {};
    } catch (const SqlError& e) {
        return make_error(ErrorCode::kIo, fmt::format("disk cache gc: {}", e.what()));
    }
}

Status DiskCache::store(const std::vector<Token>& tokens, const CacheEntry& entry) {
    LC_ASSIGN_OR_RETURN(const size_t n, check_store_args(tokens, entry));
    return impl_->store(tokens, entry.state, n);
}

Status DiskCache::Impl::store(const std::vector<Token>& tokens, const SequenceState& st, size_t n) {
    for (int attempt = 0;; ++attempt) {
        try {
            bool refreshed = false;
            LC_TRY(store_once(tokens, st, n, &refreshed));
            std::lock_guard<std::mutex> lock(stats_mu);
            ++stats.stores;
            stats.bytes_in += state_bytes(n, st.layout);
            return {};
        } catch (const SqlError& e) {
            if (e.busy() && attempt < 5) continue;
            return make_error(ErrorCode::kIo, fmt::format("disk cache store: {}", e.what()));
        }
    }
}

Status DiskCache::Impl::store_once(const std::vector<Token>& tokens, const SequenceState& st, size_t n, bool* refreshed) {
    const KvLayout& layout = st.layout;
    const size_t tb = layout.token_bytes();
    const Key128 rkey = root_key(st.model_fingerprint, layout);
    const std::vector<Key128> keys = chain_keys(rkey, tokens.data(), n);
    auto span_of = [&](size_t i) {
        const size_t at = i * kCacheBlockTokens;
        return std::pair<size_t, size_t>(at, std::min(kCacheBlockTokens, n - at));
    };
    Conn c(*this);
    Db& db = *c;

    // Phase 1 (snapshot): which blocks are already there?
    std::vector<bool> have(keys.size(), false);
    bool entry_exists = false;
    {
        Txn t(db, false);
        Stmt& s = db.q("SELECT 1 FROM entries WHERE key=?1");
        s.bind_blob(1, keys.back().bytes());
        entry_exists = s.step();
        s.reset();
        for (size_t i = 0; i < keys.size() && !entry_exists; ++i) {
            have[i] = find_block(db, keys[i]).has_value();
            if (!have[i]) break;
        }
        t.commit();
    }
    // Phase 2 (no lock): compress and write the missing blocks to tmp/.
    std::vector<std::unique_ptr<TempBlock>> temps(keys.size());
    if (!entry_exists) {
        for (size_t i = 0; i < keys.size(); ++i) {
            if (have[i]) continue;
            const auto [at, nt] = span_of(i);
            LC_ASSIGN_OR_RETURN(temps[i], write_temp(keys[i], st.kv.data() + at * tb, nt * tb, (uint32_t)nt));
        }
    }

    crash_point("temps_written");
    // Phase 3 (write lock): resolve again, publish, insert, evict, commit.
    std::vector<std::string> unlink_after;
    std::vector<std::string> published;
    auto phase3 = [&]() -> Status {
        Txn t(db, true);
        const int64_t tick = next_tick(db);
        {
            Stmt& s = db.q("SELECT id FROM entries WHERE key=?1");
            s.bind_blob(1, keys.back().bytes());
            const bool exists = s.step();
            const int64_t id = exists ? s.col_int(0) : 0;
            s.reset();
            if (exists) {
                db.q("UPDATE entries SET last_use=?1 WHERE id=?2").bind(1, tick).bind(2, id).run();
                t.commit();
                *refreshed = true;
                return {};
            }
        }
        std::vector<std::optional<BlockRow>> rows(keys.size());
        int64_t total = kEntryRowBytes + (int64_t)keys.size() * kRefRowBytes;
        int64_t added = total;
        for (size_t i = 0; i < keys.size(); ++i) {
            const auto [at, nt] = span_of(i);
            rows[i] = find_block(db, keys[i]);
            int64_t size = 0;
            if (rows[i]) {
                const Key128 parent = i == 0 ? rkey : keys[i - 1];
                if (rows[i]->parent != parent ||
                    !std::equal(rows[i]->tokens.begin(), rows[i]->tokens.end(), tokens.begin() + (ptrdiff_t)at,
                                tokens.begin() + (ptrdiff_t)(at + nt))) {
                    return make_error(ErrorCode::kInternal, fmt::format("disk cache: block key collision at block {}", i));
                }
                size = rows[i]->size;
            } else {
                if (!temps[i]) {  // evicted since phase 1: write it now
                    LC_ASSIGN_OR_RETURN(temps[i], write_temp(keys[i], st.kv.data() + at * tb, nt * tb, (uint32_t)nt));
                }
                size = temps[i]->size;
                added += size + block_row_bytes(nt);
            }
            total += size + block_row_bytes(nt);
        }
        if (total > (int64_t)capacity) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("disk cache: an entry of {} tokens needs {} bytes, more than the capacity of {} bytes",
                                          n, total, capacity));
        }
        std::vector<int64_t> ids(keys.size());
        int64_t new_blocks = 0;
        for (size_t i = 0; i < keys.size(); ++i) {
            const auto [at, nt] = span_of(i);
            if (rows[i]) {
                db.q("UPDATE blocks SET refcount=refcount+1 WHERE id=?1").bind(1, rows[i]->id).run();
                ids[i] = rows[i]->id;
                continue;
            }
            LC_TRY(publish(temps[i], keys[i], st.kv.data() + at * tb, nt * tb, (uint32_t)nt));
            published.push_back(temps[i]->name);
            db.q("INSERT INTO blocks(key, parent, tokens, n_tokens, refcount, size, file) VALUES(?1, ?2, ?3, ?4, 1, ?5, ?6)")
                .bind_blob(1, keys[i].bytes())
                .bind_blob(2, (i == 0 ? rkey : keys[i - 1]).bytes())
                .bind_blob(3, encode_tokens_sortable(tokens.data() + at, nt))
                .bind(4, (int64_t)nt)
                .bind(5, temps[i]->size)
                .bind_text(6, temps[i]->name)
                .run();
            ids[i] = db.last_insert_rowid();
            ++new_blocks;
        }
        if (!published.empty() && opt.fsync) LC_TRY(fsync_dir(blocks_dir));
        db.q("INSERT OR IGNORE INTO roots VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
            .bind_blob(1, rkey.bytes())
            .bind_text(2, st.model_fingerprint)
            .bind(3, layout.n_layer)
            .bind(4, layout.n_head_kv)
            .bind(5, layout.head_dim)
            .bind(6, layout.kv_type)
            .run();
        int64_t entry_size = 0;
        for (size_t i = 0; i < keys.size(); ++i) entry_size += rows[i] ? rows[i]->size : temps[i]->size;
        db.q("INSERT INTO entries(key, root, fingerprint, n_tokens, size, last_use) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
            .bind_blob(1, keys.back().bytes())
            .bind_blob(2, rkey.bytes())
            .bind_text(3, st.model_fingerprint)
            .bind(4, (int64_t)n)
            .bind(5, entry_size)
            .bind(6, tick)
            .run();
        const int64_t entry_id = db.last_insert_rowid();
        for (size_t i = 0; i < keys.size(); ++i) {
            db.q("INSERT INTO entry_blocks VALUES(?1, ?2, ?3)").bind(1, entry_id).bind(2, (int64_t)i).bind(3, ids[i]).run();
        }
        meta_add(db, "total_bytes", added);
        meta_add(db, "n_entries", 1);
        meta_add(db, "n_blocks", new_blocks);
        crash_point("published");
        const int64_t evicted = evict_to(db, (int64_t)capacity, entry_id, &unlink_after);
        crash_point("evicted");
        t.commit();
        published.clear();
        crash_point("committed");
        if (evicted) {
            std::lock_guard<std::mutex> lock(stats_mu);
            stats.evictions += (uint64_t)evicted;
        }
        return {};
    };
    Status result;
    try {
        result = phase3();
    } catch (...) {
        unlink_files(published);  // rolled back; unique names, so no committed row can name them
        throw;
    }
    unlink_files(published);  // non-empty only if phase 3 failed after publishing (rolled back)
    if (!result.ok()) return result;
    unlink_files(unlink_after);
    return {};
}

DiskCache::Impl::Match DiskCache::Impl::walk(Db& db, const Key128& root, const KvLayout& layout, const std::vector<Token>& q) {
    Match m;
    m.layout = layout;
    Key128 cur = root;
    size_t at = 0;
    while (q.size() - at >= kCacheBlockTokens) {
        const Key128 key = node_key(cur, q.data() + at, kCacheBlockTokens);
        auto row = find_block(db, key);
        if (!row || row->parent != cur ||
            !std::equal(row->tokens.begin(), row->tokens.end(), q.begin() + (ptrdiff_t)at,
                        q.begin() + (ptrdiff_t)(at + kCacheBlockTokens))) {
            break;
        }
        m.nodes.push_back(Node{row->id, key, row->file, (uint32_t)kCacheBlockTokens, kCacheBlockTokens});
        cur = key;
        at += kCacheBlockTokens;
    }
    m.n = at;
    const size_t rest = std::min(kCacheBlockTokens, q.size() - at);
    if (rest > 0) {
        // The chain stops here: the best partial match is a neighbour of the query in sorted child order.
        const std::string enc = encode_tokens_sortable(q.data() + at, rest);
        std::span<const Token> qr(q.data() + at, rest);
        Node best;
        size_t best_len = 0;
        for (const char* sql : {"SELECT id, key, tokens, file FROM blocks WHERE parent=?1 AND tokens<=?2 ORDER BY tokens DESC LIMIT 1",
                                "SELECT id, key, tokens, file FROM blocks WHERE parent=?1 AND tokens>?2 ORDER BY tokens ASC LIMIT 1"}) {
            Stmt& s = db.q(sql);
            s.bind_blob(1, cur.bytes()).bind_blob(2, enc);
            if (s.step()) {
                std::vector<Token> toks;
                const std::string tb = s.col_blob(2);
                decode_tokens_sortable(tb.data(), tb.size(), &toks);
                const size_t l = common_prefix(toks, qr);
                if (l > best_len) {
                    best_len = l;
                    best = Node{s.col_int(0), key_of(s.col_blob(1)), s.col_text(3), (uint32_t)toks.size(), l};
                }
            }
            s.reset();
        }
        if (best_len > 0) {
            m.nodes.push_back(best);
            m.n += best_len;
        }
    }
    if (!m.nodes.empty()) {
        Stmt& s = db.q("SELECT entry_id FROM entry_blocks WHERE block_id=?1 LIMIT 1");
        s.bind(1, m.nodes.back().id);
        m.touch_entry = s.step() ? s.col_int(0) : 0;
        s.reset();
    }
    return m;
}

void DiskCache::Impl::purge_block(Db& db, int64_t block_id, const std::string& file) {
    std::vector<std::string> unlink_after;
    {
        Txn t(db, true);
        Stmt& s = db.q("SELECT 1 FROM blocks WHERE id=?1 AND file=?2");
        s.bind(1, block_id).bind_text(2, file);
        const bool still_there = s.step();
        s.reset();
        if (!still_there) return;  // evicted meanwhile: not corrupt, just gone
        std::vector<int64_t> users;
        Stmt& u = db.q("SELECT DISTINCT entry_id FROM entry_blocks WHERE block_id=?1");
        u.bind(1, block_id);
        while (u.step()) users.push_back(u.col_int(0));
        u.reset();
        for (int64_t e : users) drop_entry(db, e, &unlink_after);
        t.commit();
    }
    unlink_files(unlink_after);
}

int DiskCache::Impl::lookup_once(Db& db, const std::vector<Token>& q, const std::string& fp, const KvLayout* layout,
                                 CacheEntry* out) {
    Match best;
    {
        Txn t(db, false);
        if (layout) {
            best = walk(db, root_key(fp, *layout), *layout, q);
        } else {
            std::vector<std::pair<Key128, KvLayout>> roots;
            Stmt& s = db.q("SELECT key, n_layer, n_head_kv, head_dim, kv_type FROM roots WHERE fingerprint=?1");
            s.bind_text(1, fp);
            while (s.step()) {
                roots.emplace_back(key_of(s.col_blob(0)), KvLayout{(uint32_t)s.col_int(1), (uint32_t)s.col_int(2),
                                                                   (uint32_t)s.col_int(3), (uint32_t)s.col_int(4)});
            }
            s.reset();
            for (const auto& [key, lay] : roots) {
                Match m = walk(db, key, lay, q);
                if (m.n > best.n) best = std::move(m);
            }
        }
        t.commit();
    }
    if (best.n == 0) return 1;

    // Read and verify the block files outside the transaction.
    const size_t tb = best.layout.token_bytes();
    SequenceState& st = out->state;
    st.model_fingerprint = fp;
    st.layout = best.layout;
    st.tokens.assign(q.begin(), q.begin() + (ptrdiff_t)best.n);
    st.positions.resize(best.n);
    for (size_t i = 0; i < best.n; ++i) st.positions[i] = (Pos)i;
    st.kv.resize(best.n * tb);
    std::vector<uint8_t> scratch;
    size_t at = 0;
    for (const Node& nd : best.nodes) {
        int err = 0;
        auto bytes = read_whole_file(block_path(nd.file), &err);
        Status ok = bytes.ok() ? Status{} : Status{bytes.error()};
        if (bytes.ok()) {
            const size_t raw = (size_t)nd.n_tokens * tb;
            uint8_t* dst = st.kv.data() + at * tb;
            if (nd.used < nd.n_tokens) {
                scratch.resize(raw);
                dst = scratch.data();
            }
            ok = decode_block_file(bytes->data(), bytes->size(), nd.key, nd.n_tokens, raw, dst);
            if (ok.ok() && dst == scratch.data()) std::memcpy(st.kv.data() + at * tb, scratch.data(), nd.used * tb);
        }
        if (!ok.ok()) {
            purge_block(db, nd.id, nd.file);
            return 2;
        }
        at += nd.used;
    }
    out->n_past = (int32_t)best.n;
    if (best.touch_entry) {
        Txn t(db, true);
        const int64_t tick = next_tick(db);
        db.q("UPDATE entries SET last_use=?1 WHERE id=?2").bind(1, tick).bind(2, best.touch_entry).run();
        t.commit();
    }
    return 0;
}

std::optional<CacheEntry> DiskCache::lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint) {
    return lookup_impl(tokens, model_fingerprint, nullptr);
}

std::optional<CacheEntry> DiskCache::lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint,
                                            const KvLayout& layout) {
    return lookup_impl(tokens, model_fingerprint, &layout);
}

std::optional<CacheEntry> DiskCache::lookup_impl(const std::vector<Token>& tokens, const std::string& fp, const KvLayout* layout) {
    Impl& c = *impl_;
    // A failed or raced read is retried a few times; errors after that are reported as a miss.
    for (int attempt = 0; attempt < 8; ++attempt) {
        try {
            Impl::Conn conn(c);
            CacheEntry out;
            const int r = c.lookup_once(*conn, tokens, fp, layout, &out);
            if (r == 2) continue;
            std::lock_guard<std::mutex> lock(c.stats_mu);
            if (r == 1) {
                ++c.stats.misses;
                return std::nullopt;
            }
            ++c.stats.hits;
            c.stats.hit_tokens += (uint64_t)out.n_past;
            c.stats.bytes_out += state_bytes((size_t)out.n_past, out.state.layout);
            return out;
        } catch (const SqlError& e) {
            if (!e.busy()) break;
        }
    }
    std::lock_guard<std::mutex> lock(c.stats_mu);
    ++c.stats.misses;
    return std::nullopt;
}

size_t DiskCache::size_bytes() const {
    try {
        Impl::Conn c(*impl_);
        return (size_t)meta_get(*c, "total_bytes");
    } catch (const SqlError&) {
        return 0;
    }
}

size_t DiskCache::capacity_bytes() const { return impl_->capacity; }

size_t DiskCache::len() const {
    try {
        Impl::Conn c(*impl_);
        return (size_t)meta_get(*c, "n_entries");
    } catch (const SqlError&) {
        return 0;
    }
}

size_t DiskCache::n_blocks() const {
    try {
        Impl::Conn c(*impl_);
        return (size_t)meta_get(*c, "n_blocks");
    } catch (const SqlError&) {
        return 0;
    }
}

const std::string& DiskCache::dir() const { return impl_->dir; }

CacheStats DiskCache::stats() const {
    std::lock_guard<std::mutex> lock(impl_->stats_mu);
    return impl_->stats;
}

Status DiskCache::clear() {
    std::vector<std::string> files;
    try {
        Impl::Conn c(*impl_);
        Db& db = *c;
        Txn t(db, true);
        Stmt& s = db.q("SELECT file FROM blocks");
        while (s.step()) files.push_back(s.col_text(0));
        s.reset();
        db.exec("DELETE FROM entry_blocks; DELETE FROM entries; DELETE FROM blocks; DELETE FROM roots;"
                "UPDATE meta SET value=0 WHERE name IN ('total_bytes', 'n_entries', 'n_blocks')");
        t.commit();
    } catch (const SqlError& e) {
        return make_error(ErrorCode::kIo, fmt::format("disk cache clear: {}", e.what()));
    }
    impl_->unlink_files(files);
    return {};
}

std::string DiskCache::Impl::consistency_problem(Db& db) {
    struct B {
        Key128 key, parent;
        int64_t n_tokens, refcount, size;
        std::string file;
        int64_t refs = 0;
        size_t token_bytes = 0;
    };
    std::unordered_map<int64_t, B> blocks;
    {
        Stmt& s = db.q("SELECT id, key, parent, n_tokens, refcount, size, file FROM blocks");
        while (s.step()) {
            blocks[s.col_int(0)] = B{key_of(s.col_blob(1)), key_of(s.col_blob(2)), s.col_int(3), s.col_int(4),
                                     s.col_int(5), s.col_text(6)};
        }
        s.reset();
    }
    std::unordered_map<Key128, KvLayout, Key128Hash> roots;
    {
        Stmt& s = db.q("SELECT key, n_layer, n_head_kv, head_dim, kv_type FROM roots");
        while (s.step()) {
            roots[key_of(s.col_blob(0))] = KvLayout{(uint32_t)s.col_int(1), (uint32_t)s.col_int(2),
                                                    (uint32_t)s.col_int(3), (uint32_t)s.col_int(4)};
        }
        s.reset();
    }
    struct E {
        int64_t id;
        Key128 key, root;
        int64_t n_tokens, size;
    };
    std::vector<E> entries;
    {
        Stmt& s = db.q("SELECT id, key, root, n_tokens, size FROM entries");
        while (s.step()) entries.push_back(E{s.col_int(0), key_of(s.col_blob(1)), key_of(s.col_blob(2)), s.col_int(3), s.col_int(4)});
        s.reset();
    }
    int64_t n_refs = 0;
    for (const E& e : entries) {
        auto rit = roots.find(e.root);
        if (rit == roots.end()) return fmt::format("entry {} has no root row", e.id);
        std::vector<std::pair<int64_t, int64_t>> chain;
        Stmt& s = db.q("SELECT idx, block_id FROM entry_blocks WHERE entry_id=?1 ORDER BY idx");
        s.bind(1, e.id);
        while (s.step()) chain.emplace_back(s.col_int(0), s.col_int(1));
        s.reset();
        if (chain.empty()) return fmt::format("entry {} has no blocks", e.id);
        Key128 parent = e.root;
        int64_t tokens = 0, size = 0;
        for (size_t i = 0; i < chain.size(); ++i) {
            if (chain[i].first != (int64_t)i) return fmt::format("entry {}: chain index {} at position {}", e.id, chain[i].first, i);
            auto bit = blocks.find(chain[i].second);
            if (bit == blocks.end()) return fmt::format("entry {}: block {} missing", e.id, chain[i].second);
            B& b = bit->second;
            if (b.parent != parent) return fmt::format("entry {}: block {} has the wrong parent", e.id, chain[i].second);
            if (i + 1 < chain.size() && b.n_tokens != (int64_t)kCacheBlockTokens) {
                return fmt::format("entry {}: inner block {} holds {} tokens", e.id, chain[i].second, b.n_tokens);
            }
            b.refs++;
            b.token_bytes = rit->second.token_bytes();
            parent = b.key;
            tokens += b.n_tokens;
            size += b.size;
        }
        if (parent != e.key) return fmt::format("entry {}: key is not its last block's key", e.id);
        if (tokens != e.n_tokens) return fmt::format("entry {}: {} tokens in blocks, {} recorded", e.id, tokens, e.n_tokens);
        if (size != e.size) return fmt::format("entry {}: {} bytes in blocks, {} recorded", e.id, size, e.size);
        n_refs += (int64_t)chain.size();
    }
    {
        Stmt& s = db.q("SELECT COUNT(*) FROM entry_blocks");
        s.step();
        const int64_t all = s.col_int(0);
        s.reset();
        if (all != n_refs) return fmt::format("{} entry_blocks rows, {} belong to entries", all, n_refs);
    }
    int64_t total = (int64_t)entries.size() * kEntryRowBytes + n_refs * kRefRowBytes;
    std::unordered_set<std::string> files;
    for (const auto& [id, b] : blocks) {
        if (b.refcount != b.refs) return fmt::format("block {}: refcount {}, {} references", id, b.refcount, b.refs);
        if (b.refs == 0) return fmt::format("block {} is not used by any entry", id);
        const std::string path = block_path(b.file);
        auto bytes = read_whole_file(path);
        if (!bytes.ok()) return fmt::format("block {}: {}", id, bytes.error().message);
        if ((int64_t)bytes->size() != b.size) return fmt::format("block {}: file has {} bytes, row says {}", id, bytes->size(), b.size);
        std::vector<uint8_t> raw((size_t)b.n_tokens * b.token_bytes);
        auto ok = decode_block_file(bytes->data(), bytes->size(), b.key, (uint32_t)b.n_tokens, raw.size(), raw.data());
        if (!ok.ok()) return fmt::format("block {}: {}", id, ok.error().message);
        files.insert(b.file);
        total += b.size + block_row_bytes((size_t)b.n_tokens);
    }
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(blocks_dir, ec)) {
        if (!files.count(f.path().filename().string())) return fmt::format("orphan block file {}", f.path().string());
    }
    if (meta_get(db, "total_bytes") != total) return fmt::format("meta total_bytes {} but the rows add up to {}", meta_get(db, "total_bytes"), total);
    if (meta_get(db, "n_entries") != (int64_t)entries.size()) return "meta n_entries is wrong";
    if (meta_get(db, "n_blocks") != (int64_t)blocks.size()) return "meta n_blocks is wrong";
    if (total > (int64_t)capacity) return fmt::format("{} bytes held, over the capacity of {}", total, capacity);
    return "";
}

Status DiskCache::check_consistency() {
    try {
        Impl::Conn c(*impl_);
        Txn t(*c, true);
        const std::string problem = impl_->consistency_problem(*c);
        t.commit();
        if (!problem.empty()) return make_error(ErrorCode::kInternal, fmt::format("disk cache '{}': {}", impl_->dir, problem));
        return {};
    } catch (const SqlError& e) {
        return make_error(ErrorCode::kIo, fmt::format("disk cache check: {}", e.what()));
    }
}

}  // namespace llama_crab
