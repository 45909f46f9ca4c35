// Byte-level BPE as in llama.cpp (llm_tokenizer_bpe): the pre-tokenizer cuts the text into words; in each word,
// starting from UTF-8 characters, the adjacent pair with the lowest merge rank is merged (leftmost on ties) until no
// pair has a rank. A final piece that is not a vocabulary entry falls back to one-byte tokens.
#include <algorithm>

#include "vocab/unicode.h"
#include "vocab/vocab_data.h"

namespace llama_crab::vocab_detail {

namespace {

struct Symbol {
    int prev;
    int next;
    uint32_t start;
    uint32_t n;  // 0 once merged into its left neighbour
    int32_t id;  // token id of the symbol's text, -1 when it is not a token
};

struct Bigram {
    int32_t rank;
    int left;
    int right;
    uint32_t size;   // left.n + right.n when queued; symbols only grow, so a mismatch means stale
    int32_t result;  // token id of the merged text; -2 when not known yet
};

struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

// The token of one character: a table lookup for the byte-level alphabet, the hash map otherwise.
int32_t char_id(const VocabData& v, std::string_view c) {
    const auto b0 = static_cast<uint8_t>(c[0]);
    if (c.size() == 1 && b0 < 0x80) return v.char_token[b0];
    if (c.size() == 2 && b0 >= 0xC2 && b0 <= 0xDF && (static_cast<uint8_t>(c[1]) & 0xC0) == 0x80) {
        return v.char_token[((b0 & 0x1Fu) << 6) | (static_cast<uint8_t>(c[1]) & 0x3Fu)];
    }
    return v.find(c);
}

void tokenize_word(const VocabData& v, std::string_view word, std::vector<Symbol>& sym, std::vector<Bigram>& heap,
                   std::string& key, std::vector<int32_t>& out) {
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
                             static_cast<uint32_t>(len), char_id(v, word.substr(off, len))});
        off += len;
    }
    if (sym.empty()) return;
    const BigramOrder order;
    heap.clear();
    auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const Symbol& l = sym[left];
        const Symbol& r = sym[right];
        Bigram b{0, left, right, l.n + r.n, -2};
        if (l.id >= 0 && r.id >= 0) {
            // Both sides are tokens: every merge of two tokens is in merge_by_ids.
            auto it = v.merge_by_ids.find((static_cast<uint64_t>(l.id) << 32) | static_cast<uint32_t>(r.id));
            if (it == v.merge_by_ids.end()) return;
            b.rank = it->second.rank;
            b.result = it->second.result;
        } else {
            key.assign(word.substr(l.start, l.n));
            key += ' ';
            key.append(word.substr(r.start, r.n));
            auto it = v.merge_rank.find(std::string_view(key));
            if (it == v.merge_rank.end()) return;
            b.rank = it->second;
        }
        heap.push_back(b);
        std::push_heap(heap.begin(), heap.end(), order);
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), order);
        const Bigram b = heap.back();
        heap.pop_back();
        Symbol& left = sym[b.left];
        Symbol& right = sym[b.right];
        if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
        left.n += right.n;
        right.n = 0;
        left.id = b.result != -2 ? b.result : v.find(word.substr(left.start, left.n));
        left.next = right.next;
        if (right.next >= 0) sym[right.next].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
    }

    for (int i = 0; i != -1; i = sym[i].next) {
        if (sym[i].id >= 0) {
            out.push_back(sym[i].id);
            continue;
        }
        // As llama.cpp: each raw byte of the piece that is itself a token; the others are dropped.
        for (char c : word.substr(sym[i].start, sym[i].n)) {
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
    std::vector<Bigram> heap;
    std::string key;
    for (size_t w = 0; w < words.size(); ++w) tokenize_word(v, words[w], sym, heap, key, out);
}

}  // namespace llama_crab::vocab_detail
