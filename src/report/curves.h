// defines: EpochRecord, write_curves (loss and accuracy against epochs, PNG and SVG, with PLplot)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

struct EpochRecord {
    int64_t epoch = 0;
    double train_loss = 0, train_acc = 0;  // mean NLL per image; accuracy as a fraction 0..1
    double test_loss = 0, test_acc = 0;
    double seconds = 0;
};

// Writes dir/loss.png, loss.svg, accuracy.png and accuracy.svg: train red, test green, as the
// lecture plots them. Each file appears atomically; a non-finite value is left out of its curve.
// Throws std::invalid_argument on no records, std::runtime_error when dir cannot be written.
void write_curves(const std::vector<EpochRecord>& records, const std::string& dir);

}  // namespace dn
