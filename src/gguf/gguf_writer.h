// GGUF v3 writer: metadata and aligned tensors. Used by the tests and by `llama-crab make-model`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llama_crab/error.h"
#include "gguf/gguf.h"

namespace llama_crab {

// An owned metadata value for writing (GgufValue holds views into a file; this owns its strings).
struct GgufWriteValue {
    GgufType type = GgufType::UINT32;
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0.0;
    std::string str;
    GgufType elem_type = GgufType::UINT32;
    std::vector<GgufWriteValue> array;

    static GgufWriteValue u32(uint32_t v) { GgufWriteValue w; w.type = GgufType::UINT32; w.u = v; return w; }
    static GgufWriteValue i32(int32_t v) { GgufWriteValue w; w.type = GgufType::INT32; w.i = v; return w; }
    static GgufWriteValue u64(uint64_t v) { GgufWriteValue w; w.type = GgufType::UINT64; w.u = v; return w; }
    static GgufWriteValue f32(float v) { GgufWriteValue w; w.type = GgufType::FLOAT32; w.f = v; return w; }
    static GgufWriteValue boolean(bool v) { GgufWriteValue w; w.type = GgufType::BOOL; w.u = v; return w; }
    static GgufWriteValue string(std::string v) { GgufWriteValue w; w.type = GgufType::STRING; w.str = std::move(v); return w; }
    static GgufWriteValue array_of(GgufType elem, std::vector<GgufWriteValue> items);
    static GgufWriteValue strings(const std::vector<std::string>& items);
    static GgufWriteValue floats(const std::vector<float>& items);
    static GgufWriteValue i32s(const std::vector<int32_t>& items);
    // A copy of a value read from a file (used to carry a vocabulary into a new model).
    static GgufWriteValue from(const GgufValue& v);
};

class GgufWriter {
public:
    explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment) : alignment_(alignment) {}

    void set(const std::string& key, GgufWriteValue value);  // replaces an existing key, keeps insertion order otherwise
    // Adds a tensor; data must hold exactly the bytes of ne[] in `type`. ne[0] is the row length.
    Status add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne, std::vector<uint8_t> data);

    // The whole file image.
    std::vector<uint8_t> to_bytes() const;
    // Writes to path via a temporary file, fsync and rename.
    Status write(const std::string& path) const;

    size_t n_tensors() const { return tensors_.size(); }

private:
    std::vector<uint8_t> header_bytes() const;  // everything before the first tensor's data

    struct PendingTensor {
        std::string name;
        TensorType type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
    };
    uint32_t alignment_;
    std::vector<std::pair<std::string, GgufWriteValue>> kvs_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace llama_crab
