// defines: EventWriter (a TensorBoard events file: scalars, images, histograms, session starts),
//          write_initial_events, write_epoch_events (what `densenet train` logs), remove_event_files
#pragma once
#include "model/parameters.h"
#include "report/weight_grid.h"
#include "train/epoch_record.h"

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace dn {

// One events file, as TensorFlow's EventsWriter writes it: TFRecords (length, masked CRC32C of
// the length, an Event protobuf, its masked CRC32C), the first of them the file version.
// Every record is flushed to the operating system as it is written, so a killed process loses
// nothing it logged. Write errors throw std::runtime_error naming the file.
class EventWriter {
public:
    // A new file in the folder dir (which must exist): events.out.tfevents.<unix seconds>.<host>.
    // Readers take a folder's files in name order, so its seconds are made to exceed those of
    // any events file already there (a resumed run may start within the second its last one did).
    explicit EventWriter(const std::string& dir);
    ~EventWriter();
    EventWriter(const EventWriter&) = delete;
    EventWriter& operator=(const EventWriter&) = delete;

    const std::string& path() const { return path_; }

    // A SessionLog START at `step`, the first step this process will log (0 for a new run, one past
    // the checkpoint for a resumed one): TensorBoard's EventAccumulator forgets what earlier files
    // logged at that step and after, such as a killed run's steps past its checkpoint.
    void session_start(int64_t step);
    // TensorBoard keeps scalars as float32; value is rounded to it.
    void scalar(const std::string& tag, int64_t step, double value);
    // The picture as a PNG (grey or RGB).
    void image(const std::string& tag, int64_t step, const Picture& picture);
    // 30 equal-width buckets from the smallest value to the largest, as TensorFlow 2's
    // tf.summary.histogram, with the exact min, max, count, sum and sum of squares.
    void histogram(const std::string& tag, int64_t step, std::span<const float> values);

private:
    void write_record(const std::string& data);

    std::string path_;
    std::FILE* file_ = nullptr;
};

// The weight pictures of the initial weights (features.conv0's kernels, as conv0_init.png), at
// step 0: what a new run logs first.
void write_initial_events(EventWriter& writer, const Parameters& initial);

// What `densenet train` logs after each epoch, at the optimizer step the epoch ended on:
//   epoch/train_loss, epoch/train_acc, epoch/test_loss, epoch/test_acc   record's, as metrics.csv
//   pictures/conv0_trained, pictures/conv0_diff, pictures/denselayer1_conv1
//       the pictures draw_run_pictures writes, at one pixel per weight (TensorBoard scales them up
//       without smoothing)
//   weights/<name>   histograms of the stem convolution, the first convolution of every dense
//       block, every transition's convolution and the classifier's weight and bias: each stage of
//       the network once, without the hundred-odd layers in between
void write_epoch_events(EventWriter& writer, int64_t step, const EpochRecord& record, const Parameters& initial,
                        const Parameters& trained);

// Removes the events files in dir: an overwritten run's, which would otherwise show beside the new one's.
void remove_event_files(const std::string& dir);

}  // namespace dn
