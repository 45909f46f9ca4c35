#include "ops/tensor_type.h"

#include <array>
#include <cctype>
#include <string>

#include "ops/quant_basic.h"
#include "ops/quant_k.h"

namespace llama_crab {
namespace {

constexpr size_t kMaxTypeId = 40;

struct TraitsTable {
    std::array<TypeTraits, kMaxTypeId> by_id{};
    std::array<bool, kMaxTypeId> present{};

    TraitsTable() {
        const bool avx2 = cpu_has_avx2();
        std::array<TypeTraits, kMaxTypeId> filled{};
        fill_basic_type_traits(filled.data(), avx2);
        fill_k_type_traits(filled.data(), avx2);
        for (size_t i = 0; i < kMaxTypeId; ++i) {
            if (filled[i].name != nullptr) {
                by_id[i] = filled[i];
                present[i] = true;
            }
        }
    }
};

const TraitsTable& table() {
    static const TraitsTable t;
    return t;
}

}  // namespace

const TypeTraits* find_type_traits(uint32_t type_id) {
    if (type_id >= kMaxTypeId || !table().present[type_id]) return nullptr;
    return &table().by_id[type_id];
}

const TypeTraits& type_traits(TensorType type) { return *find_type_traits((uint32_t)type); }

std::optional<TensorType> type_from_name(std::string_view name) {
    std::string lower;
    for (char c : name) lower += (char)std::tolower((unsigned char)c);
    for (size_t i = 0; i < kMaxTypeId; ++i) {
        if (!table().present[i]) continue;
        std::string n = table().by_id[i].name;
        for (char& c : n) c = (char)std::tolower((unsigned char)c);
        if (n == lower) return (TensorType)i;
    }
    return std::nullopt;
}

}  // namespace llama_crab
