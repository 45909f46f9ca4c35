// The binary form of a SequenceState (session files, state_seq_get/set) and its validation.
//
// Layout, little-endian, version 1:
//   offset 0   magic "LCSTATE\0"                       8 bytes
//          8   format version (1)                     u32
//         12   header length H (bytes before tokens)  u32   = 44 + F
//         16   fingerprint length F (<= 256)          u32
//         20   fingerprint                            F bytes
//     20 + F   n_layer, n_head_kv, head_dim, kv_type  4 x u32
//     36 + F   n_tokens N                             u64
//          H   tokens                                 N x i32
//      H + 4N  positions                              N x i32
//      H + 8N  payload length P (= N * token_bytes)   u64
//  H + 8N + 8  payload (token-major KV)               P bytes
//      end - 8 XXH3-64 of every byte before it        u64
//
// Reading checks, in order: the magic, the version, every length against the buffer (before allocating
// anything), the payload length against the layout, the exact total size, the checksum, then the values.
#include <bit>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "llama_crab/session.h"
#include "util/atomic_file.h"

static_assert(std::endian::native == std::endian::little, "the state format is written little-endian");

namespace llama_crab {

namespace {

constexpr char kMagic[8] = {'L', 'C', 'S', 'T', 'A', 'T', 'E', '\0'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxFingerprint = 256;
constexpr size_t kFixedHeader = 44;  // header bytes besides the fingerprint

// Emits the serialised form piece by piece, hashing as it goes; `sink` receives each piece.
class Emitter {
public:
    explicit Emitter(std::function<Status(const void*, size_t)> sink) : sink_(std::move(sink)) {
        XXH3_64bits_reset(&xxh_);
    }
    Status put(const void* data, size_t size) {
        if (size == 0) return {};
        XXH3_64bits_update(&xxh_, data, size);
        return sink_(data, size);
    }
    template <typename T>
    Status put_pod(T v) { return put(&v, sizeof(T)); }
    Status finish() {
        const uint64_t sum = XXH3_64bits_digest(&xxh_);
        return sink_(&sum, sizeof(sum));
    }

private:
    std::function<Status(const void*, size_t)> sink_;
    XXH3_state_t xxh_;
};

Status emit_state(const SequenceState& s, Emitter& e) {
    const uint32_t fp_len = (uint32_t)s.model_fingerprint.size();
    LC_TRY(e.put(kMagic, sizeof(kMagic)));
    LC_TRY(e.put_pod<uint32_t>(kVersion));
    LC_TRY(e.put_pod<uint32_t>((uint32_t)(kFixedHeader + fp_len)));
    LC_TRY(e.put_pod<uint32_t>(fp_len));
    LC_TRY(e.put(s.model_fingerprint.data(), fp_len));
    LC_TRY(e.put_pod<uint32_t>(s.layout.n_layer));
    LC_TRY(e.put_pod<uint32_t>(s.layout.n_head_kv));
    LC_TRY(e.put_pod<uint32_t>(s.layout.head_dim));
    LC_TRY(e.put_pod<uint32_t>(s.layout.kv_type));
    LC_TRY(e.put_pod<uint64_t>((uint64_t)s.tokens.size()));
    LC_TRY(e.put(s.tokens.data(), s.tokens.size() * sizeof(Token)));
    LC_TRY(e.put(s.positions.data(), s.positions.size() * sizeof(Pos)));
    LC_TRY(e.put_pod<uint64_t>((uint64_t)s.kv.size()));
    LC_TRY(e.put(s.kv.data(), s.kv.size()));
    return e.finish();
}

Error format_error(const std::string& what, size_t offset, const std::string& detail) {
    return make_error(ErrorCode::kInvalidFormat, fmt::format("state: {} at offset {}: {}", what, offset, detail));
}

// Bounds-checked little-endian reader over the blob.
class Reader {
public:
    Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    size_t offset() const { return off_; }
    size_t remaining() const { return size_ - off_; }
    template <typename T>
    Result<T> pod(const char* field) {
        if (remaining() < sizeof(T)) {
            return format_error(field, off_, fmt::format("truncated: needs {} bytes, {} left", sizeof(T), remaining()));
        }
        T v;
        std::memcpy(&v, data_ + off_, sizeof(T));
        off_ += sizeof(T);
        return v;
    }
    const uint8_t* take(size_t n) {  // caller has checked remaining()
        const uint8_t* p = data_ + off_;
        off_ += n;
        return p;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t off_ = 0;
};

bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

}  // namespace

Status validate_state(const SequenceState& s) {
    if (s.positions.size() != s.tokens.size()) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("state: {} positions for {} tokens",
                                                                   s.positions.size(), s.tokens.size()));
    }
    if (s.model_fingerprint.size() > kMaxFingerprint) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("state: fingerprint of {} bytes (at most {})", s.model_fingerprint.size(), kMaxFingerprint));
    }
    if (s.layout.kv_type > 1) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("state: kv_type {} (0 = f16, 1 = f32)", s.layout.kv_type));
    }
    uint64_t tb = 0, want = 0;
    if (!mul_ok((uint64_t)s.layout.n_layer * 2, (uint64_t)s.layout.n_head_kv * s.layout.head_dim, &tb) ||
        !mul_ok(tb, s.layout.elem_bytes(), &tb) || !mul_ok(tb, s.tokens.size(), &want)) {
        return make_error(ErrorCode::kInvalidArgument, "state: layout size overflows");
    }
    if (s.kv.size() != want) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("state: kv holds {} bytes, {} tokens x {} bytes = {} expected", s.kv.size(),
                                      s.tokens.size(), tb, want));
    }
    return {};
}

