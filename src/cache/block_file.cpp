#include "cache/block_file.h"

#include <cstring>

#include <fmt/format.h>
#include <xxhash.h>
#include <zstd.h>

#include "util/atomic_file.h"
#include "util/byte_order.h"

namespace llama_crab::cache_detail {

namespace {
constexpr char kMagic[8] = {'L', 'C', 'B', 'L', 'O', 'C', 'K', '2'};

Key128 get_key(const uint8_t* p) {
    Key128 k;
    Key128::from_bytes(p, 16, &k);
    return k;
}

Error bad(const char* field, size_t offset, const std::string& detail) {
    return make_error(ErrorCode::kInvalidFormat, fmt::format("cache block: {} at offset {}: {}", field, offset, detail));
}
}  // namespace

std::vector<uint8_t> encode_block_file(const BlockIdentity& id, const uint8_t* kv, size_t kv_bytes, int level) {
    const size_t n = id.tokens.size();
    const size_t tokens_end = kBlockFileHeader + 4 * n;
    const size_t bound = ZSTD_compressBound(kv_bytes);
    std::vector<uint8_t> out(tokens_end + bound + 8);
    std::memcpy(out.data(), kMagic, 8);
    put_le32(out.data() + 8, (uint32_t)n);
    put_le32(out.data() + 12, 0);
    put_le64(out.data() + 16, kv_bytes);
    std::memcpy(out.data() + 24, id.key.bytes().data(), 16);
    std::memcpy(out.data() + 40, id.parent.bytes().data(), 16);
    for (size_t i = 0; i < n; ++i) put_le32(out.data() + kBlockFileHeader + 4 * i, (uint32_t)id.tokens[i]);
    const size_t c = ZSTD_compress(out.data() + tokens_end, bound, kv, kv_bytes, level);
    // ZSTD_compress into a buffer of compressBound cannot fail on valid input; keep the check anyway.
    const uint64_t clen = ZSTD_isError(c) ? 0 : c;
    put_le64(out.data() + 56, clen);
    out.resize(tokens_end + clen + 8);
    put_le64(out.data() + tokens_end + clen, XXH3_64bits(out.data(), tokens_end + clen));
    return out;
}

Status decode_block_file(const uint8_t* data, size_t size, const BlockIdentity& expected, size_t raw_bytes, uint8_t* dst) {
    if (size < kBlockFileHeader + 8) return bad("header", 0, fmt::format("truncated: {} bytes", size));
    if (std::memcmp(data, kMagic, 8) != 0) return bad("magic", 0, "not a llama-crab cache block (version 2)");
    const uint32_t nt = get_le32(data + 8);
    const uint64_t raw = get_le64(data + 16), clen = get_le64(data + 56);
    const uint64_t room = size - kBlockFileHeader - 8;
    if ((uint64_t)nt * 4 > room) return bad("n_tokens", 8, fmt::format("{} tokens do not fit in {} bytes", nt, room));
    const size_t tokens_end = kBlockFileHeader + 4 * (size_t)nt;
    if (clen > room - 4 * (uint64_t)nt) return bad("compressed length", 56, fmt::format("{} bytes, {} in the file", clen, room - 4 * (uint64_t)nt));
    if (tokens_end + clen + 8 != size) return bad("end", tokens_end + clen, "trailing bytes");
    if (XXH3_64bits(data, tokens_end + clen) != get_le64(data + tokens_end + clen)) {
        return make_error(ErrorCode::kChecksum, fmt::format("cache block: checksum at offset {} does not match", tokens_end + clen));
    }
    const Key128 key = get_key(data + 24), parent = get_key(data + 40);
    if (key != expected.key) return bad("key", 24, fmt::format("expected {}, got {}", expected.key.hex(), key.hex()));
    if (parent != expected.parent) return bad("parent key", 40, fmt::format("expected {}, got {}", expected.parent.hex(), parent.hex()));
    if (nt != expected.tokens.size()) return bad("n_tokens", 8, fmt::format("expected {}, got {}", expected.tokens.size(), nt));
    std::vector<Token> tokens(nt);
    for (size_t i = 0; i < nt; ++i) {
        tokens[i] = (Token)get_le32(data + kBlockFileHeader + 4 * i);
        if (tokens[i] != expected.tokens[i]) {
            return bad("tokens", kBlockFileHeader + 4 * i, fmt::format("token {} is {}, expected {}", i, tokens[i], expected.tokens[i]));
        }
    }
    if (node_key(parent, tokens.data(), tokens.size()) != key) {
        return bad("key", 24, "is not the chain hash of the parent key and the tokens");
    }
    if (raw != raw_bytes) return bad("raw length", 16, fmt::format("expected {}, got {}", raw_bytes, raw));
    const size_t got = ZSTD_decompress(dst, raw_bytes, data + tokens_end, clen);
    if (ZSTD_isError(got)) return bad("zstd frame", tokens_end, ZSTD_getErrorName(got));
    if (got != raw_bytes) return bad("zstd frame", tokens_end, fmt::format("{} bytes, expected {}", got, raw_bytes));
    return {};
}

Result<std::vector<uint8_t>> read_block_file(int dir_fd, const std::string& name) {
    return read_file_at(dir_fd, name, SIZE_MAX, Symlinks::kRefuse);
}

}  // namespace llama_crab::cache_detail
