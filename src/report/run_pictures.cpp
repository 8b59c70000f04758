#include "report/run_pictures.h"

#include "report/weight_grid.h"

#include <stdexcept>

namespace dn {

namespace {
const float* weight(const Parameters& params, const TensorEntry& e) { return static_cast<const float*>(params.data(e)); }

const TensorEntry& entry(const Parameters& params, const std::string& name) {
    const TensorEntry* e = params.find(name);
    if (!e) throw std::invalid_argument("draw_run_pictures: " + params.config().arch + " has no '" + name + "'");
    return *e;
}
}  // namespace

void draw_run_pictures(const std::string& run_dir, const std::vector<EpochRecord>& records, const Parameters& initial,
                       const Parameters& trained) {
    const std::string conv0 = "features.conv0.weight", layer = "features.denseblock1.denselayer1.conv1.weight";
    const TensorEntry &before = entry(initial, conv0), &after = entry(trained, conv0);
    if (before.shape != after.shape)
        throw std::invalid_argument("draw_run_pictures: the initial and trained parameters are different architectures");

    if (!records.empty()) write_curves(records, run_dir);
    write_weight_grid(run_dir + "/conv0_init.png", make_grid(weight_tiles(weight(initial, before), before.shape)));
    write_weight_grid(run_dir + "/conv0_trained.png", make_grid(weight_tiles(weight(trained, after), after.shape)));
    const std::vector<float> diff = abs_difference(weight(trained, after), weight(initial, before), after.numel());
    write_weight_grid(run_dir + "/conv0_diff.png", make_grid(weight_tiles(diff.data(), after.shape)));
    const TensorEntry& dense = entry(trained, layer);
    write_weight_grid(run_dir + "/denselayer1_conv1.png", make_grid(weight_tiles(weight(trained, dense), dense.shape)));
}

}  // namespace dn
