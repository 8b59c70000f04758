// densenet export: a checkpoint as an ONNX model, for ONNX Runtime, OpenCV's DNN module,
// TensorRT or OpenVINO.
#include "app/commands.h"
#include "app/run_setup.h"

#include "interop/onnx_export.h"
#include "interop/torch_import.h"
#include "model/checkpoint.h"
#include "model/model_info.h"

#include <cstdio>

namespace dn {

namespace {

struct ExportOptions {
    std::string checkpoint, onnx;
    int64_t input_size = 0;
};

int run_export(const ExportOptions& o) {
    const SafetensorsFile file = open_checkpoint(o.checkpoint);
    const ModelInfo info = read_model_info(file);
    Parameters params(info.config);
    load_checkpoint(params, file, {});
    const OnnxExport what{.info = info, .input_size = model_input_size(o.input_size, info),
                          .normalization = normalization(info.normalize, info.config.in_channels)};
    export_onnx(params, what, o.onnx);
    std::printf("%s: %s (%ld classes, input %ldx%ld, normalisation %s) -> %s, ONNX opset %ld, dynamic batch\n",
                o.checkpoint.c_str(), info.config.arch.c_str(), long(info.config.num_classes), long(what.input_size),
                long(what.input_size), info.normalize.c_str(), o.onnx.c_str(), long(kOnnxOpset));
    return 0;
}

}  // namespace

Command add_export_command(CLI::App& app) {
    auto o = std::make_shared<ExportOptions>();
    auto* c = app.add_subcommand("export",
                                 "write a checkpoint as an ONNX model (eval mode, dynamic batch; input \"input\" "
                                 "(N,C,H,W) float, output \"logits\"), checked by ONNX's checker before it is "
                                 "written; class names, input size and normalisation go in its metadata");
    c->add_option("--checkpoint", o->checkpoint, "checkpoint: safetensors or a PyTorch .pth")->required()->check(CLI::ExistingFile);
    c->add_option("--onnx", o->onnx, "the .onnx file to write")->required();
    c->add_option("--input-size", o->input_size,
                  "the input size recorded in the metadata (default: the checkpoint's, else 224)");
    return {c, [o] { return run_export(*o); }};
}

}  // namespace dn
