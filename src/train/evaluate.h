// defines: EvalResult, evaluate (test loss, accuracy and confusion matrix over a whole data set)
#pragma once
#include "data/batch_loader.h"
#include "dist/communicator.h"
#include "model/classifier.h"

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dn {

struct EvalResult {
    int64_t images = 0, classes = 0;
    double loss = 0.0;      // mean NLL per image
    double accuracy = 0.0;  // fraction correct, 0..1
    std::vector<int64_t> confusion;  // (classes, classes): [true class][predicted class]

    int64_t count(int64_t truth, int64_t predicted) const { return confusion[size_t(truth * classes + predicted)]; }
    double class_accuracy(int64_t truth) const;  // NaN when the class has no images
};

// flip: each image is also classified mirrored, and the two softmax probabilities averaged (the
// prediction their argmax, the loss the NLL of the average).
enum class TestTimeAugment { none, flip };
// "none" or "flip" (the command lines' spelling); throws std::invalid_argument for another name.
TestTimeAugment test_time_augment(const std::string& name);
// The forward passes a test batch takes: two with flip.
inline int forward_passes(TestTimeAugment tta) { return tta == TestTimeAugment::flip ? 2 : 1; }

// The model (on either engine) in eval mode (running statistics) over every image the loader delivers (it should
// keep the short last batch and use the data set's order). progress_label: empty for no bar.
// Returns nothing when `interrupted` becomes true before the end (Ctrl-C during a long test).
std::optional<EvalResult> evaluate(Classifier& net, BatchLoader& loader, const std::string& progress_label,
                                   const std::atomic<bool>* interrupted = nullptr,
                                   TestTimeAugment tta = TestTimeAugment::none);

// The same over processes that each evaluate their shard of every batch: the result, the same in
// every process, is that of the whole set (the progress bar shows rank 0's shard). A test is not stopped halfway here (a stop must be
// agreed on, and the training step does that); interrupted still ends the bar's work early in
// a single process.
std::optional<EvalResult> evaluate_sharded(Classifier& net, BatchLoader& loader, const std::string& progress_label,
                                           Communicator& comm, const std::atomic<bool>* interrupted = nullptr,
                                           TestTimeAugment tta = TestTimeAugment::none);

}  // namespace dn
