// session_resume: suspend a generation in one process and resume it in another, KV cache included.
//
//   example_session_resume MODEL save FILE     generate the first part, save the session to FILE
//   example_session_resume MODEL resume FILE   load FILE in a new process and continue where it stopped
//   example_session_resume MODEL run           the uninterrupted generation, for comparison
//
// The resumed process decodes only the last saved token again (its logits pick the next token), so the text it
// continues with is exactly what the uninterrupted run produces. A session file from another model, a damaged or
// truncated one, is refused with a typed error before anything is loaded.
#include <cstdio>
#include <string>
#include <vector>

#include "llama_crab/llama.h"

using namespace llama_crab;

namespace {

constexpr int kPart = 16;  // tokens generated before the save, and after the resume
const char* kPrompt = "Once upon a time, there was a little girl named Lily. She loved to";

void print_completion(const char* label, const Completion& c) {
    std::printf("%s:%s\n", label, c.text.c_str());
    std::printf("tokens:");
    for (Token t : c.tokens) std::printf(" %d", t);
    std::printf("\n");
}

Result<Llama> load(const std::string& model) { return Llama::load(LlamaParams(model).with_n_ctx(256)); }

int fail(const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.to_string().c_str());
    return 1;
}

int save(const std::string& model, const std::string& file) {
    auto llama = load(model);
    if (!llama.ok()) return fail(llama.error());
    auto c = llama->create_completion(kPrompt, CompletionOptions::greedy(kPart));
    if (!c.ok()) return fail(c.error());
    print_completion("generated", *c);
    // The session holds every token the KV cache has seen: the prompt and the generated tokens.
    if (auto st = llama->save_session(file); !st.ok()) return fail(st.error());
    std::printf("saved %zu tokens to %s\n", llama->kv_tokens().size(), file.c_str());
    return 0;
}

int resume(const std::string& model, const std::string& file) {
    auto llama = load(model);
    if (!llama.ok()) return fail(llama.error());
    auto n = llama->load_session(file);
    if (!n.ok()) return fail(n.error());
    std::printf("restored %d tokens from %s\n", *n, file.c_str());
    // Continue from what the session holds (kv_tokens() reads it from the context's KV cells).
    const std::vector<Token> so_far = llama->kv_tokens();
    auto c = llama->create_completion_tokens(so_far, CompletionOptions::greedy(kPart));
    if (!c.ok()) return fail(c.error());
    std::printf("reused %d of %d tokens from the session\n", c->n_cached_prompt_tokens, c->n_prompt_tokens);
    print_completion("continued", *c);
    return 0;
}

int run(const std::string& model) {
    auto llama = load(model);
    if (!llama.ok()) return fail(llama.error());
    auto c = llama->create_completion(kPrompt, CompletionOptions::greedy(2 * kPart));
    if (!c.ok()) return fail(c.error());
    print_completion("generated", *c);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string cmd = argc >= 3 ? argv[2] : "";
    if (argc == 4 && cmd == "save") return save(argv[1], argv[3]);
    if (argc == 4 && cmd == "resume") return resume(argv[1], argv[3]);
    if (argc == 3 && cmd == "run") return run(argv[1]);
    std::fprintf(stderr, "usage: %s MODEL save FILE | MODEL resume FILE | MODEL run\n", argv[0]);
    return 2;
}
