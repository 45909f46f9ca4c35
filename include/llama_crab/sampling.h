// Sampling: turning a logits vector into the next token.
//
// The pieces:
//   - Candidates: the working set (token id, logit, probability) that samplers narrow down. It is filled from a
//     logits pointer and reuses its storage, so sampling in the steady state does not allocate.
//   - Sampler: one step (greedy, dist, temperature, top-k, top-p, min-p, typical, penalties, logit bias,
//     mirostat v1/v2). apply() edits the candidates; a *selecting* sampler (greedy, dist, mirostat) also picks
//     one; accept() tells the sampler which token was really emitted (penalty history, mirostat mu).
//   - SamplerChain: the samplers in order, the last of which selects. from_params() builds the recommended
//     chain from SamplingParams.
//   - compute_logprobs(): log-softmax over the full vocabulary, top-N tokens and one token's logprob.
//
// Recommended default order (what from_params builds when temperature > 0 and mirostat == 0):
//
//     penalties -> logit bias -> top-k -> typical -> top-p -> min-p -> temperature -> dist
//
// This is llama.cpp's common default order, for these reasons:
//   - penalties come first because they are defined on the model's raw logits and must see every token of the
//     history window before any truncation; they also change which tokens the truncations keep.
//   - logit bias comes next: it is the caller's explicit override, applied exactly as given (after the
//     penalties, so a repetition penalty never rescales a user's boost), and before the truncations, so a banned
//     (-inf) token can never survive and a boosted token can enter the top-k. (llama.cpp itself applies the bias
//     before the penalties; the two orders differ only for a biased token that is also in the history.)
//   - top-k is the first truncation because it is a cheap partial selection that shrinks a 32k-150k vocabulary
//     to a few dozen candidates, so every later stage (each of which sorts or normalises) works on few.
//   - typical -> top-p -> min-p: each renormalises over what the previous stage kept.
//   - temperature is applied last, just before dist: the truncations then act on the model's own distribution
//     (temperature 1), and temperature only changes how randomly we choose among the survivors, not which tokens
//     survive. A high temperature therefore cannot let junk tokens back in ("temperature last").
//   - dist draws the token.
// With mirostat 1 or 2: penalties -> logit bias -> temperature -> mirostat (mirostat does its own truncation,
// so top-k/top-p/min-p/typical are not used, as in llama.cpp). With temperature <= 0: penalties -> logit bias ->
// greedy. Samplers whose parameters make them a no-op (top_k 0, top_p 1, ...) are left out of the chain.
//
// Robustness: NaN logits are treated as -inf (the token can never be drawn). +inf logits are allowed: the
// +inf tokens share all the probability. If every candidate is -inf (for instance everything is banned), the
// probabilities are uniform, so a token is still returned rather than crashing.
//
// Randomness: dist and mirostat use std::mt19937 (fully specified by the standard, so identical on every
// compiler and standard library), seeded with the 32-bit seed. Each draw consumes exactly one 32-bit output x,
// turned into u = x / 2^32 in [0, 1); the token is the first candidate (in the candidates' current order) at
// which the running sum of probabilities exceeds u * sum. The same seed therefore gives the same tokens, run
// after run and machine after machine. kRandomSeed asks for a seed from std::random_device; the chosen seed can
// be read back (SamplerChain::seed()) to reproduce the run.
#pragma once

#include "llama_crab/batch.h"
#include "llama_crab/error.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace llama_crab {

// Returned by sampling when there is nothing to sample (no logits, n_vocab <= 0, an empty chain).
inline constexpr Token kInvalidToken = -1;
// As a seed: pick one at random (std::random_device). Matches llama.cpp's LLAMA_DEFAULT_SEED.
inline constexpr uint32_t kRandomSeed = 0xFFFFFFFFu;

struct TokenData {
    Token id = 0;
    float logit = 0.0f;
    float p = 0.0f;  // probability; valid only right after softmax() (the samplers that need it call it)
};

