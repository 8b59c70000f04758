#include "io/progress_bar.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace dn {

std::string format_duration(double seconds) {
    const long s = long(seconds + 0.5);
    if (s >= 3600) return std::to_string(s / 3600) + "h " + std::to_string(s / 60 % 60) + "m " + std::to_string(s % 60) + "s";
    return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
}

namespace {
std::atomic<bool> g_silenced{false};
}

void silence_progress_bars() { g_silenced = true; }

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), terminal_(isatty(fileno(stderr)) == 1),
      start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done, const std::string& note, int64_t done_before) {
    if (g_silenced) return;
    const auto now = std::chrono::steady_clock::now();
    const auto interval = terminal_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(15000);
    if (drawn_ && now - last_draw_ < interval && done < total_) return;
    last_draw_ = now;
    drawn_ = true;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? double(done - done_before) / secs : 0.0;
    const std::string eta = rate > 0 ? format_duration(double(total_ - done) / rate) : "?";
    const int width = 24, filled = total_ > 0 ? int(width * done / total_) : width;
    std::fprintf(stderr, "%s%s [%.*s%*s] %ld/%ld  %.1f %s/s  ETA %s  %s%s", terminal_ ? "\r" : "", label_.c_str(), filled,
                 "########################", width - filled, "", long(done), long(total_), rate, unit_.c_str(),
                 eta.c_str(), note.c_str(), terminal_ ? "\033[K" : "\n");
    std::fflush(stderr);
}

void ProgressBar::finish() {
    if (drawn_ && terminal_) std::fprintf(stderr, "\n");
}

}  // namespace dn
