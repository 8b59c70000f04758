// densenet import: a PyTorch .pth (torch.save's zip or legacy format, such as torchvision's
// ImageNet weights) as a safetensors state_dict, read without Python and without running its code.
#include "app/commands.h"

#include "io/atomic_file.h"
#include "io/torch_file.h"
#include "model/model_info.h"
#include "interop/torch_import.h"

#include <cstdio>
#include <stdexcept>

namespace dn {

namespace {

struct ImportOptions {
    std::string torch, out;
};

// "densenet121 with 1000 classes", or why the tensors are not a DenseNet this program builds.
std::string what_it_is(const SafetensorsFile& file) {
    try {
        const ModelInfo info = read_model_info(file);
        return info.config.arch + " with " + std::to_string(info.config.num_classes) + " classes";
    } catch (const std::exception& e) {
        return std::string("not a DenseNet densenet.cpp builds (") + e.what() + "), written as it is";
    }
}

int run_import(const ImportOptions& o) {
    const TorchFile file(o.torch);
    const ImportedStateDict state_dict = import_state_dict(file);
    std::vector<std::byte> bytes = state_dict_safetensors(state_dict);
    const SafetensorsFile check(o.torch, bytes);  // what train --init and eval will read, checked before writing
    const std::string kind = what_it_is(check);

    write_file_atomically(o.out, {reinterpret_cast<const char*>(bytes.data()), bytes.size()});

    std::printf("%s (torch.save's %s format): %zu tensors%s -> %s\n  %s\n", o.torch.c_str(), file.format(),
                state_dict.tensors.size(),
                state_dict.found_under.empty() ? "" : (", the state_dict under '" + state_dict.found_under + "'").c_str(),
                o.out.c_str(), kind.c_str());
    if (state_dict.stripped_module_prefix) std::printf("  'module.' removed from every name (saved from nn.DataParallel)\n");
    if (state_dict.renamed > 0)
        std::printf("  %ld old torchvision names renamed as torchvision does (denselayerN.norm.1 -> norm1)\n",
                    long(state_dict.renamed));
    if (state_dict.added_batch_counts > 0)
        std::printf("  %ld num_batches_tracked added (0), as BatchNorm does for files older than PyTorch 0.4.1\n",
                    long(state_dict.added_batch_counts));
    return 0;
}

}  // namespace

Command add_import_command(CLI::App& app) {
    auto o = std::make_shared<ImportOptions>();
    auto* c = app.add_subcommand("import",
                                 "convert a PyTorch .pth (torch.save's zip or legacy format: a state_dict, or a "
                                 "checkpoint holding one under state_dict or model) into a safetensors state_dict "
                                 "with torchvision's current names. Reads only tensors and dicts: a file that names "
                                 "code is refused. train --init, eval, predict and visualize also take a .pth directly");
    c->add_option("--torch", o->torch, "the .pth file (e.g. torchvision's densenet121-a639ec97.pth)")
        ->required()
        ->check(CLI::ExistingFile);
    c->add_option("--out", o->out, "the safetensors file to write (nothing is written on an error)")->required();
    return {c, [o] { return run_import(*o); }};
}

}  // namespace dn
