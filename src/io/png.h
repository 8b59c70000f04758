// defines: write_png (8-bit grey or RGB, written atomically with libpng)
#pragma once
#include <cstdint>
#include <string>

namespace dn {

// pixels: (height, width, channels) interleaved, channels 1 (grey) or 3 (RGB).
// Writes to path + ".tmp" and renames, so a viewer never sees half a picture; a folder that is
// missing or not writable is a std::runtime_error naming the path.
void write_png(const std::string& path, const uint8_t* pixels, int64_t height, int64_t width, int64_t channels);

}  // namespace dn
