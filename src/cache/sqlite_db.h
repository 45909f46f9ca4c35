// A thin SQLite wrapper for the disk cache. Failures throw SqlError inside the cache module; the public
// DiskCache methods turn them into Status values.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace llama_crab::cache_detail {

struct SqlError : std::runtime_error {
    SqlError(int code, const std::string& what) : std::runtime_error(what), code(code) {}
    int code;
    bool busy() const;  // SQLITE_BUSY / SQLITE_LOCKED: worth retrying the whole transaction
    bool not_a_database() const;  // SQLITE_NOTADB: the index file is something else
    bool corrupt() const;         // SQLITE_CORRUPT or SQLITE_NOTADB: the index file is damaged
    bool read_only() const;       // SQLITE_READONLY / CANTOPEN / PERM: the folder cannot be written
};

class Stmt {
public:
    Stmt(sqlite3* db, const char* sql);
    ~Stmt();
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, int64_t v);
    Stmt& bind_blob(int i, const std::string& v);
    Stmt& bind_text(int i, const std::string& v);
    bool step();  // true: a row is ready; false: done. Throws on error.
    void reset();
    void run() { step(); reset(); }  // for statements without rows

    int64_t col_int(int i) const;
    std::string col_blob(int i) const;
    std::string col_text(int i) const;

private:
    sqlite3* db_;
    sqlite3_stmt* s_ = nullptr;
};

class Db {
public:
    // Never follows a symlink at `path` (SQLITE_OPEN_NOFOLLOW). Throws SqlError.
    static std::unique_ptr<Db> open(const std::string& path, int busy_timeout_ms);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    void exec(const char* sql);
    // A cached prepared statement, reset and with its bindings cleared.
    Stmt& q(const char* sql);
    int64_t changes() const;
    int64_t last_insert_rowid() const;
    sqlite3* raw() const { return db_; }

private:
    Db() = default;
    sqlite3* db_ = nullptr;
    std::unordered_map<const char*, std::unique_ptr<Stmt>> stmts_;
};

// BEGIN IMMEDIATE (a writer) or BEGIN (a reader's snapshot); rolls back unless commit() was called.
class Txn {
public:
    Txn(Db& db, bool write);
    ~Txn();
    void commit();

private:
    Db& db_;
    bool open_ = false;
};

}  // namespace llama_crab::cache_detail
