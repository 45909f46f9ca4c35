// bench-cache: time to first token of a chat turn whose prompt starts with a known prefix, for each way the prefix
// can be obtained: recomputed (cold), still in the KV cache, restored from a RamCache, from a DiskCache, and from
// a DiskCache in a freshly started process.
//
// What is timed, for a prompt of `prefix` random tokens followed by `suffix` new ones (the new chat turn):
//   cold         empty KV; prefill prefix + suffix, take the last logits, pick the greedy token.
//   kv_reuse     the KV already holds the prefix (the previous turn); prefill the suffix, logits, token.
//   ram_hit      empty KV; RamCache lookup of the whole prompt (returns the prefix), state_seq_import, prefill the
//                suffix, logits, token.
//   disk_hit     the same from a DiskCache in this process (its block files were just written: the OS page cache
//                holds them).
//   disk_restart the same in a child process: this binary re-executed with a hidden flag. The child loads the
//                model, opens the DiskCache and warms its thread pool and weights with an unrelated decode (what a
//                server does at startup; not timed), then evicts the block files from the OS page cache
//                (posix_fadvise DONTNEED, checked with mincore and reported) unless --keep-page-cache, and times
//                lookup + import + suffix prefill. One child per repetition, so no state survives between runs.
// Each figure is the median over --reps runs, after one untimed warm-up cold prefill. Every hit must give logits
// bit-identical to kv_reuse (same KV, same suffix computation); "logits_match" reports it.
// Bytes per token: size_bytes() of a cache holding only the prefix (everything counted against its budget:
// KV + token ids + bookkeeping in RAM; compressed block files + index estimate on disk), divided by the prefix.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <limits>
#include <random>
#include <sys/mman.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "llama_crab/cache.h"

namespace llama_crab::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct BenchCacheOptions {
    std::string model;
    std::string prefixes = "256,1024,4096";
    int suffix = 16;
    int threads = 0;
    int reps = 3;
    int n_batch = 512;
    std::string kv_type = "f16";
    std::string cache_dir;  // where the DiskCache lives (default: a fresh folder in the CLI cache folder)
    bool keep_page_cache = false;
    bool json_out = false;
    uint64_t seed = 1234;
    bool restart_child = false;  // hidden: run one disk_restart measurement and print it as JSON
};

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n == 0 ? 0.0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

// The prompt of one prefix length: the same in the parent and in a restarted child.
std::vector<Token> make_prompt(uint64_t seed, int prefix, int suffix, int64_t n_vocab) {
    std::mt19937_64 rng(seed * 1000003 + (uint64_t)prefix);
    std::vector<Token> t((size_t)(prefix + suffix));
    for (auto& x : t) x = (Token)(rng() % (uint64_t)n_vocab);
    return t;
}

// Decodes tokens [from, end) of the prompt at their positions, keeping only the last logits; returns the greedy
// token (the "first sampled token") and a hash of the logits row.
struct FirstToken {
    Token token = -1;
    uint64_t logits_hash = 0;
};

Result<FirstToken> prefill_and_sample(Context& ctx, const std::vector<Token>& prompt, size_t from, int n_batch) {
    if (from >= prompt.size()) return make_error(ErrorCode::kInternal, "bench-cache: nothing left to prefill");
    Batch b;
    for (size_t at = from; at < prompt.size();) {
        const size_t n = std::min(prompt.size() - at, (size_t)n_batch);
        b.clear();
        for (size_t i = at; i < at + n; ++i) b.add(prompt[i], (Pos)i, {0}, i + 1 == prompt.size());
        LC_TRY(ctx.decode(b));
        at += n;
    }
    const float* logits = ctx.logits_ith(-1);
    const int64_t nv = ctx.n_vocab();
    FirstToken out;
    out.token = (Token)(std::max_element(logits, logits + nv) - logits);
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the logits' bytes: equal hashes <=> equal rows here
    const auto* bytes = reinterpret_cast<const uint8_t*>(logits);
    for (size_t i = 0; i < (size_t)nv * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
    out.logits_hash = h;
    return out;
}

struct Timed {
    double ms = 0;
    double restore_ms = 0;  // lookup + import part (hits only)
    FirstToken first;
};

// One cache hit from an empty sequence: lookup, import, prefill the rest.
Result<Timed> time_hit(Context& ctx, Cache& cache, const std::vector<Token>& prompt, size_t want_cached, int n_batch) {
    ctx.kv_clear();
    const auto t0 = Clock::now();
    auto hit = cache.lookup(prompt, ctx.model().fingerprint(), ctx.kv_layout());
    if (!hit || (size_t)hit->n_past != want_cached) {
        return make_error(ErrorCode::kInternal, fmt::format("bench-cache: the cache returned {} tokens, expected {}",
                                                            hit ? hit->n_past : 0, want_cached));
    }
    LC_TRY(ctx.state_seq_import(0, hit->state));
    Timed r;
    r.restore_ms = ms_since(t0);
    LC_ASSIGN_OR_RETURN(r.first, prefill_and_sample(ctx, prompt, want_cached, n_batch));
    r.ms = ms_since(t0);
    return r;
}

Result<std::unique_ptr<Context>> make_context(std::shared_ptr<Model> model, const BenchCacheOptions& o, int n_tokens) {
    LC_ASSIGN_OR_RETURN(KvType kv, parse_kv_type(o.kv_type));
    ContextParams cp;
    cp.n_ctx = n_tokens;
    cp.n_batch = o.n_batch;
    cp.n_ubatch = o.n_batch;
    cp.n_threads = o.threads;
    cp.kv_type = kv;
    return Context::create(std::move(model), cp);
}

// Drops the files' pages from the OS page cache; returns the fraction of pages still resident afterwards.
double evict_from_page_cache(const std::string& folder) {
    size_t pages = 0, resident = 0;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(folder, ec)) {
        const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        const size_t size = (size_t)fs::file_size(e.path(), ec);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (size > 0) {
            void* m = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
            if (m != MAP_FAILED) {
                std::vector<unsigned char> vec((size + page - 1) / page);
                if (mincore(m, size, vec.data()) == 0) {
                    for (unsigned char v : vec) resident += v & 1;
                    pages += vec.size();
                }
                munmap(m, size);
            }
        }
        ::close(fd);
    }
    return pages ? (double)resident / (double)pages : 0.0;
}

