// defines: Split, load_cifar10 (the CIFAR-10 binary version), cifar10_class_names
#pragma once
#include "data/image_set.h"

#include <string>
#include <vector>

namespace dn {

enum class Split { train, test };

// data_batch_1..5.bin (train) or test_batch.bin (test), each 10000 records (any whole number is
// accepted) of one label byte and 3072 pixel bytes (R, G and B planes of 32 rows of 32). dir may
// hold the files or the archive's cifar-10-batches-bin/ folder. Class names come from
// batches.meta.txt when present. A missing, truncated or corrupt file is a std::runtime_error
// that names it.
ImageSet load_cifar10(const std::string& dir, Split split);

// airplane, automobile, ..., truck: what batches.meta.txt holds.
const std::vector<std::string>& cifar10_class_names();

}  // namespace dn
