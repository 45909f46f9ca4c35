// bench: prompt-processing and generation speed, reported like llama-bench (tokens/s, mean and stddev); with
// --parallel, batched decode like llama-batched-bench: N sequences prefilled together, then decoded together (one
// token of each sequence per step), reported as aggregate tokens/s.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "cli_common.h"
#include "cli_flags.h"
#include "commands.h"

namespace llama_crab::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
    std::string model;
    std::string prompts = "512";
    std::string gens = "128";
    std::string threads = "2";
    int reps = 3;
    int n_batch = 512;
    int n_ubatch = 512;
    std::string kv_type = "f16";
    bool json_out = false;
    std::string parallel;  // empty: the llama-bench tests; else sequence counts, comma-separated
};

struct Stats {
    double mean = 0, stddev = 0;
    std::vector<double> samples;
};

Stats stats_of(std::vector<double> v) {
    Stats s;
    s.samples = v;
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= (double)v.size();
    if (v.size() > 1) {
        double ss = 0;
        for (double x : v) ss += (x - s.mean) * (x - s.mean);
        s.stddev = std::sqrt(ss / (double)(v.size() - 1));
    }
    return s;
}

// Time of one run: a prompt of n_prompt tokens in n_batch chunks, then n_gen single-token decodes.
Result<double> time_run(Context& ctx, int n_prompt, int n_gen, int n_batch, std::mt19937& rng) {
    ctx.kv_clear();
    std::uniform_int_distribution<Token> pick(0, (Token)ctx.n_vocab() - 1);
    const auto t0 = Clock::now();
    Pos pos = 0;
    Batch b;
    for (int done = 0; done < n_prompt;) {
        const int n = std::min(n_batch, n_prompt - done);
        b.clear();
        for (int i = 0; i < n; ++i) b.add(pick(rng), pos++, {0}, i == n - 1);
        LC_TRY(ctx.decode(b));
        done += n;
    }
    for (int i = 0; i < n_gen; ++i) {
        b.clear();
        b.add(pick(rng), pos++, {0}, true);
        LC_TRY(ctx.decode(b));
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Times of one batched run: N prompts of n_prompt tokens decoded together in n_batch chunks, then n_gen steps of
// N tokens (one per sequence). Returns {prefill seconds, generation seconds}.
Result<std::pair<double, double>> time_parallel(Context& ctx, int n_seqs, int n_prompt, int n_gen, int n_batch,
                                                std::mt19937& rng) {
    ctx.kv_clear();
    std::uniform_int_distribution<Token> pick(0, (Token)ctx.n_vocab() - 1);
    Batch b;
    const auto t0 = Clock::now();
    for (int s = 0; s < n_seqs; ++s) {
        for (int i = 0; i < n_prompt; ++i) {
            b.add(pick(rng), i, {s}, i == n_prompt - 1);
            if ((int)b.size() == n_batch) {
                LC_TRY(ctx.decode(b));
                b.clear();
            }
        }
    }
    if (b.size() > 0) LC_TRY(ctx.decode(b));
    const auto t1 = Clock::now();
    for (int i = 0; i < n_gen; ++i) {
        b.clear();
        for (int s = 0; s < n_seqs; ++s) b.add(pick(rng), n_prompt + i, {s}, true);
        LC_TRY(ctx.decode(b));
    }
    const auto t2 = Clock::now();
    return std::make_pair(std::chrono::duration<double>(t1 - t0).count(),
                          std::chrono::duration<double>(t2 - t1).count());
}

// bench --parallel: for every thread count, prompt size, generation length and sequence count, the prefill and
// the aggregate generation speed (all sequences' tokens / time), mean and stddev over the repetitions.
void run_parallel(const BenchOptions& o, const Model& m, std::shared_ptr<const Model> model,
                  const std::vector<int>& prompts, const std::vector<int>& gens, const std::vector<int>& threads,
                  KvType kv) {
    auto seqs = parse_int_list(o.parallel, "--parallel");
    if (!seqs.ok()) return fail(seqs.error());
    for (int ns : *seqs) {
        if (ns < 1 || ns > 64) {
            return fail(Error{ErrorCode::kInvalidArgument, fmt::format("--parallel {}: sequence counts are 1..64", ns)});
        }
    }
    nlohmann::json out = nlohmann::json::array();
    if (!o.json_out) {
        std::printf("| model | isa | threads | PP | TG | B | S_PP t/s | S_TG t/s |\n"
                    "|---|---|---|---|---|---|---|---|\n");
    }
    std::mt19937 rng(1234);
    for (int nt : threads) {
        for (int np : prompts) {
            for (int ng : gens) {
                for (int ns : *seqs) {
                    ContextParams cp;
                    cp.n_ctx = std::max(ns * (np + ng) + 16, 16);
                    cp.n_batch = std::min(o.n_batch, cp.n_ctx);
                    cp.n_ubatch = std::min(o.n_ubatch, cp.n_batch);
                    cp.n_threads = nt;
                    cp.n_seq_max = ns;
                    cp.kv_type = kv;
                    auto ctx = Context::create(model, cp);
                    if (!ctx.ok()) return fail(ctx.error());
                    auto warm = time_parallel(**ctx, ns, np, std::min(ng, 1), cp.n_batch, rng);
                    if (!warm.ok()) return fail(warm.error());
                    std::vector<double> pp, tg;
                    for (int r = 0; r < o.reps; ++r) {
                        auto t = time_parallel(**ctx, ns, np, ng, cp.n_batch, rng);
                        if (!t.ok()) return fail(t.error());
                        pp.push_back(t->first > 0 ? (double)ns * np / t->first : 0.0);
                        tg.push_back(t->second > 0 ? (double)ns * ng / t->second : 0.0);
                    }
                    const Stats sp = stats_of(pp), sg = stats_of(tg);
                    if (o.json_out) {
                        out.push_back({{"model_filename", m.path()}, {"model_type", m.description()},
                                       {"model_size", m.size_bytes()}, {"model_n_params", m.n_params()},
                                       {"n_batch", cp.n_batch}, {"n_ubatch", cp.n_ubatch}, {"n_threads", nt},
                                       {"isa", kernel_isa_name()}, {"type_k", o.kv_type}, {"type_v", o.kv_type},
                                       {"n_prompt", np}, {"n_gen", ng}, {"n_parallel", ns},
                                       {"avg_ts", sg.mean}, {"stddev_ts", sg.stddev}, {"samples_ts", sg.samples},
                                       {"pp_avg_ts", sp.mean}, {"pp_stddev_ts", sp.stddev}});
                    } else {
                        std::printf("| %s | %s | %d | %d | %d | %d | %.2f ± %.2f | %.2f ± %.2f |\n",
                                    m.description().c_str(), kernel_isa_name(), nt, np, ng, ns, sp.mean, sp.stddev,
                                    sg.mean, sg.stddev);
                        std::fflush(stdout);
                    }
                }
            }
        }
    }
    if (o.json_out) std::printf("%s\n", out.dump(2).c_str());
}

void run_bench(const BenchOptions& o) {
    auto prompts = parse_int_list(o.prompts, "-p");
    auto gens = parse_int_list(o.gens, "-n");
    auto threads = parse_int_list(o.threads, "-t");
    if (!prompts.ok()) return fail(prompts.error());
    if (!gens.ok()) return fail(gens.error());
    if (!threads.ok()) return fail(threads.error());
    auto kv = parse_kv_type(o.kv_type);
    if (!kv.ok()) return fail(kv.error());
    auto model = load_model(o.model);
    if (!model.ok()) return fail(model.error());
    const Model& m = **model;
    if (!o.parallel.empty()) return run_parallel(o, m, *model, *prompts, *gens, *threads, *kv);

    // Tests in llama-bench's order: every prompt size (n_gen 0), then every generation length (n_prompt 0).
    std::vector<std::pair<int, int>> tests;
    for (int p : *prompts) {
        if (p > 0) tests.emplace_back(p, 0);
    }
    for (int g : *gens) {
        if (g > 0) tests.emplace_back(0, g);
    }
    nlohmann::json out = nlohmann::json::array();
    if (!o.json_out) {
        std::printf("| model | size | params | isa | threads | test | t/s |\n|---|---|---|---|---|---|---|\n");
    }
    std::mt19937 rng(1234);
    for (int nt : *threads) {
        for (const auto& [np, ng] : tests) {
            ContextParams cp;
            cp.n_ctx = std::max(np + ng, 16);
            cp.n_batch = std::min(o.n_batch, cp.n_ctx);
            cp.n_ubatch = std::min(o.n_ubatch, cp.n_batch);
            cp.n_threads = nt;
            cp.kv_type = *kv;
            auto ctx = Context::create(*model, cp);
            if (!ctx.ok()) return fail(ctx.error());
            auto warm = time_run(**ctx, np, ng > 0 ? 1 : 0, cp.n_batch, rng);  // warm-up: page in weights, size buffers
            if (!warm.ok()) return fail(warm.error());
            std::vector<double> ts;
            for (int r = 0; r < o.reps; ++r) {
                auto t = time_run(**ctx, np, ng, cp.n_batch, rng);
                if (!t.ok()) return fail(t.error());
                ts.push_back((double)(np + ng) / *t);
            }
            const Stats s = stats_of(ts);
            const std::string test = np > 0 ? fmt::format("pp{}", np) : fmt::format("tg{}", ng);
            if (o.json_out) {
                out.push_back({{"model_filename", m.path()}, {"model_type", m.description()}, {"model_size", m.size_bytes()},
                               {"model_n_params", m.n_params()}, {"n_batch", cp.n_batch}, {"n_ubatch", cp.n_ubatch},
                               {"n_threads", nt}, {"isa", kernel_isa_name()}, {"type_k", o.kv_type}, {"type_v", o.kv_type}, {"n_prompt", np}, {"n_gen", ng},
                               {"avg_ts", s.mean}, {"stddev_ts", s.stddev}, {"samples_ts", s.samples}});
            } else {
                std::printf("| %s | %.2f MiB | %.2f M | %s | %d | %s | %.2f ± %.2f |\n", m.description().c_str(),
                            (double)m.size_bytes() / (1024.0 * 1024.0), (double)m.n_params() / 1e6, kernel_isa_name(), nt,
                            test.c_str(), s.mean, s.stddev);
                std::fflush(stdout);
            }
        }
    }
    if (o.json_out) std::printf("%s\n", out.dump(2).c_str());
}

}  // namespace

void register_bench_commands(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "prompt-processing and generation speed (like llama-bench)");
    auto o = std::make_shared<BenchOptions>();
    cmd->add_option("--model,-m", o->model, "GGUF model file (default: the built-in model)");
    cmd->add_option("-p,--n-prompt", o->prompts, "prompt sizes, comma-separated")->default_val("512");
    cmd->add_option("-n,--n-gen", o->gens, "generation lengths, comma-separated")->default_val("128");
    cmd->add_option("-t,--threads", o->threads, "thread counts, comma-separated")
        ->default_val("2")
        ->check(int_list_range(1, kMaxThreads));
    cmd->add_option("-r,--repetitions", o->reps, "repetitions")->default_val(3)->check(CLI::Range(1, 1000));
    cmd->add_option("-b,--batch-size", o->n_batch, "batch size")->default_val(512);
    cmd->add_option("--ubatch-size,--ub", o->n_ubatch, "micro-batch size")->default_val(512);
    cmd->add_option("--kv-type", o->kv_type, "KV cache type: f16 or f32")->default_val("f16");
    cmd->add_flag("--json", o->json_out, "print JSON (llama-bench field names)");
    cmd->add_option("--parallel,--npl", o->parallel,
                    "batched decode: sequence counts, comma-separated (each -p prompt then -n steps of one token per "
                    "sequence, like llama-batched-bench -npl; avg_ts is the aggregate generation speed)");
    cmd->callback([o] { run_bench(*o); });
}

}  // namespace llama_crab::cli
