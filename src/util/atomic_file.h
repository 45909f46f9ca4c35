// Crash-safe file replacement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llama_crab/error.h"
#include "util/regular_file.h"

namespace llama_crab {

// Writes a byte buffer to path atomically: a temp file in the same folder, fsync, rename, fsync the folder.
// A reader sees either the old file or the whole new one, even if the process dies mid-write.
Status write_file_atomic(const std::string& path, const uint8_t* data, size_t size);

// Reads a whole regular file (up to max_size bytes; larger files are refused, naming the size). Anything else
// (a FIFO, a device, a folder; a symlink with Symlinks::kRefuse) is refused without blocking.
Result<std::vector<uint8_t>> read_file(const std::string& path, size_t max_size = SIZE_MAX,
                                       Symlinks symlinks = Symlinks::kFollow);
// The same for `path` relative to the folder descriptor dir_fd (openat).
Result<std::vector<uint8_t>> read_file_at(int dir_fd, const std::string& path, size_t max_size, Symlinks symlinks);

// The streaming form: open(), append() any number of times, then commit() (fsync + rename). Destroying it
// without commit() removes the temporary file.
class AtomicFileWriter {
public:
    AtomicFileWriter() = default;
    ~AtomicFileWriter();
    AtomicFileWriter(const AtomicFileWriter&) = delete;
    AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

    Status open(const std::string& path);
    Status append(const void* data, size_t size);
    Status commit();

private:
    void abandon();
    std::string path_;
    std::string tmp_;
    int fd_ = -1;
};

}  // namespace llama_crab
