// libFuzzer target: a disk-cache index whose rows an attacker rewrote. The input is a list of SQL edits (set a
// column of a row to fuzzed bytes, a fuzzed integer, a hostile path or another row's value; delete a row)
// applied to the index of a folder holding three real entries. Then the cache is opened again and used:
// lookups, a store, an eviction and a clear. Must never crash or hang, never return a KV that is not exactly the
// one stored for the returned tokens, and never remove a file outside the cache folder (a victim file beside it
// is checked after every input).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include <sqlite3.h>

#include "cache/cache_test_util.h"
#include "llama_crab/cache.h"

namespace {

using namespace llama_crab;
using namespace llama_crab::cache_test;
namespace fs = std::filesystem;

struct Column {
    const char* table;
    const char* column;
    const char* row_key;  // how to name the n-th row (rowid, or the primary key of a WITHOUT ROWID table)
};

constexpr Column kColumns[] = {
    {"blocks", "key", "rowid"},          {"blocks", "parent", "rowid"},         {"blocks", "tokens", "rowid"},
    {"blocks", "n_tokens", "rowid"},     {"blocks", "refcount", "rowid"},       {"blocks", "size", "rowid"},
    {"blocks", "file", "rowid"},         {"entries", "key", "rowid"},           {"entries", "root", "rowid"},
    {"entries", "fingerprint", "rowid"}, {"entries", "n_tokens", "rowid"},      {"entries", "size", "rowid"},
    {"entries", "last_use", "rowid"},    {"entry_blocks", "idx", "entry_id, idx"},
    {"entry_blocks", "block_id", "entry_id, idx"}, {"entry_blocks", "entry_id", "entry_id, idx"},
    {"roots", "key", "key"},             {"roots", "fingerprint", "key"},       {"roots", "n_layer", "key"},
    {"roots", "head_dim", "key"},        {"roots", "kv_type", "key"},           {"meta", "value", "name"},
};
constexpr size_t kNumColumns = sizeof(kColumns) / sizeof(kColumns[0]);

struct Fixture {
    fs::path base;
    fs::path victim;
    std::string fp = fingerprint(1);
    KvLayout layout = small_layout();
    std::vector<std::vector<Token>> prompts;
};

Fixture& fixture() {
    static Fixture* fx = [] {
        auto* f = new Fixture;
        char tmpl[] = "/tmp/lc-cache-index-fuzz-XXXXXX";
        if (!mkdtemp(tmpl)) std::abort();
        f->base = tmpl;
        fs::create_directories(f->base / "victim");
        f->victim = f->base / "victim" / "victim.txt";
        FILE* v = std::fopen(f->victim.c_str(), "w");
        if (!v) std::abort();
        std::fputs("not the cache's to delete\n", v);
        std::fclose(v);
        std::mt19937_64 rng(7);
        const auto a = random_tokens(rng, 150, 500);
        f->prompts = {a, concat(head(a, 70), random_tokens(rng, 90, 500)), random_tokens(rng, 130, 500)};
        return f;
    }();
    return *fx;
}

// A value for the edited column, read from the input.
void bind_value(sqlite3_stmt* st, int idx, const uint8_t*& p, const uint8_t* end, const Fixture& fx) {
    const uint8_t kind = p < end ? *p++ : 0;
    const size_t want = p < end ? *p++ : 0;
    const size_t n = std::min<size_t>(want, (size_t)(end - p));
    switch (kind % 5) {
        case 0: sqlite3_bind_blob(st, idx, p, (int)n, SQLITE_TRANSIENT); break;
        case 1: sqlite3_bind_text(st, idx, (const char*)p, (int)n, SQLITE_TRANSIENT); break;
        case 2: {
            int64_t v = 0;
            std::memcpy(&v, p, std::min<size_t>(n, 8));
            sqlite3_bind_int64(st, idx, v);
            break;
        }
        case 3: {
            // Names that reach outside the folder, as a tampered row would write them.
            const std::string victims[] = {"../victim/victim.txt", fx.victim.string(), "../../victim/victim.txt",
                                           "blocks/../../victim/victim.txt", "index.sqlite", "CACHEDIR.TAG", ".."};
            sqlite3_bind_text(st, idx, victims[n % 7].c_str(), -1, SQLITE_TRANSIENT);
            break;
        }
        default: sqlite3_bind_null(st, idx); break;
    }
    p += n;
}

// Applies the edits the input describes: [column][row][op][value...] until the input ends.
void apply_edits(const fs::path& index, const uint8_t* data, size_t size, const Fixture& fx) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(index.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        return;
    }
    sqlite3_busy_timeout(db, 1000);
    const uint8_t* p = data;
    const uint8_t* end = data + size;
    for (int n_edits = 0; p + 3 <= end && n_edits < 16; ++n_edits) {
        const Column& c = kColumns[*p++ % kNumColumns];
        const int row = *p++ % 8;
        const uint8_t op = *p++;
        std::string sql;
        if (op % 8 == 0) {
            sql = "DELETE FROM " + std::string(c.table) + " WHERE (" + c.row_key + ") = (SELECT " + c.row_key +
                  " FROM " + c.table + " LIMIT 1 OFFSET ?1)";
        } else if (op % 8 == 1) {
            // Another row's value of the same column: a forged but well-formed row (item 3 of the issue).
            sql = "UPDATE " + std::string(c.table) + " SET " + c.column + " = (SELECT " + c.column + " FROM " +
                  c.table + " LIMIT 1 OFFSET ?2) WHERE (" + c.row_key + ") = (SELECT " + c.row_key + " FROM " +
                  c.table + " LIMIT 1 OFFSET ?1)";
        } else {
            sql = "UPDATE " + std::string(c.table) + " SET " + c.column + " = ?2 WHERE (" + c.row_key +
                  ") = (SELECT " + c.row_key + " FROM " + c.table + " LIMIT 1 OFFSET ?1)";
        }
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) std::abort();  // our SQL
        sqlite3_bind_int(st, 1, row);
        if (op % 8 == 1) {
            sqlite3_bind_int(st, 2, (op >> 3) % 8);
        } else if (op % 8 != 0) {
            bind_value(st, 2, p, end, fx);
        }
        (void)sqlite3_step(st);  // constraint violations are part of the game
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

void check(const std::optional<CacheEntry>& hit, const std::vector<Token>& query, const Fixture& fx) {
    if (!hit) return;
    const std::string why = check_entry(*hit, query, fx.fp);
    if (!why.empty()) {
        std::fprintf(stderr, "wrong KV from a tampered index: %s\n", why.c_str());
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Fixture& fx = fixture();
    const fs::path dir = fx.base / "cache";
    std::error_code ec;
    fs::remove_all(dir, ec);  // the harness's own folder from the previous input
    {
        auto c = DiskCache::open(dir.string(), 1 << 20, fast_disk_options());
        if (!c.ok()) std::abort();
        for (const auto& t : fx.prompts) {
            if (!(*c)->store(t, make_entry(t, fx.fp, fx.layout)).ok()) std::abort();
        }
    }
    apply_edits(dir / "index.sqlite", data, size, fx);
    {
        // A budget below what the three entries take: the open evicts over the tampered rows.
        auto c = DiskCache::open(dir.string(), 20000, fast_disk_options());
        if (c.ok()) {
            for (const auto& t : fx.prompts) {
                check((*c)->lookup(concat(t, {1, 2, 3}), fx.fp, fx.layout), concat(t, {1, 2, 3}), fx);
            }
            // A store and an eviction (the budget shrinks to one entry's worth) over the tampered rows.
            std::mt19937_64 rng(size);
            const auto fresh = random_tokens(rng, 100, 500);
            (void)(*c)->store(fresh, make_entry(fresh, fx.fp, fx.layout));
            check((*c)->lookup(fresh, fx.fp, fx.layout), fresh, fx);
            (void)(*c)->clear();
        }
        // Whatever happened, `cache clear` must work on this folder.
        auto again = DiskCache::open(dir.string(), 1 << 20, fast_disk_options());
        if (again.ok() && !(*again)->clear().ok()) std::abort();
    }
    if (!fs::is_regular_file(fx.victim)) {
        std::fprintf(stderr, "the victim file beside the cache folder was removed\n");
        std::abort();
    }
    return 0;
}
