// Context state: export and import one sequence's KV (typed and as bytes), the whole context, session files.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "llama_crab/context.h"
#include "runtime/kv_cache.h"

namespace llama_crab {
namespace {

constexpr char kContextMagic[8] = {'L', 'C', 'C', 'T', 'X', 'S', 'T', '1'};

// Cells of a sequence (or of any sequence when seq < 0), in position order.
std::vector<int32_t> cells_of(const KvCache& kv, SeqId seq) {
    std::vector<int32_t> cells;
    for (int32_t c = 0; c < kv.used_end(); ++c) {
        const KvCell& cell = kv.cell(c);
        if (!cell.free() && (seq < 0 || cell.has(seq))) cells.push_back(c);
    }
    std::stable_sort(cells.begin(), cells.end(), [&](int32_t a, int32_t b) { return kv.cell(a).pos < kv.cell(b).pos; });
    return cells;
}

SequenceState export_cells(const Context& ctx, const KvCache& kv, const std::vector<int32_t>& cells) {
    SequenceState st;
    st.model_fingerprint = ctx.model().fingerprint();
    st.layout = ctx.kv_layout();
    const size_t row = kv.row_bytes();
    st.tokens.reserve(cells.size());
    st.positions.reserve(cells.size());
    st.kv.resize(cells.size() * st.layout.token_bytes());
    uint8_t* out = st.kv.data();
    for (int32_t c : cells) {
        st.tokens.push_back(kv.cell(c).token);
        st.positions.push_back(kv.cell(c).pos);
        for (int64_t l = 0; l < kv.n_layer(); ++l) {
            std::memcpy(out, kv.k_row(l, c), row);
            std::memcpy(out + row, kv.v_row(l, c), row);
            out += 2 * row;
        }
    }
    return st;
}

std::string layout_string(const KvLayout& l) {
    return fmt::format("{} layers x {} KV heads x {} dims, {}", l.n_layer, l.n_head_kv, l.head_dim, l.kv_type == 0 ? "f16" : "f32");
}

}  // namespace

KvLayout Context::kv_layout() const {
    const ModelHparams& hp = model_->hparams();
    KvLayout l;
    l.n_layer = (uint32_t)hp.n_layer;
    l.n_head_kv = (uint32_t)hp.n_head_kv;
    l.head_dim = (uint32_t)hp.head_dim;
    l.kv_type = params_.kv_type == KvType::kF16 ? 0 : 1;
    return l;
}

Result<SequenceState> Context::state_seq_export(SeqId seq_id) const {
    if (seq_id < 0 || seq_id >= params_.n_seq_max) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("state: sequence id {} is out of range [0, {})", seq_id, params_.n_seq_max));
    }
    return export_cells(*this, *kv_, cells_of(*kv_, seq_id));
}

Result<int32_t> Context::state_seq_import(SeqId seq_id, const SequenceState& st) {
    auto mismatch = [](std::string msg) { return make_error(ErrorCode::kStateMismatch, "state: " + std::move(msg)); };
    if (seq_id < 0 || seq_id >= params_.n_seq_max) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("state: sequence id {} is out of range [0, {})", seq_id, params_.n_seq_max));
    }
    if (st.model_fingerprint != model_->fingerprint()) {
        return mismatch(fmt::format("the state was made by another model (fingerprint {}..., this model {}...)",
                                    st.model_fingerprint.substr(0, 12), model_->fingerprint().substr(0, 12)));
    }
    const KvLayout mine = kv_layout();
    if (st.layout.kv_type != mine.kv_type) {
        return mismatch(fmt::format("KV dtype differs: the state has {}, this context {}", st.layout.kv_type == 0 ? "f16" : "f32",
                                    mine.kv_type == 0 ? "f16" : "f32"));
    }
    if (st.layout != mine) {
        return mismatch(fmt::format("KV layout differs: the state has {}, this context {}", layout_string(st.layout), layout_string(mine)));
    }
    const size_t n = st.tokens.size();
    if (st.positions.size() != n || st.kv.size() != n * mine.token_bytes()) {
        return make_error(ErrorCode::kInvalidFormat,
                          fmt::format("state: {} tokens, {} positions and {} KV bytes do not agree ({} bytes per token)", n,
                                      st.positions.size(), st.kv.size(), mine.token_bytes()));
    }
    for (size_t i = 0; i < n; ++i) {
        if (st.tokens[i] < 0 || st.tokens[i] >= n_vocab()) {
            return make_error(ErrorCode::kInvalidFormat, fmt::format("state: token {} at index {} is out of range", st.tokens[i], i));
        }
        if (st.positions[i] < 0 || (i > 0 && st.positions[i] <= st.positions[i - 1])) {
            return make_error(ErrorCode::kInvalidFormat, fmt::format("state: position {} at index {} is not increasing", st.positions[i], i));
        }
    }
    // Room: free cells plus the cells only this sequence uses (they are replaced).
    int32_t reclaimable = 0;
    for (int32_t c = 0; c < kv_->used_end(); ++c) {
        if (kv_->cell(c).seqs == (1ull << seq_id)) ++reclaimable;
    }
    if ((int64_t)n > (int64_t)kv_->n_free() + reclaimable) {
        return make_error(ErrorCode::kNoKvSpace, fmt::format("state: {} tokens do not fit: the context has room for {}", n,
                                                             kv_->n_free() + reclaimable));
    }
    kv_->seq_rm(seq_id, -1, -1);
    std::vector<int32_t> cells;
    kv_->find_free((int32_t)n, cells);
    const size_t row = kv_->row_bytes();
    const uint8_t* in = st.kv.data();
    for (size_t i = 0; i < n; ++i) {
        kv_->occupy(cells[i], st.tokens[i], st.positions[i], 1ull << seq_id);
        for (int64_t l = 0; l < kv_->n_layer(); ++l) {
            std::memcpy(kv_->k_row(l, cells[i]), in, row);
            std::memcpy(kv_->v_row(l, cells[i]), in + row, row);
            in += 2 * row;
        }
    }
    return (int32_t)n;
}

