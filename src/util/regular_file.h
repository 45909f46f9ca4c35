// Opening a file that must be a regular file, without ever blocking: a FIFO, a device or a socket in place of a
// model, session or cache block file is refused at once instead of hanging the reader (opening a FIFO for
// reading blocks until a writer appears; reading it blocks until data arrives).
#pragma once

#include <fcntl.h>
#include <string>
#include <sys/stat.h>

#include "llama_crab/error.h"

namespace llama_crab {

enum class Symlinks {
    kFollow,  // a path the user named (a model, a session file): symlinks to regular files are fine
    kRefuse,  // a file inside a folder we own (cache blocks): a symlink there is not ours, never follow it
};

// An open read-only descriptor (O_CLOEXEC | O_NONBLOCK) of a regular file, or kIo naming the path and what it
// is. `name` is resolved relative to dir_fd (AT_FDCWD: the working directory). The caller closes the fd; *st
// (optional) receives its fstat.
Result<int> open_regular_file(const std::string& name, Symlinks symlinks, int dir_fd = AT_FDCWD, struct stat* st = nullptr);

// What kind of file a stat describes, for error messages ("a FIFO", "a folder", ...).
const char* file_kind_name(mode_t mode);

}  // namespace llama_crab
