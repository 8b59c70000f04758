// defines: Mode, Classifier (what evaluation and prediction ask of a network, whichever engine
//          runs it: the CPU's DenseNet, or the GPU's through cuda::HostClassifier)
#pragma once
#include "model/activation_plan.h"  // RunShape

#include <cstdint>

namespace dn {

// train: batch statistics (and running-statistics updates); eval: running statistics.
enum class Mode { train, eval };

class Classifier {
public:
    virtual ~Classifier() = default;
    // images (N,C,H,W) in PyTorch's layout and labels (N), in host memory, N = shape().batch.
    // Returns the mean NLL loss of log_softmax; logits() and log_probs() hold this batch's (N,K),
    // in host memory.
    virtual float forward(const float* images_nchw, const int32_t* labels, Mode mode) = 0;
    virtual const float* logits() const = 0;
    virtual const float* log_probs() const = 0;
    virtual const RunShape& shape() const = 0;
    virtual int64_t classes() const = 0;
};

}  // namespace dn
