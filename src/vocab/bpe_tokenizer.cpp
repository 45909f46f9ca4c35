// Byte-level BPE as in llama.cpp (llm_tokenizer_bpe): the pre-tokenizer cuts the text into words; in each word,
// starting from UTF-8 characters, the adjacent pair with the lowest merge rank is merged (leftmost on ties) until no
// pair has a rank. A final piece that is not a vocabulary entry falls back to one-byte tokens.
#include <queue>

#include "vocab/unicode.h"
#include "vocab/vocab_data.h"

namespace llama_crab::vocab_detail {

namespace {

struct Symbol {
    int prev;
    int next;
    uint32_t start;
    uint32_t n;  // 0 once merged into its left neighbour
};

struct Bigram {
    int32_t rank;
    int left;
    int right;
    uint32_t size;  // left.n + right.n when queued; symbols only grow, so a mismatch means stale
};

struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

void tokenize_word(const VocabData& v, std::string_view word, std::vector<Symbol>& sym, std::string& key,
                   std::vector<int32_t>& out) {
    if (v.ignore_merges) {
        const int32_t id = v.find(word);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    sym.clear();
    for (size_t off = 0; off < word.size();) {
        const size_t len = std::min(unicode::utf8_len(static_cast<uint8_t>(word[off])), word.size() - off);
        const int index = static_cast<int>(sym.size());
        sym.push_back(Symbol{index - 1, off + len == word.size() ? -1 : index + 1, static_cast<uint32_t>(off),
                             static_cast<uint32_t>(len)});
        off += len;
    }
    if (sym.empty()) return;

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        key.assign(word.substr(sym[left].start, sym[left].n));
        key += ' ';
        key.append(word.substr(sym[right].start, sym[right].n));
        auto it = v.merge_rank.find(std::string_view(key));
        if (it == v.merge_rank.end()) return;
        queue.push(Bigram{it->second, left, right, sym[left].n + sym[right].n});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol& left = sym[b.left];
        Symbol& right = sym[b.right];
        if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
        left.n += right.n;
        right.n = 0;
        left.next = right.next;
        if (right.next >= 0) sym[right.next].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
    }

    for (int i = 0; i != -1; i = sym[i].next) {
        const std::string_view piece = word.substr(sym[i].start, sym[i].n);
        const int32_t id = v.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        // As llama.cpp: each raw byte of the piece that is itself a token; the others are dropped.
        for (char c : piece) {
            const int32_t bt = v.byte_token[static_cast<uint8_t>(c)];
            if (bt >= 0) out.push_back(bt);
        }
    }
}

}  // namespace

void bpe_tokenize(const VocabData& v, std::string_view text, std::vector<int32_t>& out) {
    if (!v.pretokenizer) return;
    WordList words;
    v.pretokenizer->split(text, words);
    std::vector<Symbol> sym;
    std::string key;
    for (size_t w = 0; w < words.size(); ++w) tokenize_word(v, words[w], sym, key, out);
}

}  // namespace llama_crab::vocab_detail
