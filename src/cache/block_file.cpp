#include "cache/block_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <xxhash.h>
#include <zstd.h>

namespace llama_crab::cache_detail {

namespace {
constexpr char kMagic[8] = {'L', 'C', 'B', 'L', 'O', 'C', 'K', '1'};

Error bad(const char* field, size_t offset, const std::string& detail) {
    return make_error(ErrorCode::kInvalidFormat, fmt::format("cache block: {} at offset {}: {}", field, offset, detail));
}
}  // namespace

std::vector<uint8_t> encode_block_file(const Key128& key, uint32_t n_tokens, const uint8_t* kv, size_t kv_bytes, int level) {
    const size_t bound = ZSTD_compressBound(kv_bytes);
    std::vector<uint8_t> out(kBlockFileHeader + bound + 8);
    std::memcpy(out.data(), kMagic, 8);
    const uint32_t reserved = 0;
    const uint64_t raw = kv_bytes;
    std::memcpy(out.data() + 8, &n_tokens, 4);
    std::memcpy(out.data() + 12, &reserved, 4);
    std::memcpy(out.data() + 16, &raw, 8);
    const std::string kb = key.bytes();
    std::memcpy(out.data() + 24, kb.data(), 16);
    const size_t c = ZSTD_compress(out.data() + kBlockFileHeader, bound, kv, kv_bytes, level);
    // ZSTD_compress into a buffer of compressBound cannot fail on valid input; keep the check anyway.
    const uint64_t clen = ZSTD_isError(c) ? 0 : c;
    std::memcpy(out.data() + 40, &clen, 8);
    out.resize(kBlockFileHeader + clen + 8);
    const uint64_t sum = XXH3_64bits(out.data(), kBlockFileHeader + clen);
    std::memcpy(out.data() + kBlockFileHeader + clen, &sum, 8);
    return out;
}

Status decode_block_file(const uint8_t* data, size_t size, const Key128& key, uint32_t n_tokens, size_t raw_bytes,
                         uint8_t* dst) {
    if (size < kBlockFileHeader + 8) return bad("header", 0, fmt::format("truncated: {} bytes", size));
    if (std::memcmp(data, kMagic, 8) != 0) return bad("magic", 0, "not a llama-crab cache block");
    uint32_t nt;
    uint64_t raw, clen;
    std::memcpy(&nt, data + 8, 4);
    std::memcpy(&raw, data + 16, 8);
    std::memcpy(&clen, data + 40, 8);
    if (clen > size - kBlockFileHeader - 8) {
        return bad("compressed length", 40, fmt::format("{} bytes, {} in the file", clen, size - kBlockFileHeader - 8));
    }
    if (kBlockFileHeader + clen + 8 != size) return bad("end", kBlockFileHeader + clen, "trailing bytes");
    uint64_t stored;
    std::memcpy(&stored, data + kBlockFileHeader + clen, 8);
    if (XXH3_64bits(data, kBlockFileHeader + clen) != stored) {
        return make_error(ErrorCode::kChecksum, fmt::format("cache block: checksum at offset {} does not match", kBlockFileHeader + clen));
    }
    Key128 k;
    Key128::from_bytes(data + 24, 16, &k);
    if (k != key) return bad("key", 24, fmt::format("expected {}, got {}", key.hex(), k.hex()));
    if (nt != n_tokens) return bad("n_tokens", 8, fmt::format("expected {}, got {}", n_tokens, nt));
    if (raw != raw_bytes) return bad("raw length", 16, fmt::format("expected {}, got {}", raw_bytes, raw));
    const size_t got = ZSTD_decompress(dst, raw_bytes, data + kBlockFileHeader, clen);
    if (ZSTD_isError(got)) return bad("zstd frame", kBlockFileHeader, ZSTD_getErrorName(got));
    if (got != raw_bytes) return bad("zstd frame", kBlockFileHeader, fmt::format("{} bytes, expected {}", got, raw_bytes));
    return {};
}

Result<std::vector<uint8_t>> read_whole_file(const std::string& path, int* err_no) {
    if (err_no) *err_no = 0;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err_no) *err_no = errno;
        return make_error(ErrorCode::kIo, fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        if (err_no) *err_no = e;
        return make_error(ErrorCode::kIo, fmt::format("cannot stat '{}': {}", path, std::strerror(e)));
    }
    std::vector<uint8_t> buf((size_t)st.st_size);
    size_t done = 0;
    while (done < buf.size()) {
        const ssize_t n = ::read(fd, buf.data() + done, buf.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int e = n == 0 ? EIO : errno;
            ::close(fd);
            if (err_no) *err_no = e;
            return make_error(ErrorCode::kIo, fmt::format("cannot read '{}' at offset {}", path, done));
        }
        done += (size_t)n;
    }
    ::close(fd);
    return buf;
}

}  // namespace llama_crab::cache_detail
