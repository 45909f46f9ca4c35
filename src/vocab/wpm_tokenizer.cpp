// WordPiece (BERT) tokenisation as in llama.cpp (llm_tokenizer_wpm): normalise (per-character NFD, drop accents and
// control characters, lowercase), split on whitespace and around punctuation and CJK ideographs, then match each
// word, prefixed with U+2581, greedily longest-first against the vocabulary; a word that cannot be covered becomes
// one <unk>.
#include "vocab/unicode.h"
#include "vocab/vocab_data.h"

namespace llama_crab::vocab_detail {

namespace {

bool is_chinese_char(uint32_t cpt) {
    return (cpt >= 0x04E00 && cpt <= 0x09FFF) || (cpt >= 0x03400 && cpt <= 0x04DBF) ||
           (cpt >= 0x20000 && cpt <= 0x2A6DF) || (cpt >= 0x2A700 && cpt <= 0x2B73F) ||
           (cpt >= 0x2B740 && cpt <= 0x2B81F) ||
           (cpt >= 0x2B920 && cpt <= 0x2CEAF) ||  // sic: HF's code starts this range at 0x2B920
           (cpt >= 0x0F900 && cpt <= 0x0FAFF) || (cpt >= 0x2F800 && cpt <= 0x2FA1F);
}

std::vector<std::string> preprocess(const VocabData& v, std::string_view text) {
    std::vector<uint32_t> cpts = unicode::decode_lenient(text);
    if (v.strip_accents) {
        for (uint32_t& c : cpts) c = unicode::nfd_first(c);
    }
    std::vector<std::string> words(1);
    for (uint32_t cpt : cpts) {
        const unicode::CptClass cls = unicode::classify(cpt);
        if (cls.whitespace) {
            if (!words.back().empty()) words.emplace_back();
            continue;
        }
        if (cpt == 0 || cpt == unicode::kReplacement || cls.control) continue;
        if (v.strip_accents && cls.accent_mark) continue;
        const std::string s = unicode::to_utf8(v.lowercase ? unicode::to_lower(cpt) : cpt);
        if (cls.punctuation || (cpt < 0x7F && cls.symbol) || is_chinese_char(cpt)) {
            if (!words.back().empty()) words.emplace_back();
            words.back() = s;
            words.emplace_back();
        } else {
            words.back() += s;
        }
    }
    if (words.back().empty()) words.pop_back();
    return words;
}

}  // namespace

void wpm_tokenize(const VocabData& v, std::string_view text, std::vector<int32_t>& out) {
    for (const std::string& word : preprocess(v, text)) {
        if (word.empty()) continue;
        const std::string w = "\xe2\x96\x81" + word;
        const int n = static_cast<int>(w.size());
        const size_t start = out.size();
        for (int i = 0; i < n; ++i) {
            bool match = false;
            for (int j = std::min(n, i + v.max_token_len + 1); j > i; --j) {
                const int32_t id = v.find(std::string_view(w).substr(i, j - i));
                if (id >= 0) {
                    out.push_back(id);
                    match = true;
                    i = j - 1;
                    break;
                }
            }
            if (!match) {
                out.resize(start);
                break;
            }
        }
        if (out.size() == start && v.unk >= 0) out.push_back(v.unk);
    }
}

}  // namespace llama_crab::vocab_detail
