#include <cinttypes>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "gguf/gguf.h"

namespace llama_crab {
namespace {

constexpr int kMaxArrayDepth = 8;

// Bounds-checked little-endian cursor over the file image. Every read names the field it is for,
// so a failure reports the field and the byte offset.
class Cursor {
public:
    Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    size_t offset() const { return pos_; }
    size_t remaining() const { return size_ - pos_; }

    Error fail(const std::string& field, const std::string& what) const {
        return make_error(ErrorCode::kInvalidFormat, fmt::format("gguf: {} at byte offset {}: {}", field, pos_, what));
    }

    template <typename T>
    Result<T> read(const std::string& field) {
        if (remaining() < sizeof(T)) {
            return fail(field, fmt::format("truncated file (need {} bytes, {} left)", sizeof(T), remaining()));
        }
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    Result<std::string_view> read_string(const std::string& field) {
        const size_t at = pos_;
        LC_ASSIGN_OR_RETURN(uint64_t len, read<uint64_t>(field + " length"));
        if (len > remaining()) {
            pos_ = at;
            return fail(field, fmt::format("string length {} exceeds the {} bytes left in the file", len, remaining() - 8));
        }
        std::string_view s(reinterpret_cast<const char*>(data_ + pos_), (size_t)len);
        pos_ += (size_t)len;
        return s;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

size_t min_encoded_size(GgufType t) {
    switch (t) {
        case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
        case GgufType::UINT16: case GgufType::INT16: return 2;
        case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
        case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: case GgufType::STRING: return 8;
        case GgufType::ARRAY: return 12;
    }
    return 1;
}

bool valid_type(uint32_t t) { return t <= (uint32_t)GgufType::FLOAT64; }

Result<GgufValue> read_value(Cursor& cur, GgufType type, const std::string& field, int depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
        case GgufType::UINT8: { LC_ASSIGN_OR_RETURN(v.u, cur.read<uint8_t>(field)); break; }
        case GgufType::UINT16: { LC_ASSIGN_OR_RETURN(v.u, cur.read<uint16_t>(field)); break; }
        case GgufType::UINT32: { LC_ASSIGN_OR_RETURN(v.u, cur.read<uint32_t>(field)); break; }
        case GgufType::UINT64: { LC_ASSIGN_OR_RETURN(v.u, cur.read<uint64_t>(field)); break; }
        case GgufType::INT8: { LC_ASSIGN_OR_RETURN(v.i, cur.read<int8_t>(field)); break; }
        case GgufType::INT16: { LC_ASSIGN_OR_RETURN(v.i, cur.read<int16_t>(field)); break; }
        case GgufType::INT32: { LC_ASSIGN_OR_RETURN(v.i, cur.read<int32_t>(field)); break; }
        case GgufType::INT64: { LC_ASSIGN_OR_RETURN(v.i, cur.read<int64_t>(field)); break; }
        case GgufType::FLOAT32: { LC_ASSIGN_OR_RETURN(float f, cur.read<float>(field)); v.f = f; break; }
        case GgufType::FLOAT64: { LC_ASSIGN_OR_RETURN(v.f, cur.read<double>(field)); break; }
        case GgufType::BOOL: {
            const size_t at = cur.offset();
            LC_ASSIGN_OR_RETURN(uint8_t b, cur.read<uint8_t>(field));
            if (b > 1) {
                return make_error(ErrorCode::kInvalidFormat,
                                  fmt::format("gguf: {} at byte offset {}: bool value {} is neither 0 nor 1", field, at, b));
            }
            v.u = b;
            break;
        }
        case GgufType::STRING: { LC_ASSIGN_OR_RETURN(v.str, cur.read_string(field)); break; }
        case GgufType::ARRAY: {
            if (depth >= kMaxArrayDepth) return cur.fail(field, fmt::format("arrays nested deeper than {}", kMaxArrayDepth));
            const size_t type_at = cur.offset();
            LC_ASSIGN_OR_RETURN(uint32_t et, cur.read<uint32_t>(field + " element type"));
            if (!valid_type(et)) {
                return make_error(ErrorCode::kInvalidFormat,
                                  fmt::format("gguf: {} element type at byte offset {}: unknown value type {}", field, type_at, et));
            }
            v.elem_type = (GgufType)et;
            const size_t count_at = cur.offset();
            LC_ASSIGN_OR_RETURN(uint64_t n, cur.read<uint64_t>(field + " element count"));
            // Each element takes at least min_encoded_size bytes: refuse counts the file cannot hold before allocating.
            if (n > cur.remaining() / min_encoded_size(v.elem_type)) {
                return make_error(ErrorCode::kInvalidFormat,
                                  fmt::format("gguf: {} element count at byte offset {}: {} elements of type {} cannot fit in the {} bytes left",
                                              field, count_at, n, gguf_type_name(v.elem_type), cur.remaining()));
            }
            v.array.reserve((size_t)n);
            for (uint64_t k = 0; k < n; ++k) {
                LC_ASSIGN_OR_RETURN(GgufValue e, read_value(cur, v.elem_type, field, depth + 1));
                v.array.push_back(std::move(e));
            }
            break;
        }
    }
    return v;
}

}  // namespace

const char* gguf_type_name(GgufType type) {
    switch (type) {
        case GgufType::UINT8: return "u8";
        case GgufType::INT8: return "i8";
        case GgufType::UINT16: return "u16";
        case GgufType::INT16: return "i16";
        case GgufType::UINT32: return "u32";
        case GgufType::INT32: return "i32";
        case GgufType::FLOAT32: return "f32";
        case GgufType::BOOL: return "bool";
        case GgufType::STRING: return "string";
        case GgufType::ARRAY: return "array";
        case GgufType::UINT64: return "u64";
        case GgufType::INT64: return "i64";
        case GgufType::FLOAT64: return "f64";
    }
    return "?";
}

Result<GgufFile> GgufFile::open(const std::string& path) {
    GgufFile f;
    LC_ASSIGN_OR_RETURN(f.map_, MappedFile::open(path));
    f.base_ = f.map_.data();
    f.size_ = f.map_.size();
    auto parsed = parse(std::move(f));
    if (!parsed.ok()) return make_error(parsed.error().code, parsed.error().message + " (file '" + path + "')");
    return parsed;
}

Result<GgufFile> GgufFile::from_memory(const uint8_t* data, size_t size) {
    GgufFile f;
    f.owned_ = std::make_shared<std::vector<uint8_t>>(data, data + size);
    f.base_ = f.owned_->data();
    f.size_ = size;
    return parse(std::move(f));
}

Result<GgufFile> GgufFile::parse(GgufFile f) {
    Cursor cur(f.base_, f.size_);
    LC_ASSIGN_OR_RETURN(uint32_t magic, cur.read<uint32_t>("magic"));
    if (magic != kGgufMagic) {
        return make_error(ErrorCode::kInvalidFormat,
                          fmt::format("gguf: magic at byte offset 0: expected 0x{:08x} (\"GGUF\"), found 0x{:08x}", kGgufMagic, magic));
    }
    LC_ASSIGN_OR_RETURN(f.version_, cur.read<uint32_t>("version"));
    if (f.version_ != 2 && f.version_ != 3) {
        return make_error(ErrorCode::kUnsupported,
                          fmt::format("gguf: version at byte offset 4: {} is not supported (expected 2 or 3)", f.version_));
    }
    LC_ASSIGN_OR_RETURN(uint64_t n_tensors, cur.read<uint64_t>("tensor_count"));
    LC_ASSIGN_OR_RETURN(uint64_t n_kv, cur.read<uint64_t>("metadata_kv_count"));
    // A KV takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor info at least 8 + 4 + 4 + 8 bytes.
    if (n_kv > cur.remaining() / 13) {
        return make_error(ErrorCode::kInvalidFormat,
                          fmt::format("gguf: metadata_kv_count at byte offset 16: {} entries cannot fit in a {}-byte file", n_kv, f.size_));
    }
    if (n_tensors > cur.remaining() / 24) {
        return make_error(ErrorCode::kInvalidFormat,
                          fmt::format("gguf: tensor_count at byte offset 8: {} tensors cannot fit in a {}-byte file", n_tensors, f.size_));
    }

    f.kvs_.reserve((size_t)n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) {
        const std::string field = fmt::format("metadata[{}]", k);
        const size_t key_at = cur.offset();
        LC_ASSIGN_OR_RETURN(std::string_view key, cur.read_string(field + " key"));
        const std::string named = fmt::format("metadata '{}'", key);
        const size_t type_at = cur.offset();
        LC_ASSIGN_OR_RETURN(uint32_t t, cur.read<uint32_t>(named + " type"));
        if (!valid_type(t)) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: {} type at byte offset {}: unknown value type {}", named, type_at, t));
        }
        LC_ASSIGN_OR_RETURN(GgufValue v, read_value(cur, (GgufType)t, named, 0));
        if (f.kv_index_.count(key)) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: {} at byte offset {}: duplicate key", named, key_at));
        }
        f.kv_index_[key] = f.kvs_.size();
        f.kvs_.push_back(GgufKv{key, std::move(v)});
    }

