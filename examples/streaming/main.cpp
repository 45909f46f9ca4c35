// streaming: print the text as it is generated, and stop early from the callback.
//
//   example_streaming MODEL.gguf ["prompt"] [max_tokens] [stop_after_n_tokens]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "llama_crab/llama.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf [\"prompt\"] [max_tokens] [stop_after_n_tokens]\n", argv[0]);
        return 2;
    }
    const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
    llama_crab::CompletionOptions options;
    options.max_tokens = argc > 3 ? std::atoi(argv[3]) : 64;
    const int stop_after = argc > 4 ? std::atoi(argv[4]) : 0;  // 0: never
    options.sampling.temperature = 0.0f;                      // greedy: reproducible
    options.stop = {"\n\n"};                                   // a stop string is never printed

    auto llama = llama_crab::Llama::load(llama_crab::LlamaParams(argv[1]));
    if (!llama.ok()) {
        std::fprintf(stderr, "error: %s\n", llama.error().to_string().c_str());
        return 1;
    }
    auto out = llama->create_completion_stream(prompt, options, [&](const llama_crab::CompletionChunk& chunk) {
        // chunk.text is always whole UTF-8 characters (possibly empty while a character or stop string is pending).
        std::fwrite(chunk.text.data(), 1, chunk.text.size(), stdout);
        std::fflush(stdout);
        const bool enough = stop_after > 0 && chunk.n_generated >= stop_after;
        return enough ? llama_crab::StreamAction::Stop : llama_crab::StreamAction::Continue;
    });
    if (!out.ok()) {
        std::fprintf(stderr, "\nerror: %s\n", out.error().to_string().c_str());
        return 1;
    }
    std::printf("\n");
    std::fprintf(stderr, "[%zu tokens, stop: %s]\n", out->tokens.size(), llama_crab::stop_reason_name(out->stop_reason));
    return 0;
}
