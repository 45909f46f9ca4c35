// libFuzzer target: arbitrary bytes as a GBNF grammar (or, when they start with '{', a JSON schema whose grammar is
// then compiled), followed by a few tokens to match. Must never crash, hang or grow without bound.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llama_crab/grammar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace llama_crab;
    std::string text(reinterpret_cast<const char*>(data), size);
    // The part after the first NUL is the text to match, cut into tokens of 1-3 bytes.
    std::string input;
    if (const size_t nul = text.find('\0'); nul != std::string::npos) {
        input = text.substr(nul + 1);
        text.resize(nul);
    }
    std::string gbnf = text;
    if (!text.empty() && text[0] == '{') {
        auto g = json_schema_to_grammar(text);
        if (!g.ok()) return 0;
        gbnf = *g;
    }
    std::vector<std::string> pieces = {"", "\"", "{", "}", "a", "1", " ", "\xC3", "\xA9", "true"};
    for (size_t i = 0; i < input.size(); i += 1 + i % 3) pieces.push_back(input.substr(i, 1 + i % 3));
    auto s = GrammarSampler::create(gbnf, pieces, {0});
    if (!s.ok()) return 0;
    for (size_t t = 10; t < pieces.size(); ++t) {
        (void)(*s)->allows((Token)t);
        (*s)->accept((Token)t);
    }
    (void)(*s)->can_end();
    return 0;
}
