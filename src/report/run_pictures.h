// defines: draw_run_pictures (everything `densenet train` draws into its run folder after an epoch)
#pragma once
#include "model/parameters.h"
#include "report/curves.h"

#include <string>
#include <vector>

namespace dn {

// Writes into run_dir, each file atomically:
//   loss.png/.svg, accuracy.png/.svg      the curves so far (skipped while records is empty)
//   conv0_init.png, conv0_trained.png     features.conv0's kernels before training and now
//   conv0_diff.png                        |trained - initial|, normalised on its own
//   denselayer1_conv1.png                 denseblock1.denselayer1.conv1's output channel 0 over its inputs, now
// initial and trained must be the same architecture; throws std::invalid_argument if not.
void draw_run_pictures(const std::string& run_dir, const std::vector<EpochRecord>& records, const Parameters& initial,
                       const Parameters& trained);

}  // namespace dn
