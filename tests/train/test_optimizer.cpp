// Every optimizer variant against torch.optim, on one tensor and 5 fixed gradients spanning five
// orders of magnitude (make_optimizer_reference.py). The update is elementwise, so the match is
// to float rounding: 1e-6 relative.
#include "io/safetensors.h"
#include "train/optimizer.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>

namespace dn {
namespace {

class OptimizerParity : public testing::Test {
protected:
    void SetUp() override {
        file_ = std::make_unique<SafetensorsFile>(test::reference_dir() + "/optimizers.safetensors");
    }
    std::vector<float> get(const std::string& name) const {
        const auto& t = file_->tensors().at(name);
        std::vector<float> v(t.bytes / 4);
        std::memcpy(v.data(), t.data, t.bytes);
        return v;
    }
    nlohmann::json options(const std::string& name) const { return nlohmann::json::parse(file_->metadata().at(name)); }

    template <class Optimizer>
    void check(const std::string& name, Optimizer& opt) {
        std::vector<float> w = get("start"), grads = get("grads"), want = get(name);
        for (int s = 0; s < 5; ++s) opt.step(w.data(), grads.data() + s * int64_t(w.size()));
        double err = test::relative_error(w.data(), want.data(), int64_t(w.size()));
        EXPECT_LE(err, 1e-6) << name;
        std::printf("%-24s relative error %.3g\n", name.c_str(), err);
    }
    std::unique_ptr<SafetensorsFile> file_;
};

TEST_F(OptimizerParity, AdamVariants) {
    for (std::string name : {"adam", "adam_wd_amsgrad", "adamw"}) {
        auto j = options(name);
        AdamOptions o;
        o.lr = j["lr"];
        if (j.contains("betas")) o.beta1 = j["betas"][0], o.beta2 = j["betas"][1];
        o.eps = j.value("eps", 1e-8);
        o.weight_decay = j.value("weight_decay", 0.0);
        o.amsgrad = j.value("amsgrad", false);
        if (name == "adamw") o.decay = WeightDecay::decoupled;
        Adam adam(1000, o);
        check(name, adam);
    }
}

TEST_F(OptimizerParity, SgdVariants) {
    for (std::string name : {"sgd", "sgd_momentum_dampening", "sgd_nesterov"}) {
        auto j = options(name);
        SgdOptions o;
        o.lr = j["lr"];
        o.momentum = j.value("momentum", 0.0);
        o.dampening = j.value("dampening", 0.0);
        o.weight_decay = j.value("weight_decay", 0.0);
        o.nesterov = j.value("nesterov", false);
        Sgd sgd(1000, o);
        check(name, sgd);
    }
}

}  // namespace
}  // namespace dn