SequenceState SequenceState::prefix(size_t n) const {
    if (n > tokens.size()) n = tokens.size();
    SequenceState out;
    out.model_fingerprint = model_fingerprint;
    out.layout = layout;
    out.tokens.assign(tokens.begin(), tokens.begin() + (ptrdiff_t)n);
    out.positions.assign(positions.begin(), positions.begin() + (ptrdiff_t)std::min(n, positions.size()));
    const size_t bytes = std::min(kv.size(), n * layout.token_bytes());
    out.kv.assign(kv.begin(), kv.begin() + (ptrdiff_t)bytes);
    return out;
}

size_t serialized_state_size(const SequenceState& s) {
    return kFixedHeader + s.model_fingerprint.size() + s.tokens.size() * sizeof(Token) +
           s.positions.size() * sizeof(Pos) + sizeof(uint64_t) + s.kv.size() + sizeof(uint64_t);
}

std::vector<uint8_t> serialize_state(const SequenceState& state) {
    std::vector<uint8_t> out;
    out.reserve(serialized_state_size(state));
    Emitter e([&out](const void* p, size_t n) -> Status {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        out.insert(out.end(), b, b + n);
        return {};
    });
    (void)emit_state(state, e);  // the vector sink cannot fail
    return out;
}

Result<SequenceState> deserialize_state(const uint8_t* data, size_t size) {
    if (data == nullptr && size != 0) return format_error("buffer", 0, "null data");
    Reader r(data, size);
    if (size < sizeof(kMagic)) return format_error("magic", 0, fmt::format("truncated: {} bytes", size));
    if (std::memcmp(data, kMagic, sizeof(kMagic)) != 0) return format_error("magic", 0, "not a llama-crab state (bad magic)");
    r.take(sizeof(kMagic));

    LC_ASSIGN_OR_RETURN(const uint32_t version, r.pod<uint32_t>("version"));
    if (version != kVersion) {
        // A genuine newer file has a valid checksum in its last 8 bytes; a damaged one does not.
        if (size >= sizeof(kMagic) + 12 + 8) {
            uint64_t stored;
            std::memcpy(&stored, data + size - 8, 8);
            if (XXH3_64bits(data, size - 8) == stored) {
                return make_error(ErrorCode::kUnsupported,
                                  fmt::format("state: format version {} at offset 8 (this build reads {})", version, kVersion));
            }
        }
        return format_error("version", 8, fmt::format("expected {}, got {}", kVersion, version));
    }
    LC_ASSIGN_OR_RETURN(const uint32_t header_len, r.pod<uint32_t>("header length"));
    LC_ASSIGN_OR_RETURN(const uint32_t fp_len, r.pod<uint32_t>("fingerprint length"));
    if (fp_len > kMaxFingerprint) {
        return format_error("fingerprint length", 16, fmt::format("{} bytes (at most {})", fp_len, kMaxFingerprint));
    }
    if (header_len != kFixedHeader + fp_len) {
        return format_error("header length", 12, fmt::format("expected {}, got {}", kFixedHeader + fp_len, header_len));
    }
    if (r.remaining() < fp_len) {
        return format_error("fingerprint", r.offset(), fmt::format("truncated: needs {} bytes, {} left", fp_len, r.remaining()));
    }
    const size_t fp_off = r.offset();
    const uint8_t* fp = r.take(fp_len);

    KvLayout layout;
    const size_t layout_off = r.offset();
    LC_ASSIGN_OR_RETURN(layout.n_layer, r.pod<uint32_t>("n_layer"));
    LC_ASSIGN_OR_RETURN(layout.n_head_kv, r.pod<uint32_t>("n_head_kv"));
    LC_ASSIGN_OR_RETURN(layout.head_dim, r.pod<uint32_t>("head_dim"));
    LC_ASSIGN_OR_RETURN(layout.kv_type, r.pod<uint32_t>("kv_type"));
    if (layout.kv_type > 1) {
        return format_error("kv_type", layout_off + 12, fmt::format("{} (0 = f16, 1 = f32)", layout.kv_type));
    }
    const size_t ntok_off = r.offset();
    LC_ASSIGN_OR_RETURN(const uint64_t n_tokens, r.pod<uint64_t>("n_tokens"));

    // Every length against the buffer, before any allocation.
    uint64_t tok_bytes = 0;
    if (!mul_ok(n_tokens, 2 * sizeof(int32_t), &tok_bytes) || tok_bytes > r.remaining()) {
        return format_error("n_tokens", ntok_off,
                            fmt::format("{} tokens need {} bytes of ids and positions, {} bytes left", n_tokens,
                                        n_tokens * 8, r.remaining()));
    }
    const uint8_t* tok = r.take(n_tokens * sizeof(int32_t));
    const uint8_t* pos = r.take(n_tokens * sizeof(int32_t));

    const size_t plen_off = r.offset();
    LC_ASSIGN_OR_RETURN(const uint64_t payload_len, r.pod<uint64_t>("payload length"));
    uint64_t token_bytes = 0, want_payload = 0;
    if (!mul_ok((uint64_t)layout.n_layer * 2, (uint64_t)layout.n_head_kv * layout.head_dim, &token_bytes) ||
        !mul_ok(token_bytes, layout.elem_bytes(), &token_bytes) || !mul_ok(token_bytes, n_tokens, &want_payload)) {
        return format_error("layout", layout_off,
                            fmt::format("{} layers x {} heads x {} dims x {} tokens overflows", layout.n_layer,
                                        layout.n_head_kv, layout.head_dim, n_tokens));
    }
    if (payload_len != want_payload) {
        return format_error("payload length", plen_off,
                            fmt::format("expected {} tokens x {} bytes = {}, got {}", n_tokens, token_bytes,
                                        want_payload, payload_len));
    }
    uint64_t total = 0;
    if (!add_ok(r.offset(), payload_len, &total) || !add_ok(total, 8, &total) || total > size) {
        return format_error("payload", r.offset(),
                            fmt::format("truncated: needs {} bytes + 8 checksum bytes, {} left", payload_len, r.remaining()));
    }
    if (total != size) {
        return format_error("end", total, fmt::format("{} bytes of trailing data", size - total));
    }
    const size_t payload_off = r.offset();
    const uint8_t* payload = r.take(payload_len);
    uint64_t stored = 0;
    std::memcpy(&stored, r.take(8), 8);
    const uint64_t actual = XXH3_64bits(data, size - 8);
    if (stored != actual) {
        return make_error(ErrorCode::kChecksum, fmt::format("state: checksum at offset {}: stored {:016x}, computed {:016x}",
                                                            size - 8, stored, actual));
    }
    (void)fp_off;
    (void)payload_off;

    SequenceState s;
    s.model_fingerprint.assign(reinterpret_cast<const char*>(fp), fp_len);
    s.layout = layout;
    s.tokens.resize(n_tokens);
    s.positions.resize(n_tokens);
    if (n_tokens) {
        std::memcpy(s.tokens.data(), tok, n_tokens * sizeof(int32_t));
        std::memcpy(s.positions.data(), pos, n_tokens * sizeof(int32_t));
    }
    s.kv.assign(payload, payload + payload_len);
    return s;
}

