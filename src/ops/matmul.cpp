#include "ops/matmul.h"

#include <algorithm>
#include <cstring>

#include "util/thread_pool.h"

namespace llama_crab {
namespace {

constexpr int64_t kTokenTile = 64;  // activation rows processed per task: they stay in L2 while a row block streams

}  // namespace

void matmul(ThreadPool& pool, const MatrixRef& w, const float* x, int64_t x_stride, int64_t n_tokens, float* y,
            int64_t y_stride, MatmulScratch& scratch) {
    const TypeTraits& wt = *w.traits;
    const TypeTraits& at = type_traits(wt.vec_dot_type);
    const size_t act_row = row_bytes(at, w.n_in);

    // Convert the activations once (F32 weights use them as they are when contiguous).
    const uint8_t* act = nullptr;
    if (at.type == TensorType::F32 && x_stride == w.n_in) {
        act = reinterpret_cast<const uint8_t*>(x);
    } else {
        const size_t need = act_row * (size_t)n_tokens;
        if (scratch.act.size() < need) scratch.act.resize(need);
        uint8_t* dst = scratch.act.data();
        pool.parallel_for(n_tokens, [&](int64_t t, int) { at.quantize_act(x + t * x_stride, dst + (size_t)t * act_row, w.n_in); });
        act = dst;
    }

    // Row blocks: enough tasks to balance the threads, each a multiple of 4 rows.
    const int64_t n_threads = pool.size();
    int64_t rows_per_task = std::max<int64_t>(4, w.n_out / (n_threads * 8));
    rows_per_task = (rows_per_task + 3) / 4 * 4;
    const int64_t n_row_tasks = (w.n_out + rows_per_task - 1) / rows_per_task;
    const int64_t n_tok_tasks = (n_tokens + kTokenTile - 1) / kTokenTile;

    const VecDotFn dot = wt.vec_dot;
    const VecDot1x4Fn dot4 = wt.vec_dot_1x4;
    pool.parallel_for(n_row_tasks * n_tok_tasks, [&](int64_t task, int) {
        const int64_t tb = task / n_row_tasks;
        const int64_t rb = task % n_row_tasks;
        const int64_t r0 = rb * rows_per_task, r1 = std::min(w.n_out, r0 + rows_per_task);
        const int64_t t0 = tb * kTokenTile, t1 = std::min(n_tokens, t0 + kTokenTile);
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
    });
}

}  // namespace llama_crab
