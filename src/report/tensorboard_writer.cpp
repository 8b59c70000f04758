#include "report/tensorboard_writer.h"

#include "report/tensorboard.pb.h"

#include <boost/crc.hpp>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <vector>

namespace dn {

namespace fs = std::filesystem;

namespace {
constexpr const char* kFilePrefix = "events.out.tfevents.";
constexpr const char* kFileVersion = "brain.Event:2";  // the version whose readers honour SessionLog START
constexpr int kHistogramBuckets = 30;                  // tf.summary.histogram's default
constexpr int kColorspaceGrey = 1, kColorspaceRgb = 3;

// TFRecord's checksum: CRC32C (Castagnoli), masked so that a CRC of data holding CRCs stays unlikely
// to look like one (TensorFlow's crc32c::Mask).
uint32_t masked_crc32c(const char* data, size_t size) {
    boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
    crc.process_bytes(data, size);
    const uint32_t c = crc.checksum();
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// TFRecord's integers are little-endian whatever the machine.
template <class T>
void append_little_endian(std::string& out, T value) {
    for (size_t i = 0; i < sizeof value; ++i) out.push_back(char((value >> (8 * i)) & 0xff));
}

double unix_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
    return name;
}

bool is_event_file(const std::string& name) { return name.starts_with(kFilePrefix); }

// The seconds an events file's name starts with, or -1 when it doesn't start with a number.
int64_t seconds_in_name(const std::string& name) {
    const char* first = name.data() + std::strlen(kFilePrefix);
    int64_t seconds = -1;
    std::from_chars(first, name.data() + name.size(), seconds);
    return seconds;
}

// TensorBoard's readers (EventAccumulator, RustBoard) read a folder's files in name order, and a
// resumed run's START must come after what the killed run wrote: the new name's seconds exceed
// every existing one's, even if this is the same second (or the clock went back).
std::string new_file_path(const std::string& dir) {
    int64_t seconds = int64_t(unix_seconds());
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        const int64_t taken = is_event_file(name) ? seconds_in_name(name) : -1;
        // One that cannot be stepped past is taken as it is: creating the file then fails.
        seconds = std::max(seconds, taken < std::numeric_limits<int64_t>::max() ? taken + 1 : taken);
    }
    if (ec) throw std::runtime_error("cannot list '" + dir + "': " + ec.message());
    return (fs::path(dir) / (kFilePrefix + std::to_string(seconds) + "." + host_name())).string();
}

tensorboard::Event event_at(int64_t step) {
    tensorboard::Event event;
    event.set_wall_time(unix_seconds());
    event.set_step(step);
    return event;
}

tensorboard::Summary::Value* new_value(tensorboard::Event& event, const std::string& tag) {
    tensorboard::Summary::Value* value = event.mutable_summary()->add_value();
    value->set_tag(tag);
    return value;
}

// libpng's simplified API reports errors in image.message rather than by longjmp, which would
// skip destructors. The first call sizes the buffer, the second fills it.
std::string encode_png(const Picture& picture) {
    if (picture.channels != 1 && picture.channels != 3)
        throw std::invalid_argument("a TensorBoard image here has 1 or 3 channels, not " +
                                    std::to_string(picture.channels));
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = png_uint_32(picture.width);
    image.height = png_uint_32(picture.height);
    image.format = picture.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&image, nullptr, &size, 0, picture.pixels.data(), 0, nullptr))
        throw std::runtime_error(std::string("cannot encode a PNG: ") + image.message);
    std::string bytes(size, '\0');
    if (!png_image_write_to_memory(&image, bytes.data(), &size, 0, picture.pixels.data(), 0, nullptr))
        throw std::runtime_error(std::string("cannot encode a PNG: ") + image.message);
    bytes.resize(size);
    return bytes;
}

const float* weights_of(const Parameters& params, const TensorEntry& e) {
    return static_cast<const float*>(params.data(e));
}

const TensorEntry& entry(const Parameters& params, const std::string& name) {
    const TensorEntry* e = params.find(name);
    if (!e) throw std::invalid_argument("TensorBoard: " + params.config().arch + " has no '" + name + "'");
    return *e;
}

// The weights histogrammed after each epoch: one look at each stage of the network (see the header).
bool histogrammed(const std::string& name) {
    return name == "features.conv0.weight" || name.starts_with("classifier.") ||
           (name.starts_with("features.denseblock") && name.ends_with(".denselayer1.conv1.weight")) ||
           (name.starts_with("features.transition") && name.ends_with(".conv.weight"));
}

const char* const kConv0 = "features.conv0.weight";
const char* const kDenseLayer = "features.denseblock1.denselayer1.conv1.weight";
}  // namespace

EventWriter::EventWriter(const std::string& dir) : path_(new_file_path(dir)) {
    file_ = std::fopen(path_.c_str(), "wbx");  // x: never append to another writer's file
    if (!file_) throw std::runtime_error("cannot create '" + path_ + "': " + std::strerror(errno));
    tensorboard::Event event = event_at(0);
    event.set_file_version(kFileVersion);
    write_record(event.SerializeAsString());
}

