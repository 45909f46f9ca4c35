// simple: load a model and complete a prompt.
//
//   example_simple MODEL.gguf ["prompt"] [max_tokens]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "llama_crab/llama.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf [\"prompt\"] [max_tokens]\n", argv[0]);
        return 2;
    }
    const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
    const int max_tokens = argc > 3 ? std::atoi(argv[3]) : 64;

    auto llama = llama_crab::Llama::load(llama_crab::LlamaParams(argv[1]).with_n_ctx(2048));
    if (!llama.ok()) {
        std::fprintf(stderr, "error: %s\n", llama.error().to_string().c_str());
        return 1;
    }
    // Greedy decoding, so the output is the same on every run.
    auto out = llama->create_completion(prompt, llama_crab::CompletionOptions::greedy(max_tokens));
    if (!out.ok()) {
        std::fprintf(stderr, "error: %s\n", out.error().to_string().c_str());
        return 1;
    }
    std::printf("%s%s\n", prompt.c_str(), out->text.c_str());
    std::fprintf(stderr, "[%d prompt tokens, %d generated at %.1f tok/s, stop: %s]\n", out->n_prompt_tokens,
                 out->timings.n_decode, out->timings.decode_tok_per_s, llama_crab::stop_reason_name(out->stop_reason));
    return 0;
}
