// What the library runs on.
#pragma once

namespace llama_crab {

// The instruction-set level of the kernels in use: "scalar", "avx2" or "avx512". The best the CPU supports,
// unless the environment variable LLAMA_CRAB_ISA asks for a lower one (a level the CPU lacks is refused with a
// message on stderr naming the missing features).
const char* kernel_isa_name();

}  // namespace llama_crab
