#include "train/run_state.h"

#include "io/atomic_file.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace dn {

nlohmann::json run_state_json(const RunState& s) {
    nlohmann::json history = nlohmann::json::array();
    for (const auto& r : s.history)
        history.push_back({{"epoch", r.epoch}, {"train_loss", r.train_loss}, {"train_acc", r.train_acc},
                           {"test_loss", r.test_loss}, {"test_acc", r.test_acc}, {"seconds", r.seconds},
                           {"learning_rate", r.learning_rate}});
    return nlohmann::json{
        {"version", 1},
        {"options", s.options},
        {"epoch", s.epoch},
        {"next_batch", s.totals.next_batch},
        {"loss_sum", s.totals.loss_sum},
        {"correct", s.totals.correct},
        {"seen", s.totals.seen},
        {"seconds", s.totals.seconds},
        {"data_wait_seconds", s.totals.data_wait_seconds},
        {"loader_busy_seconds", s.totals.loader_busy_seconds},
        {"last_learning_rate", s.totals.last_learning_rate},
        {"optimizer_steps", s.optimizer_steps},
        {"best_accuracy", s.best_accuracy},
        {"history", history},
    };
}

RunState run_state_from_json(const nlohmann::json& j) {
    if (j.at("version").get<int>() != 1) throw std::runtime_error("unknown version");
    RunState s;
    s.options = j.at("options");
    s.epoch = j.at("epoch").get<int64_t>();
    s.totals.next_batch = j.at("next_batch").get<int64_t>();
    s.totals.loss_sum = j.at("loss_sum").get<double>();
    s.totals.correct = j.at("correct").get<int64_t>();
    s.totals.seen = j.at("seen").get<int64_t>();
    s.totals.seconds = j.at("seconds").get<double>();
    s.totals.data_wait_seconds = j.value("data_wait_seconds", 0.0);
    s.totals.loader_busy_seconds = j.value("loader_busy_seconds", 0.0);
    s.totals.last_learning_rate = j.value("last_learning_rate", 0.0);
    s.optimizer_steps = j.at("optimizer_steps").get<int64_t>();
    s.best_accuracy = j.at("best_accuracy").get<double>();
    for (const auto& r : j.at("history"))
        s.history.push_back({r.at("epoch").get<int64_t>(), r.at("train_loss").get<double>(), r.at("train_acc").get<double>(),
                             r.at("test_loss").get<double>(), r.at("test_acc").get<double>(), r.at("seconds").get<double>(),
                             r.value("learning_rate", 0.0)});  // absent from runs before schedules
    return s;
}

void save_run_state(const RunState& s, const std::string& path) {
    write_file_atomically(path, run_state_json(s).dump(2) + "\n");
}

RunState load_run_state(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open '" + path + "' (is this a run folder written by densenet train?)");
    try {
        return run_state_from_json(nlohmann::json::parse(in));
    } catch (const std::exception& e) {
        throw std::runtime_error("'" + path + "' is corrupt: " + e.what());
    }
}

void write_metrics_csv(const std::vector<EpochRecord>& history, const std::string& path) {
    // The losses and accuracies as the shortest text that reads back as the same double: the very
    // values of state.json and of TensorBoard's logs, not a rounding of them.
    auto exact = [](double value) {
        char text[32];
        return std::string(text, std::to_chars(text, text + sizeof text, value).ptr);
    };
    std::string csv = "epoch,train_loss,train_acc,test_loss,test_acc,seconds,lr\n";
    char seconds[32];
    for (const auto& r : history) {
        std::snprintf(seconds, sizeof seconds, "%.1f", r.seconds);
        csv += std::to_string(r.epoch) + "," + exact(r.train_loss) + "," + exact(r.train_acc) + "," + exact(r.test_loss) +
               "," + exact(r.test_acc) + "," + seconds + "," + exact(r.learning_rate) + "\n";
    }
    write_file_atomically(path, csv);
}

}  // namespace dn
