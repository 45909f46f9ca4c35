// See cache_folder.h for the rules this file keeps.
#include "cache/cache_folder.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "util/regular_file.h"

namespace llama_crab::cache_detail {

namespace {

constexpr const char* kMarkerText =
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This folder is a llama-crab prefix cache (DiskCache). llama-crab creates and removes only its own files\n"
    "# here. For information about cache directory tags see https://bford.info/cachedir/\n";
constexpr const char* kMarkerLine = "# This folder is a llama-crab prefix cache";
constexpr const char* kMarkerTempPrefix = ".CACHEDIR.TAG-";

bool is_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string random_hex24() {
    std::random_device rd;
    return fmt::format("{:08x}{:08x}{:08x}", (uint32_t)::getpid(), rd(), rd());
}

bool write_denied(int e) { return e == EROFS || e == EACCES || e == EPERM; }

// `dir` is the cache folder, `path` the file or folder inside it (or `dir` itself) that failed.
Error folder_io_error(const std::string& dir, const std::string& what, const std::string& path, int e) {
    if (write_denied(e)) {
        return make_error(ErrorCode::kIo, fmt::format("disk cache: folder '{}' is not writable: {} '{}': {}", dir, what, path, std::strerror(e)));
    }
    return make_error(ErrorCode::kIo, fmt::format("disk cache: {} '{}': {}", what, path, std::strerror(e)));
}

// A folder written by a build before the marker existed: index.sqlite and nothing but our names.
bool is_legacy_cache(const std::vector<std::string>& names) {
    static const char* const kOurs[] = {"index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal", "blocks", "tmp"};
    if (std::find(names.begin(), names.end(), kIndexName) == names.end()) return false;
    return std::all_of(names.begin(), names.end(), [](const std::string& n) {
        return std::any_of(std::begin(kOurs), std::end(kOurs), [&](const char* o) { return n == o; });
    });
}

bool is_sqlite_file(int dir_fd, const char* name) {
    auto fd = open_regular_file(name, Symlinks::kRefuse, dir_fd);
    if (!fd.ok()) return false;
    char head[16] = {};
    const ssize_t n = ::read(*fd, head, sizeof(head));
    ::close(*fd);
    return n == 16 && std::memcmp(head, "SQLite format 3", 16) == 0;
}

Error not_ours(const std::string& dir, const std::vector<std::string>& names) {
    std::string shown;
    for (size_t i = 0; i < names.size() && i < 4; ++i) shown += fmt::format("{}'{}'", i ? ", " : "", names[i]);
    if (names.size() > 4) shown += fmt::format(" and {} more", names.size() - 4);
    return make_error(ErrorCode::kInvalidArgument,
                      fmt::format("disk cache: '{}' is not empty and is not a llama-crab cache folder (no llama-crab {}; "
                                  "it holds {}): refusing to use it so that none of its files is ever removed; "
                                  "give an empty or new folder",
                                  dir, kMarkerName, shown));
}

}  // namespace

std::string block_file_name(const Key128& key) { return key.hex() + ".blk"; }

std::string temp_file_name(const Key128& key) { return key.hex() + "-" + random_hex24() + ".tmp"; }

bool is_block_file_name(std::string_view n) {
    if (n.size() == 36) return n.substr(32) == ".blk" && is_hex(n.substr(0, 32));
    return n.size() == 61 && n.substr(57) == ".blk" && n[32] == '-' && is_hex(n.substr(0, 32)) && is_hex(n.substr(33, 24));
}

bool is_temp_file_name(std::string_view n) {
    return n.size() == 61 && n.substr(57) == ".tmp" && n[32] == '-' && is_hex(n.substr(0, 32)) && is_hex(n.substr(33, 24));
}

std::vector<std::string> CacheFolder::list(int dir_fd) {
    std::vector<std::string> names;
    // A descriptor of its own: the read position of a shared one would race between threads.
    const int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return names;
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        return names;
    }
    while (const dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

// Makes the folder ours: an existing marker of ours, or an empty (or legacy) folder we mark now.
static Status claim_folder(const std::string& dir, int dir_fd) {
    for (int attempt = 0; attempt < 3; ++attempt) {
        struct stat st {};
        if (::fstatat(dir_fd, kMarkerName, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            auto fd = open_regular_file(kMarkerName, Symlinks::kRefuse, dir_fd);
            std::string text;
            if (fd.ok()) {
                char buf[1024];
                const ssize_t n = ::read(*fd, buf, sizeof(buf));
                ::close(*fd);
                if (n > 0) text.assign(buf, (size_t)n);
            }
            if (text.find(kMarkerLine) != std::string::npos) return {};
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("disk cache: '{}' holds a {} that is not llama-crab's (another program's cache?): "
                                          "refusing to use it; give an empty or new folder", dir, kMarkerName));
        }
        std::vector<std::string> names = CacheFolder::list(dir_fd);
        std::erase_if(names, [](const std::string& n) { return n.rfind(kMarkerTempPrefix, 0) == 0; });
        if (!names.empty() && !(is_legacy_cache(names) && is_sqlite_file(dir_fd, kIndexName))) return not_ours(dir, names);
        // Written to a temp name and linked into place: a concurrent opener sees no marker or a whole one.
        const std::string tmp = kMarkerTempPrefix + random_hex24();
        const int fd = ::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) return folder_io_error(dir, "cannot create", dir + "/" + tmp, errno);
        const size_t len = std::strlen(kMarkerText);
        const bool written = ::write(fd, kMarkerText, len) == (ssize_t)len && ::fsync(fd) == 0;
        const int write_errno = errno;
        ::close(fd);
        const int linked = written ? ::linkat(dir_fd, tmp.c_str(), dir_fd, kMarkerName, 0) : -1;
        const int link_errno = errno;
        ::unlinkat(dir_fd, tmp.c_str(), 0);
        if (!written) return folder_io_error(dir, "cannot write", dir + "/" + tmp, write_errno);
        if (linked == 0) return {};
        if (link_errno != EEXIST) return folder_io_error(dir, "cannot create", dir + "/" + kMarkerName, link_errno);
        // Another opener marked it first: check theirs.
    }
    return make_error(ErrorCode::kIo, fmt::format("disk cache: '{}': the {} marker keeps changing", dir, kMarkerName));
}

static Result<int> open_subfolder(const std::string& dir, int dir_fd, const char* name) {
    if (::mkdirat(dir_fd, name, 0755) != 0 && errno != EEXIST) return folder_io_error(dir, "cannot create folder", dir + "/" + name, errno);
    const int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) return fd;
    const int e = errno;
    if (e == ELOOP || e == ENOTDIR) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("disk cache: '{}/{}' is a symbolic link or not a folder: refusing to use it", dir, name));
    }
    return folder_io_error(dir, "cannot open folder", dir + "/" + name, e);
}

