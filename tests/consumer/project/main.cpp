// An out-of-tree program using the installed dhtkit package.
#include <cstdio>

#include <dhtkit/dhtkit.hpp>

int main() {
  static_assert(dhtkit::xxh64("abc") == 0x44BC2CF5AD770999ULL);
  const auto id = dhtkit::node_id::from_name("consumer");
  std::printf("dhtkit consumer ok: %s\n", id.to_string().c_str());
  return 0;
}
