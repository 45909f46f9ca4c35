// SentencePiece-style tokenisation as in llama.cpp (llm_tokenizer_spm): start from UTF-8 characters, repeatedly merge
// the adjacent pair whose concatenation is the vocabulary entry with the highest score (leftmost on ties), and fall
// back to byte tokens for whatever is not a vocabulary entry at the end.
#include <algorithm>

#include "vocab/unicode.h"
#include "vocab/vocab_data.h"

namespace llama_crab::vocab_detail {

namespace {

struct Symbol {
    int prev;
    int next;
    uint32_t start;  // byte offset in the text; a symbol always covers text[start, start + n)
    uint32_t n;      // 0 once merged into its left neighbour
};

struct Bigram {
    int left;
    int right;
    float score;
    uint32_t size;  // left.n + right.n when queued: a later mismatch means the pair is stale
};

struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

void build_spm_pairs(VocabData& v) {
    for (const TokenData& t : v.tokens) {
        const std::string_view text = t.text;
        size_t prev = 0, prev_len = 0;
        for (size_t off = 0; off < text.size();) {
            const size_t len = std::min(unicode::utf8_len(static_cast<uint8_t>(text[off])), text.size() - off);
            if (off > 0) v.spm_pairs.insert(char_pair_key(text.substr(prev, prev_len), text.substr(off, len)));
            prev = off;
            prev_len = len;
            off += len;
        }
    }
}

void spm_tokenize(const VocabData& v, std::string_view text, std::vector<int32_t>& out) {
    if (text.empty()) return;
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    // Characters by their lead byte only, without validation, as llama.cpp splits them.
    for (size_t off = 0; off < text.size();) {
        const size_t len = std::min(unicode::utf8_len(static_cast<uint8_t>(text[off])), text.size() - off);
        const int index = static_cast<int>(sym.size());
        sym.push_back(Symbol{index - 1, off + len == text.size() ? -1 : index + 1, static_cast<uint32_t>(off),
                             static_cast<uint32_t>(len)});
        off += len;
    }

    std::vector<Bigram> heap;
    const BigramOrder order;
    auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const uint32_t size = sym[left].n + sym[right].n;
        const int32_t id = v.find(text.substr(sym[left].start, size));
        if (id < 0) return;
        heap.push_back(Bigram{left, right, v.tokens[id].score, size});
        std::push_heap(heap.begin(), heap.end(), order);
    };

    // Merge one run of symbols [first, last] that no merge can leave: where two adjacent characters never occur
    // together inside a token, the text is cut, and each run gives what the whole would give (llama.cpp merges the
    // whole text at once; a smaller heap is just faster).
    auto merge_run = [&](int first, int last) {
        heap.clear();
        for (int i = first + 1; i <= last; ++i) try_add(i - 1, i);
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), order);
            const Bigram b = heap.back();
            heap.pop_back();
            Symbol& left = sym[b.left];
            Symbol& right = sym[b.right];
            if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
            left.n += right.n;
            right.n = 0;
            left.next = right.next;
            if (right.next >= 0) sym[right.next].prev = b.left;
            // Neighbours outside the run cannot merge with it (that is why it is a run).
            if (left.prev >= first) try_add(left.prev, b.left);
            if (left.next >= 0 && left.next <= last) try_add(b.left, left.next);
        }
    };
    const int n = static_cast<int>(sym.size());
    int first = 0;
    for (int i = 1; i <= n; ++i) {
        const bool cut = i == n || !v.spm_pairs.count(char_pair_key(text.substr(sym[i - 1].start, sym[i - 1].n),
                                                                    text.substr(sym[i].start, sym[i].n)));
        if (!cut) continue;
        merge_run(first, i - 1);
        first = i;
    }

    for (int i = 0; i != -1; i = sym[i].next) {
        const std::string_view piece = text.substr(sym[i].start, sym[i].n);
        const int32_t id = v.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        // Byte fallback. llama.cpp throws when a byte has no token at all; we use <unk> then (or drop the byte).
        for (char c : piece) {
            const int32_t bt = v.byte_token[static_cast<uint8_t>(c)];
            if (bt >= 0) out.push_back(bt);
            else if (v.unk >= 0) out.push_back(v.unk);
        }
    }
}

}  // namespace llama_crab::vocab_detail
