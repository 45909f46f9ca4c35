#include "ops/quant_k.h"

namespace llama_crab {

void fill_k_type_traits(TypeTraits*, bool) {}

}  // namespace llama_crab
