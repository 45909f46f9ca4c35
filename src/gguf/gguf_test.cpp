#include <gtest/gtest.h>

#include <cstring>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

GgufWriter sample_writer() {
    GgufWriter w;
    w.set("general.architecture", GgufWriteValue::string("llama"));
    w.set("llama.block_count", GgufWriteValue::u32(2));
    w.set("some.float", GgufWriteValue::f32(0.5f));
    w.set("some.bool", GgufWriteValue::boolean(true));
    w.set("some.i32", GgufWriteValue::i32(-7));
    w.set("some.strings", GgufWriteValue::strings({"a", "bc", ""}));
    // nested array: [[1,2],[3]]
    w.set("some.nested", GgufWriteValue::array_of(GgufType::ARRAY, {GgufWriteValue::i32s({1, 2}), GgufWriteValue::i32s({3})}));
    EXPECT_TRUE(w.add_tensor("a", TensorType::F32, {4, 2}, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8})).ok());
    EXPECT_TRUE(w.add_tensor("b", TensorType::F32, {3}, f32_bytes({9, 10, 11})).ok());
    return w;
}

TEST(Gguf, WriterRoundTrip) {
    const auto bytes = sample_writer().to_bytes();
    auto f = GgufFile::from_memory(bytes.data(), bytes.size());
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(*f->get_string("general.architecture").value(), "llama");
    EXPECT_EQ(*f->get_int("llama.block_count").value(), 2);
    EXPECT_EQ(*f->get_float("some.float").value(), 0.5);
    EXPECT_EQ(*f->get_bool("some.bool").value(), true);
    EXPECT_EQ(*f->get_int("some.i32").value(), -7);
    EXPECT_FALSE(f->get_string("missing").value().has_value());
    EXPECT_FALSE(f->get_string("llama.block_count").ok());  // present with the wrong type
    const GgufValue* strs = f->find("some.strings");
    ASSERT_NE(strs, nullptr);
    ASSERT_EQ(strs->array.size(), 3u);
    EXPECT_EQ(strs->array[1].str, "bc");
    const GgufValue* nested = f->find("some.nested");
    ASSERT_NE(nested, nullptr);
    ASSERT_EQ(nested->array.size(), 2u);
    EXPECT_EQ(nested->array[0].array[1].i, 2);
    EXPECT_EQ(nested->array[1].array[0].i, 3);

    ASSERT_EQ(f->tensors().size(), 2u);
    const GgufTensorInfo* a = f->find_tensor("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->ne[0], 4);
    EXPECT_EQ(a->ne[1], 2);
    EXPECT_EQ(a->n_bytes, 32u);
    EXPECT_EQ(a->offset % 32, 0u);
    float v[8];
    std::memcpy(v, a->data, 32);
    EXPECT_EQ(v[7], 8.0f);
    const GgufTensorInfo* b = f->find_tensor("b");
    ASSERT_NE(b, nullptr);
    std::memcpy(v, b->data, 12);
    EXPECT_EQ(v[2], 11.0f);
    EXPECT_EQ(b->offset % 32, 0u);
}

TEST(Gguf, CustomAlignment) {
    GgufWriter w(64);
    w.set("x", GgufWriteValue::u32(1));
    ASSERT_TRUE(w.add_tensor("t", TensorType::F32, {3}, f32_bytes({1, 2, 3})).ok());
    ASSERT_TRUE(w.add_tensor("u", TensorType::F32, {1}, f32_bytes({4})).ok());
    const auto bytes = w.to_bytes();
    auto f = GgufFile::from_memory(bytes.data(), bytes.size());
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->data_offset() % 64, 0u);
    EXPECT_EQ(f->find_tensor("u")->offset, 64u);
}

TEST(Gguf, WriteAndOpenFile) {
    testing::TempDir dir;
    const auto path = (dir / "m.gguf").string();
    ASSERT_TRUE(sample_writer().write(path).ok());
    auto f = GgufFile::open(path);
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    EXPECT_EQ(f->tensors().size(), 2u);
    auto missing = GgufFile::open((dir / "none.gguf").string());
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ErrorCode::kIo);
}

