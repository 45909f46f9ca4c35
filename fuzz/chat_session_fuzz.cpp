// libFuzzer target: hostile chat-session files into ChatSession::load. Must never crash, hang or throw; a refused
// file leaves the session (history, options, KV) exactly as it was; an accepted one saves and loads again.
//
// A session file is a header, a SHA-256 over the history JSON, the JSON and a KV state. Plain random bytes
// stop at the magic or the checksum, so the first input byte picks what the rest of the input replaces in a
// valid file written at start-up (and the checksum is recomputed where that keeps the file self-consistent):
//   0: the whole file;  1: the history JSON (digest fixed);  2: the state bytes;
//   3: (offset, xor) byte edits over the whole file, the digest left as it falls.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "llama_crab/chat_session.h"
#include "llama_crab/llama.h"
#include "model/random_model.h"
#include "util/sha256.h"

namespace {

using namespace llama_crab;

constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 64;  // magic, version, flags, JSON length, SHA-256 hex

struct Fixture {
    std::string dir;
    std::unique_ptr<Llama> llama;  // Llama is movable, not copyable: kept on the heap for the fixture's lifetime
    std::unique_ptr<ChatSession> chat;
    std::vector<uint8_t> valid;  // a session file saved from `chat` after one turn
    std::vector<ChatMessage> history;
};

std::vector<uint8_t> read_all(const std::string& path) {
    std::vector<uint8_t> out;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return out;
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.insert(out.end(), buf, buf + n);
    std::fclose(f);
    return out;
}

void write_all(const std::string& path, const std::vector<uint8_t>& bytes) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
    std::fclose(f);
}

Fixture& fixture() {
    static Fixture* fx = [] {
        auto* f = new Fixture;
        char tmpl[] = "/tmp/lc-chat-session-fuzz-XXXXXX";
        if (!mkdtemp(tmpl)) std::abort();
        f->dir = tmpl;
        RandomModelSpec spec;
        spec.n_embd = 64;
        spec.n_layer = 1;
        spec.n_head = 4;
        spec.n_head_kv = 2;
        spec.n_ff = 128;
        spec.n_ctx_train = 256;
        const std::string model = f->dir + "/model.gguf";
        if (!write_random_model(spec, model).ok()) std::abort();
        auto llama = Llama::load(LlamaParams(model).with_n_ctx(256));
        if (!llama.ok()) std::abort();
        f->llama = std::make_unique<Llama>(std::move(*llama));
        f->chat = std::make_unique<ChatSession>(*f->llama, ChatSessionOptions{"You are a fuzzer.", std::nullopt, 0});
        ChatOptions opts;
        opts.max_tokens = 4;
        opts.sampling.temperature = 0.0f;
        if (!f->chat->send("Hello", opts).ok()) std::abort();
        const std::string path = f->dir + "/valid.session";
        if (!f->chat->save(path).ok()) std::abort();
        f->valid = read_all(path);
        f->history = f->chat->messages();
        if (f->valid.size() < kHeaderBytes + 8) std::abort();
        return f;
    }();
    return *fx;
}

uint64_t get_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

void put_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

// The valid file with its history JSON replaced by `json` (length and digest made to match).
std::vector<uint8_t> with_json(const std::vector<uint8_t>& valid, const uint8_t* json, size_t n) {
    const uint64_t old_len = get_u64(valid.data() + 16);
    std::vector<uint8_t> out(valid.begin(), valid.begin() + (ptrdiff_t)kHeaderBytes);
    put_u64(out.data() + 16, n);
    const std::string digest = sha256_hex(json, n);
    std::memcpy(out.data() + 24, digest.data(), 64);
    out.insert(out.end(), json, json + n);
    out.insert(out.end(), valid.begin() + (ptrdiff_t)(kHeaderBytes + old_len), valid.end());
    return out;
}

// The valid file with its state bytes replaced by `state` (length field made to match).
std::vector<uint8_t> with_state(const std::vector<uint8_t>& valid, const uint8_t* state, size_t n) {
    const uint64_t json_len = get_u64(valid.data() + 16);
    std::vector<uint8_t> out(valid.begin(), valid.begin() + (ptrdiff_t)(kHeaderBytes + json_len));
    out.resize(out.size() + 8);
    put_u64(out.data() + out.size() - 8, n);
    out.insert(out.end(), state, state + n);
    return out;
}

std::vector<uint8_t> with_edits(std::vector<uint8_t> file, const uint8_t* data, size_t size) {
    for (size_t i = 0; i + 4 <= size; i += 4) {
        const uint32_t off = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16;
        if (data[i + 3] == 0 && off < file.size()) {
            file.resize(off);  // an edit of 0 truncates there
        } else if (!file.empty()) {
            file[off % file.size()] ^= data[i + 3];
        }
    }
    return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Fixture& fx = fixture();
    if (size == 0) return 0;
    std::vector<uint8_t> file;
    switch (data[0] % 4) {
        case 0: file.assign(data + 1, data + size); break;
        case 1: file = with_json(fx.valid, data + 1, size - 1); break;
        case 2: file = with_state(fx.valid, data + 1, size - 1); break;
        default: file = with_edits(fx.valid, data + 1, size - 1); break;
    }
    const std::string path = fx.dir + "/input.session";
    write_all(path, file);
    const Status st = fx.chat->load(path);
    if (!st.ok()) {
        // Refused: a message, and nothing changed.
        if (st.error().message.empty()) std::abort();
        if (fx.chat->messages().size() != fx.history.size()) std::abort();
        for (size_t i = 0; i < fx.history.size(); ++i) {
            if (fx.chat->messages()[i].role != fx.history[i].role || fx.chat->messages()[i].content != fx.history[i].content) std::abort();
        }
        return 0;
    }
    // Accepted: what was loaded saves and loads again, to the same history.
    const std::vector<ChatMessage> loaded = fx.chat->messages();
    const std::string again = fx.dir + "/again.session";
    if (!fx.chat->save(again).ok()) std::abort();
    if (!fx.chat->load(again).ok()) std::abort();
    if (fx.chat->messages().size() != loaded.size()) std::abort();
    for (size_t i = 0; i < loaded.size(); ++i) {
        if (fx.chat->messages()[i].content != loaded[i].content) std::abort();
    }
    // Back to the reference session for the next input.
    write_all(path, fx.valid);
    if (!fx.chat->load(path).ok()) std::abort();
    return 0;
}
