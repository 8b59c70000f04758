// defines: EpochRecord (one line of metrics.csv: what an epoch of training and testing measured)
#pragma once
#include <cstdint>

namespace dn {

struct EpochRecord {
    int64_t epoch = 0;
    double train_loss = 0, train_acc = 0;  // mean NLL per image; accuracy as a fraction 0..1
    double test_loss = 0, test_acc = 0;
    double seconds = 0;                    // training time of the epoch
    double learning_rate = 0;              // what the epoch's last step used
};

}  // namespace dn
