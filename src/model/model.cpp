#include "llama_crab/model.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cstring>
#include <mutex>

#include "gguf/gguf.h"
#include "model/arch.h"
#include "model/weights.h"
#include "util/atomic_file.h"
#include "util/sha256.h"
#include "vocab/vocab.h"

namespace llama_crab {

struct Model::Impl {
    std::string path;
    std::unique_ptr<GgufFile> file;
    ModelHparams hparams;
    ModelWeights weights;
    std::shared_ptr<const Vocab> vocab;
    mutable std::once_flag fingerprint_once;
    mutable std::string fingerprint;
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

namespace {

void hash_value(Sha256& h, const GgufValue& v) {
    h.update_pod((uint32_t)v.type);
    switch (v.type) {
        case GgufType::STRING:
            h.update_pod((uint64_t)v.str.size());
            h.update(v.str);
            break;
        case GgufType::ARRAY:
            h.update_pod((uint32_t)v.elem_type);
            h.update_pod((uint64_t)v.array.size());
            for (const auto& e : v.array) hash_value(h, e);
            break;
        case GgufType::FLOAT32: case GgufType::FLOAT64: h.update_pod(v.f); break;
        default:
            h.update_pod(v.u);
            h.update_pod(v.i);
            break;
    }
}

Result<std::unique_ptr<GgufFile>> open_file(const std::string& path, bool use_mmap) {
    if (use_mmap) {
        LC_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(path));
        return std::make_unique<GgufFile>(std::move(f));
    }
    // read_file refuses a FIFO or device without blocking (symlinked models are fine).
    LC_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_file(path));
    auto f = GgufFile::from_memory(bytes.data(), bytes.size());
    if (!f.ok()) return make_error(f.error().code, f.error().message + " (file '" + path + "')");
    return std::make_unique<GgufFile>(std::move(f).value());
}

}  // namespace

Result<std::shared_ptr<Model>> Model::load(const std::string& path, const ModelParams& params) {
    std::shared_ptr<Model> m(new Model());
    m->impl_->path = path;
    LC_ASSIGN_OR_RETURN(m->impl_->file, open_file(path, params.use_mmap));
    const GgufFile& f = *m->impl_->file;

    auto arch_name = f.get_string("general.architecture");
    if (!arch_name.ok()) return arch_name.error();
    if (!arch_name.value()) {
        return make_error(ErrorCode::kInvalidFormat, fmt::format("'{}': metadata 'general.architecture' is missing", path));
    }
    const ArchDesc* arch = find_arch(*arch_name.value());
    if (arch == nullptr) {
        return make_error(ErrorCode::kUnsupported, fmt::format("'{}': unknown architecture '{}' (supported: {})", path,
                                                               *arch_name.value(), known_arch_names()));
    }
    LC_ASSIGN_OR_RETURN(m->impl_->hparams, read_hparams(f, *arch));
    auto weights = bind_weights(f, *arch, m->impl_->hparams);
    if (!weights.ok()) return make_error(weights.error().code, fmt::format("'{}': {}", path, weights.error().message));
    m->impl_->weights = std::move(weights).value();

    if (f.find("tokenizer.ggml.model") != nullptr) {
        auto vocab = Vocab::from_gguf(f);
        if (!vocab.ok()) return make_error(vocab.error().code, fmt::format("'{}': {}", path, vocab.error().message));
        m->impl_->vocab = std::move(vocab).value();
    }

    // Touch the weights so the first decode does not pay for page faults, reporting progress per tensor.
    const auto& tensors = f.tensors();
    uint64_t total = 0, done = 0;
    for (const auto& t : tensors) total += t.n_bytes;
    for (const auto& t : tensors) {
        if (params.use_mmap && t.n_bytes > 0) {
            const uintptr_t page = 4096;
            const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data) & ~(page - 1);
            madvise(reinterpret_cast<void*>(begin), t.n_bytes + (reinterpret_cast<uintptr_t>(t.data) - begin), MADV_WILLNEED);
        }
        done += t.n_bytes;
        if (params.progress && !params.progress(total ? (float)((double)done / (double)total) : 1.0f)) {
            return make_error(ErrorCode::kCancelled, fmt::format("'{}': loading cancelled by the progress callback", path));
        }
    }
    return m;
}

