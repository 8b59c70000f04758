#include "interop/onnx_export.h"

#include "io/atomic_file.h"

#include <nlohmann/json.hpp>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <fstream>
#include <functional>
#include <stdexcept>
#include <variant>

namespace dn {

namespace {

// Builds the graph node by node; every value is named after the torchvision module that makes
// it (features.denseblock1.denselayer1.conv1), as torch.onnx.export names them.
class GraphBuilder {
public:
    GraphBuilder(const Parameters& params, onnx::GraphProto& graph) : params_(params), graph_(graph) {}

    // A state_dict tensor as an initializer of the same name.
    std::string initializer(const std::string& name) {
        const TensorEntry* e = params_.find(name);
        if (!e || e->role == TensorRole::batch_count) throw std::logic_error("no float tensor '" + name + "'");
        onnx::TensorProto* t = graph_.add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::FLOAT);
        for (int64_t d : e->shape) t->add_dims(d);
        t->set_raw_data(params_.data(*e), size_t(e->numel()) * sizeof(float));  // little-endian, as ONNX stores it
        return name;
    }

    std::string node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
                     const std::function<void(onnx::NodeProto&)>& attributes = {}) {
        onnx::NodeProto* n = graph_.add_node();
        n->set_op_type(op);
        n->set_name(name);
        for (const auto& in : inputs) n->add_input(in);
        n->add_output(name);
        if (attributes) attributes(*n);
        return name;
    }

    static void ints(onnx::NodeProto& n, const char* name, std::initializer_list<int64_t> values) {
        onnx::AttributeProto* a = n.add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INTS);
        for (int64_t v : values) a->add_ints(v);
    }
    static void scalar(onnx::NodeProto& n, const char* name, int64_t value) {
        onnx::AttributeProto* a = n.add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(value);
    }
    static void real(onnx::NodeProto& n, const char* name, float value) {
        onnx::AttributeProto* a = n.add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::FLOAT);
        a->set_f(value);
    }

    // BatchNorm2d (eval, eps 1e-5) and ReLU, as torchvision's norm and relu modules.
    std::string norm_relu(const std::string& module, const std::string& x) {
        const std::string bn = node("BatchNormalization", module, {x, initializer(module + ".weight"),
                                    initializer(module + ".bias"), initializer(module + ".running_mean"),
                                    initializer(module + ".running_var")},
                                    [](onnx::NodeProto& n) { real(n, "epsilon", 1e-5f); });
        return node("Relu", module + ".relu", {bn});
    }

    std::string conv(const std::string& module, const std::string& x, int64_t kernel, int64_t stride, int64_t pad) {
        return node("Conv", module, {x, initializer(module + ".weight")}, [&](onnx::NodeProto& n) {
            ints(n, "kernel_shape", {kernel, kernel});
            ints(n, "strides", {stride, stride});
            ints(n, "pads", {pad, pad, pad, pad});
        });
    }

private:
    const Parameters& params_;
    onnx::GraphProto& graph_;
};

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
}

}  // namespace

