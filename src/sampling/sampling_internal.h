// Helpers shared by the sampling sources (not part of the public API).
#pragma once

#include "llama_crab/sampling.h"

#include <cstdint>
#include <random>

namespace llama_crab::sampling_detail {

// kRandomSeed -> a seed from std::random_device (or the clock if that is unavailable); any other seed as is.
uint32_t resolve_seed(uint32_t seed);

// Draws an index from the candidates' probabilities (p must be valid, e.g. right after softmax()). Consumes exactly
// one 32-bit output of rng: u = x / 2^32, and returns the first index whose running sum of p exceeds u * sum(p).
// Never returns a candidate with p == 0 unless all are 0. -1 when empty.
int64_t draw_index(const Candidates& candidates, std::mt19937& rng);

}  // namespace llama_crab::sampling_detail
