// A run folder's state.json, as --resume reads it.
#include "fuzz_input.h"
#include "train/run_state.h"

#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    const auto dir = fuzz::fuzz_folder("run_state");
    fuzz::write_file(dir / "state.json", {reinterpret_cast<const char*>(data), size});
    try {
        const RunState state = load_run_state((dir / "state.json").string());
        write_metrics_csv(state.history, (dir / "metrics.csv").string());
    } catch (const std::runtime_error&) {
    }
    return 0;
}
