// MNIST / Fashion-MNIST IDX files, gzipped or raw: an image file and a label file.
#include "data/idx.h"
#include "fuzz_input.h"

#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    const auto [images, labels] = fuzz::fuzz_split(data, size);
    const auto dir = fuzz::fuzz_folder("idx");
    fuzz::write_file(dir / "images", images);
    fuzz::write_file(dir / "labels", labels);
    try {
        const ImageSet set = load_idx((dir / "images").string(), (dir / "labels").string());
    } catch (const std::runtime_error&) {
    }
    return 0;
}
