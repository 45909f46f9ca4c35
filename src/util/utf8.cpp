// UTF-8 validation and U+FFFD replacement (include/llama_crab/text.h), by the Unicode standard's table of
// well-formed byte sequences (Table 3-7): the second byte's range depends on the lead byte, later bytes are
// 80..BF.
#include "llama_crab/text.h"

#include <cstdint>

namespace llama_crab {
namespace {

constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// At bytes[i]: the length of the well-formed character there (> 0), or minus the length of the maximal
// ill-formed subpart (the lead and the continuation bytes that were still possible, at least 1).
int char_at(std::string_view bytes, size_t i) {
    const auto b0 = (uint8_t)bytes[i];
    if (b0 < 0x80) return 1;
    int len = 0;
    uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k < len; ++k) {
        if (i + (size_t)k >= bytes.size()) return -k;
        const auto b = (uint8_t)bytes[i + (size_t)k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -k;
    }
    return len;
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
    for (size_t i = 0; i < bytes.size();) {
        const int n = char_at(bytes, i);
        if (n < 0) return false;
        i += (size_t)n;
    }
    return true;
}

std::string to_valid_utf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    size_t run = 0;  // start of the well-formed run not yet copied
    for (size_t i = 0; i < bytes.size();) {
        const int n = char_at(bytes, i);
        if (n > 0) {
            i += (size_t)n;
            continue;
        }
        out.append(bytes.substr(run, i - run));
        out.append(kReplacementUtf8);
        i += (size_t)-n;
        run = i;
    }
    out.append(bytes.substr(run));
    return out;
}

}  // namespace llama_crab