const ModelHparams& Model::hparams() const { return impl_->hparams; }
const std::string& Model::path() const { return impl_->path; }
uint64_t Model::file_size() const { return impl_->file->file_size(); }
const ModelWeights& Model::weights() const { return impl_->weights; }
const GgufFile& Model::gguf() const { return *impl_->file; }
std::shared_ptr<const Vocab> Model::vocab() const { return impl_->vocab; }

std::vector<Token> Model::tokenize(const std::string& text, bool add_special, bool parse_special) const {
    return impl_->vocab ? impl_->vocab->tokenize(text, add_special, parse_special) : std::vector<Token>{};
}

std::string Model::detokenize(const std::vector<Token>& tokens, bool remove_special) const {
    return impl_->vocab ? impl_->vocab->detokenize(tokens, remove_special, false) : std::string();
}

std::string Model::token_to_piece(Token token) const { return impl_->vocab ? impl_->vocab->token_to_piece(token, false) : std::string(); }

bool Model::is_eog(Token token) const { return impl_->vocab && impl_->vocab->is_eog(token); }

uint64_t Model::n_params() const {
    uint64_t n = 0;
    for (const auto& t : impl_->file->tensors()) n += (uint64_t)t.n_elements();
    return n;
}

uint64_t Model::size_bytes() const {
    uint64_t n = 0;
    for (const auto& t : impl_->file->tensors()) n += t.n_bytes;
    return n;
}

std::string Model::description() const {
    const auto& hp = impl_->hparams;
    const auto& w = impl_->weights;
    const char* type = w.layers.empty() ? "?" : w.layers[0].ffn_down.traits->name;
    return fmt::format("{} {}L {}d {:.2f}M params {}", hp.arch, hp.n_layer, hp.n_embd, (double)n_params() / 1e6, type);
}

std::vector<std::string> Model::layer_description() const { return describe_layer(impl_->hparams); }

const std::string& Model::fingerprint() const {
    std::call_once(impl_->fingerprint_once, [this] {
        Sha256 h;
        h.update("llama-crab-model-fingerprint/1");
        for (const auto& t : impl_->file->tensors()) {
            h.update_pod((uint64_t)t.name.size());
            h.update(t.name);
            h.update_pod((uint32_t)t.type);
            for (int64_t d : t.ne) h.update_pod(d);
            h.update(t.data, t.n_bytes);
        }
        for (const auto& kv : impl_->file->metadata()) {
            if (kv.key.substr(0, 10) != "tokenizer.") continue;
            h.update_pod((uint64_t)kv.key.size());
            h.update(kv.key);
            hash_value(h, kv.value);
        }
        impl_->fingerprint = h.hex_digest();
    });
    return impl_->fingerprint;
}

std::optional<std::string> Model::meta_string(const std::string& key) const {
    auto v = impl_->file->get_string(key);
    if (!v.ok()) return std::nullopt;
    return v.value();
}

std::optional<int64_t> Model::meta_int(const std::string& key) const {
    auto v = impl_->file->get_int(key);
    if (!v.ok()) return std::nullopt;
    return v.value();
}

std::optional<double> Model::meta_float(const std::string& key) const {
    auto v = impl_->file->get_float(key);
    if (!v.ok()) return std::nullopt;
    return v.value();
}

std::vector<std::string> Model::meta_keys() const {
    std::vector<std::string> keys;
    for (const auto& kv : impl_->file->metadata()) keys.emplace_back(kv.key);
    return keys;
}

std::vector<Model::TensorSummary> Model::tensor_summaries() const {
    std::vector<TensorSummary> out;
    for (const auto& t : impl_->file->tensors()) {
        TensorSummary s;
        s.name = std::string(t.name);
        s.type = type_traits(t.type).name;
        for (int d = 0; d < t.n_dims; ++d) s.shape.push_back(t.ne[d]);
        s.n_bytes = t.n_bytes;
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace llama_crab
