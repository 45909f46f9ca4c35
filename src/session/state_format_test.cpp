#include <cstring>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "llama_crab/session.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

SequenceState make_state(size_t n_tokens, uint32_t kv_type = 0, uint64_t seed = 1) {
    std::mt19937_64 rng(seed);
    SequenceState s;
    s.model_fingerprint = std::string(64, 'a');
    for (size_t i = 0; i < 64; ++i) s.model_fingerprint[i] = "0123456789abcdef"[rng() % 16];
    s.layout = KvLayout{3, 2, 8, kv_type};
    for (size_t i = 0; i < n_tokens; ++i) {
        s.tokens.push_back((Token)(rng() % 32000));
        s.positions.push_back((Pos)i);
    }
    s.kv.resize(n_tokens * s.layout.token_bytes());
    for (auto& b : s.kv) b = (uint8_t)rng();
    return s;
}

void expect_same(const SequenceState& a, const SequenceState& b) {
    EXPECT_EQ(a.model_fingerprint, b.model_fingerprint);
    EXPECT_EQ(a.layout, b.layout);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.positions, b.positions);
    EXPECT_TRUE(a.kv == b.kv);
}

TEST(StateFormat, RoundTripIsBitIdentical) {
    for (size_t n : {0, 1, 7, 300}) {
        for (uint32_t t : {0u, 1u}) {
            const SequenceState s = make_state(n, t, n + 10 * t);
            const auto bytes = serialize_state(s);
            EXPECT_EQ(bytes.size(), serialized_state_size(s));
            auto back = deserialize_state(bytes.data(), bytes.size());
            ASSERT_TRUE(back.ok()) << back.error().to_string();
            expect_same(s, *back);
            EXPECT_EQ(serialize_state(*back), bytes);
        }
    }
}

TEST(StateFormat, PrefixKeepsTokenMajorBytes) {
    const SequenceState s = make_state(50);
    const SequenceState p = s.prefix(20);
    ASSERT_EQ(p.n_tokens(), 20u);
    EXPECT_EQ(p.kv.size(), 20 * s.layout.token_bytes());
    EXPECT_TRUE(std::equal(p.kv.begin(), p.kv.end(), s.kv.begin()));
    EXPECT_TRUE(std::equal(p.tokens.begin(), p.tokens.end(), s.tokens.begin()));
    EXPECT_EQ(s.prefix(500).n_tokens(), 50u);
    EXPECT_EQ(s.prefix(0).kv.size(), 0u);
}

TEST(StateFormat, EveryTruncationIsATypedError) {
    const auto bytes = serialize_state(make_state(5));
    for (size_t n = 0; n < bytes.size(); ++n) {
        auto r = deserialize_state(bytes.data(), n);
        ASSERT_FALSE(r.ok()) << "length " << n;
        EXPECT_TRUE(r.error().code == ErrorCode::kInvalidFormat || r.error().code == ErrorCode::kChecksum)
            << r.error().to_string();
    }
    auto longer = bytes;
    longer.push_back(0);
    auto r = deserialize_state(longer.data(), longer.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidFormat);
    EXPECT_NE(r.error().message.find("trailing"), std::string::npos) << r.error().message;
}

TEST(StateFormat, EveryBitFlipIsATypedError) {
    const auto bytes = serialize_state(make_state(3));
    for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
        auto b = bytes;
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        auto r = deserialize_state(b.data(), b.size());
        ASSERT_FALSE(r.ok()) << "bit " << bit;
        EXPECT_TRUE(r.error().code == ErrorCode::kInvalidFormat || r.error().code == ErrorCode::kChecksum)
            << "bit " << bit << ": " << r.error().to_string();
    }
}

TEST(StateFormat, PayloadFlipIsAChecksumError) {
    auto bytes = serialize_state(make_state(4));
    bytes[bytes.size() - 20] ^= 0x10;
    auto r = deserialize_state(bytes.data(), bytes.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kChecksum);
    EXPECT_NE(r.error().message.find("offset"), std::string::npos);
}

TEST(StateFormat, ForeignAndHostileBlobs) {
    const std::string gguf = "GGUF\x03\0\0\0 some other file";
    auto r = deserialize_state(reinterpret_cast<const uint8_t*>(gguf.data()), gguf.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidFormat);
    EXPECT_NE(r.error().message.find("magic"), std::string::npos);
    EXPECT_FALSE(deserialize_state(nullptr, 0).ok());

    // A valid header claiming a huge token count must be refused before any allocation.
    auto bytes = serialize_state(make_state(2));
    const size_t ntok_off = 20 + 64 + 16;
    const uint64_t huge = 1ull << 60;
    std::memcpy(bytes.data() + ntok_off, &huge, 8);
    r = deserialize_state(bytes.data(), bytes.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidFormat);
    EXPECT_NE(r.error().message.find("n_tokens"), std::string::npos) << r.error().message;

    // Layout dimensions whose product overflows.
    bytes = serialize_state(make_state(2));
    const uint32_t big = 0xffffffffu;
    std::memcpy(bytes.data() + 20 + 64, &big, 4);
    std::memcpy(bytes.data() + 20 + 64 + 4, &big, 4);
    std::memcpy(bytes.data() + 20 + 64 + 8, &big, 4);
    r = deserialize_state(bytes.data(), bytes.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidFormat);
}

TEST(StateFormat, OtherVersionIsUnsupportedOnlyWhenSealed) {
    auto bytes = serialize_state(make_state(2));
    const uint32_t v = 7;
    std::memcpy(bytes.data() + 8, &v, 4);
    auto r = deserialize_state(bytes.data(), bytes.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidFormat);  // checksum no longer matches: damaged, not newer
    EXPECT_NE(r.error().message.find("version"), std::string::npos);
    // Re-sealed like a genuine future file: unsupported, not corrupt.
    const uint64_t sum = XXH3_64bits(bytes.data(), bytes.size() - 8);
    std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
    r = deserialize_state(bytes.data(), bytes.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
}

TEST(StateFormat, ValidateStateNamesTheProblem) {
    auto s = make_state(3);
    EXPECT_TRUE(validate_state(s).ok());
    s.positions.pop_back();
    EXPECT_EQ(validate_state(s).error().code, ErrorCode::kInvalidArgument);
    s = make_state(3);
    s.kv.pop_back();
    EXPECT_EQ(validate_state(s).error().code, ErrorCode::kInvalidArgument);
}

TEST(StateFormat, SessionFileRoundTripAndDamage) {
    testing::TempDir dir;
    const auto path = (dir / "s.lcstate").string();
    const SequenceState s = make_state(40, 1, 99);
    ASSERT_TRUE(write_state_file(path, s).ok());
    auto back = read_state_file(path);
    ASSERT_TRUE(back.ok()) << back.error().to_string();
    expect_same(s, *back);
    // Only the final file is left behind.
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) (void)e, ++files;
    EXPECT_EQ(files, 1u);

    auto bytes = testing::read_file_bytes(path);
    auto cut = bytes;
    cut.resize(cut.size() / 2);
    testing::write_file_bytes(path, cut);
    auto r = read_state_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidFormat);
    EXPECT_NE(r.error().message.find(path), std::string::npos);

    auto flipped = bytes;
    flipped[flipped.size() / 2] ^= 1;
    testing::write_file_bytes(path, flipped);
    r = read_state_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kChecksum);

    r = read_state_file((dir / "missing").string());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kIo);

    auto bad = s;
    bad.kv.pop_back();
    EXPECT_EQ(write_state_file(path, bad).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace llama_crab
