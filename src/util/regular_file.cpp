#include "util/regular_file.h"

#include <cerrno>
#include <cstring>
#include <unistd.h>

#include <fmt/format.h>

namespace llama_crab {

const char* file_kind_name(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

Result<int> open_regular_file(const std::string& name, Symlinks symlinks, int dir_fd, struct stat* st_out) {
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (symlinks == Symlinks::kRefuse) flags |= O_NOFOLLOW;
    const int fd = ::openat(dir_fd, name.c_str(), flags);
    if (fd < 0) {
        const int e = errno;
        if (e == ELOOP && symlinks == Symlinks::kRefuse) {
            return make_error(ErrorCode::kIo, fmt::format("'{}' is a symbolic link; refusing to follow it", name));
        }
        return make_error(ErrorCode::kIo, fmt::format("cannot open '{}': {}", name, std::strerror(e)));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return make_error(ErrorCode::kIo, fmt::format("cannot stat '{}': {}", name, std::strerror(e)));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return make_error(ErrorCode::kIo, fmt::format("'{}' is {}, not a regular file", name, file_kind_name(st.st_mode)));
    }
    if (st_out) *st_out = st;
    return fd;
}

}  // namespace llama_crab
