// defines: load_idx (MNIST / Fashion-MNIST IDX files)
#pragma once
#include "data/image_set.h"

#include <string>

namespace dn {

// Reads an idx3 image file and its idx1 label file, gzipped or raw. Throws std::runtime_error
// naming the file for a missing, truncated or malformed one, or counts that disagree.
ImageSet load_idx(const std::string& images_path, const std::string& labels_path);

}  // namespace dn