TEST(Gguf, WriterRejectsBadTensors) {
    GgufWriter w;
    EXPECT_FALSE(w.add_tensor("t", TensorType::F32, {3}, f32_bytes({1, 2})).ok());
    EXPECT_TRUE(w.add_tensor("t", TensorType::F32, {1}, f32_bytes({1})).ok());
    EXPECT_FALSE(w.add_tensor("t", TensorType::F32, {1}, f32_bytes({1})).ok());
}

// --- hand-made bad files: each must fail with a clear message naming the field ---

struct BadCase {
    const char* name;
    std::vector<uint8_t> bytes;
    const char* expect_in_message;
};

template <typename T>
void put(std::vector<uint8_t>& b, T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
}
void put_str(std::vector<uint8_t>& b, const std::string& s) {
    put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
}
std::vector<uint8_t> header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, kGgufMagic);
    put<uint32_t>(b, version);
    put<uint64_t>(b, n_tensors);
    put<uint64_t>(b, n_kv);
    return b;
}

std::vector<BadCase> bad_cases() {
    std::vector<BadCase> cases;
    cases.push_back({"empty", {}, "magic"});
    {
        auto b = header(3, 0, 0);
        b[0] = 'X';
        cases.push_back({"bad magic", b, "magic"});
    }
    cases.push_back({"version 1", header(1, 0, 0), "version"});
    cases.push_back({"version 4", header(4, 0, 0), "version"});
    {
        auto b = header(3, 0, 0);
        b.resize(20);
        cases.push_back({"truncated header", b, "metadata_kv_count"});
    }
    cases.push_back({"huge kv count", header(3, 0, 1ull << 60), "metadata_kv_count"});
    cases.push_back({"huge tensor count", header(3, 1ull << 60, 0), "tensor_count"});
    {
        auto b = header(3, 0, 1);
        put<uint64_t>(b, 1ull << 40);  // key length
        b.resize(b.size() + 16);
        cases.push_back({"key length past end", b, "key"});
    }
    {
        auto b = header(3, 0, 1);
        put_str(b, "k");
        put<uint32_t>(b, 99);
        cases.push_back({"unknown value type", b, "unknown value type 99"});
    }
    {
        auto b = header(3, 0, 1);
        put_str(b, "k");
        put<uint32_t>(b, (uint32_t)GgufType::ARRAY);
        put<uint32_t>(b, (uint32_t)GgufType::UINT64);
        put<uint64_t>(b, 1ull << 50);
        cases.push_back({"array count too large", b, "element count"});
    }
    {
        auto b = header(3, 0, 1);
        put_str(b, "k");
        put<uint32_t>(b, (uint32_t)GgufType::STRING);
        put<uint64_t>(b, 100);
        b.push_back('a');
        cases.push_back({"string past end", b, "metadata 'k'"});
    }
    {
        auto b = header(3, 0, 1);
        put_str(b, "k");
        put<uint32_t>(b, (uint32_t)GgufType::BOOL);
        b.push_back(7);
        cases.push_back({"bad bool", b, "bool"});
    }
    {
        // array nested 20 deep
        auto b = header(3, 0, 1);
        put_str(b, "k");
        put<uint32_t>(b, (uint32_t)GgufType::ARRAY);
        for (int d = 0; d < 20; ++d) {
            put<uint32_t>(b, (uint32_t)GgufType::ARRAY);
            put<uint64_t>(b, 1);
        }
        cases.push_back({"deep nesting", b, "nested"});
    }
    {
        auto b = header(3, 0, 2);
        for (int k = 0; k < 2; ++k) {
            put_str(b, "dup");
            put<uint32_t>(b, (uint32_t)GgufType::UINT32);
            put<uint32_t>(b, 1);
        }
        cases.push_back({"duplicate key", b, "duplicate key"});
    }
    {
        auto b = header(3, 0, 1);
        put_str(b, "general.alignment");
        put<uint32_t>(b, (uint32_t)GgufType::UINT32);
        put<uint32_t>(b, 24);
        cases.push_back({"alignment not power of two", b, "power of two"});
    }
    auto tensor_file = [](uint32_t n_dims, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes) {
        auto b = header(3, 1, 0);
        put_str(b, "w");
        put<uint32_t>(b, n_dims);
        for (uint64_t d : ne) put<uint64_t>(b, d);
        put<uint32_t>(b, type);
        put<uint64_t>(b, offset);
        while (b.size() % 32) b.push_back(0);
        b.resize(b.size() + data_bytes);
        return b;
    };
    cases.push_back({"zero dims", tensor_file(0, {}, 0, 0, 64), "n_dims"});
    cases.push_back({"five dims", tensor_file(5, {1, 1, 1, 1, 1}, 0, 0, 64), "n_dims"});
    cases.push_back({"zero extent", tensor_file(2, {4, 0}, 0, 0, 64), "ne[1]"});
    cases.push_back({"overflowing extent", tensor_file(2, {1ull << 40, 1ull << 40}, 0, 0, 64), "overflows"});
    cases.push_back({"unknown tensor type", tensor_file(1, {4}, 77, 0, 64), "type id 77"});
    cases.push_back({"activation-only type", tensor_file(1, {256}, 15, 0, 4096), "type id 15"});
    cases.push_back({"row not multiple of block", tensor_file(1, {33}, 8, 0, 64), "block size"});
    cases.push_back({"misaligned offset", tensor_file(1, {4}, 0, 4, 64), "alignment"});
    cases.push_back({"tensor past end", tensor_file(1, {64}, 0, 0, 64), "past the end"});
    cases.push_back({"offset past end", tensor_file(1, {4}, 0, 1ull << 40, 64), "past the end"});
    {
        auto b = header(3, 2, 0);
        for (int k = 0; k < 2; ++k) {
            put_str(b, "same");
            put<uint32_t>(b, 1);
            put<uint64_t>(b, 1);
            put<uint32_t>(b, 0);
            put<uint64_t>(b, 0);
        }
        while (b.size() % 32) b.push_back(0);
        b.resize(b.size() + 32);
        cases.push_back({"duplicate tensor", b, "duplicate tensor"});
    }
    return cases;
}