void export_onnx(const Parameters& params, const OnnxExport& what, const std::string& path) {
    const DenseNetConfig& cfg = params.config();
    onnx::ModelProto model;
    model.set_ir_version(onnx::IR_VERSION);
    model.set_producer_name("densenet.cpp");
    model.set_producer_version(DENSENET_VERSION);
    model.set_model_version(1);
    model.set_doc_string(cfg.arch + " (torchvision's DenseNet) in eval mode: input (N, " +
                         std::to_string(cfg.in_channels) + ", H, W) float, output logits (N, " +
                         std::to_string(cfg.num_classes) + ")");
    onnx::OperatorSetIdProto* opset = model.add_opset_import();
    opset->set_domain("");
    opset->set_version(kOnnxOpset);

    onnx::GraphProto& graph = *model.mutable_graph();
    graph.set_name(cfg.arch);
    auto value_info = [&](onnx::ValueInfoProto* v, const std::string& name, std::vector<std::variant<int64_t, std::string>> dims) {
        v->set_name(name);
        onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
        t->set_elem_type(onnx::TensorProto::FLOAT);
        for (const auto& d : dims) {
            onnx::TensorShapeProto_Dimension* dim = t->mutable_shape()->add_dim();
            if (std::holds_alternative<int64_t>(d)) dim->set_dim_value(std::get<int64_t>(d));
            else dim->set_dim_param(std::get<std::string>(d));
        }
    };
    value_info(graph.add_input(), "input", {std::string("batch"), cfg.in_channels, std::string("height"), std::string("width")});
    value_info(graph.add_output(), "logits", {std::string("batch"), cfg.num_classes});

    GraphBuilder g(params, graph);
    std::string x;
    if (cfg.stem == Stem::imagenet) {
        x = g.conv("features.conv0", "input", params.conv0.kernel, 2, 3);
        x = g.norm_relu("features.norm0", x);
        x = g.node("MaxPool", "features.pool0", {x}, [](onnx::NodeProto& n) {
            GraphBuilder::ints(n, "kernel_shape", {3, 3});
            GraphBuilder::ints(n, "strides", {2, 2});
            GraphBuilder::ints(n, "pads", {1, 1, 1, 1});
        });
    } else {
        x = g.conv("features.conv0", "input", params.conv0.kernel, 1, params.conv0.kernel / 2);
    }
    for (size_t b = 0; b < cfg.block_config.size(); ++b) {
        const std::string block = "features.denseblock" + std::to_string(b + 1);
        // Each layer reads every earlier map of its block: the running concatenation.
        for (int64_t i = 0; i < cfg.block_config[b]; ++i) {
            const std::string layer = block + ".denselayer" + std::to_string(i + 1);
            std::string y = g.norm_relu(layer + ".norm1", x);
            y = g.conv(layer + ".conv1", y, 1, 1, 0);
            y = g.norm_relu(layer + ".norm2", y);
            y = g.conv(layer + ".conv2", y, 3, 1, 1);
            x = g.node("Concat", layer + ".concat", {x, y}, [](onnx::NodeProto& n) { GraphBuilder::scalar(n, "axis", 1); });
        }
        if (b + 1 < cfg.block_config.size()) {
            const std::string t = "features.transition" + std::to_string(b + 1);
            x = g.norm_relu(t + ".norm", x);
            x = g.conv(t + ".conv", x, 1, 1, 0);
            x = g.node("AveragePool", t + ".pool", {x}, [](onnx::NodeProto& n) {
                GraphBuilder::ints(n, "kernel_shape", {2, 2});
                GraphBuilder::ints(n, "strides", {2, 2});
            });
        }
    }
    x = g.norm_relu("features.norm5", x);
    x = g.node("GlobalAveragePool", "adaptive_avg_pool2d", {x});
    x = g.node("Flatten", "flatten", {x}, [](onnx::NodeProto& n) { GraphBuilder::scalar(n, "axis", 1); });
    g.node("Gemm", "logits", {x, g.initializer("classifier.weight"), g.initializer("classifier.bias")},
           [](onnx::NodeProto& n) { GraphBuilder::scalar(n, "transB", 1); });

    const ModelInfo& info = what.info;
    add_metadata(model, "arch", cfg.arch);
    add_metadata(model, "class_names", nlohmann::json(info.class_names).dump());
    add_metadata(model, "input_size", std::to_string(what.input_size));
    add_metadata(model, "input_layout", "NCHW, RGB (or grey), values in [0, 1] before normalisation");
    add_metadata(model, "normalize", info.normalize);
    add_metadata(model, "mean", nlohmann::json(what.normalization.mean).dump());
    add_metadata(model, "std", nlohmann::json(what.normalization.std).dump());
    if (!info.dataset.empty()) add_metadata(model, "dataset", info.dataset);

    try {
        onnx::checker::check_model(model);
        onnx::ModelProto inferred = model;  // shape inference annotates its copy; the file stays lean
        onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                           onnx::ShapeInferenceOptions(/*check_type_val=*/true, /*strict_mode_val=*/1));
    } catch (const std::exception& e) {
        throw std::logic_error(std::string("the exported ONNX model fails ONNX's checker (a bug): ") + e.what());
    }

    AtomicFile file(path);
    {
        std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
        if (!out || !model.SerializeToOstream(&out)) throw std::runtime_error("cannot write '" + path + "'");
        out.close();
        if (!out) throw std::runtime_error("failed while writing '" + path + "' (disk full?)");
    }
    file.commit();
}

}  // namespace dn
