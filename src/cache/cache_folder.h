// The folder a DiskCache lives in, and the rules that keep the user's files safe from it.
//
//  * Ownership. A folder is a cache folder when it holds the marker file CACHEDIR.TAG with our signature line
//    (the format of https://bford.info/cachedir/, so backup tools skip it too). open_cache_folder() creates a
//    missing or empty folder and writes the marker first; it adopts a folder of an older build (index.sqlite and
//    only our names, no marker); it refuses any other non-empty folder (kInvalidArgument), so a mistyped
//    --cache-dir never costs the user a file.
//  * Names. The cache creates, renames and removes only names of its own patterns: blocks/<32 hex>.blk (derived
//    from the block key, never read from the index), tmp/<32 hex>-<24 hex>.tmp, index.sqlite and its -wal/-shm.
//    Every operation is relative to descriptors of the folder, blocks/ and tmp/ opened with O_NOFOLLOW, so a
//    symlink planted there is never followed; cleaning uses unlinkat on such names only.
//  * Processes. Every open DiskCache holds a shared flock on the marker; one that gets it exclusively is alone
//    (it may check and repair the index). Changes to blocks/ (renames in, unlinks) happen under an exclusive
//    flock of blocks/ (BlocksLock), taken before SQLite's write lock, so a block name is never reused by one
//    writer while another is about to unlink it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_keys.h"
#include "llama_crab/error.h"

namespace llama_crab::cache_detail {

inline constexpr const char* kMarkerName = "CACHEDIR.TAG";
inline constexpr const char* kIndexName = "index.sqlite";

std::string block_file_name(const Key128& key);
std::string temp_file_name(const Key128& key);  // unique: a random suffix
// Our block names: <32 hex>.blk, and <32 hex>-<24 hex>.blk of schema version 1 folders (removed by gc).
bool is_block_file_name(std::string_view name);
bool is_temp_file_name(std::string_view name);

class CacheFolder {
public:
    // Creates or adopts `dir` (see above), opens blocks/ and tmp/ and checks that the folder is writable
    // (kIo naming the path and the reason when it is not: read-only file system, permissions).
    static Result<std::unique_ptr<CacheFolder>> open(const std::string& dir);
    ~CacheFolder();
    CacheFolder(const CacheFolder&) = delete;
    CacheFolder& operator=(const CacheFolder&) = delete;

    const std::string& dir() const { return dir_; }
    std::string index_path() const { return dir_ + "/" + kIndexName; }
    int dir_fd() const { return dir_fd_; }
    int blocks_fd() const { return blocks_fd_; }
    int tmp_fd() const { return tmp_fd_; }

    // True when no other DiskCache (in any process) has the folder open: then holds the marker exclusively
    // until share() is called. False: holds it shared.
    bool lock_alone();
    void share();

    // Moves index.sqlite (and its -wal/-shm) aside as index.sqlite.corrupt-<UTC time>[...]; returns the new name
    // of index.sqlite. Only when alone.
    Result<std::string> move_index_aside();

    // Names in a folder descriptor (not . and ..).
    static std::vector<std::string> list(int dir_fd);
    // Removes the block files (our pattern only) of blocks/ not in `keep`; returns how many.
    size_t remove_block_files(const std::vector<std::string>& keep_sorted);
    // Removes temp files (our pattern only) of tmp/ whose writer's flock is gone.
    size_t remove_dead_temp_files();

private:
    CacheFolder() = default;
    std::string dir_;
    int dir_fd_ = -1, blocks_fd_ = -1, tmp_fd_ = -1, marker_fd_ = -1;
};

// Exclusive flock of blocks/ for the time of a change to it (on its own descriptor, so it also excludes other
// threads of this process). Blocks until granted.
class BlocksLock {
public:
    explicit BlocksLock(const CacheFolder& folder);
    ~BlocksLock();
    BlocksLock(const BlocksLock&) = delete;
    BlocksLock& operator=(const BlocksLock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace llama_crab::cache_detail