EventWriter::~EventWriter() {
    if (file_) std::fclose(file_);
}

void EventWriter::write_record(const std::string& data) {
    std::string record;
    record.reserve(data.size() + 16);
    append_little_endian(record, uint64_t(data.size()));
    append_little_endian(record, masked_crc32c(record.data(), 8));
    record += data;
    append_little_endian(record, masked_crc32c(data.data(), data.size()));
    if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
        throw std::runtime_error("cannot write '" + path_ + "': " + std::strerror(errno));
}

void EventWriter::session_start(int64_t step) {
    tensorboard::Event event = event_at(step);
    event.mutable_session_log()->set_status(tensorboard::SessionLog::START);
    write_record(event.SerializeAsString());
}

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
    tensorboard::Event event = event_at(step);
    new_value(event, tag)->set_simple_value(float(value));
    write_record(event.SerializeAsString());
}

void EventWriter::image(const std::string& tag, int64_t step, const Picture& picture) {
    tensorboard::Event event = event_at(step);
    tensorboard::Summary::Image* image = new_value(event, tag)->mutable_image();
    image->set_height(int32_t(picture.height));
    image->set_width(int32_t(picture.width));
    image->set_colorspace(picture.channels == 3 ? kColorspaceRgb : kColorspaceGrey);
    image->set_encoded_image_string(encode_png(picture));
    write_record(event.SerializeAsString());
}

void EventWriter::histogram(const std::string& tag, int64_t step, std::span<const float> values) {
    if (values.empty()) throw std::invalid_argument("histogram '" + tag + "' has no values");
    double lo = values[0], hi = values[0], sum = 0.0, sum_squares = 0.0;
    for (const float v : values) {
        if (!std::isfinite(v)) throw std::runtime_error("histogram '" + tag + "': a value is not finite");
        lo = std::min(lo, double(v));
        hi = std::max(hi, double(v));
        sum += v;
        sum_squares += double(v) * double(v);
    }
    // All values equal: one bucket, which TensorBoard draws from min to max.
    const int buckets = hi > lo ? kHistogramBuckets : 1;
    std::vector<double> limits(static_cast<size_t>(buckets)), counts(static_cast<size_t>(buckets), 0.0);
    for (int b = 0; b < buckets; ++b) limits[size_t(b)] = lo + (b + 1) * ((hi - lo) / buckets);
    limits.back() = hi;  // exactly, whatever the rounding: every value then has a bucket
    // Bucket b holds (limits[b-1], limits[b]], found by search so that it agrees with the limits written.
    for (const float v : values)
        ++counts[size_t(std::lower_bound(limits.begin(), limits.end(), double(v)) - limits.begin())];

    tensorboard::Event event = event_at(step);
    tensorboard::HistogramProto* h = new_value(event, tag)->mutable_histo();
    h->set_min(lo);
    h->set_max(hi);
    h->set_num(double(values.size()));
    h->set_sum(sum);
    h->set_sum_squares(sum_squares);
    for (int b = 0; b < buckets; ++b) {
        h->add_bucket_limit(limits[size_t(b)]);
        h->add_bucket(counts[size_t(b)]);
    }
    write_record(event.SerializeAsString());
}

void write_initial_events(EventWriter& writer, const Parameters& initial) {
    const TensorEntry& conv0 = entry(initial, kConv0);
    writer.image("pictures/conv0_init", 0, make_grid(weight_tiles(weights_of(initial, conv0), conv0.shape)));
}

void write_epoch_events(EventWriter& writer, int64_t step, const EpochRecord& record, const Parameters& initial,
                        const Parameters& trained) {
    writer.scalar("epoch/train_loss", step, record.train_loss);
    writer.scalar("epoch/train_acc", step, record.train_acc);
    writer.scalar("epoch/test_loss", step, record.test_loss);
    writer.scalar("epoch/test_acc", step, record.test_acc);

    // The pictures of draw_run_pictures (run_pictures.cpp), before their enlargement.
    const TensorEntry &before = entry(initial, kConv0), &after = entry(trained, kConv0);
    writer.image("pictures/conv0_trained", step, make_grid(weight_tiles(weights_of(trained, after), after.shape)));
    const std::vector<float> diff =
        abs_difference(weights_of(trained, after), weights_of(initial, before), after.numel());
    writer.image("pictures/conv0_diff", step, make_grid(weight_tiles(diff.data(), after.shape)));
    const TensorEntry& dense = entry(trained, kDenseLayer);
    writer.image("pictures/denselayer1_conv1", step, make_grid(weight_tiles(weights_of(trained, dense), dense.shape)));

    for (const TensorEntry& e : trained.entries())
        if (e.role == TensorRole::parameter && histogrammed(e.name))
            writer.histogram("weights/" + e.name, step, {weights_of(trained, e), size_t(e.numel())});
}

void remove_event_files(const std::string& dir) {
    // Best effort: a file left behind is superseded anyway, since a new run's session starts at
    // step 0 and so makes TensorBoard's EventAccumulator forget every step an older file logged.
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (is_event_file(it->path().filename().string())) fs::remove(it->path(), ec);
}

}  // namespace dn
