// defines: write_curves (loss and accuracy against epochs, PNG and SVG, with PLplot)
#pragma once
#include "train/epoch_record.h"

#include <string>
#include <vector>

namespace dn {

// Writes dir/loss.png, loss.svg, accuracy.png and accuracy.svg: train red, test green, as the
// lecture plots them. Each file appears atomically; a non-finite value is left out of its curve.
// Throws std::invalid_argument on no records, std::runtime_error when dir cannot be written.
void write_curves(const std::vector<EpochRecord>& records, const std::string& dir);

}  // namespace dn
