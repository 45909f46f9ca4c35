#include "util/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <unistd.h>

#include <fmt/format.h>

namespace llama_crab {

Status write_file_atomic(const std::string& path, const uint8_t* data, size_t size) {
    namespace fs = std::filesystem;
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::random_device rd;
    const fs::path tmp = dir / fmt::format(".{}.tmp-{:08x}", target.filename().string(), rd());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return make_error(ErrorCode::kIo, fmt::format("cannot create '{}': {}", tmp.string(), std::strerror(errno)));
    size_t done = 0;
    while (done < size) {
        ssize_t w = ::write(fd, data + done, size - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return make_error(ErrorCode::kIo, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(e)));
        }
        done += (size_t)w;
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return make_error(ErrorCode::kIo, fmt::format("cannot flush '{}': {}", tmp.string(), std::strerror(e)));
    }
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return make_error(ErrorCode::kIo, fmt::format("cannot rename '{}' to '{}': {}", tmp.string(), path, std::strerror(e)));
    }
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return {};
}

}  // namespace llama_crab
