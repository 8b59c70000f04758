#include "app/commands.h"

#include "model/parameters.h"

#include <cstdio>

namespace dn {

int run_summary(const SummaryOptions& o) {
    Parameters params(densenet_preset(o.arch, o.num_classes));
    std::printf("%s, %ld classes: parameters and buffers in torchvision's state_dict order\n", o.arch.c_str(),
                long(o.num_classes));
    for (const auto& e : params.entries()) {
        std::string shape;
        for (size_t i = 0; i < e.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(e.shape[i]);
        std::printf("  %-60s [%s]\n", e.name.c_str(), shape.c_str());
    }
    std::printf("Total number of parameters: %ld\n", long(params.count()));
    return 0;
}

}  // namespace dn