// The candidate tokens a chain works on. The live candidates are the first size() entries of a buffer that is
// kept across calls: fill() reuses it and truncation only shrinks size().
class Candidates {
public:
    // Refill with token ids 0..n_vocab-1 and their logits (NaN becomes -inf). Allocates only when n_vocab grows.
    // n_vocab <= 0 or a null pointer gives an empty set.
    void fill(const float* logits, int64_t n_vocab);
    // Replace the set with explicit entries (mainly for tests and custom pipelines).
    void assign(const std::vector<TokenData>& entries);

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    TokenData* data() { return buf_.data(); }
    const TokenData* data() const { return buf_.data(); }
    TokenData& operator[](size_t i) { return buf_[i]; }
    const TokenData& operator[](size_t i) const { return buf_[i]; }
    TokenData* begin() { return buf_.data(); }
    TokenData* end() { return buf_.data() + size_; }
    const TokenData* begin() const { return buf_.data(); }
    const TokenData* end() const { return buf_.data() + size_; }

    // The vocabulary size of the last fill() (mirostat v1 needs it); size() for assign().
    int64_t n_vocab() const { return n_vocab_; }
    // True when the candidates are known to be in descending logit order, ties by ascending token id.
    bool sorted() const { return sorted_; }
    void set_sorted(bool sorted) { sorted_ = sorted; }
    // True while entry i holds token i for every i (the layout fill() makes). Lets samplers index by token.
    bool identity_layout() const { return identity_; }
    void set_identity_layout(bool identity) { identity_ = identity; }

    // Keep only the first n (no-op when n >= size()). Keeping the first entries of a sorted set keeps it sorted.
    void truncate(size_t n);
    // Sort into descending logit order (ties: lower token id first) unless already sorted.
    void sort();
    // Fill p with the softmax of the logits, in place, without reordering. See the robustness rules above.
    void softmax();
    // Index of the candidate with the largest logit (ties: lower token id), or -1 when empty.
    int64_t argmax() const;
    // Index of the candidate holding token `id`, or -1.
    int64_t find(Token id) const;

    // The index chosen by a selecting sampler, or -1.
    int64_t selected() const { return selected_; }
    void select(int64_t index) { selected_ = index; }
    // The chosen token, or kInvalidToken.
    Token selected_token() const;

private:
    std::vector<TokenData> buf_;
    size_t size_ = 0;
    int64_t n_vocab_ = 0;
    int64_t selected_ = -1;
    bool sorted_ = false;
    bool identity_ = false;
};

// Comparator used everywhere a candidate order is needed: larger logit first, then lower token id; NaN sorts as -inf.
bool candidate_before(const TokenData& a, const TokenData& b);

class Sampler {
public:
    virtual ~Sampler() = default;
    virtual const char* name() const = 0;
    // Edit the candidates: rescale logits, drop candidates, and (selecting samplers) choose one.
    // Must never leave a non-empty set empty.
    virtual void apply(Candidates& candidates) = 0;
    // The token that was actually emitted (it may differ from the one this sampler chose).
    virtual void accept(Token /*token*/) {}
    // Back to the state right after construction: empty history, initial mu, the RNG re-seeded with the same seed.
    virtual void reset() {}
    // An independent copy including the current state (history, mu, RNG position).
    virtual std::unique_ptr<Sampler> clone() const = 0;
    // True for greedy, dist and mirostat: apply() always selects a candidate.
    virtual bool selects() const { return false; }
};

// ---- The samplers. Each is made through create(), which validates its parameters. ----

// Picks the largest logit (ties: lower token id).
class GreedySampler final : public Sampler {
public:
    static std::unique_ptr<GreedySampler> create() { return std::unique_ptr<GreedySampler>(new GreedySampler()); }
    const char* name() const override { return "greedy"; }
    void apply(Candidates& c) override;
    std::unique_ptr<Sampler> clone() const override { return create(); }
    bool selects() const override { return true; }

private:
    GreedySampler() = default;
};

