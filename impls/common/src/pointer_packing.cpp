#include "ctxtree/detail/pointer_packing.hpp"

#include <cstdio>
#include <cstdlib>

namespace ctxtree::detail {

void packed_address_too_wide(const char* where, std::uintptr_t a, int bits) noexcept {
  char msg[256];
  std::snprintf(msg, sizeof msg,
                "ctxtree: %s: address %#llx does not fit in %d bits; this build packs such "
                "pointers into %d bits (pointer tagging such as MTE/HWASan, or 5-level paging, "
                "is not supported)\n",
                where, static_cast<unsigned long long>(a), bits, bits);
  std::fputs(msg, stderr);
  std::abort();
}

}  // namespace ctxtree::detail
