// Text helpers for what a model writes. A model's tokens are bytes: a reply cut by a token limit can end in
// the middle of a character, and a random or badly trained model can emit bytes that are not UTF-8 at all.
//
//   std::string shown = llama_crab::to_valid_utf8(completion.text);   // safe for a terminal or a JSON string
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace llama_crab {

// True when bytes are well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

// bytes with every ill-formed part replaced by U+FFFD, one per maximal ill-formed subpart (the Unicode
// standard's recommended practice, and what nlohmann::json's error_handler_t::replace writes, which the
// server's JSON uses). Well-formed text comes back unchanged.
std::string to_valid_utf8(std::string_view bytes);

}  // namespace llama_crab