// Draws from the softmax of the candidates with a seeded std::mt19937 (see "Randomness" above).
class DistSampler final : public Sampler {
public:
    // Never fails; kRandomSeed picks a random seed.
    static std::unique_ptr<DistSampler> create(uint32_t seed);
    const char* name() const override { return "dist"; }
    void apply(Candidates& c) override;
    void reset() override { rng_.seed(seed_); }
    std::unique_ptr<Sampler> clone() const override;
    bool selects() const override { return true; }
    uint32_t seed() const { return seed_; }  // the seed in use (resolved when kRandomSeed was asked)

private:
    explicit DistSampler(uint32_t seed) : seed_(seed), rng_(seed) {}
    uint32_t seed_;
    std::mt19937 rng_;
};

// Divides every logit by temp. temp <= 0 keeps only the most likely candidate (greedy).
class TemperatureSampler final : public Sampler {
public:
    static Result<std::unique_ptr<TemperatureSampler>> create(float temp);  // temp must be finite
    const char* name() const override { return "temperature"; }
    void apply(Candidates& c) override;
    std::unique_ptr<Sampler> clone() const override;
    float temperature() const { return temp_; }

private:
    explicit TemperatureSampler(float temp) : temp_(temp) {}
    float temp_;
};

// Keeps the k largest logits. k <= 0 (kTopKDisabled) keeps everything.
class TopKSampler final : public Sampler {
public:
    static Result<std::unique_ptr<TopKSampler>> create(int32_t k);  // k >= -1
    const char* name() const override { return "top-k"; }
    void apply(Candidates& c) override;
    std::unique_ptr<Sampler> clone() const override;
    int32_t k() const { return k_; }

private:
    explicit TopKSampler(int32_t k) : k_(k) {}
    int32_t k_;
    std::vector<TokenData> heap_;  // scratch, reused
};

