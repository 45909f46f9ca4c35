// Unicode helpers for the tokenizers. They reproduce llama.cpp's own conventions (a lenient UTF-8 decoder,
// the White_Space set it treats as whitespace, the GPT-2 byte-to-unicode table) rather than strict UTF-8, because
// token ids must match llama.cpp even for odd input.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llama_crab::unicode {

// Length of a UTF-8 sequence judged by its first byte only (continuation bytes and 0xF8+ count as 1).
// Deliberately no validation: the SentencePiece and BPE symbol splitters of llama.cpp work this way.
inline size_t utf8_len(uint8_t lead) {
    static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLen[lead >> 4];
}

constexpr uint32_t kReplacement = 0xFFFD;

// Decodes like llama.cpp: overlong forms and surrogates are accepted, code points up to 0x1FFFFF can come out of a
// 4-byte form, and every byte that does not start a well-formed sequence becomes one U+FFFD.
std::vector<uint32_t> decode_lenient(std::string_view text);

// Appends the UTF-8 form of cpt. Surrogates are encoded as 3 bytes (as llama.cpp does); values above 0x10FFFF,
// which llama.cpp cannot encode at all, become U+FFFD.
void append_utf8(std::string& out, uint32_t cpt);
std::string to_utf8(uint32_t cpt);

// llama.cpp's whitespace set (the Unicode White_Space property).
bool is_whitespace(uint32_t cpt);

// GPT-2 byte-level encoding: every byte maps to one printable code point.
const std::string& byte_to_token_text(uint8_t byte);
const std::array<std::string, 256>& byte_token_table();
// The byte a code point stands for in the GPT-2 encoding, or -1.
int token_cpt_to_byte(uint32_t cpt);

// Number of bytes at the end of `bytes` that form an incomplete (but so far well-formed) UTF-8 sequence; such bytes
// may still be completed by what follows. 0 when the text ends on a character boundary or on invalid bytes.
size_t incomplete_utf8_tail(std::string_view bytes);

// Character classes for the WordPiece (BERT) normaliser, from utf8proc's tables.
struct CptClass {
    bool whitespace = false;
    bool control = false;      // \p{C}, including unassigned code points
    bool accent_mark = false;  // \p{M}
    bool punctuation = false;  // \p{P}
    bool symbol = false;       // \p{S}
};
CptClass classify(uint32_t cpt);
// First code point of the canonical decomposition (llama.cpp's per-character "NFD").
uint32_t nfd_first(uint32_t cpt);
uint32_t to_lower(uint32_t cpt);

}  // namespace llama_crab::unicode
