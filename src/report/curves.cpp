#include "report/curves.h"

#include "io/atomic_file.h"

#include <plstream.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace dn {

namespace {
// cmap0 slots this file uses; PLplot's defaults (black background, white 15) are replaced.
enum Colour { kBackground = 0, kInk = 1, kTrain = 2, kTest = 3, kGrid = 4 };

struct Series {
    std::vector<double> x, y;  // finite points only
};

struct Chart {
    std::string title, y_label, unit;
    Series train, test;
    int decimals;
};

// The tick step, 1, 2 or 5 times a power of ten, that labels at most about ten epochs.
double epoch_tick(double span) {
    for (double step = 1;; step *= 10)
        for (double m : {1.0, 2.0, 5.0})
            if (span / (step * m) <= 10) return step * m;
}

// The legend goes in the right-hand corner, top or bottom, that fewer points come near: top for a
// falling loss, bottom for a rising accuracy, and wherever a curve that does neither leaves room.
bool legend_on_top(const Chart& c, double x0, double x1, double y0, double y1) {
    int top = 0, bottom = 0;
    for (const Series* s : {&c.train, &c.test})
        for (size_t i = 0; i < s->x.size(); ++i) {
            if (s->x[i] < x0 + 0.55 * (x1 - x0)) continue;
            top += s->y[i] > y0 + 0.7 * (y1 - y0);
            bottom += s->y[i] < y0 + 0.3 * (y1 - y0);
        }
    return top <= bottom;
}

std::string last_value(const Series& s, const Chart& c) {
    if (s.y.empty()) return "";
    char text[64];
    std::snprintf(text, sizeof text, "  (last %.*f%s)", c.decimals, s.y.back(), c.unit.c_str());
    return text;
}

// Without its driver, plinit() would ask on stdin for another device: fail with the fix instead.
// Only pngcairo needs this: it comes in its own package, while svg ships with libplplot (and is
// not in PLplot's list of file devices, its driver_info marking it interactive).
void require_device(plstream& pls, const char* device) {
    const char* menus[128];
    const char* names[128];
    const char** menu_list = menus;
    const char** name_list = names;
    int count = 128;
    pls.gFileDevs(&menu_list, &name_list, &count);
    for (int i = 0; i < count; ++i)
        if (std::strcmp(names[i], device) == 0) return;
    throw std::runtime_error(std::string("PLplot has no '") + device +
                             "' device to draw the curves with (Debian: apt-get install plplot-driver-cairo)");
}

void draw(const Chart& c, const char* device, const std::string& path) {
    AtomicFile out(path);
    const std::string& tmp = out.temp_path();
    // PLplot's own open failure retries, prompts on stdin, then exits the process: make sure the
    // file can be created before PLplot tries.
    std::FILE* probe = std::fopen(tmp.c_str(), "wb");
    if (!probe) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
    std::fclose(probe);

    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (const Series* s : {&c.train, &c.test}) {
        for (double x : s->x) xmin = std::min(xmin, x), xmax = std::max(xmax, x);
        for (double y : s->y) ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
    if (!(xmin <= xmax)) xmin = xmax = 1;
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    const double x_margin = std::max(0.5, 0.03 * (xmax - xmin));
    // A single epoch, or a flat curve, still gets a readable band around its value.
    const double y_pad = std::max(0.08 * (ymax - ymin), std::max(0.05 * std::fabs(ymax), 1e-3));
    const double y_lo = (ymin >= 0 && ymin - y_pad < 0) ? 0.0 : ymin - y_pad;
    const double tick = epoch_tick(xmax - xmin + 1);
    const double x0 = xmin - x_margin, x1 = xmax + x_margin, y0 = y_lo, y1 = ymax + y_pad;

    {
        plstream pls;
        if (std::strcmp(device, "pngcairo") == 0) require_device(pls, device);
        pls.sdev(device);
        pls.sfnam(tmp.c_str());
        pls.spage(0, 0, 800, 560, 0, 0);
        pls.scol0(kBackground, 255, 255, 255);
        pls.scol0(kInk, 0, 0, 0);
        pls.scol0(kTrain, 215, 25, 28);
        pls.scol0(kTest, 26, 150, 65);
        pls.scol0(kGrid, 215, 215, 215);
        pls.scol0(15, 0, 0, 0);
        pls.init();
        pls.adv(0);
        pls.schr(0, 1.1);
        pls.vpor(0.11, 0.96, 0.12, 0.90);
        pls.wind(x0, x1, y0, y1);
        pls.col0(kGrid);
        pls.width(1);
        pls.box("g", tick, 1, "g", 0, 0);
        pls.col0(kInk);
        pls.box("bcnst", tick, tick == 1 ? 1 : 0, "bcnstv", 0, 0);
        pls.lab("epoch", c.y_label.c_str(), c.title.c_str());

        const Series* series[2] = {&c.train, &c.test};
        const PLINT colours[2] = {kTrain, kTest};
        const char* markers[2] = {"●", "■"};
        // Markers make one epoch visible and each epoch countable; past ~30 they only clutter.
        const bool marked = std::max(c.train.x.size(), c.test.x.size()) <= 30;
        for (int i = 0; i < 2; ++i) {
            const Series& s = *series[i];
            pls.col0(colours[i]);
            pls.width(2.5);
            if (s.x.size() > 1) pls.line(PLINT(s.x.size()), s.x.data(), s.y.data());
            if (marked && !s.x.empty()) pls.string(PLINT(s.x.size()), s.x.data(), s.y.data(), markers[i]);
        }

        const std::string train_text = "train" + last_value(c.train, c), test_text = "test" + last_value(c.test, c);
        const char* text[2] = {train_text.c_str(), test_text.c_str()};
        const PLINT opt = PL_LEGEND_LINE | (marked ? PL_LEGEND_SYMBOL : 0), opts[2] = {opt, opt};
        const PLINT styles[2] = {1, 1}, symbol_numbers[2] = {1, 1};
        const PLFLT line_widths[2] = {2.5, 2.5}, symbol_scales[2] = {1, 1};
        PLFLT legend_w = 0, legend_h = 0;
        pls.col0(kInk);
        pls.width(1);
        pls.legend(&legend_w, &legend_h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
                   PL_POSITION_INSIDE | PL_POSITION_RIGHT | (legend_on_top(c, x0, x1, y0, y1) ? PL_POSITION_TOP : PL_POSITION_BOTTOM),
                   0.03, 0.04, 0.08, kBackground, kInk, 1, 0, 0, 2, opts, 1.0, 1.0, 2.0, 0.0, colours, text, nullptr,
                   nullptr, nullptr, nullptr, colours, styles, line_widths, colours, symbol_scales, symbol_numbers,
                   markers);
    }  // the stream's destructor finishes the file
    out.commit();
}
}  // namespace

void write_curves(const std::vector<EpochRecord>& records, const std::string& dir) {
    if (records.empty()) throw std::invalid_argument("write_curves: no epochs to plot into '" + dir + "'");
    Chart loss{"Loss per epoch", "loss (mean NLL per image)", "", {}, {}, 4};
    Chart accuracy{"Accuracy per epoch", "accuracy (%)", "%", {}, {}, 2};
    auto add = [](Series& s, double x, double y) {
        if (std::isfinite(y)) s.x.push_back(x), s.y.push_back(y);
    };
    for (const auto& r : records) {
        const double x = double(r.epoch);
        add(loss.train, x, r.train_loss);
        add(loss.test, x, r.test_loss);
        add(accuracy.train, x, 100 * r.train_acc);
        add(accuracy.test, x, 100 * r.test_acc);
    }
    for (const char* ext : {"png", "svg"}) {
        const char* device = ext == std::string("png") ? "pngcairo" : "svg";
        draw(loss, device, dir + "/loss." + ext);
        draw(accuracy, device, dir + "/accuracy." + ext);
    }
}

}  // namespace dn