// The hidden child: one disk_restart measurement, printed as one JSON line.
void run_restart_child(const BenchCacheOptions& o) {
    auto prefixes = parse_int_list(o.prefixes, "--prefix");
    if (!prefixes.ok()) return fail(prefixes.error());
    if (prefixes->size() != 1 || prefixes->front() < 1) return fail("--restart-child: one positive --prefix expected");
    const int prefix = prefixes->front();
    auto model = load_model(o.model);
    if (!model.ok()) return fail(model.error());
    (void)(*model)->fingerprint();  // computed once at startup, like any server would
    auto ctx = make_context(*model, o, prefix + o.suffix);
    if (!ctx.ok()) return fail(ctx.error());
    auto cache = DiskCache::open(o.cache_dir, std::numeric_limits<int64_t>::max());
    if (!cache.ok()) return fail(cache.error());
    // Warm-up on unrelated tokens: thread pool started, weights paged in, scratch sized.
    const auto warm = make_prompt(o.seed + 7777, std::min(prefix, 64), 1, (*ctx)->n_vocab());
    if (auto w = prefill_and_sample(**ctx, warm, 0, o.n_batch); !w.ok()) return fail(w.error());
    const double resident = o.keep_page_cache ? 1.0 : evict_from_page_cache(o.cache_dir + "/blocks");
    const auto prompt = make_prompt(o.seed, prefix, o.suffix, (*ctx)->n_vocab());
    auto r = time_hit(**ctx, **cache, prompt, (size_t)prefix, o.n_batch);
    if (!r.ok()) return fail(r.error());
    nlohmann::json j{{"ms", r->ms}, {"restore_ms", r->restore_ms}, {"logits_hash", r->first.logits_hash},
                     {"resident_fraction", resident}};
    std::printf("%s\n", j.dump().c_str());
}

// Runs this executable with `args`, returns its stdout (an error when it fails).
Result<std::string> run_self(const std::vector<std::string>& args) {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return make_error(ErrorCode::kIo, "bench-cache: cannot find the executable (/proc/self/exe)");
    exe[n] = '\0';
    int fds[2];
    if (::pipe(fds) != 0) return make_error(ErrorCode::kIo, "bench-cache: pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) return make_error(ErrorCode::kIo, "bench-cache: fork failed");
    if (pid == 0) {
        ::dup2(fds[1], 1);
        ::close(fds[0]);
        ::close(fds[1]);
        std::vector<char*> argv{exe};
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(exe, argv.data());
        _exit(127);
    }
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t got;
    while ((got = ::read(fds[0], buf, sizeof(buf))) != 0) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        out.append(buf, (size_t)got);
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return make_error(ErrorCode::kInternal, fmt::format("bench-cache: the restarted child failed (status {})", status));
    }
    return out;
}

struct Row {
    int prefix = 0;
    double cold = 0, kv_reuse = 0, ram = 0, disk = 0, restart = 0;
    double ram_restore = 0, disk_restore = 0, restart_restore = 0;
    double ram_bpt = 0, disk_bpt = 0;
    double restart_resident = 0;
    bool logits_match = true;
};

