// open_checkpoint tells safetensors from PyTorch's formats by content, for every header length:
// a length whose first byte is 0x80 once made a safetensors file look like a pickle (found when a
// run's ema.safetensors would not load).
#include "interop/torch_import.h"
#include "io/safetensors.h"

#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

namespace dn {
namespace {

TEST(OpenCheckpoint, SafetensorsOfEveryHeaderLengthByte) {
    const std::string path = (test::scratch_dir("open_checkpoint") / "c.safetensors").string();
    const float value = 1.5f;
    std::vector<bool> seen(256);
    std::string padding;
    for (int i = 0; i < 2100; i += 8, padding += std::string(8, 'x')) {  // the header is padded to 8 bytes
        const auto bytes = safetensors_bytes({{"w", "F32", {1}, &value, sizeof value}}, {{"padding", padding}});
        const int low_byte = int(bytes[0]);
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        const SafetensorsFile file = open_checkpoint(path);
        ASSERT_EQ(file.tensors().count("w"), 1u) << "header length's first byte " << low_byte;
        float read = 0;
        std::memcpy(&read, file.tensors().at("w").data, sizeof read);
        EXPECT_EQ(read, value);
        seen[size_t(low_byte)] = true;
    }
    EXPECT_TRUE(seen[0x80]);
}

}  // namespace
}  // namespace dn
