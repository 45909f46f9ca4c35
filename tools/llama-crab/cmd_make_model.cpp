// make-model: a random-weight model of any supported family and shape, for tests and benchmarks.
#include <fmt/format.h>

#include <cstdio>

#include "cli_common.h"
#include "commands.h"
#include "model/random_model.h"

namespace llama_crab::cli {

void register_make_model_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("make-model", "write a random-weight model of any supported family");
    struct Options {
        RandomModelSpec spec;
        std::string type = "f32";
        std::string output_type;
        std::string out;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("--arch", o->spec.arch, "llama, qwen2, qwen3, gemma2, gemma3 or phi3")->default_val("llama");
    cmd->add_option("--n-embd", o->spec.n_embd, "embedding size")->default_val(256);
    cmd->add_option("--n-layer", o->spec.n_layer, "layers")->default_val(2);
    cmd->add_option("--n-head", o->spec.n_head, "attention heads")->default_val(8);
    cmd->add_option("--n-head-kv", o->spec.n_head_kv, "KV heads")->default_val(2);
    cmd->add_option("--n-ff", o->spec.n_ff, "feed-forward size")->default_val(768);
    cmd->add_option("--head-dim", o->spec.head_dim, "head size when not n_embd / n_head (qwen3, gemma)");
    cmd->add_option("--n-swa", o->spec.n_swa, "sliding window of gemma's local layers (default: gemma3 512, gemma2 4096)");
    cmd->add_option("--n-vocab", o->spec.n_vocab, "vocabulary size (default: the vocabulary's)");
    cmd->add_option("--ctx-train", o->spec.n_ctx_train, "trained context length")->default_val(2048);
    cmd->add_option("--n-rot", o->spec.n_rot, "rotary dimensions when fewer than the head size (phi3: Phi-4-mini)");
    cmd->add_option("--rope-scaling", o->spec.rope_scaling, "linear, yarn, or longrope (phi3: long/short factor tensors)");
    cmd->add_option("--rope-factor", o->spec.rope_scaling_factor, "RoPE scaling factor (longrope: context / original context)")->default_val(4.0f);
    cmd->add_option("--ctx-orig", o->spec.n_ctx_orig, "rope.scaling.original_context_length (default: --ctx-train / --rope-factor)");
    cmd->add_option("--vocab-from", o->spec.vocab_from, "copy the tokenizer of this GGUF file");
    cmd->add_option("--type", o->type, "weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k..q6_k, or q4_k_m")->default_val("f32");
    cmd->add_option("--output-type", o->output_type, "type of output.weight (default: --type; q6_k for q4_k_m)");
    cmd->add_option("--seed", o->spec.seed, "random seed")->default_val(1);
    cmd->add_option("--threads,-t", o->spec.n_threads, "threads (default: all cores)");
    cmd->add_flag("--tied", o->spec.tied_output, "no output.weight: logits use token_embd");
    cmd->add_option("out", o->out, "output GGUF file")->required();
    cmd->callback([o] {
        std::string type = o->type;
        if (type == "q4_k_m" || type == "Q4_K_M") {
            type = "q4_k";
            if (o->output_type.empty()) o->output_type = "q6_k";
        }
        auto t = type_from_name(type);
        if (!t) return fail(fmt::format("--type: unknown type '{}'", o->type));
        o->spec.type = *t;
        if (!o->output_type.empty()) {
            auto ot = type_from_name(o->output_type);
            if (!ot) return fail(fmt::format("--output-type: unknown type '{}'", o->output_type));
            o->spec.output_type = *ot;
            o->spec.output_type_set = true;
        }
        o->spec.progress = [](float f) { std::fprintf(stderr, "\rmaking model %3d%%", (int)(f * 100.0f)); };
        auto st = write_random_model(o->spec, o->out);
        std::fprintf(stderr, "\n");
        if (!st.ok()) return fail(st.error());
        std::printf("wrote %s\n", o->out.c_str());
    });
}

}  // namespace llama_crab::cli
