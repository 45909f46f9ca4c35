// stateful_chat: a multi-turn chat where each turn prefills only the new message.
//
//   example_stateful_chat MODEL.gguf ["first message" "second message" ...]
#include <cstdio>
#include <string>
#include <vector>

#include "llama_crab/chat_session.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf [messages...]\n", argv[0]);
        return 2;
    }
    std::vector<std::string> user_turns;
    for (int i = 2; i < argc; ++i) user_turns.push_back(argv[i]);
    if (user_turns.empty()) user_turns = {"Tell me a story about a cat.", "What was the cat's name?", "And then?"};

    auto llama = llama_crab::Llama::load(llama_crab::LlamaParams(argv[1]).with_n_ctx(2048));
    if (!llama.ok()) {
        std::fprintf(stderr, "error: %s\n", llama.error().to_string().c_str());
        return 1;
    }
    llama_crab::ChatSessionOptions session_options;
    session_options.system_prompt = "You are a helpful storyteller.";
    llama_crab::ChatSession chat(*llama, session_options);

    llama_crab::ChatOptions options;
    options.max_tokens = 32;
    options.sampling.temperature = 0.0f;
    for (const auto& message : user_turns) {
        auto turn = chat.send(message, options);
        if (!turn.ok()) {
            std::fprintf(stderr, "error: %s\n", turn.error().to_string().c_str());
            return 1;
        }
        const auto& c = turn->completion;
        // The line the test reads: how much of the prompt was decoded this turn.
        std::printf("turn prompt=%d cached=%d prefilled=%d shifted=%d\n", c.n_prompt_tokens, c.n_cached_prompt_tokens,
                    c.n_prompt_tokens - c.n_cached_prompt_tokens, turn->context_shifted ? 1 : 0);
        std::printf("user: %s\nassistant: %s\n", message.c_str(), c.text.c_str());
    }
    return 0;
}
