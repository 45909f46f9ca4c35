// libFuzzer target: arbitrary bytes as a disk-cache block file. Must never crash or write past the output.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cache/block_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace llama_crab::cache_detail;
    // Expect what the header claims (bounded), so parsing gets past the field checks; a fuzzed header that
    // disagrees with the index is covered by the checks themselves.
    if (size < kBlockFileHeader) {
        uint8_t dummy[1];
        (void)decode_block_file(data, size, BlockIdentity{}, 0, dummy);
        return 0;
    }
    uint32_t n_tokens;
    uint64_t raw64;
    std::memcpy(&n_tokens, data + 8, 4);
    std::memcpy(&raw64, data + 16, 8);
    const size_t raw = (size_t)(raw64 % (1u << 20));
    BlockIdentity id;
    Key128::from_bytes(data + 24, 16, &id.key);
    Key128::from_bytes(data + 40, 16, &id.parent);
    // The tokens the file claims (as many as fit), so the token and key checks are reached too.
    const size_t n = std::min<size_t>(n_tokens, (size - kBlockFileHeader) / 4);
    std::vector<llama_crab::Token> tokens(n);
    if (n > 0) std::memcpy(tokens.data(), data + kBlockFileHeader, 4 * n);
    id.tokens = tokens;
    std::vector<uint8_t> out(raw);
    (void)decode_block_file(data, size, id, raw, out.data());
    return 0;
}
