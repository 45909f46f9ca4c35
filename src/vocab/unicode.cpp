#include "vocab/unicode.h"

#include <utf8proc.h>

#include <array>

namespace llama_crab::unicode {

std::vector<uint32_t> decode_lenient(std::string_view text) {
    std::vector<uint32_t> out;
    out.reserve(text.size());
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    auto cont = [&](size_t k) { return (s[k] & 0xC0) == 0x80; };
    size_t i = 0;
    while (i < n) {
        const uint8_t b0 = s[i];
        if (b0 < 0x80) {
            out.push_back(b0);
            i += 1;
        } else if ((b0 & 0x40) == 0) {
            out.push_back(kReplacement);
            i += 1;
        } else if ((b0 & 0x20) == 0) {
            if (i + 1 < n && cont(i + 1)) {
                out.push_back(((b0 & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu));
                i += 2;
            } else {
                out.push_back(kReplacement);
                i += 1;
            }
        } else if ((b0 & 0x10) == 0) {
            if (i + 2 < n && cont(i + 1) && cont(i + 2)) {
                out.push_back(((b0 & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu));
                i += 3;
            } else {
                out.push_back(kReplacement);
                i += 1;
            }
        } else if ((b0 & 0x08) == 0) {
            if (i + 3 < n && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
                out.push_back(((b0 & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
                              (s[i + 3] & 0x3Fu));
                i += 4;
            } else {
                out.push_back(kReplacement);
                i += 1;
            }
        } else {
            out.push_back(kReplacement);
            i += 1;
        }
    }
    return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
    if (cpt > 0x10FFFF) cpt = kReplacement;
    if (cpt <= 0x7F) {
        out.push_back(static_cast<char>(cpt));
    } else if (cpt <= 0x7FF) {
        out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
        out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    } else if (cpt <= 0xFFFF) {
        out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    }
}

std::string to_utf8(uint32_t cpt) {
    std::string s;
    append_utf8(s, cpt);
    return s;
}

bool is_whitespace(uint32_t cpt) {
    if (cpt < 0x80) return (cpt >= 0x09 && cpt <= 0x0D) || cpt == 0x20;
    switch (cpt) {
        case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return cpt >= 0x2000 && cpt <= 0x200A;
    }
}

namespace {

struct ByteTables {
    std::array<std::string, 256> byte_to_text;
    std::array<int16_t, 512> cpt_to_byte;  // every mapped code point is below 0x144

    ByteTables() {
        cpt_to_byte.fill(-1);
        auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
        int next = 256;
        for (int b = 0; b < 256; ++b) {
            const uint32_t cpt = printable(b) ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
            byte_to_text[b] = to_utf8(cpt);
            cpt_to_byte[cpt] = static_cast<int16_t>(b);
        }
    }
};

const ByteTables& byte_tables() {
    static const ByteTables tables;
    return tables;
}

}  // namespace

const std::string& byte_to_token_text(uint8_t byte) { return byte_tables().byte_to_text[byte]; }
const std::array<std::string, 256>& byte_token_table() { return byte_tables().byte_to_text; }

int token_cpt_to_byte(uint32_t cpt) { return cpt < 512 ? byte_tables().cpt_to_byte[cpt] : -1; }

size_t incomplete_utf8_tail(std::string_view bytes) {
    const size_t n = bytes.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        const auto b = static_cast<uint8_t>(bytes[n - back]);
        if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        size_t need = 0;
        if (b >= 0xC0 && b <= 0xDF) need = 2;
        else if (b >= 0xE0 && b <= 0xEF) need = 3;
        else if (b >= 0xF0 && b <= 0xF7) need = 4;
        return (need > back) ? back : 0;
    }
    return 0;
}

CptClass classify(uint32_t cpt) {
    CptClass c;
    c.whitespace = is_whitespace(cpt);
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cpt))) {
        case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
            c.control = true;
            break;
        case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
            c.accent_mark = true;
            break;
        case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
        case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
            c.punctuation = true;
            break;
        case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO:
            c.symbol = true;
            break;
        default:
            break;
    }
    return c;
}

uint32_t nfd_first(uint32_t cpt) {
    if (cpt > 0x10FFFF || (cpt >= 0xD800 && cpt <= 0xDFFF)) return cpt;
    utf8proc_int32_t buf[32];
    utf8proc_int32_t boundclass = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cpt), buf, 32,
                                                       UTF8PROC_DECOMPOSE, &boundclass);
    return n >= 1 ? static_cast<uint32_t>(buf[0]) : cpt;
}

uint32_t to_lower(uint32_t cpt) {
    if (cpt > 0x10FFFF) return cpt;
    return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cpt)));
}

}  // namespace llama_crab::unicode
