// Writes the golden samples of the current schema version: for every sample event
// (tests/golden/samples.h, one per event type) `<dir>/<number>_<type>.aose` (the verified
// FlatBuffer bytes) and `<dir>/<number>_<type>.json` (its encode_json output).
//
// Run ONCE per schema version, commit the output, and never regenerate a committed
// version: the point of the files is that bytes written by old code stay readable.
// See tests/golden/README.md for the build command.
#include <cstdio>
#include <fstream>
#include <string>

#include "events/codec.h"
#include "tests/golden/samples.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  agentos::DecodeOptions opts;
  opts.path_tenant = agentos::TenantId("acme");
  int written = 0;
  for (const auto& s : agentos::test::samples()) {
    const std::string id = "golden-" + std::string(s.type);
    auto r = agentos::decode_structured(agentos::test::sample_event(s, id), opts);
    if (!r.ok()) {
      std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(s.type.size()), s.type.data(),
                   r.status().to_string().c_str());
      return 1;
    }
    char prefix[8];
    std::snprintf(prefix, sizeof prefix, "%03d_", static_cast<int>(r->type));
    const std::string base = dir + "/" + prefix + std::string(s.type);
    std::ofstream(base + ".aose", std::ios::binary) << r->bytes;
    std::ofstream(base + ".json", std::ios::binary) << agentos::encode_json(r->bytes) << "\n";
    ++written;
  }
  std::printf("wrote %d golden samples to %s\n", written, dir.c_str());
  return 0;
}
