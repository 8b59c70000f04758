// defines: the subcommands of the densenet program and their options
#pragma once
#include <cstdint>
#include <string>

namespace dn {

struct SummaryOptions {
    std::string arch = "densenet121";
    int64_t num_classes = 1000;
};
int run_summary(const SummaryOptions& options);

struct TrainOptions {
    std::string arch = "densenet121";
    std::string dataset = "fashion-mnist";
    std::string data_dir = "/usr/share/datasets/fashion-mnist";
    std::string out = "runs/latest";
    int64_t input_size = 32;
    int64_t batch_size = 32;
    int64_t epochs = 10;
    double lr = 1e-4;
    int64_t limit_train = 0;  // 0: the whole set
    int64_t limit_test = 0;
    uint64_t seed = 0;
    std::string memory = "recompute";
};
int run_train(const TrainOptions& options);

}  // namespace dn
