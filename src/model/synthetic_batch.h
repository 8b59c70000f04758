// defines: SyntheticBatch, synthetic_batch (the benchmarks' images and labels, as
//          ../shared/peer/pytorch_bench.py makes its peers')
#pragma once
#include <cstdint>
#include <vector>

namespace dn {

struct SyntheticBatch {
    std::vector<float> images;    // (N,C,S,S)
    std::vector<int32_t> labels;  // (N)
};

// As the peer's torch.rand and torch.randint: images uniform in [0, 1), labels uniform over the
// classes, from a fixed seed, so that every engine's bench runs the same batch.
SyntheticBatch synthetic_batch(int64_t batch, int64_t channels, int64_t size, int64_t classes);

}  // namespace dn
