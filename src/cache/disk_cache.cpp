// DiskCache: the block scheme of cache_keys.h on disk.
//
// Folder layout: CACHEDIR.TAG (the marker that makes the folder ours, see cache_folder.h), index.sqlite (WAL
// mode; the source of truth), blocks/ (one zstd file per block, see block_file.h, named <key hex>.blk: the name
// is derived from the key, never read from the index) and tmp/ (files being written).
//
// Schema:
//   meta(name, value)                      schema version, total_bytes, n_entries, n_blocks, clock (LRU ticks),
//                                          capacity (of the latest open; informational)
//   roots(key, fingerprint, layout...)     one per model fingerprint + KV layout, for layout-less lookups
//   blocks(id, key UNIQUE, parent, tokens, n_tokens, refcount, size, file)   index (parent, tokens)
//                                          (`file` must equal the derived name; a row where it does not, or
//                                          whose key is not 16 bytes, is ignored: never read, never deleted)
//   entries(id, key UNIQUE, root, fingerprint, n_tokens, size, last_use)     index (last_use)
//   entry_blocks(entry_id, idx, block_id)  an entry's chain; index (block_id)
// `tokens` is stored so that BLOB order is token order: the children of a node sorted by tokens give the
// longest partial match next to the query's insertion point, in O(log n) through the (parent, tokens) index.
//
// Trust: a row's tokens are believed only when the chain hash over (parent, tokens) equals its key, and a block
// file is used only when it carries that key, parent and tokens itself (block_file.h). Anything else is a miss
// (counted in CacheStats::rejected), never a KV state for other tokens.
//
// Crash and concurrency safety:
//  * A store compresses and writes its new blocks to tmp/ (flock held, fsync) outside any transaction, then in
//    one BEGIN IMMEDIATE transaction (under the BlocksLock, see cache_folder.h) re-resolves the chain, renames its temp files into blocks/ (fsync of the
//    folder), inserts the rows, evicts LRU entries to the budget and commits. Files of blocks whose refcount
//    reached 0 are unlinked only after the commit. So a committed row always names a complete file, and a crash
//    leaves at most unreferenced files, never a row without its file: an entry is absent or fully valid.
//    The unlinks after the commit still hold the BlocksLock, so no writer can publish a new file under a name
//    that is about to be unlinked.
//  * gc (run by open) removes, under the write lock, block files no committed row names (renames happen only
//    under that lock, so a file renamed by a live writer is always committed or rolled back first) and tmp/
//    files whose writer's flock is gone (the writer died); only names of our patterns, never following links.
//  * A damaged index (SQLITE_CORRUPT / NOTADB at open, or a failed PRAGMA quick_check, run by a process that
//    has the folder alone after an unclean shutdown) is moved aside as index.sqlite.corrupt-<time> and rebuilt
//    empty; the block files it named become orphans that gc removes. DiskCache::warnings() reports it.
//  * Readers take a snapshot, then read the files outside the transaction; a file evicted meanwhile is a retry,
//    a file that is missing or fails its checksum while its row still exists is corrupt: its block and every
//    entry using it are removed, and the lookup retries (a shorter valid prefix may remain).
//
// Budget: size_bytes() = block file sizes + an estimate of the index rows (kEntryRowBytes per entry,
// kRefRowBytes per chain link, block_row_bytes() per block), kept in meta.total_bytes by every transaction.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <span>
#include <sys/stat.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>
#include <sqlite3.h>

#include "cache/block_file.h"
#include "cache/cache_folder.h"
#include "cache/cache_keys.h"
#include "cache/disk_cache_rows.h"
#include "cache/disk_cache_schema.h"
#include "cache/disk_cache_testing.h"
#include "cache/sqlite_db.h"
#include "llama_crab/cache.h"
#include "util/regular_file.h"