TEST(GgufBadFiles, EachGivesAClearError) {
    for (const auto& c : bad_cases()) {
        auto f = GgufFile::from_memory(c.bytes.data(), c.bytes.size());
        ASSERT_FALSE(f.ok()) << c.name << " was accepted";
        EXPECT_NE(f.error().message.find(c.expect_in_message), std::string::npos)
            << c.name << ": message '" << f.error().message << "' lacks '" << c.expect_in_message << "'";
        EXPECT_NE(f.error().message.find("gguf:"), std::string::npos) << c.name;
    }
}

TEST(GgufBadFiles, EveryTruncationOfAValidFileFails) {
    const auto bytes = sample_writer().to_bytes();
    for (size_t n = 0; n < bytes.size(); ++n) {
        // Truncating inside the padding after the last tensor's data still leaves valid tensors.
        auto f = GgufFile::from_memory(bytes.data(), n);
        if (f.ok()) {
            for (const auto& t : f->tensors()) EXPECT_LE(f->data_offset() + t.offset + t.n_bytes, n);
            EXPECT_GE(n, bytes.size() - 32) << "truncation to " << n << " bytes accepted";
        }
    }
}

TEST(GgufBadFiles, RandomByteFlipsNeverCrash) {
    const auto good = sample_writer().to_bytes();
    uint32_t state = 12345;
    for (int iter = 0; iter < 3000; ++iter) {
        auto b = good;
        for (int k = 0; k < 4; ++k) {
            state = state * 1664525u + 1013904223u;
            b[(state >> 8) % b.size()] ^= (uint8_t)(1u << ((state >> 4) % 8));
        }
        auto f = GgufFile::from_memory(b.data(), b.size());
        if (f.ok()) {
            for (const auto& t : f->tensors()) EXPECT_LE(t.offset + t.n_bytes + f->data_offset(), b.size());
        }
    }
}

}  // namespace
}  // namespace llama_crab
