#include "util/mmap.h"

#include "util/regular_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llama_crab {

MappedFile::~MappedFile() { reset(); }

MappedFile::MappedFile(MappedFile&& other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
    if (this != &other) {
        reset();
        data_ = other.data_;
        size_ = other.size_;
        other.data_ = nullptr;
        other.size_ = 0;
    }
    return *this;
}

void MappedFile::reset() {
    if (data_ != nullptr && size_ > 0) munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
}

Result<MappedFile> MappedFile::open(const std::string& path) {
    // Users symlink models, so symlinks are followed; a FIFO or device is refused without blocking.
    struct stat st {};
    LC_ASSIGN_OR_RETURN(const int fd, open_regular_file(path, Symlinks::kFollow, AT_FDCWD, &st));
    MappedFile f;
    f.size_ = (size_t)st.st_size;
    if (f.size_ > 0) {
        void* p = mmap(nullptr, f.size_, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            ::close(fd);
            f.size_ = 0;
            return make_error(ErrorCode::kIo, "cannot mmap '" + path + "': " + std::strerror(e));
        }
        f.data_ = static_cast<uint8_t*>(p);
    }
    ::close(fd);
    return f;
}

}  // namespace llama_crab
