#include "util/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace llama_crab {

Status write_file_atomic(const std::string& path, const uint8_t* data, size_t size) {
    AtomicFileWriter w;
    LC_TRY(w.open(path));
    LC_TRY(w.append(data, size));
    return w.commit();
}

Result<std::vector<uint8_t>> read_file(const std::string& path, size_t max_size, Symlinks symlinks) {
    return read_file_at(AT_FDCWD, path, max_size, symlinks);
}

Result<std::vector<uint8_t>> read_file_at(int dir_fd, const std::string& path, size_t max_size, Symlinks symlinks) {
    struct stat st {};
    LC_ASSIGN_OR_RETURN(const int fd, open_regular_file(path, symlinks, dir_fd, &st));
    if ((uint64_t)st.st_size > max_size) {
        ::close(fd);
        return make_error(ErrorCode::kInvalidFormat, fmt::format("'{}' is {} bytes, more than the {} allowed", path, st.st_size, max_size));
    }
    std::vector<uint8_t> bytes((size_t)st.st_size);
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int e = errno;
            ::close(fd);
            return make_error(ErrorCode::kIo, fmt::format("cannot read '{}' at offset {}: {}", path, done,
                                                          n == 0 ? "unexpected end of file" : std::strerror(e)));
        }
        done += (size_t)n;
    }
    ::close(fd);
    return bytes;
}

AtomicFileWriter::~AtomicFileWriter() { abandon(); }

void AtomicFileWriter::abandon() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(tmp_.c_str());
        fd_ = -1;
    }
}

Status AtomicFileWriter::open(const std::string& path) {
    namespace fs = std::filesystem;
    abandon();
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::random_device rd;
    path_ = path;
    tmp_ = (dir / fmt::format(".{}.tmp-{:08x}{:08x}", target.filename().string(), rd(), rd())).string();
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) return make_error(ErrorCode::kIo, fmt::format("cannot write '{}': {}", path_, std::strerror(errno)));
    return {};
}

Status AtomicFileWriter::append(const void* data, size_t size) {
    if (fd_ < 0) return make_error(ErrorCode::kIo, "atomic file: append without open");
    const uint8_t* p = static_cast<const uint8_t*>(data);
    size_t done = 0;
    while (done < size) {
        ssize_t w = ::write(fd_, p + done, size - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            abandon();
            return make_error(ErrorCode::kIo, fmt::format("cannot write '{}': {}", path_, std::strerror(e)));
        }
        done += (size_t)w;
    }
    return {};
}

Status AtomicFileWriter::commit() {
    if (fd_ < 0) return make_error(ErrorCode::kIo, "atomic file: commit without open");
    if (::fsync(fd_) != 0) {
        const int e = errno;
        abandon();
        return make_error(ErrorCode::kIo, fmt::format("cannot write '{}' (fsync): {}", path_, std::strerror(e)));
    }
    ::close(fd_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp_.c_str());
        return make_error(ErrorCode::kIo, fmt::format("cannot write '{}' (rename of the temporary file): {}", path_, std::strerror(e)));
    }
    const std::string dir = std::filesystem::path(path_).has_parent_path() ? std::filesystem::path(path_).parent_path().string() : ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return {};
}

}  // namespace llama_crab