Status write_state_file(const std::string& path, const SequenceState& state) {
    LC_TRY(validate_state(state));
    AtomicFileWriter w;
    LC_TRY(w.open(path));
    // Buffer small pieces so the file gets a few large writes, not one per field.
    std::vector<uint8_t> buf;
    buf.reserve(1 << 16);
    Emitter e([&](const void* p, size_t n) -> Status {
        if (buf.size() + n > buf.capacity()) {
            LC_TRY(w.append(buf.data(), buf.size()));
            buf.clear();
        }
        if (n >= buf.capacity()) return w.append(p, n);
        const uint8_t* b = static_cast<const uint8_t*>(p);
        buf.insert(buf.end(), b, b + n);
        return {};
    });
    LC_TRY(emit_state(state, e));
    if (!buf.empty()) LC_TRY(w.append(buf.data(), buf.size()));
    return w.commit();
}

Result<SequenceState> read_state_file(const std::string& path) {
    // Never blocks on a FIFO and never follows a symlink planted where a state file should be.
    LC_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_file(path, SIZE_MAX, Symlinks::kRefuse));
    auto s = deserialize_state(bytes.data(), bytes.size());
    if (!s.ok()) return make_error(s.error().code, fmt::format("'{}': {}", path, s.error().message));
    return s;
}

}  // namespace llama_crab
