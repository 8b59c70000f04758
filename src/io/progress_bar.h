// defines: ProgressBar (a one-line bar on stderr with rate, ETA and a caller's note), format_duration,
//          silence_progress_bars
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace dn {

// "9m 28s", as the lecture prints it.
std::string format_duration(double seconds);

// From now on no bar of this process draws (data-parallel processes other than rank 0).
void silence_progress_bars();

// Redraws itself in place on a terminal (at most 5 times a second); when stderr is a file or a
// pipe it writes a plain line every 15 s instead, so logs stay readable.
class ProgressBar {
public:
    ProgressBar(std::string label, int64_t total, std::string unit);
    // done: units finished so far (of total); done_before: units counted as done when the bar
    // started (a resumed epoch), which don't count toward the rate.
    void update(int64_t done, const std::string& note, int64_t done_before = 0);
    void finish();  // ends the line

private:
    std::string label_, unit_;
    int64_t total_;
    bool terminal_;
    std::chrono::steady_clock::time_point start_, last_draw_{};
    bool drawn_ = false;
};

}  // namespace dn
