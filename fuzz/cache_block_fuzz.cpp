// libFuzzer target: arbitrary bytes as a disk-cache block file. Must never crash or write past the output.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cache/block_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace llama_crab::cache_detail;
    if (size < 2) return 0;
    // Let the input also pick what the index "expects", so both matching and mismatching headers get explored.
    const uint32_t n_tokens = data[0] % 65;
    const size_t raw = (size_t)n_tokens * (1 + data[1] % 64);
    Key128 key{};
    if (size >= kBlockFileHeader) Key128::from_bytes(data + 24, 16, &key);
    std::vector<uint8_t> out(raw);
    (void)decode_block_file(data, size, key, n_tokens, raw, out.data());
    return 0;
}
