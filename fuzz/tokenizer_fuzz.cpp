// libFuzzer target: arbitrary bytes into tokenize and detokenize with the Llama SentencePiece vocab and BPE vocabs
// (Llama 3 and DeepSeek LLM, whose pre-tokenizers exercise different regexes). Must never crash; the streaming
// decoder must agree with detokenize. Test data: $LLAMA_CRAB_TESTDATA_DIR, default /work/shared/testdata.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "vocab/vocab.h"

namespace {

std::shared_ptr<const llama_crab::Vocab> load(const char* name) {
    const char* env = std::getenv("LLAMA_CRAB_TESTDATA_DIR");
    const std::string path = std::string(env ? env : "/work/shared/testdata") + "/vocab/" + name;
    auto file = llama_crab::GgufFile::open(path);
    if (!file.ok()) {
        std::fprintf(stderr, "tokenizer_fuzz: %s\n", file.error().to_string().c_str());
        std::abort();
    }
    auto vocab = llama_crab::Vocab::from_gguf(*file);
    if (!vocab.ok()) {
        std::fprintf(stderr, "tokenizer_fuzz: %s\n", vocab.error().to_string().c_str());
        std::abort();
    }
    return *vocab;
}

const std::vector<std::shared_ptr<const llama_crab::Vocab>>& vocabs() {
    static const std::vector<std::shared_ptr<const llama_crab::Vocab>> v = {
        load("ggml-vocab-llama-spm.gguf"), load("ggml-vocab-llama-bpe.gguf"), load("ggml-vocab-deepseek-llm.gguf")};
    return v;
}

void check_stream(const std::shared_ptr<const llama_crab::Vocab>& v, const std::vector<int32_t>& ids, bool rs,
                  bool us) {
    llama_crab::StreamingDecoder dec(v, rs, us);
    std::string streamed;
    for (int32_t id : ids) streamed += dec.push(id);
    streamed += dec.finish();
    if (streamed != v->detokenize(ids, rs, us)) {
        std::fprintf(stderr, "tokenizer_fuzz: streaming decoder differs from detokenize\n");
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto& all = vocabs();
    const auto& v = all[(flags & 0x03u) % all.size()];
    const bool add_special = flags & 0x04;
    const bool parse_special = flags & 0x08;
    const bool remove_special = flags & 0x10;
    const bool unparse_special = flags & 0x20;

    const std::vector<int32_t> ids = v->tokenize(text, add_special, parse_special);
    for (int32_t id : ids) {
        if (id < 0 || id >= v->n_tokens()) std::abort();
    }
    (void)v->detokenize(ids, remove_special, unparse_special);
    check_stream(v, ids, remove_special, unparse_special);

    // The same bytes as a stream of token ids, including out-of-range ones.
    std::vector<int32_t> raw_ids(text.size() / 4);
    if (!raw_ids.empty()) std::memcpy(raw_ids.data(), text.data(), raw_ids.size() * 4);
    for (int32_t& id : raw_ids) {
        if (flags & 0x40) id = static_cast<int32_t>(static_cast<uint32_t>(id) % static_cast<uint32_t>(v->n_tokens()));
    }
    for (int32_t id : raw_ids) (void)v->token_to_piece(id, unparse_special);
    check_stream(v, raw_ids, remove_special, unparse_special);
    return 0;
}