namespace llama_crab {

using namespace cache_detail;

namespace {

CrashHook g_crash_hook = nullptr;
void crash_point(const char* point) {
    if (g_crash_hook) g_crash_hook(point);
}

constexpr int64_t kSchemaVersion = kDiskCacheSchemaVersion;

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

Error io_error(const std::string& what, const std::string& path, int err) {
    return make_error(ErrorCode::kIo, fmt::format("disk cache: {} '{}': {}", what, path, std::strerror(err)));
}

Status fsync_dir(int fd, const std::string& dir) {
    if (::fsync(fd) != 0) return io_error("cannot sync folder", dir, errno);
    return {};
}

// A block file being written in tmp/: locked (gc leaves it alone while the lock is held), removed on
// destruction unless moved into blocks/.
struct TempBlock {
    int tmp_dir_fd = -1;
    std::string tmp_name;  // in tmp/
    std::string name;      // final file name in blocks/ (derived from the key)
    int fd = -1;
    int64_t size = 0;
    bool moved = false;
    ~TempBlock() {
        if (!moved && !tmp_name.empty()) ::unlinkat(tmp_dir_fd, tmp_name.c_str(), 0);
        if (fd >= 0) ::close(fd);
    }
};

struct BlockRow {
    int64_t id = 0;
    Key128 key, parent;
    std::vector<Token> tokens;
    int64_t refcount = 0;
    int64_t size = 0;
};



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
    const bool tokens_ok = decode_tokens_sortable(t.data(), t.size(), &r.tokens);
    r.refcount = s.col_int(3);
    r.size = s.col_int(4);
    const bool named_ok = s.col_text(5) == block_file_name(key);
    s.reset();
    if (!tokens_ok || !named_ok) return std::nullopt;  // a row we did not write: ignore it
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
        Stmt& s = db.q("SELECT refcount, size, key, n_tokens, file FROM blocks WHERE id=?1");
        s.bind(1, b);
        if (!s.step()) {
            s.reset();
            continue;
        }
        const int64_t rc = s.col_int(0), size = s.col_int(1), nt = s.col_int(3);
        const std::string key_blob = s.col_blob(2);
        const bool named_ok = row_names_its_file(key_blob, s.col_text(4));
        s.reset();
        if (rc <= 0) {
            db.q("DELETE FROM blocks WHERE id=?1").bind(1, b).run();
            freed += block_file_bytes(size) + block_row_bytes(nt);
            ++freed_blocks;
            // The name is derived from the key; a row whose stored name disagrees never wrote a file of ours.
            if (named_ok) unlink_after->push_back(block_file_name(key_of(key_blob)));
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
    std::string dir, db_path;
    std::unique_ptr<CacheFolder> folder;
    bool alone_at_open = false;
    bool opened = false;  // open() succeeded: only then may the destructor mark the index clean
    std::atomic<bool> saw_corruption{false};  // a SQLITE_CORRUPT since open: do not mark the index clean
    std::vector<std::string> warnings;
    size_t capacity = 0;
    DiskCacheOptions opt;
    std::mutex pool_mu;
    std::vector<std::unique_ptr<Db>> pool;
    mutable std::mutex stats_mu;
    CacheStats stats;

    ~Impl();

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

    void note_error(const SqlError& e) {
        if (e.corrupt()) saw_corruption = true;
    }

    Result<std::unique_ptr<TempBlock>> write_temp(const BlockIdentity& id, const uint8_t* kv, size_t kv_bytes) {
        const std::vector<uint8_t> bytes = encode_block_file(id, kv, kv_bytes, opt.zstd_level);
        auto t = std::make_unique<TempBlock>();
        t->tmp_dir_fd = folder->tmp_fd();
        t->name = block_file_name(id.key);
        const std::string tmp_name = temp_file_name(id.key);
        t->fd = ::openat(t->tmp_dir_fd, tmp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (t->fd < 0) return io_error("cannot create", dir + "/tmp/" + tmp_name, errno);
        t->tmp_name = tmp_name;
        if (::flock(t->fd, LOCK_EX) != 0) return io_error("cannot lock", dir + "/tmp/" + tmp_name, errno);
        size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t w = ::write(t->fd, bytes.data() + done, bytes.size() - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return io_error("cannot write", dir + "/tmp/" + tmp_name, errno);
            done += (size_t)w;
        }
        if (opt.fsync && ::fdatasync(t->fd) != 0) return io_error("cannot sync", dir + "/tmp/" + tmp_name, errno);
        t->size = (int64_t)bytes.size();
        return t;
    }

    Status rename_in(TempBlock& t) {
        if (::renameat(folder->tmp_fd(), t.tmp_name.c_str(), folder->blocks_fd(), t.name.c_str()) != 0) {
            return io_error("cannot rename", dir + "/tmp/" + t.tmp_name, errno);
        }
        t.moved = true;
        return {};
    }

    // Moves a temp block into blocks/ (caller holds the BlocksLock and the write transaction). If gc took the
    // temp file (its writer looked dead in the instant between create and lock), writes it again.
    Status publish(std::unique_ptr<TempBlock>& t, const BlockIdentity& id, const uint8_t* kv, size_t kv_bytes) {
        if (::renameat(folder->tmp_fd(), t->tmp_name.c_str(), folder->blocks_fd(), t->name.c_str()) == 0) {
            t->moved = true;
            return {};
        }
        if (errno != ENOENT) return io_error("cannot rename", dir + "/tmp/" + t->tmp_name, errno);
        LC_ASSIGN_OR_RETURN(t, write_temp(id, kv, kv_bytes));
        return rename_in(*t);
    }

    // Names are derived from keys (block_file_name), so they always lie inside blocks/.
    void unlink_files(const std::vector<std::string>& names) {
        for (const auto& n : names) ::unlinkat(folder->blocks_fd(), n.c_str(), 0);
    }

    Status open_index(bool alone);
    void check_index(Db& db, bool fresh);
    Status store(const std::vector<Token>& tokens, const SequenceState& st, size_t n);
    Status store_once(const std::vector<Token>& tokens, const SequenceState& st, size_t n, bool* refreshed);

    struct Node {
        int64_t id = 0;
        Key128 key, parent;
        std::vector<Token> tokens;  // all tokens of the block (as the index says; the file must agree)
        size_t used = 0;            // tokens of this node in the match
    };
    struct Match {
        KvLayout layout;
        std::vector<Node> nodes;
        size_t n = 0;
        int64_t touch_entry = 0;
        uint64_t rejected = 0;  // rows that failed verification
    };
    Match walk(Db& db, const Key128& root, const KvLayout& layout, const std::vector<Token>& q);
    void partial_match(Db& db, const Key128& parent, std::span<const Token> qr, Match* m);
    // 0: hit (out filled); 1: miss; 2: retry (a block vanished or was corrupt and has been removed).
    int lookup_once(Db& db, const std::vector<Token>& q, const std::string& fp, const KvLayout* layout, CacheEntry* out);
    bool read_node(const Node& nd, size_t token_bytes, uint8_t* dst);
    void purge_block(Db& db, const Node& nd, size_t token_bytes);
    int64_t evict_to(Db& db, int64_t budget, int64_t keep_entry, std::vector<std::string>* unlink_after);
    void gc_locked(Db& db);
};

DiskCache::DiskCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DiskCache::~DiskCache() = default;

Result<std::shared_ptr<DiskCache>> DiskCache::open(const std::string& dir, size_t capacity_bytes, const DiskCacheOptions& options) {
    auto impl = std::make_unique<Impl>();
    impl->dir = dir;
    impl->capacity = capacity_bytes;
    impl->opt = options;
    LC_ASSIGN_OR_RETURN(impl->folder, CacheFolder::open(dir));
    impl->db_path = impl->folder->index_path();
    // Alone (no other DiskCache has the folder open): the index may be checked and, if damaged, replaced.
    impl->alone_at_open = impl->folder->lock_alone();
    Status st = impl->open_index(impl->alone_at_open);
    impl->folder->share();
    if (!st.ok()) return st.error();
    impl->opened = true;
    return std::shared_ptr<DiskCache>(new DiskCache(std::move(impl)));
}

// Throws SqlError (with SQLITE_CORRUPT when quick_check fails) when the index is damaged.
void DiskCache::Impl::check_index(Db& db, bool fresh) {
    if (fresh) return;
    const bool clean = meta_get(db, "clean") == 1;
    int64_t page_count = 0, page_size = 0;
    {
        Stmt& s = db.q("PRAGMA page_count");
        if (s.step()) page_count = s.col_int(0);
        s.reset();
        Stmt& z = db.q("PRAGMA page_size");
        if (z.step()) page_size = z.col_int(0);
        z.reset();
    }
    struct stat st {};
    const bool size_ok = ::fstatat(folder->dir_fd(), kIndexName, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                         (int64_t)st.st_size >= page_count * page_size;
    if (clean && size_ok) return;
    Stmt& s = db.q("PRAGMA quick_check");
    const std::string verdict = s.step() ? s.col_text(0) : std::string("no result");
    s.reset();
    if (verdict != "ok") throw SqlError(SQLITE_CORRUPT, "quick_check: " + verdict);
}

Status DiskCache::Impl::open_index(bool alone) {
    // SQLite would block forever reading a FIFO: the index files must be regular files (or absent).
    for (const char* suffix : {"", "-wal", "-shm"}) {
        const std::string name = std::string(kIndexName) + suffix;
        struct stat st {};
        if (::fstatat(folder->dir_fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
            return make_error(ErrorCode::kInvalidArgument, fmt::format("disk cache: '{}/{}' is {}, not a regular file: refusing to use it",
                                                                       dir, name, file_kind_name(st.st_mode)));
        }
    }
    for (int round = 0;; ++round) {
        struct stat st {};
        const bool fresh = ::fstatat(folder->dir_fd(), kIndexName, &st, AT_SYMLINK_NOFOLLOW) != 0;
        try {
            Conn c(*this);
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
            BlocksLock lock(*folder);  // before the write transaction, as everywhere (cache_folder.h)
            Txn t(db, true);
            db.exec(kSchema);
            if (alone) check_index(db, fresh);
            int64_t v = meta_get(db, "version");
            if (v == 1) {  // version 1 block files carry no tokens: start empty (gc removes the old files)
                db.exec("DELETE FROM entry_blocks; DELETE FROM entries; DELETE FROM blocks; DELETE FROM roots;"
                        "UPDATE meta SET value=0 WHERE name IN ('total_bytes', 'n_entries', 'n_blocks')");
                db.q("UPDATE meta SET value=?1 WHERE name='version'").bind(1, kSchemaVersion).run();
                v = kSchemaVersion;
            }
            if (v != kSchemaVersion) {
                return make_error(ErrorCode::kUnsupported,
                                  fmt::format("disk cache '{}': index schema version {} (this build uses {})", dir, v, kSchemaVersion));
            }
            db.exec("INSERT OR REPLACE INTO meta VALUES('clean', 0)");  // set again by the last one to close
            std::vector<std::string> unlink_after;
            evict_to(db, (int64_t)capacity, 0, &unlink_after);  // the budget may have shrunk
            // Informational (DiskCache::inspect): the budget of the latest opener.
            db.q("INSERT OR REPLACE INTO meta VALUES('capacity', ?1)").bind(1, (int64_t)std::min<size_t>(capacity, (size_t)INT64_MAX)).run();
            gc_locked(db);
            t.commit();
            unlink_files(unlink_after);
            return {};
        } catch (const SqlError& e) {
            note_error(e);
            if (e.corrupt() && alone && round == 0) {
                pool.clear();  // close every connection to the damaged file before moving it
                saw_corruption = false;  // the new index starts clean
                LC_ASSIGN_OR_RETURN(const std::string aside, folder->move_index_aside());
                warnings.push_back(fmt::format("disk cache '{}': the index was damaged ({}); moved it aside as '{}' and "
                                               "started an empty one", dir, e.what(), aside));
                continue;
            }
            if (e.corrupt()) {
                return make_error(ErrorCode::kInvalidFormat,
                                  fmt::format("disk cache '{}': the index is damaged ({}){}", dir, e.what(),
                                              alone ? "" : " and another process has the folder open: it is repaired when "
                                                           "the next process opens the folder alone"));
            }
            if (e.read_only()) {
                return make_error(ErrorCode::kIo, fmt::format("disk cache: folder '{}' is not writable: {}", dir, e.what()));
            }
            return make_error(ErrorCode::kIo, fmt::format("disk cache '{}': {}", dir, e.what()));
        }
    }
}

DiskCache::Impl::~Impl() {
    // The last one to close marks the index clean: the next opener then skips the integrity check.
    if (!opened || saw_corruption || !folder->lock_alone()) return;
    try {
        Conn c(*this);
        (*c).exec("UPDATE meta SET value=1 WHERE name='clean'");
    } catch (const SqlError&) {
    }
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

// Caller holds the write transaction and the BlocksLock.
void DiskCache::Impl::gc_locked(Db& db) {
    std::vector<std::string> referenced;
    {
        Stmt& s = db.q("SELECT key, file FROM blocks");
        while (s.step()) {
            const std::string key_blob = s.col_blob(0);
            if (row_names_its_file(key_blob, s.col_text(1))) referenced.push_back(block_file_name(key_of(key_blob)));
        }
        s.reset();
    }
    std::sort(referenced.begin(), referenced.end());
    folder->remove_block_files(referenced);
    folder->remove_dead_temp_files();
    db.exec("DELETE FROM roots WHERE key NOT IN (SELECT root FROM entries)");
}

Status DiskCache::gc() {
    try {
        BlocksLock lock(*impl_->folder);
        Impl::Conn c(*impl_);
        Txn t(*c, true);
        impl_->gc_locked(*c);
        t.commit();
        return {};
    } catch (const SqlError& e) {
        impl_->note_error(e);
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
            note_error(e);
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
    auto identity = [&](size_t i) {
        const auto [at, nt] = span_of(i);
        return BlockIdentity{keys[i], i == 0 ? rkey : keys[i - 1], std::span<const Token>(tokens.data() + at, nt)};
    };
    auto kv_of = [&](size_t i) { return st.kv.data() + span_of(i).first * tb; };
    auto kv_bytes_of = [&](size_t i) { return span_of(i).second * tb; };
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
            LC_ASSIGN_OR_RETURN(temps[i], write_temp(identity(i), kv_of(i), kv_bytes_of(i)));
        }
    }

    crash_point("temps_written");
    // Phase 3 (write lock): resolve again, publish, insert, evict, commit.
    std::vector<std::string> unlink_after;
    std::vector<std::string> published;
    auto phase3 = [&]() -> Status {
        Txn t(db, true);
        // Declared after the transaction, so it runs first on a failure: files published by this attempt are
        // removed while the locks are still held (their names are derived, so no one else may own them later).
        struct Unpublish {
            Impl& impl;
            std::vector<std::string>& names;
            ~Unpublish() { impl.unlink_files(names); }
        } unpublish{*this, published};
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
                size = block_file_bytes(rows[i]->size);
            } else {
                if (!temps[i]) {  // evicted since phase 1: write it now
                    LC_ASSIGN_OR_RETURN(temps[i], write_temp(identity(i), kv_of(i), kv_bytes_of(i)));
                }
                size = temps[i]->size;
                added += size + block_row_bytes((int64_t)nt);
            }
            total += size + block_row_bytes((int64_t)nt);
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
            LC_TRY(publish(temps[i], identity(i), kv_of(i), kv_bytes_of(i)));
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
        if (!published.empty() && opt.fsync) LC_TRY(fsync_dir(folder->blocks_fd(), dir + "/blocks"));
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
    // The BlocksLock spans the transaction and the unlinks after its commit (see cache_folder.h).
    BlocksLock lock(*folder);
    LC_TRY(phase3());
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
        m.nodes.push_back(Node{row->id, key, cur, std::move(row->tokens), kCacheBlockTokens});
        cur = key;
        at += kCacheBlockTokens;
    }
    m.n = at;
    const size_t rest = std::min(kCacheBlockTokens, q.size() - at);
    if (rest > 0) partial_match(db, cur, std::span<const Token>(q.data() + at, rest), &m);
    if (!m.nodes.empty()) {
        Stmt& s = db.q("SELECT entry_id FROM entry_blocks WHERE block_id=?1 LIMIT 1");
        s.bind(1, m.nodes.back().id);
        m.touch_entry = s.step() ? s.col_int(0) : 0;
        s.reset();
    }
    return m;
}

// The chain stops at `parent`: the best partial match is a neighbour of the query in sorted child order. A row's
// tokens are believed only if the chain hash over them is its key (a forged `tokens` column is a miss).
void DiskCache::Impl::partial_match(Db& db, const Key128& parent, std::span<const Token> qr, Match* m) {
    const std::string enc = encode_tokens_sortable(qr.data(), qr.size());
    Node best;
    size_t best_len = 0;
    for (const char* sql : {"SELECT id, key, tokens, file FROM blocks WHERE parent=?1 AND tokens<=?2 ORDER BY tokens DESC LIMIT 1",
                            "SELECT id, key, tokens, file FROM blocks WHERE parent=?1 AND tokens>?2 ORDER BY tokens ASC LIMIT 1"}) {
        Stmt& s = db.q(sql);
        s.bind_blob(1, parent.bytes()).bind_blob(2, enc);
        if (s.step()) {
            std::vector<Token> toks;
            const std::string tb = s.col_blob(2), key_blob = s.col_blob(1);
            const bool decoded = decode_tokens_sortable(tb.data(), tb.size(), &toks);
            const Key128 key = key_of(key_blob);
            const size_t l = decoded ? common_prefix(toks, qr) : 0;
            if (l > best_len) {
                if (!row_names_its_file(key_blob, s.col_text(3)) || toks.size() > kCacheBlockTokens ||
                    node_key(parent, toks.data(), toks.size()) != key) {
                    ++m->rejected;
                } else {
                    best_len = l;
                    best = Node{s.col_int(0), key, parent, std::move(toks), l};
                }
            }
        }
        s.reset();
    }
    if (best_len > 0) {
        m->nodes.push_back(std::move(best));
        m->n += best_len;
    }
}

// Reads a node's block file into dst (room for all its tokens); false when it is missing or fails any check.
bool DiskCache::Impl::read_node(const Node& nd, size_t token_bytes, uint8_t* dst) {
    auto bytes = read_block_file(folder->blocks_fd(), block_file_name(nd.key));
    if (!bytes.ok()) return false;
    const BlockIdentity id{nd.key, nd.parent, nd.tokens};
    return decode_block_file(bytes->data(), bytes->size(), id, nd.tokens.size() * token_bytes, dst).ok();
}

// A block whose file failed: if it still fails under the locks, its block and every entry using it go.
void DiskCache::Impl::purge_block(Db& db, const Node& nd, size_t token_bytes) {
    std::vector<std::string> unlink_after;
    BlocksLock lock(*folder);
    {
        Txn t(db, true);
        Stmt& s = db.q("SELECT 1 FROM blocks WHERE id=?1 AND key=?2");
        s.bind(1, nd.id).bind_blob(2, nd.key.bytes());
        const bool still_there = s.step();
        s.reset();
        if (!still_there) return;  // evicted meanwhile: not corrupt, just gone
        std::vector<uint8_t> scratch(nd.tokens.size() * token_bytes);
        if (read_node(nd, token_bytes, scratch.data())) return;  // replaced meanwhile by a good file
        std::vector<int64_t> users;
        Stmt& u = db.q("SELECT DISTINCT entry_id FROM entry_blocks WHERE block_id=?1");
        u.bind(1, nd.id);
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
    if (best.rejected) {
        std::lock_guard<std::mutex> lock(stats_mu);
        stats.rejected += best.rejected;
    }
    std::vector<uint8_t> scratch;
    size_t at = 0;
    for (const Node& nd : best.nodes) {
        uint8_t* dst = st.kv.data() + at * tb;
        if (nd.used < nd.tokens.size()) {
            scratch.resize(nd.tokens.size() * tb);
            dst = scratch.data();
        }
        if (!read_node(nd, tb, dst)) {
            {
                std::lock_guard<std::mutex> lock(stats_mu);
                ++stats.rejected;
            }
            purge_block(db, nd, tb);
            return 2;
        }
        if (dst == scratch.data()) std::memcpy(st.kv.data() + at * tb, scratch.data(), nd.used * tb);
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
            c.note_error(e);
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
    try {
        // Under the BlocksLock no one can publish a block, so after the commit every block file is an orphan:
        // all files of our name pattern in blocks/ go (and nothing else).
        BlocksLock lock(*impl_->folder);
        Impl::Conn c(*impl_);
        Db& db = *c;
        Txn t(db, true);
        db.exec("DELETE FROM entry_blocks; DELETE FROM entries; DELETE FROM blocks; DELETE FROM roots;"
                "UPDATE meta SET value=0 WHERE name IN ('total_bytes', 'n_entries', 'n_blocks')");
        t.commit();
        impl_->folder->remove_block_files({});
    } catch (const SqlError& e) {
        impl_->note_error(e);
        return make_error(ErrorCode::kIo, fmt::format("disk cache clear: {}", e.what()));
    }
    return {};
}

const std::vector<std::string>& DiskCache::warnings() const { return impl_->warnings; }

Result<std::shared_ptr<DiskCache>> open_disk_cache_tier(const std::string& dir, size_t capacity_bytes,
                                                        const std::function<void(const std::string&)>& warn,
                                                        const DiskCacheOptions& options) {
    auto cache = DiskCache::open(dir, capacity_bytes, options);
    if (!cache.ok()) {
        if (cache.error().code != ErrorCode::kIo) return cache.error();
        warn(cache.error().message + "; running without the disk cache");
        return std::shared_ptr<DiskCache>();
    }
    for (const std::string& w : (*cache)->warnings()) warn(w);
    return cache;
}


Status DiskCache::check_consistency() {
    try {
        BlocksLock lock(*impl_->folder);
        Impl::Conn c(*impl_);
        Txn t(*c, true);
        const std::string problem = consistency_problem(*c, *impl_->folder, impl_->capacity);
        t.commit();
        if (!problem.empty()) return make_error(ErrorCode::kInternal, fmt::format("disk cache '{}': {}", impl_->dir, problem));
        return {};
    } catch (const SqlError& e) {
        return make_error(ErrorCode::kIo, fmt::format("disk cache check: {}", e.what()));
    }
}

}  // namespace llama_crab
