#include "ops/matmul.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "ops/gemm.h"
#include "util/thread_pool.h"

namespace llama_crab {
namespace {

// Up to this many tokens, activations are converted on the calling thread (waking the pool costs more).
constexpr int64_t kSerialConvertTokens = 3;

// The largest step (tokens) that runs through the GEMV (rows read in place) instead of repacking panels: where the
// two cost the same, measured with gemm_bench BM_decode_step (one thread, 5632 x 2048 weights, CPU time per step in
// us, AMD EPYC Zen 4, 2 cores shared with other jobs, load ~9; "->" is the crossover):
//                 tokens:   1     2     4     8    16
//   avx512 Q4_0  gemv      317   468   997  2180  4425    panel  474   499   546   730  1224   -> 3
//   avx512 Q8_0  gemv      316   500   923  2154  5129    panel  773   819   769   950  1444   -> 3
//   avx512 Q4_K  gemv      239   450   904  1780  3644    panel 1437  1485  1523  1759  2087   -> 8
//   avx512 Q6_K  gemv      274   538  1079  2264  4247    panel 1418  1418  1434  1543  1944   -> 5
//   avx2   Q4_0  gemv      321   477  1010  2143  4538    panel  455   583   798  1258  2019   -> 3
//   avx2   Q8_0  gemv      336   504   897  2086  5097    panel 1013  1232  1415  1998  3091   -> 8
//   avx2   Q4_K  gemv      243   468   940  1886  3894    panel 1721  1800  1757  1886  2708   -> 8
//   avx2   Q6_K  gemv      278   565  1110  2206  4251    panel 1645  1730  1674  2164  2827   -> 8
// The limit sits below the crossover, at 6, where the GEMV is still clearly cheaper (at the crossover the two cost
// the same, so going further gains nothing). End to end (0.5B Q4_K_M, `bench --parallel`, load ~9-10) the
// differences drowned in the noise: at N=8, the same code in both builds measured 63 vs 48 and 43 vs 53 tok/s.
// Never below 3: up to 3 tokens a step (server slots) gives each token the same result as a solo run.
int64_t gemv_max_tokens(TensorType type, IsaLevel isa) {
    switch (type) {
        case TensorType::Q8_0: return isa >= IsaLevel::kAvx512 ? 3 : 6;
        case TensorType::Q4_K: return 6;
        case TensorType::Q6_K: return isa >= IsaLevel::kAvx512 ? 5 : 6;
        default: return 3;
    }
}

// Activation rows of one panel task are sized to stay in L2 while the task's panels stream over them; every panel
// is packed once per chunk, so larger chunks pack less. CPUs with AVX-512 have at least 1 MiB of L2 per core (Zen 4,
// Skylake-SP and later), the AVX2 ones we target 512 KiB (Zen 2/3).
constexpr size_t kActChunkBytes = 256 * 1024;
constexpr size_t kActChunkBytesAvx512 = 512 * 1024;
// Tasks per thread to aim for: enough for the atomic counter to balance uneven threads.
constexpr int64_t kTasksPerThread = 8;
// Fewest weight bytes per GEMV task (smaller tasks cost more in hand-out than they gain in balance).
constexpr size_t kMinGemvTaskBytes = 16 * 1024;
// Tokens per task of the fallback path (TypeTraits dot products).
constexpr int64_t kFallbackTokenTile = 64;
constexpr size_t kAlign = 64;
// Below this many multiply-adds a call runs on the calling thread: waking the pool costs more than it saves.
constexpr int64_t kInlineWork = 64 * 1024;

enum class Mode : uint8_t { kPanel, kGemv, kFallback };

// One activation conversion shared by the jobs that use it.
struct ActFormat {
    GemmConvertFn convert = nullptr;  // null: x is used as it is (F32 weights, contiguous rows)
    size_t row_bytes = 0;
    size_t offset = 0;  // in the aligned scratch
};

struct JobPlan {
    const GemmKernels* k = nullptr;  // null: the fallback path
    Mode mode = Mode::kFallback;
    int fmt = 0;
    int64_t rows_per_task = 0, n_row_tasks = 0;
    int64_t toks_per_task = 0, n_tok_tasks = 0;
    int64_t first_task = 0;
};

uint8_t* align_up(uint8_t* p) { return p + ((kAlign - reinterpret_cast<uintptr_t>(p) % kAlign) % kAlign); }

// buf grown (never shrunk) to hold `bytes` from a kAlign-aligned start; returns that start.
uint8_t* aligned(std::vector<uint8_t>& buf, size_t bytes) {
    if (buf.size() < bytes + kAlign) buf.resize(bytes + kAlign);
    return align_up(buf.data());
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The TypeTraits path: 1x4 kernels over four tokens, single dots for the rest.
void fallback_task(const MatrixRef& w, const uint8_t* act, size_t act_row, float* y, int64_t y_stride, int64_t r0,
                   int64_t r1, int64_t t0, int64_t t1) {
    const TypeTraits& wt = *w.traits;
    const VecDotFn dot = wt.vec_dot;
    const VecDot1x4Fn dot4 = wt.vec_dot_1x4;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* wrow = w.data + (size_t)r * w.row_bytes;
        int64_t t = t0;
        if (dot4 != nullptr) {
            float s[4];
            for (; t + 4 <= t1; t += 4) {
                dot4(w.n_in, s, wrow, act + (size_t)t * act_row, act_row);
                for (int j = 0; j < 4; ++j) y[(t + j) * y_stride + r] = s[j];
            }
        }
        for (; t < t1; ++t) dot(w.n_in, &y[t * y_stride + r], wrow, act + (size_t)t * act_row);
    }
}

// Everything a task needs, behind one pointer (the task lambda then fits std::function's inline buffer: no
// allocation per call).
struct Run {
    const MatmulJob* jobs;
    int n_jobs;
    const JobPlan* plans;
    const ActFormat* fmts;
    const uint8_t* act_base;
    const float* x;
    int64_t n_in, n_tokens;
    MatmulScratch* scratch;
};

void run_task(const Run& run, int64_t task, int thread) {
    const int64_t n_in = run.n_in, n_tokens = run.n_tokens;
    int j = 0;
    while (j + 1 < run.n_jobs && run.plans[j + 1].first_task <= task) ++j;
    const JobPlan& p = run.plans[j];
    const MatrixRef& w = run.jobs[j].w;
    float* y = run.jobs[j].y;
    const int64_t ys = run.jobs[j].y_stride;
    const int64_t local = task - p.first_task;
    const int64_t tc = local / p.n_row_tasks, rc = local % p.n_row_tasks;  // token-chunk major: shared L2 data
    const int64_t r0 = rc * p.rows_per_task, r1 = std::min(w.n_out, r0 + p.rows_per_task);
    const int64_t t0 = tc * p.toks_per_task, t1 = std::min(n_tokens, t0 + p.toks_per_task);
    const ActFormat& f = run.fmts[p.fmt];
    const uint8_t* act = f.convert != nullptr ? run.act_base + f.offset : reinterpret_cast<const uint8_t*>(run.x);
    switch (p.mode) {
        case Mode::kGemv:
            p.k->gemv(n_in, w.data + (size_t)r0 * w.row_bytes, w.row_bytes, r1 - r0, act, f.row_bytes, n_tokens,
                      y + r0, ys);
            break;
        case Mode::kPanel: {
            uint8_t* panel = align_up(run.scratch->panels[(size_t)thread].data());  // sized by matmul_multi
            const int64_t n_tiles = ceil_div(t1 - t0, kMaxCols);
            const int64_t pr = p.k->panel_rows;
            for (int64_t r = r0; r < r1; r += pr) {
                const int nr = (int)std::min<int64_t>(pr, r1 - r);
                p.k->pack(w.data + (size_t)r * w.row_bytes, w.row_bytes, nr, n_in, panel);
                // While this panel computes, fetch the next panel's rows into L2 a slice per column tile, so
                // the next pack does not wait on memory.
                const uint8_t* next = w.data + (size_t)(r + pr) * w.row_bytes;
                const size_t next_bytes = (size_t)std::max<int64_t>(0, std::min<int64_t>(pr, r1 - r - pr)) * w.row_bytes;
                const size_t slice = (next_bytes / 64 / (size_t)n_tiles + 1) * 64;
                size_t fetched = 0;
                for (int64_t t = t0; t < t1; t += kMaxCols) {
                    for (size_t e = std::min(next_bytes, fetched + slice); fetched < e; fetched += 64) {
                        __builtin_prefetch(next + fetched, 0, 2);
                    }
                    const int nc = (int)std::min<int64_t>(kMaxCols, t1 - t);
                    p.k->panel(n_in, panel, nr, act + (size_t)t * f.row_bytes, f.row_bytes, nc, y + t * ys + r, ys);
                }
            }
            break;
        }
        case Mode::kFallback:
            fallback_task(w, act, f.row_bytes, y, ys, r0, r1, t0, t1);
            break;
    }
}

}  // namespace

void matmul(ThreadPool& pool, const MatrixRef& w, const float* x, int64_t x_stride, int64_t n_tokens, float* y,
            int64_t y_stride, MatmulScratch& scratch) {
    const MatmulJob job{w, y, y_stride};
    matmul_multi(pool, &job, 1, x, x_stride, n_tokens, scratch);
}

void matmul_multi(ThreadPool& pool, const MatmulJob* jobs, int n_jobs, const float* x, int64_t x_stride,
                  int64_t n_tokens, MatmulScratch& scratch) {
    assert(n_jobs >= 1 && n_jobs <= kMaxMatmulJobs);
    if (n_tokens <= 0 || n_jobs <= 0) return;
    const int64_t n_in = jobs[0].w.n_in;
    const int64_t n_threads = pool.size();
    const IsaLevel isa = cpu_isa();  // at the scalar level, the TypeTraits path (the references are slow)

    // Activation formats, one per distinct conversion.
    ActFormat fmts[kMaxMatmulJobs];
    int n_fmts = 0;
    JobPlan plans[kMaxMatmulJobs];
    size_t act_bytes = 0;
    for (int j = 0; j < n_jobs; ++j) {
        const MatrixRef& w = jobs[j].w;
        assert(w.n_in == n_in);
        JobPlan& p = plans[j];
        p.k = isa >= IsaLevel::kAvx2 ? gemm_kernels(w.traits->type, isa) : nullptr;
        ActFormat f;
        if (p.k != nullptr) {
            f.convert = p.k->convert_act;
            f.row_bytes = p.k->act_row_bytes(n_in);
        } else {
            const TypeTraits& at = type_traits(w.traits->vec_dot_type);
            if (at.type == TensorType::F32 && x_stride == n_in) {
                f.convert = nullptr;  // x is read as it is
            } else {
                f.convert = at.quantize_act;
            }
            f.row_bytes = row_bytes(at, n_in);
        }
        int i = 0;
        while (i < n_fmts && !(fmts[i].convert == f.convert && fmts[i].row_bytes == f.row_bytes)) ++i;
        if (i == n_fmts) {
            f.offset = act_bytes;
            if (f.convert != nullptr) act_bytes += (f.row_bytes * (size_t)n_tokens + kAlign - 1) / kAlign * kAlign;
            fmts[n_fmts++] = f;
        }
        p.fmt = i;
    }
    uint8_t* act_base = aligned(scratch.act, act_bytes);

    // Convert the activations once per format.
    auto convert_token = [&](int64_t t) {
        for (int i = 0; i < n_fmts; ++i) {
            const ActFormat& f = fmts[i];
            if (f.convert != nullptr) f.convert(x + t * x_stride, act_base + f.offset + (size_t)t * f.row_bytes, n_in);
        }
    };
    if (n_tokens <= kSerialConvertTokens) {
        for (int64_t t = 0; t < n_tokens; ++t) convert_token(t);
    } else {
        pool.parallel_for(n_tokens, [&](int64_t t, int) { convert_token(t); });
    }

    // Plan the tasks of every job.
    int64_t n_tasks = 0, total_work = 0;
    size_t panel_bytes = 0;
    for (int j = 0; j < n_jobs; ++j) {
        const MatrixRef& w = jobs[j].w;
        JobPlan& p = plans[j];
        const size_t act_row = fmts[p.fmt].row_bytes;
        if (p.k != nullptr && n_tokens <= gemv_max_tokens(w.traits->type, isa)) {
            p.mode = Mode::kGemv;
            const int64_t min_rows = std::max<int64_t>(4, (int64_t)(kMinGemvTaskBytes / std::max<size_t>(w.row_bytes, 1)));
            int64_t rows = std::max(min_rows, ceil_div(w.n_out, n_threads * kTasksPerThread));
            rows = (rows + 3) / 4 * 4;
            p.rows_per_task = rows;
            p.toks_per_task = n_tokens;
        } else if (p.k != nullptr) {
            p.mode = Mode::kPanel;
            panel_bytes = std::max(panel_bytes, p.k->panel_bytes(n_in));
            const size_t chunk = isa >= IsaLevel::kAvx512 ? kActChunkBytesAvx512 : kActChunkBytes;
            int64_t toks = std::max<int64_t>(16, (int64_t)(chunk / act_row));
            const int64_t n_tc = ceil_div(n_tokens, toks);
            toks = (ceil_div(n_tokens, n_tc) + kMaxCols - 1) / kMaxCols * kMaxCols;  // even chunks, whole tiles
            const int64_t n_panels = ceil_div(w.n_out, p.k->panel_rows);
            const int64_t panels = std::max<int64_t>(1, n_panels * n_tc / (n_threads * kTasksPerThread));
            p.rows_per_task = panels * p.k->panel_rows;
            p.toks_per_task = toks;
        } else {
            p.mode = Mode::kFallback;
            int64_t rows = std::max<int64_t>(4, w.n_out / (n_threads * 8));
            p.rows_per_task = (rows + 3) / 4 * 4;
            p.toks_per_task = kFallbackTokenTile;
        }
        total_work += w.n_out * n_in * n_tokens;
        p.n_row_tasks = ceil_div(w.n_out, p.rows_per_task);
        p.n_tok_tasks = ceil_div(n_tokens, p.toks_per_task);
        p.first_task = n_tasks;
        n_tasks += p.n_row_tasks * p.n_tok_tasks;
    }
    if (panel_bytes > 0) {
        if (scratch.panels.size() < (size_t)n_threads) scratch.panels.resize((size_t)n_threads);
        for (auto& buf : scratch.panels) aligned(buf, panel_bytes);
    }

    const Run run{jobs, n_jobs, plans, fmts, act_base, x, n_in, n_tokens, &scratch};
    if (n_tasks == 1 || total_work < kInlineWork) {
        for (int64_t t = 0; t < n_tasks; ++t) run_task(run, t, 0);  // too small to be worth waking the pool
    } else {
        pool.parallel_for(n_tasks, [&run](int64_t task, int thread) { run_task(run, task, thread); });
    }
}

}  // namespace llama_crab
