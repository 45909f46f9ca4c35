// GGUF (versions 2 and 3) reader: a validated, zero-copy view of a memory-mapped file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llama_crab/error.h"
#include "ops/tensor_type.h"
#include "util/mmap.h"

namespace llama_crab {

enum class GgufType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};

const char* gguf_type_name(GgufType type);

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kGgufDefaultAlignment = 32;
constexpr int kGgufMaxDims = 4;

// One metadata value. Strings are views into the mapped file (or into the owned buffer), never copies.
struct GgufValue {
    GgufType type = GgufType::UINT8;
    uint64_t u = 0;      // unsigned integers and bool
    int64_t i = 0;       // signed integers
    double f = 0.0;      // floats
    std::string_view str;
    GgufType elem_type = GgufType::UINT8;  // arrays
    std::vector<GgufValue> array;

    bool is_integer() const;
    bool is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }
    // Integer value as int64 (unsigned values above INT64_MAX are reported as nullopt).
    std::optional<int64_t> as_int() const;
    std::optional<double> as_number() const;
    std::string to_display(size_t max_array_items = 8) const;
};

struct GgufKv {
    std::string_view key;
    GgufValue value;
};

struct GgufTensorInfo {
    std::string_view name;
    TensorType type;
    int n_dims = 0;
    int64_t ne[kGgufMaxDims] = {1, 1, 1, 1};  // ne[0] is the row length (fastest-varying)
    uint64_t offset = 0;                       // relative to the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;             // points into the mapped file

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    std::string shape_string() const;
};

class GgufFile {
public:
    // Maps and validates a file.
    static Result<GgufFile> open(const std::string& path);
    // Validates an in-memory image (copied into an owned buffer); used by tests and fuzzers.
    static Result<GgufFile> from_memory(const uint8_t* data, size_t size);

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    size_t file_size() const { return size_; }
    uint64_t data_offset() const { return data_offset_; }

    const std::vector<GgufKv>& metadata() const { return kvs_; }
    const GgufValue* find(std::string_view key) const;

    // Typed getters: nullopt when the key is absent; an error when it is present with the wrong type.
    Result<std::optional<std::string>> get_string(std::string_view key) const;
    Result<std::optional<int64_t>> get_int(std::string_view key) const;
    Result<std::optional<double>> get_float(std::string_view key) const;
    Result<std::optional<bool>> get_bool(std::string_view key) const;

    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(std::string_view name) const;

private:
    GgufFile() = default;
    static Result<GgufFile> parse(GgufFile file);

    MappedFile map_;
    std::shared_ptr<std::vector<uint8_t>> owned_;  // for from_memory
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = kGgufDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<GgufKv> kvs_;
    std::vector<GgufTensorInfo> tensors_;
    std::unordered_map<std::string_view, size_t> kv_index_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace llama_crab