// Nucleus: keeps the smallest prefix (by descending probability) whose mass reaches p, at least min_keep.
// p == 1 keeps everything.
class TopPSampler final : public Sampler {
public:
    static Result<std::unique_ptr<TopPSampler>> create(float p, size_t min_keep = 1);  // p in (0, 1]
    const char* name() const override { return "top-p"; }
    void apply(Candidates& c) override;
    std::unique_ptr<Sampler> clone() const override;

private:
    TopPSampler(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
    float p_;
    size_t min_keep_;
};

// Keeps the candidates whose probability is at least p times the largest probability (at least min_keep).
// p == 0 keeps everything.
class MinPSampler final : public Sampler {
public:
    static Result<std::unique_ptr<MinPSampler>> create(float p, size_t min_keep = 1);  // p in [0, 1]
    const char* name() const override { return "min-p"; }
    void apply(Candidates& c) override;
    std::unique_ptr<Sampler> clone() const override;

private:
    MinPSampler(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
    float p_;
    size_t min_keep_;
};

// Locally typical sampling (Meister et al. 2022): ranks candidates by |-ln p - H| (H the entropy of the
// distribution) and keeps, in that order, the shortest run whose mass exceeds p (at least min_keep).
// The result is in typicality order, not sorted. p == 1 keeps everything.
class TypicalSampler final : public Sampler {
public:
    static Result<std::unique_ptr<TypicalSampler>> create(float p, size_t min_keep = 1);  // p in (0, 1]
    const char* name() const override { return "typical"; }
    void apply(Candidates& c) override;
    std::unique_ptr<Sampler> clone() const override;

private:
    TypicalSampler(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
    float p_;
    size_t min_keep_;
    std::vector<float> score_;      // scratch, reused
    std::vector<uint32_t> order_;   // scratch, reused
    std::vector<TokenData> tmp_;    // scratch, reused
};

// Repetition / frequency / presence penalties over the last `last_n` accepted tokens (llama.cpp semantics).
// For a token seen c > 0 times in the window: logit <= 0 is multiplied by `repeat`, logit > 0 divided by it;
// then logit -= c * frequency + presence.
class PenaltySampler final : public Sampler {
public:
    // last_n >= 0 (0 disables), repeat > 0, all finite.
    static Result<std::unique_ptr<PenaltySampler>> create(int32_t last_n, float repeat, float frequency,
                                                          float presence);
    const char* name() const override { return "penalties"; }
    void apply(Candidates& c) override;
    void accept(Token token) override;
    void reset() override;
    std::unique_ptr<Sampler> clone() const override;
    // The window, oldest first.
    std::vector<Token> history() const;

private:
    PenaltySampler(int32_t last_n, float repeat, float frequency, float presence);
    void penalize(TokenData& d, int32_t count) const;
    int32_t last_n_;
    float repeat_, frequency_, presence_;
    std::vector<Token> ring_;     // capacity last_n
    size_t head_ = 0;             // next write position
    std::vector<Token> scratch_;  // sorted copy of the window, reused
};

// Adds a fixed bias to chosen tokens' logits; a -inf bias bans the token. Tokens outside the vocabulary are ignored.
class LogitBiasSampler final : public Sampler {
public:
    // Bias values must not be NaN or +inf; token ids must be >= 0.
    static Result<std::unique_ptr<LogitBiasSampler>> create(const std::map<Token, float>& bias);
    const char* name() const override { return "logit-bias"; }
    void apply(Candidates& c) override;
    std::unique_ptr<Sampler> clone() const override;

private:
    explicit LogitBiasSampler(std::vector<std::pair<Token, float>> bias) : bias_(std::move(bias)) {}
    std::vector<std::pair<Token, float>> bias_;  // sorted by token
};

// Mirostat (Basu et al. 2021). v1 estimates the Zipf exponent s from the top m candidates, turns the target
// surprise mu into a top-k, and draws; v2 drops every candidate whose surprise -log2 p exceeds mu, and draws.
// In both, accept(token) moves mu by -eta * (surprise - tau), where surprise = -log2 p of the drawn token in the
// (truncated, renormalised) distribution it was drawn from. mu starts at 2 * tau. If the accepted token is not
// the one this sampler drew (the caller overrode it), mu is left unchanged.
class MirostatSampler final : public Sampler {
public:
    // version 1 or 2; tau >= 0 and eta >= 0 finite; m >= 1 (v1 only). kRandomSeed picks a random seed.
    static Result<std::unique_ptr<MirostatSampler>> create(int version, uint32_t seed, float tau, float eta,
                                                           int32_t m = 100);
    const char* name() const override { return version_ == 1 ? "mirostat" : "mirostat-v2"; }
    void apply(Candidates& c) override;
    void accept(Token token) override;
    void reset() override;
    std::unique_ptr<Sampler> clone() const override;
    bool selects() const override { return true; }
    float mu() const { return mu_; }
    uint32_t seed() const { return seed_; }

private:
    MirostatSampler(int version, uint32_t seed, float tau, float eta, int32_t m);
    int version_;
    uint32_t seed_;
    float tau_, eta_;
    int32_t m_;
    float mu_;
    std::mt19937 rng_;
    Token last_selected_ = kInvalidToken;  // kInvalidToken: nothing pending for accept()
    float last_surprise_ = 0.0f;
};

// ---- Parameters and the chain ----

struct SamplingParams {
    static constexpr int32_t kTopKDisabled = 0;  // -1 is accepted as well

