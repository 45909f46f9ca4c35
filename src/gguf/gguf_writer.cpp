#include "gguf/gguf_writer.h"

#include <cstring>

#include "util/atomic_file.h"

#include <fmt/format.h>

namespace llama_crab {
namespace {

class ByteSink {
public:
    std::vector<uint8_t> bytes;

    template <typename T>
    void put(T v) {
        const size_t at = bytes.size();
        bytes.resize(at + sizeof(T));
        std::memcpy(bytes.data() + at, &v, sizeof(T));
    }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        bytes.insert(bytes.end(), s.begin(), s.end());
    }
    void pad_to(uint32_t alignment) {
        while (bytes.size() % alignment != 0) bytes.push_back(0);
    }
};

void put_value(ByteSink& out, const GgufWriteValue& v) {
    switch (v.type) {
        case GgufType::UINT8: out.put<uint8_t>((uint8_t)v.u); break;
        case GgufType::UINT16: out.put<uint16_t>((uint16_t)v.u); break;
        case GgufType::UINT32: out.put<uint32_t>((uint32_t)v.u); break;
        case GgufType::UINT64: out.put<uint64_t>(v.u); break;
        case GgufType::INT8: out.put<int8_t>((int8_t)v.i); break;
        case GgufType::INT16: out.put<int16_t>((int16_t)v.i); break;
        case GgufType::INT32: out.put<int32_t>((int32_t)v.i); break;
        case GgufType::INT64: out.put<int64_t>(v.i); break;
        case GgufType::FLOAT32: out.put<float>((float)v.f); break;
        case GgufType::FLOAT64: out.put<double>(v.f); break;
        case GgufType::BOOL: out.put<uint8_t>(v.u ? 1 : 0); break;
        case GgufType::STRING: out.put_string(v.str); break;
        case GgufType::ARRAY:
            out.put<uint32_t>((uint32_t)v.elem_type);
            out.put<uint64_t>(v.array.size());
            for (const auto& e : v.array) put_value(out, e);
            break;
    }
}

}  // namespace

GgufWriteValue GgufWriteValue::array_of(GgufType elem, std::vector<GgufWriteValue> items) {
    GgufWriteValue w;
    w.type = GgufType::ARRAY;
    w.elem_type = elem;
    w.array = std::move(items);
    return w;
}

GgufWriteValue GgufWriteValue::strings(const std::vector<std::string>& items) {
    std::vector<GgufWriteValue> a;
    a.reserve(items.size());
    for (const auto& s : items) a.push_back(string(s));
    return array_of(GgufType::STRING, std::move(a));
}

GgufWriteValue GgufWriteValue::floats(const std::vector<float>& items) {
    std::vector<GgufWriteValue> a;
    a.reserve(items.size());
    for (float f : items) a.push_back(f32(f));
    return array_of(GgufType::FLOAT32, std::move(a));
}

GgufWriteValue GgufWriteValue::i32s(const std::vector<int32_t>& items) {
    std::vector<GgufWriteValue> a;
    a.reserve(items.size());
    for (int32_t v : items) a.push_back(i32(v));
    return array_of(GgufType::INT32, std::move(a));
}

GgufWriteValue GgufWriteValue::from(const GgufValue& v) {
    GgufWriteValue w;
    w.type = v.type;
    w.u = v.u;
    w.i = v.i;
    w.f = v.f;
    w.str = std::string(v.str);
    w.elem_type = v.elem_type;
    w.array.reserve(v.array.size());
    for (const auto& e : v.array) w.array.push_back(from(e));
    return w;
}

void GgufWriter::set(const std::string& key, GgufWriteValue value) {
    for (auto& kv : kvs_) {
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    }
    kvs_.emplace_back(key, std::move(value));
}

Status GgufWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne, std::vector<uint8_t> data) {
    const TypeTraits& t = type_traits(type);
    if (ne.empty() || ne.size() > (size_t)kGgufMaxDims) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("tensor '{}': {} dimensions (expected 1..4)", name, ne.size()));
    }
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    if (ne[0] % t.block_size != 0) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("tensor '{}': row length {} is not a multiple of {}", name, ne[0], t.block_size));
    }
    const size_t expected = (size_t)(n / t.block_size) * t.block_bytes;
    if (data.size() != expected) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("tensor '{}': {} bytes of data, expected {}", name, data.size(), expected));
    }
    for (const auto& p : tensors_) {
        if (p.name == name) return make_error(ErrorCode::kInvalidArgument, fmt::format("tensor '{}' added twice", name));
    }
    tensors_.push_back(PendingTensor{name, type, std::move(ne), std::move(data)});
    return {};
}

std::vector<uint8_t> GgufWriter::header_bytes() const {
    ByteSink out;
    out.put<uint32_t>(kGgufMagic);
    out.put<uint32_t>(3);
    out.put<uint64_t>(tensors_.size());
    const bool has_alignment_key = alignment_ != kGgufDefaultAlignment;
    out.put<uint64_t>(kvs_.size() + (has_alignment_key ? 1 : 0));
    if (has_alignment_key) {
        out.put_string("general.alignment");
        out.put<uint32_t>((uint32_t)GgufType::UINT32);
        out.put<uint32_t>(alignment_);
    }
    for (const auto& [key, value] : kvs_) {
        out.put_string(key);
        out.put<uint32_t>((uint32_t)value.type);
        put_value(out, value);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        out.put_string(t.name);
        out.put<uint32_t>((uint32_t)t.ne.size());
        for (int64_t d : t.ne) out.put<uint64_t>((uint64_t)d);
        out.put<uint32_t>((uint32_t)t.type);
        out.put<uint64_t>(offset);
        offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
    }
    out.pad_to(alignment_);
    return std::move(out.bytes);
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
    std::vector<uint8_t> bytes = header_bytes();
    for (const auto& t : tensors_) {
        bytes.insert(bytes.end(), t.data.begin(), t.data.end());
        while (bytes.size() % alignment_ != 0) bytes.push_back(0);
    }
    return bytes;
}

Status GgufWriter::write(const std::string& path) const {
    // Streams the tensors instead of building the whole image: models can be gigabytes.
    AtomicFileWriter out;
    LC_TRY(out.open(path));
    const std::vector<uint8_t> header = header_bytes();
    LC_TRY(out.append(header.data(), header.size()));
    static const uint8_t kZeros[256] = {};
    for (const auto& t : tensors_) {
        LC_TRY(out.append(t.data.data(), t.data.size()));
        const size_t pad = (alignment_ - t.data.size() % alignment_) % alignment_;
        LC_TRY(out.append(kZeros, pad));
    }
    return out.commit();
}

}  // namespace llama_crab