size_t Context::state_seq_size(SeqId seq_id) const { return state_seq_get(seq_id).size(); }

std::vector<uint8_t> Context::state_seq_get(SeqId seq_id) const {
    auto st = state_seq_export(seq_id);
    if (!st.ok()) return {};
    return serialize_state(*st);
}

Result<int32_t> Context::state_seq_set(SeqId seq_id, const uint8_t* data, size_t size) {
    LC_ASSIGN_OR_RETURN(SequenceState st, deserialize_state(data, size));
    return state_seq_import(seq_id, st);
}

std::vector<uint8_t> Context::state_get() const {
    // Magic, n_seq_max, one seq mask per cell, then the cells as one serialized state (which is checksummed).
    const std::vector<int32_t> cells = cells_of(*kv_, -1);
    std::vector<uint8_t> out(sizeof(kContextMagic));
    std::memcpy(out.data(), kContextMagic, sizeof(kContextMagic));
    auto put64 = [&](uint64_t v) {
        const size_t at = out.size();
        out.resize(at + 8);
        std::memcpy(out.data() + at, &v, 8);
    };
    put64((uint64_t)params_.n_seq_max);
    put64(cells.size());
    for (int32_t c : cells) put64(kv_->cell(c).seqs);
    uint64_t mask_sum = 0;
    for (int32_t c : cells) mask_sum = mask_sum * 1099511628211ull + kv_->cell(c).seqs;
    put64(mask_sum);
    // A whole-context state may hold several cells at one position (different sequences): positions are not
    // required to increase here, so the cells go through export_cells directly.
    const std::vector<uint8_t> body = serialize_state(export_cells(*this, *kv_, cells));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

Status Context::state_set(const uint8_t* data, size_t size) {
    auto bad = [](std::string m) { return make_error(ErrorCode::kInvalidFormat, "context state: " + std::move(m)); };
    if (size < sizeof(kContextMagic) + 24 || std::memcmp(data, kContextMagic, sizeof(kContextMagic)) != 0) {
        return bad("not a context state (bad magic or truncated header)");
    }
    auto get64 = [&](size_t at) {
        uint64_t v;
        std::memcpy(&v, data + at, 8);
        return v;
    };
    const uint64_t n_seq = get64(8), n_cells = get64(16);
    if (n_seq != (uint64_t)params_.n_seq_max) {
        return make_error(ErrorCode::kStateMismatch,
                          fmt::format("context state: saved with n_seq_max {}, this context has {}", n_seq, params_.n_seq_max));
    }
    if (n_cells > (size - 32) / 8) return bad(fmt::format("{} cells cannot fit in {} bytes", n_cells, size));
    const size_t masks_at = 24, body_at = masks_at + (size_t)n_cells * 8 + 8;
    if (body_at > size) return bad("truncated");
    uint64_t mask_sum = 0;
    for (uint64_t i = 0; i < n_cells; ++i) {
        const uint64_t m = get64(masks_at + i * 8);
        if (m == 0 || (n_seq < 64 && (m >> n_seq) != 0)) return bad(fmt::format("cell {} has an invalid sequence mask", i));
        mask_sum = mask_sum * 1099511628211ull + m;
    }
    if (mask_sum != get64(body_at - 8)) return make_error(ErrorCode::kChecksum, "context state: sequence masks fail their checksum");
    LC_ASSIGN_OR_RETURN(SequenceState st, deserialize_state(data + body_at, size - body_at));
    if (st.tokens.size() != n_cells) return bad("cell count differs from the state's token count");
    if (st.model_fingerprint != model_->fingerprint()) {
        return make_error(ErrorCode::kStateMismatch, "context state: made by another model");
    }
    if (st.layout != kv_layout()) {
        return make_error(ErrorCode::kStateMismatch, fmt::format("context state: KV layout differs: the state has {}, this context {}",
                                                                 layout_string(st.layout), layout_string(kv_layout())));
    }
    if ((int64_t)n_cells > kv_->n_cells()) {
        return make_error(ErrorCode::kNoKvSpace, fmt::format("context state: {} cells, the context has {}", n_cells, kv_->n_cells()));
    }
    for (size_t i = 0; i < st.tokens.size(); ++i) {
        if (st.tokens[i] < 0 || st.tokens[i] >= n_vocab() || st.positions[i] < 0) {
            return bad(fmt::format("cell {} has an invalid token or position", i));
        }
    }
    kv_->clear();
    const size_t row = kv_->row_bytes();
    const uint8_t* in = st.kv.data();
    for (size_t i = 0; i < n_cells; ++i) {
        kv_->occupy((int32_t)i, st.tokens[i], st.positions[i], get64(masks_at + i * 8));
        for (int64_t l = 0; l < kv_->n_layer(); ++l) {
            std::memcpy(kv_->k_row(l, (int32_t)i), in, row);
            std::memcpy(kv_->v_row(l, (int32_t)i), in + row, row);
            in += 2 * row;
        }
    }
    return {};
}

Status Context::save_session(const std::string& path, SeqId seq_id) const {
    LC_ASSIGN_OR_RETURN(SequenceState st, state_seq_export(seq_id));
    return write_state_file(path, st);
}

Result<int32_t> Context::load_session(const std::string& path, SeqId seq_id) {
    LC_ASSIGN_OR_RETURN(SequenceState st, read_state_file(path));
    return state_seq_import(seq_id, st);
}

}  // namespace llama_crab