    if (const GgufValue* a = f.find("general.alignment")) {
        if (a->type != GgufType::UINT32) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: metadata 'general.alignment': expected type u32, found {}", gguf_type_name(a->type)));
        }
        if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: metadata 'general.alignment': {} is not a power of two", a->u));
        }
        f.alignment_ = (uint32_t)a->u;
    }

    f.tensors_.reserve((size_t)n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
        GgufTensorInfo ti;
        const size_t info_at = cur.offset();
        LC_ASSIGN_OR_RETURN(ti.name, cur.read_string(fmt::format("tensor_info[{}] name", k)));
        const std::string named = fmt::format("tensor '{}'", ti.name);
        const size_t dims_at = cur.offset();
        LC_ASSIGN_OR_RETURN(uint32_t n_dims, cur.read<uint32_t>(named + " n_dims"));
        if (n_dims == 0 || n_dims > kGgufMaxDims) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: {} n_dims at byte offset {}: {} (expected 1..{})", named, dims_at, n_dims, kGgufMaxDims));
        }
        ti.n_dims = (int)n_dims;
        int64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const size_t dim_at = cur.offset();
            LC_ASSIGN_OR_RETURN(uint64_t ne, cur.read<uint64_t>(named + " ne"));
            if (ne == 0 || ne > (uint64_t)std::numeric_limits<int64_t>::max() / (uint64_t)n_elements) {
                return make_error(ErrorCode::kInvalidFormat,
                                  fmt::format("gguf: {} ne[{}] at byte offset {}: {} is zero or overflows the element count", named, d, dim_at, ne));
            }
            ti.ne[d] = (int64_t)ne;
            n_elements *= (int64_t)ne;
        }
        const size_t type_at = cur.offset();
        LC_ASSIGN_OR_RETURN(uint32_t type_id, cur.read<uint32_t>(named + " type"));
        const TypeTraits* traits = find_type_traits(type_id);
        if (traits == nullptr || !traits->is_weight_type) {
            return make_error(ErrorCode::kUnsupported,
                              fmt::format("gguf: {} type at byte offset {}: tensor type id {} is not supported", named, type_at, type_id));
        }
        ti.type = traits->type;
        if (ti.ne[0] % traits->block_size != 0) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: {}: row length {} is not a multiple of the {} block size {}", named, ti.ne[0],
                                          traits->name, traits->block_size));
        }
        ti.n_bytes = (uint64_t)(n_elements / traits->block_size) * traits->block_bytes;
        const size_t off_at = cur.offset();
        LC_ASSIGN_OR_RETURN(ti.offset, cur.read<uint64_t>(named + " offset"));
        if (ti.offset % f.alignment_ != 0) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: {} offset at byte offset {}: {} is not a multiple of the alignment {}", named, off_at,
                                          ti.offset, f.alignment_));
        }
        if (f.tensor_index_.count(ti.name)) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: tensor_info[{}] at byte offset {}: duplicate tensor name '{}'", k, info_at, ti.name));
        }
        f.tensor_index_[ti.name] = f.tensors_.size();
        f.tensors_.push_back(ti);
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t header_end = cur.offset();
    f.data_offset_ = (header_end + f.alignment_ - 1) / f.alignment_ * f.alignment_;
    if (f.tensors_.empty()) {
        if (f.data_offset_ > f.size_) f.data_offset_ = f.size_;  // vocab-only files may omit the final padding
        return f;
    }
    if (f.data_offset_ > f.size_) {
        return make_error(ErrorCode::kInvalidFormat,
                          fmt::format("gguf: data section at byte offset {}: file ends at {}", f.data_offset_, f.size_));
    }
    const uint64_t data_size = f.size_ - f.data_offset_;
    for (auto& ti : f.tensors_) {
        if (ti.offset > data_size || ti.n_bytes > data_size - ti.offset) {
            return make_error(ErrorCode::kInvalidFormat,
                              fmt::format("gguf: tensor '{}' ({} {}, {} bytes at data offset {}): extends past the end of the file "
                                          "(data section is {} bytes)",
                                          ti.name, type_traits(ti.type).name, ti.shape_string(), ti.n_bytes, ti.offset, data_size));
        }
        ti.data = f.base_ + f.data_offset_ + ti.offset;
    }
    return f;
}

}  // namespace llama_crab
