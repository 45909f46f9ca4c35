#include "slot_files.h"

#include <sys/stat.h>

#include <fmt/format.h>

namespace llama_crab::server {

std::optional<ApiError> resolve_slot_file(const std::string& dir, const std::string& filename, std::string& path) {
    if (dir.empty()) {
        return server_error(403, "slot save and restore are disabled; start the server with --slot-save-dir DIR", "slot_save_disabled");
    }
    if (filename.empty() || filename.size() > 200) return bad_field("filename", "must be 1 to 200 characters");
    if (filename[0] == '.') return bad_field("filename", "must not start with '.'");
    for (unsigned char c : filename) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return bad_field("filename", fmt::format("'{}' may only contain letters, digits, '.', '_' and '-'", filename));
    }
    path = dir + "/" + filename;
    // A symlink planted in the folder could point anywhere.
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return bad_field("filename", "is not a regular file");
    return std::nullopt;
}

}  // namespace llama_crab::server