Result<std::unique_ptr<CacheFolder>> CacheFolder::open(const std::string& dir) {
    std::unique_ptr<CacheFolder> f(new CacheFolder());
    f->dir_ = dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec == std::errc::file_exists || ec == std::errc::not_a_directory) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("disk cache: '{}' is not a folder", dir));
    }
    if (ec) return folder_io_error(dir, "cannot create folder", dir, ec.value());
    f->dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dir_fd_ < 0) return folder_io_error(dir, "cannot open folder", dir, errno);
    LC_TRY(claim_folder(dir, f->dir_fd_));
    LC_ASSIGN_OR_RETURN(f->blocks_fd_, open_subfolder(dir, f->dir_fd_, "blocks"));
    LC_ASSIGN_OR_RETURN(f->tmp_fd_, open_subfolder(dir, f->dir_fd_, "tmp"));
    {  // A folder we may read but not write (a read-only mount, permissions) fails here, in one clear line.
        const std::string probe = temp_file_name(Key128{});
        const int fd = ::openat(f->tmp_fd_, probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) return folder_io_error(dir, "cannot create", dir + "/tmp/" + probe, errno);
        ::close(fd);
        ::unlinkat(f->tmp_fd_, probe.c_str(), 0);
    }
    f->marker_fd_ = ::openat(f->dir_fd_, kMarkerName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (f->marker_fd_ < 0) return folder_io_error(dir, "cannot open", dir + "/" + kMarkerName, errno);
    return f;
}

CacheFolder::~CacheFolder() {
    for (int fd : {marker_fd_, tmp_fd_, blocks_fd_, dir_fd_}) {
        if (fd >= 0) ::close(fd);
    }
}

bool CacheFolder::lock_alone() { return ::flock(marker_fd_, LOCK_EX | LOCK_NB) == 0; }

void CacheFolder::share() {
    while (::flock(marker_fd_, LOCK_SH) != 0 && errno == EINTR) {
    }
}

Result<std::string> CacheFolder::move_index_aside() {
    const std::time_t now = std::time(nullptr);
    std::tm tm {};
    ::gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    std::string base = fmt::format("{}.corrupt-{}", kIndexName, stamp);
    struct stat st {};
    for (int i = 2; ::fstatat(dir_fd_, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0; ++i) {
        base = fmt::format("{}.corrupt-{}-{}", kIndexName, stamp, i);
    }
    if (::renameat(dir_fd_, kIndexName, dir_fd_, base.c_str()) != 0 && errno != ENOENT) {
        return folder_io_error(dir_, "cannot move aside", dir_ + "/" + kIndexName, errno);
    }
    for (const char* suffix : {"-wal", "-shm"}) {
        const std::string from = std::string(kIndexName) + suffix;
        ::renameat(dir_fd_, from.c_str(), dir_fd_, (base + suffix).c_str());  // absent is fine
    }
    return base;
}

size_t CacheFolder::remove_block_files(const std::vector<std::string>& keep_sorted) {
    size_t n = 0;
    for (const std::string& name : list(blocks_fd_)) {
        if (!is_block_file_name(name) || std::binary_search(keep_sorted.begin(), keep_sorted.end(), name)) continue;
        if (::unlinkat(blocks_fd_, name.c_str(), 0) == 0) ++n;  // a folder of that name is left alone
    }
    return n;
}

size_t CacheFolder::remove_dead_temp_files() {
    size_t n = 0;
    for (const std::string& name : list(tmp_fd_)) {
        if (!is_temp_file_name(name)) continue;
        auto fd = open_regular_file(name, Symlinks::kRefuse, tmp_fd_);
        if (!fd.ok()) continue;  // a symlink or FIFO under our name: not ours, leave it
        if (::flock(*fd, LOCK_EX | LOCK_NB) == 0 && ::unlinkat(tmp_fd_, name.c_str(), 0) == 0) ++n;  // its writer is gone
        ::close(*fd);
    }
    return n;
}

BlocksLock::BlocksLock(const CacheFolder& folder) {
    fd_ = ::openat(folder.blocks_fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) return;  // descriptors exhausted: proceed unlocked rather than fail (SQLite still serializes)
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
}

BlocksLock::~BlocksLock() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace llama_crab::cache_detail
