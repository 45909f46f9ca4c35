// GgufFile lookups and GgufValue helpers (the parser is in gguf_reader.cpp).
#include <fmt/format.h>

#include <limits>

#include "gguf/gguf.h"

namespace llama_crab {

bool GgufValue::is_integer() const {
    switch (type) {
        case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
        case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64: return true;
        default: return false;
    }
}

std::optional<int64_t> GgufValue::as_int() const {
    switch (type) {
        case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32: case GgufType::UINT64:
            if (u > (uint64_t)std::numeric_limits<int64_t>::max()) return std::nullopt;
            return (int64_t)u;
        case GgufType::INT8: case GgufType::INT16: case GgufType::INT32: case GgufType::INT64: return i;
        default: return std::nullopt;
    }
}

std::optional<double> GgufValue::as_number() const {
    if (is_float()) return f;
    if (auto v = as_int()) return (double)*v;
    return std::nullopt;
}

std::string GgufValue::to_display(size_t max_array_items) const {
    switch (type) {
        case GgufType::STRING: return fmt::format("\"{}\"", str.size() > 80 ? std::string(str.substr(0, 77)) + "..." : std::string(str));
        case GgufType::BOOL: return u ? "true" : "false";
        case GgufType::FLOAT32: case GgufType::FLOAT64: return fmt::format("{}", f);
        case GgufType::ARRAY: {
            std::string s = fmt::format("[{} x {}]", array.size(), gguf_type_name(elem_type));
            if (max_array_items > 0 && !array.empty()) {
                s += " {";
                for (size_t k = 0; k < array.size() && k < max_array_items; ++k) s += (k ? ", " : "") + array[k].to_display(0);
                s += array.size() > max_array_items ? ", ...}" : "}";
            }
            return s;
        }
        default: {
            auto v = as_int();
            return v ? fmt::format("{}", *v) : fmt::format("{}", u);
        }
    }
}

std::string GgufTensorInfo::shape_string() const {
    std::string s = "[";
    for (int d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
    return s + "]";
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
Error wrong_type(std::string_view key, const char* expected, GgufType actual) {
    return make_error(ErrorCode::kInvalidFormat,
                      fmt::format("gguf: metadata '{}': expected {}, found {}", key, expected, gguf_type_name(actual)));
}
}  // namespace

Result<std::optional<std::string>> GgufFile::get_string(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<std::string>();
    if (v->type != GgufType::STRING) return wrong_type(key, "a string", v->type);
    return std::optional<std::string>(std::string(v->str));
}

Result<std::optional<int64_t>> GgufFile::get_int(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<int64_t>();
    auto i = v->as_int();
    if (!i) return wrong_type(key, "an integer", v->type);
    return std::optional<int64_t>(*i);
}

Result<std::optional<double>> GgufFile::get_float(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<double>();
    auto d = v->as_number();
    if (!d) return wrong_type(key, "a number", v->type);
    return std::optional<double>(*d);
}

Result<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<bool>();
    if (v->type != GgufType::BOOL) return wrong_type(key, "a bool", v->type);
    return std::optional<bool>(v->u != 0);
}

}  // namespace llama_crab
