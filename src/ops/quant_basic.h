// Placeholder: to be replaced by the block formats and kernels of this family.
#pragma once

#include "ops/tensor_type.h"

namespace llama_crab {

// Fills table[type id] for every type of this family; with avx2, the fast kernels are the AVX2 ones.
void fill_basic_type_traits(TypeTraits* table, bool avx2);

}  // namespace llama_crab
