// libFuzzer target: arbitrary bytes into the state deserialiser. Must never crash; a parsed state must be
// self-consistent and serialise back to exactly the input bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "llama_crab/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto s = llama_crab::deserialize_state(data, size);
    if (!s.ok()) {
        if (s.error().message.empty()) std::abort();
        return 0;
    }
    if (!llama_crab::validate_state(*s).ok()) std::abort();
    const auto again = llama_crab::serialize_state(*s);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
    return 0;
}
