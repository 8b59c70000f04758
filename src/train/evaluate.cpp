#include "train/evaluate.h"

#include "io/progress_bar.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace dn {

double EvalResult::class_accuracy(int64_t truth) const {
    int64_t total = 0;
    for (int64_t p = 0; p < classes; ++p) total += count(truth, p);
    return total ? double(count(truth, truth)) / double(total) : std::nan("");
}

namespace {
// images (N, C, H, W) mirrored left to right into out.
void mirror(std::vector<float>& out, const float* images, int64_t rows, int64_t width) {
    out.resize(size_t(rows * width));
    for (int64_t r = 0; r < rows; ++r)
        std::reverse_copy(images + r * width, images + (r + 1) * width, out.begin() + std::ptrdiff_t(r * width));
}

// log of the mean of the probabilities of two classifications, row by row, into a.
void average_probabilities(float* a, const float* b, int64_t count) {
    for (int64_t k = 0; k < count; ++k)
        a[k] = float(std::log((std::exp(double(a[k])) + std::exp(double(b[k]))) / 2.0));
}
}  // namespace

TestTimeAugment test_time_augment(const std::string& name) {
    if (name == "none") return TestTimeAugment::none;
    if (name == "flip") return TestTimeAugment::flip;
    throw std::invalid_argument("unknown test-time augmentation '" + name + "' (none, flip)");
}

std::optional<EvalResult> evaluate(Classifier& net, BatchLoader& loader, const std::string& progress_label,
                                   const std::atomic<bool>* interrupted, TestTimeAugment tta) {
    EvalResult r;
    r.classes = net.classes();
    r.confusion.assign(size_t(r.classes * r.classes), 0);
    ProgressBar bar(progress_label, loader.shard_images_per_epoch(), "img");
    double loss_sum = 0.0;
    int64_t correct = 0;
    std::vector<float> mirrored, averaged;  // for TestTimeAugment::flip
    loader.start_epoch(1);
    while (const Batch* batch = loader.next()) {
        if (interrupted && interrupted->load()) {
            if (!progress_label.empty()) bar.finish();
            return std::nullopt;
        }
        net.forward(batch->images.data(), batch->labels.data(), Mode::eval);
        const float* log_probs = net.log_probs();
        if (tta == TestTimeAugment::flip) {
            const RunShape& shape = net.shape();
            const int64_t logits = shape.batch * r.classes;
            averaged.assign(log_probs, log_probs + logits);
            mirror(mirrored, batch->images.data(), int64_t(batch->images.size()) / shape.width, shape.width);
            net.forward(mirrored.data(), batch->labels.data(), Mode::eval);
            average_probabilities(averaged.data(), net.log_probs(), logits);
            log_probs = averaged.data();
        }
        for (int64_t i = 0; i < batch->size; ++i) {
            const float* row = log_probs + i * r.classes;
            const int64_t truth = batch->labels[size_t(i)];
            const int64_t predicted = std::max_element(row, row + r.classes) - row;
            loss_sum -= double(row[truth]);
            correct += predicted == truth;
            ++r.confusion[size_t(truth * r.classes + predicted)];
        }
        r.images += batch->size;
        if (!progress_label.empty()) {
            char note[64];
            std::snprintf(note, sizeof note, "acc %.2f%%", 100.0 * double(correct) / double(r.images));
            bar.update(r.images, note);
        }
    }
    if (!progress_label.empty()) bar.finish();
    r.loss = loss_sum / double(std::max<int64_t>(r.images, 1));
    r.accuracy = double(correct) / double(std::max<int64_t>(r.images, 1));
    return r;
}

std::optional<EvalResult> evaluate_sharded(Classifier& net, BatchLoader& loader, const std::string& progress_label,
                                           Communicator& comm, const std::atomic<bool>* interrupted,
                                           TestTimeAugment tta) {
    if (comm.size() == 1) return evaluate(net, loader, progress_label, interrupted, tta);
    std::optional<EvalResult> r = evaluate(net, loader, progress_label, nullptr, tta);
    // Counts and the loss sum, over the processes; they are exact in double (counts below 2^53).
    std::vector<double> sums(r->confusion.size() + 2);
    sums[0] = r->loss * double(r->images);
    sums[1] = double(r->images);
    for (size_t i = 0; i < r->confusion.size(); ++i) sums[i + 2] = double(r->confusion[i]);
    comm.sum(sums.data(), int64_t(sums.size()));
    r->images = int64_t(sums[1]);
    int64_t correct = 0;
    for (size_t i = 0; i < r->confusion.size(); ++i) r->confusion[i] = int64_t(sums[i + 2]);
    for (int64_t k = 0; k < r->classes; ++k) correct += r->count(k, k);
    r->loss = sums[0] / double(std::max<int64_t>(r->images, 1));
    r->accuracy = double(correct) / double(std::max<int64_t>(r->images, 1));
    return r;
}

}  // namespace dn