Result<Row> bench_prefix(std::shared_ptr<Model> model, const BenchCacheOptions& o, int prefix, const std::string& model_path,
                         const std::string& dir) {
    Row row;
    row.prefix = prefix;
    LC_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, make_context(model, o, prefix + o.suffix));
    const auto prompt = make_prompt(o.seed, prefix, o.suffix, ctx->n_vocab());

    std::vector<double> t;
    LC_TRY(prefill_and_sample(*ctx, prompt, 0, o.n_batch));  // warm-up
    for (int r = 0; r < o.reps; ++r) {
        ctx->kv_clear();
        const auto t0 = Clock::now();
        LC_TRY(prefill_and_sample(*ctx, prompt, 0, o.n_batch));
        t.push_back(ms_since(t0));
    }
    row.cold = median(t);

    // The KV holds prefix + suffix: keep the prefix as the "previous turn" and as the state to cache.
    ctx->seq_rm(0, (Pos)prefix, -1);
    LC_ASSIGN_OR_RETURN(SequenceState state, ctx->state_seq_export(0));
    t.clear();
    uint64_t want_hash = 0;
    for (int r = 0; r < o.reps; ++r) {
        ctx->seq_rm(0, (Pos)prefix, -1);
        const auto t0 = Clock::now();
        LC_ASSIGN_OR_RETURN(FirstToken ft, prefill_and_sample(*ctx, prompt, (size_t)prefix, o.n_batch));
        t.push_back(ms_since(t0));
        if (r == 0) want_hash = ft.logits_hash;
        row.logits_match = row.logits_match && ft.logits_hash == want_hash;
    }
    row.kv_reuse = median(t);

    const std::vector<Token> prefix_tokens(prompt.begin(), prompt.begin() + prefix);
    CacheEntry entry{std::move(state), prefix};
    auto ram = std::make_shared<RamCache>(entry.state.kv.size() * 2 + (64u << 20));
    LC_TRY(ram->store(prefix_tokens, entry));
    row.ram_bpt = (double)ram->size_bytes() / prefix;
    LC_ASSIGN_OR_RETURN(std::shared_ptr<DiskCache> disk, DiskCache::open(dir, std::numeric_limits<int64_t>::max()));
    LC_TRY(disk->store(prefix_tokens, entry));
    row.disk_bpt = (double)disk->size_bytes() / prefix;

    auto time_hits = [&](Cache& cache, double* ms, double* restore) -> Status {
        std::vector<double> total, rest;
        for (int r = 0; r < o.reps; ++r) {
            LC_ASSIGN_OR_RETURN(Timed h, time_hit(*ctx, cache, prompt, (size_t)prefix, o.n_batch));
            total.push_back(h.ms);
            rest.push_back(h.restore_ms);
            row.logits_match = row.logits_match && h.first.logits_hash == want_hash;
        }
        *ms = median(total);
        *restore = median(rest);
        return {};
    };
    LC_TRY(time_hits(*ram, &row.ram, &row.ram_restore));
    LC_TRY(time_hits(*disk, &row.disk, &row.disk_restore));
    disk.reset();
    ram.reset();
    ctx.reset();  // the child gets the memory

    std::vector<double> total, rest, resident;
    for (int r = 0; r < o.reps; ++r) {
        std::vector<std::string> args{"bench-cache", "--restart-child", "--model", model_path, "--cache-dir", dir,
                                      "--prefix", std::to_string(prefix), "--suffix", std::to_string(o.suffix),
                                      "--threads", std::to_string(o.threads), "--n-batch", std::to_string(o.n_batch),
                                      "--kv-type", o.kv_type, "--seed", std::to_string(o.seed)};
        if (o.keep_page_cache) args.push_back("--keep-page-cache");
        LC_ASSIGN_OR_RETURN(std::string out, run_self(args));
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(out);
            total.push_back(j.at("ms").get<double>());
            rest.push_back(j.at("restore_ms").get<double>());
            resident.push_back(j.at("resident_fraction").get<double>());
            row.logits_match = row.logits_match && j.at("logits_hash").get<uint64_t>() == want_hash;
        } catch (const std::exception& e) {
            return make_error(ErrorCode::kInternal, fmt::format("bench-cache: bad child output '{}': {}", out, e.what()));
        }
    }
    row.restart = median(total);
    row.restart_restore = median(rest);
    row.restart_resident = *std::max_element(resident.begin(), resident.end());
    return row;
}

