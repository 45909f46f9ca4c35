// libFuzzer target: arbitrary bytes into the GGUF reader. Must never crash; a parsed file must have every
// tensor inside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto f = llama_crab::GgufFile::from_memory(data, size);
    if (f.ok()) {
        for (const auto& t : f->tensors()) {
            if (f->data_offset() + t.offset + t.n_bytes > size) std::abort();
        }
        for (const auto& kv : f->metadata()) (void)kv.value.to_display();
    }
    return 0;
}
