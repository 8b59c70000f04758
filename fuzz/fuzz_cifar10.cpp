// CIFAR-10's binary batches and batches.meta.txt.
#include "data/cifar10.h"
#include "fuzz_input.h"

#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    const auto [batch, meta] = fuzz::fuzz_split(data, size);
    const auto dir = fuzz::fuzz_folder("cifar10");
    fuzz::write_file(dir / "test_batch.bin", batch);
    if (!meta.empty()) fuzz::write_file(dir / "batches.meta.txt", meta);
    try {
        const ImageSet set = load_cifar10(dir.string(), Split::test);
    } catch (const std::runtime_error&) {
    }
    return 0;
}