void run_bench_cache(const BenchCacheOptions& o) {
    if (o.restart_child) return run_restart_child(o);
    auto prefixes = parse_int_list(o.prefixes, "--prefix");
    if (!prefixes.ok()) return fail(prefixes.error());
    if (prefixes->empty()) return fail("--prefix: no prefix lengths given");
    for (int p : *prefixes) {
        if (p < 1 || p > 1 << 20) return fail(fmt::format("--prefix: {} is not a length in [1, 1048576]", p));
    }
    auto path = resolve_model_path(o.model);
    if (!path.ok()) return fail(path.error());
    auto model = load_model(*path);
    if (!model.ok()) return fail(model.error());
    if (auto kv = parse_kv_type(o.kv_type); !kv.ok()) return fail(kv.error());

    const bool own_dir = o.cache_dir.empty();
    const std::string root = own_dir ? fmt::format("{}/bench-cache-{}", cache_folder(), ::getpid()) : o.cache_dir;
    if (!own_dir && fs::exists(root) && !fs::is_empty(root)) {
        return fail(fmt::format("--cache-dir: '{}' is not empty (bench-cache needs a folder of its own)", root));
    }
    if (!o.json_out) {
        const int threads = o.threads > 0 ? o.threads : (int)std::max(1u, std::thread::hardware_concurrency());
        std::printf("model: %s (%s), %d threads, KV %s, %d new tokens per turn, median of %d runs, disk cache in %s\n",
                    (*model)->description().c_str(), path->c_str(), threads, o.kv_type.c_str(), o.suffix, o.reps, root.c_str());
        std::printf("time to first token, ms; restart = fresh process, block files %s the OS page cache\n",
                    o.keep_page_cache ? "left in" : "evicted from");
        std::printf("| prefix | cold | kv reuse | ram hit | disk hit | disk restart | ram/cold | disk/cold | restart/cold | RAM B/tok | disk B/tok |\n"
                    "|---|---|---|---|---|---|---|---|---|---|---|\n");
        std::fflush(stdout);
    }
    for (int p : *prefixes) {
        const std::string dir = fmt::format("{}/p{}", root, p);
        auto row = bench_prefix(*model, o, p, *path, dir);
        std::error_code ec;
        fs::remove_all(own_dir ? root : dir, ec);
        if (!row.ok()) return fail(row.error());
        const Row& r = *row;
        if (o.json_out) {
            nlohmann::ordered_json j{{"prefix", r.prefix}, {"cold_ms", r.cold}, {"kv_reuse_ms", r.kv_reuse}, {"ram_hit_ms", r.ram},
                             {"disk_hit_ms", r.disk}, {"disk_restart_ms", r.restart}, {"ram_bytes_per_token", r.ram_bpt},
                             {"disk_bytes_per_token", r.disk_bpt}, {"suffix", o.suffix}, {"ram_restore_ms", r.ram_restore},
                             {"disk_restore_ms", r.disk_restore}, {"disk_restart_restore_ms", r.restart_restore},
                             {"restart_page_cache_resident", r.restart_resident}, {"logits_match", r.logits_match}};
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f%% | %.1f%% | %.1f%% | %.0f | %.0f |\n", r.prefix, r.cold,
                        r.kv_reuse, r.ram, r.disk, r.restart, 100 * r.ram / r.cold, 100 * r.disk / r.cold,
                        100 * r.restart / r.cold, r.ram_bpt, r.disk_bpt);
            if (!r.logits_match) std::printf("  warning: a restored state gave different logits than the KV it was saved from\n");
        }
        std::fflush(stdout);
    }
}

}  // namespace

void register_bench_cache_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench-cache", "time to first token: cold prefill vs KV reuse vs RAM / disk / restarted-disk cache hits");
    auto o = std::make_shared<BenchCacheOptions>();
    cmd->add_option("--model,-m", o->model, "GGUF model file (default: the built-in model)");
    cmd->add_option("--prefix,-p", o->prefixes, "cached prefix lengths, comma-separated")->default_val("256,1024,4096");
    cmd->add_option("--suffix", o->suffix, "new tokens after the prefix (the new turn)")->default_val(16)->check(CLI::Range(1, 4096));
    cmd->add_option("--threads,-t", o->threads, "threads (0: all cores)")->default_val(0)->check(CLI::Range(0, 512));
    cmd->add_option("--reps,-r", o->reps, "repetitions per figure (the median is reported)")->default_val(3)->check(CLI::Range(1, 1000));
    cmd->add_option("--n-batch,-b", o->n_batch, "batch size")->default_val(512)->check(CLI::Range(1, 1 << 16));
    cmd->add_option("--kv-type", o->kv_type, "KV cache type: f16 or f32")->default_val("f16");
    cmd->add_option("--cache-dir", o->cache_dir, "empty folder for the DiskCache (default: a temporary one in the CLI cache folder)");
    cmd->add_flag("--keep-page-cache", o->keep_page_cache, "restart: leave the block files in the OS page cache");
    cmd->add_flag("--json", o->json_out, "one JSON object per prefix length");
    cmd->add_option("--seed", o->seed, "seed of the random prompts")->default_val(1234)->group("");
    cmd->add_flag("--restart-child", o->restart_child, "internal: one restarted-process measurement")->group("");
    cmd->callback([o] { run_bench_cache(*o); });
}

}  // namespace llama_crab::cli