    float temperature = 0.8f;   // <= 0: greedy
    int32_t top_k = 40;         // 0 or -1: disabled
    float top_p = 0.95f;        // (0, 1]; 1: disabled
    float min_p = 0.05f;        // [0, 1]; 0: disabled
    float typical_p = 1.0f;     // (0, 1]; 1: disabled
    float repeat_penalty = 1.0f;  // > 0; 1: disabled
    int32_t repeat_last_n = 64;   // >= 0; 0: disabled. (llama.cpp's -1 = "context size" is for the caller to resolve)
    float frequency_penalty = 0.0f;
    float presence_penalty = 0.0f;
    int32_t mirostat = 0;         // 0: off, 1: mirostat, 2: mirostat v2
    float mirostat_tau = 5.0f;
    float mirostat_eta = 0.1f;
    int32_t min_keep = 1;         // >= 0; the truncations keep at least max(min_keep, 1) candidates
    uint32_t seed = kRandomSeed;
    std::map<Token, float> logit_bias;  // token -> added to its logit; -inf bans the token
};

// Checks every field; the error names the field and the bad value.
Status validate_sampling_params(const SamplingParams& params);

class SamplerChain {
public:
    SamplerChain() = default;
    SamplerChain(SamplerChain&&) = default;
    SamplerChain& operator=(SamplerChain&&) = default;
    SamplerChain(const SamplerChain&) = delete;             // copies go through clone()
    SamplerChain& operator=(const SamplerChain&) = delete;

    // The samplers in order; the last one must select (greedy, dist, mirostat) and no other may.
    static Result<SamplerChain> create(std::vector<std::unique_ptr<Sampler>> samplers);
    // The recommended chain for these parameters (see the order at the top of this file).
    static Result<SamplerChain> from_params(const SamplingParams& params);
    // Same, also checking that every logit_bias token is below n_vocab.
    static Result<SamplerChain> from_params(const SamplingParams& params, int64_t n_vocab);

    // Runs the chain on logits[0..n_vocab) and returns the chosen token. Does not accept it: call accept() with
    // the token actually emitted. kInvalidToken when logits is null, n_vocab <= 0 or the chain is empty.
    Token sample(const float* logits, int64_t n_vocab);
    // sample() followed by accept() of the result.
    Token sample_and_accept(const float* logits, int64_t n_vocab);
    void accept(Token token);
    void reset();
    SamplerChain clone() const;
    // Inserts a constraint stage (a GrammarSampler) after the leading per-token stages (penalties, logit bias) and
    // before every truncation. Masking commutes with those per-token edits, so this is the same as running the
    // constraint first; a GrammarSampler followed by top-k or greedy is told k (1 for greedy) so it can stop
    // checking candidates once it has found the k most likely allowed ones.
    void add_constraint(std::unique_ptr<Sampler> constraint);

    size_t size() const { return samplers_.size(); }
    Sampler& at(size_t i) { return *samplers_.at(i); }
    const Sampler& at(size_t i) const { return *samplers_.at(i); }
    // "penalties -> top-k -> ... -> dist".
    std::string describe() const;
    // The seed of the selecting sampler (resolved if kRandomSeed was asked), or kRandomSeed if it has none.
    uint32_t seed() const;
    // The candidates as the last sample() left them (the survivors and, after dist/mirostat, their probabilities).
    const Candidates& candidates() const { return candidates_; }

private:
    std::vector<std::unique_ptr<Sampler>> samplers_;
    Candidates candidates_;
};

// ---- Log-probabilities (for `logprobs`) ----

struct TokenLogprob {
    Token token = 0;
    float logprob = 0.0f;
};

struct Logprobs {
    float token_logprob = 0.0f;     // the logprob of the requested token (-inf if out of range)
    std::vector<TokenLogprob> top;  // the n_top most likely tokens, descending, ties by lower token id
};

// Log-softmax over the whole vocabulary (same NaN/inf rules as sampling). `out.top` is reused: in the steady
// state this does not allocate. n_top is clamped to [0, n_vocab].
void compute_logprobs(const float* logits, int64_t n_vocab, int32_t n_top, Token token, Logprobs& out);
Logprobs compute_logprobs(const float* logits, int64_t n_vocab, int32_t n_top, Token token);

}  // namespace llama_crab
