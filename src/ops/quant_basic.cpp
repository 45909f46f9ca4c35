#include "ops/quant_basic.h"

namespace llama_crab {

void fill_basic_type_traits(TypeTraits*, bool) {}

}  // namespace llama_crab
