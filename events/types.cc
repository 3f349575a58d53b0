#include "events/types.h"

namespace agentos {

bool TenantId::is_valid(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && i > 0)) return false;
  }
  return true;
}

}  // namespace agentos
