// The instruction-set level the kernels run at: detected once from CPUID / XGETBV, optionally lowered by the
// LLAMA_CRAB_ISA environment variable (scalar | avx2 | avx512) for tests and comparisons.
//
// Levels and the features each needs (the flags its *_avx2.cpp / *_avx512.cpp files are compiled with):
//  - avx2:   AVX2, FMA, F16C, BMI2, and the OS saving YMM state (XCR0 bits 1-2).
//  - avx512: avx2 plus AVX-512 F, BW, DQ, VL, VNNI, and the OS saving ZMM and opmask state (XCR0 bits 5-7).
// Nothing compiled for a level runs unless cpu_supports(level).
#pragma once

#include <string>

namespace llama_crab {

enum class IsaLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

constexpr IsaLevel kIsaLevels[] = {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512};

const char* isa_name(IsaLevel level);  // "scalar", "avx2", "avx512"

// Whether this CPU (and OS) can run the kernels of a level; the scalar level always can.
bool cpu_supports(IsaLevel level);
// The features a level needs that this CPU lacks, comma-separated ("avx512vnni, avx512bw"); empty when supported.
std::string isa_missing_features(IsaLevel level);
// The best level this CPU supports.
IsaLevel cpu_isa_detected();
// The level in use: cpu_isa_detected(), or the lower level LLAMA_CRAB_ISA asks for. A value that is not a level,
// or a level the CPU lacks, is refused with one message on stderr naming the reason, and the detected level is
// used. Read once.
IsaLevel cpu_isa();

// The AVX2 kernels are in use (cpu_isa() >= avx2).
bool cpu_has_avx2();

}  // namespace llama_crab
