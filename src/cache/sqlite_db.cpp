#include "cache/sqlite_db.h"

#include <algorithm>
#include <chrono>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <sqlite3.h>

namespace llama_crab::cache_detail {

namespace {
[[noreturn]] void fail(sqlite3* db, int rc, const char* what) {
    throw SqlError(rc, fmt::format("sqlite {}: {} ({})", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc));
}
}  // namespace

bool SqlError::busy() const {
    const int primary = code & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

bool SqlError::not_a_database() const { return (code & 0xff) == SQLITE_NOTADB; }

bool SqlError::corrupt() const {
    const int primary = code & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

bool SqlError::read_only() const {
    const int primary = code & 0xff;
    return primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_PERM;
}

Stmt::Stmt(sqlite3* db, const char* sql) : db_(db) {
    const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr);
    if (rc != SQLITE_OK) fail(db, rc, fmt::format("prepare '{}'", sql).c_str());
}

Stmt::~Stmt() { sqlite3_finalize(s_); }

Stmt& Stmt::bind(int i, int64_t v) {
    const int rc = sqlite3_bind_int64(s_, i, v);
    if (rc != SQLITE_OK) fail(db_, rc, "bind");
    return *this;
}

Stmt& Stmt::bind_blob(int i, const std::string& v) {
    const int rc = sqlite3_bind_blob64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) fail(db_, rc, "bind");
    return *this;
}

Stmt& Stmt::bind_text(int i, const std::string& v) {
    const int rc = sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK) fail(db_, rc, "bind");
    return *this;
}

bool Stmt::step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    sqlite3_reset(s_);
    fail(db_, rc, "step");
}

void Stmt::reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
}

int64_t Stmt::col_int(int i) const { return sqlite3_column_int64(s_, i); }

std::string Stmt::col_blob(int i) const {
    const void* p = sqlite3_column_blob(s_, i);
    const int n = sqlite3_column_bytes(s_, i);
    return p ? std::string(static_cast<const char*>(p), (size_t)n) : std::string();
}

std::string Stmt::col_text(int i) const {
    const unsigned char* p = sqlite3_column_text(s_, i);
    const int n = sqlite3_column_bytes(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), (size_t)n) : std::string();
}

std::unique_ptr<Db> Db::open(const std::string& path, int busy_timeout_ms) {
    std::unique_ptr<Db> db(new Db());
    const int rc = sqlite3_open_v2(path.c_str(), &db->db_,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, nullptr);
    if (rc != SQLITE_OK) fail(db->db_, rc, fmt::format("open '{}'", path).c_str());
    sqlite3_busy_timeout(db->db_, busy_timeout_ms);
    sqlite3_extended_result_codes(db->db_, 1);
    return db;
}

Db::~Db() {
    stmts_.clear();
    if (db_) sqlite3_close(db_);
}

void Db::exec(const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        // Name the statement by its first line: a schema script would otherwise fill the screen.
        const std::string_view text(sql);
        const std::string_view first = text.substr(0, std::min(text.find('\n'), (size_t)60));
        throw SqlError(rc, fmt::format("sqlite exec '{}{}': {} ({})", first, first.size() < text.size() ? "..." : "", msg, rc));
    }
}

Stmt& Db::q(const char* sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) it = stmts_.emplace(sql, std::make_unique<Stmt>(db_, sql)).first;
    it->second->reset();
    return *it->second;
}

int64_t Db::changes() const { return sqlite3_changes64(db_); }

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

Txn::Txn(Db& db, bool write) : db_(db) {
    // busy_timeout covers most waits; BEGIN IMMEDIATE can still report BUSY (e.g. during WAL recovery), so retry.
    for (int attempt = 0;; ++attempt) {
        try {
            db_.exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
            break;
        } catch (const SqlError& e) {
            if (!e.busy() || attempt >= 50) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(2 + attempt));
        }
    }
    open_ = true;
}

Txn::~Txn() {
    if (open_) {
        char* err = nullptr;
        sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, &err);
        sqlite3_free(err);
    }
}

void Txn::commit() {
    db_.exec("COMMIT");
    open_ = false;
}

}  // namespace llama_crab::cache_detail
