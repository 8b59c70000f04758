// defines: cuda::MemorySetup, cuda::TrainingBytes, cuda::MemoryReport, cuda::measure_memory (what
//          the GPU engine allocates on a card for a network and batch, and the largest batch that
//          allocates there); no CUDA header, so that the program's complexity command can name them
#pragma once
#include "model/activation_plan.h"  // Precision

#include <cstddef>
#include <cstdint>
#include <string>

namespace dn::cuda {

struct MemorySetup {
    std::string arch = "densenet121";
    int64_t num_classes = 1000;
    int64_t input_size = 224;
    int64_t batch_size = 32;
    Precision precision = Precision::fp32;
    int device = 0;
};

// What `densenet train --device cuda` allocates (cuda::GpuStepEngine with Adam, recomputing), in
// device buffers: cuDNN's and cuBLAS's handles hold a little of their own, not counted.
struct TrainingBytes {
    size_t arena = 0, workspace = 0, weight_copies = 0, scratch = 0;  // the training network's
    size_t parameters = 0;  // values, gradients, running statistics, Adam's two moments
    size_t batches = 0;     // the two batches in flight (images and labels)
    size_t tester = 0;      // the inference network the tests run (and the clipping's few bytes)
    size_t total = 0;       // every buffer live at once: the sum
    // What a run with a weight average allocates beyond total: with --ema-decay, the average's
    // device copy (values and running statistics); with --test-ema as well, the inference network
    // that tests it.
    size_t average = 0, average_tester = 0;
};

struct MemoryReport {
    std::string device;      // cuda::device_name
    size_t card_bytes = 0;   // the card's memory
    size_t free_bytes = 0;   // free when measured (others' processes take their share)
    TrainingBytes training;  // at setup.batch_size
    size_t inference = 0;    // what eval and predict allocate (cuda::HostClassifier), in all
    // Why the engine did not build at setup.batch_size (its figures are then 0); empty if it did.
    std::string training_error, inference_error;
    // The largest batches whose engines build on this card now (0: not even one image): their
    // memory allocates, and cuDNN takes their tensors.
    int64_t max_batch_training = 0, max_batch_inference = 0;
};

// Builds the engines on setup.device: at setup.batch_size for the figures, then as many times as a
// search for the largest batches takes (doubling, then halving the gap: some twenty builds). A
// build that fails only says the batch does not fit; an unusable GPU throws.
MemoryReport measure_memory(const MemorySetup& setup);

}  // namespace dn::cuda
