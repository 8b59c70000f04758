#include "app/commands.h"

#include "app/device_choice.h"
#include "app/gpu/bench_report.h"
#include "app/layer_table.h"
#include "model/complexity.h"
#include "model/inference_chunk.h"

#include <cstdio>

#include <memory>
#include <string>

namespace dn {

namespace {
struct ComplexityCommandOptions {
    std::string arch = "densenet121";
    std::string precision = "fp32";
    int64_t num_classes = 1000;
    ComplexityOptions report;
    bool no_scratchpad = false;
    bool json = false;
    std::string device = "cpu";  // the GPU's figures build its engine some twenty times: asked for
};

std::string duration_text(double seconds) {
    char text[64];
    if (seconds < 1.0) std::snprintf(text, sizeof text, "%.2f ms", seconds * 1e3);
    else if (seconds < 120.0) std::snprintf(text, sizeof text, "%.2f s", seconds);
    else std::snprintf(text, sizeof text, "%.1f min", seconds / 60.0);
    return text;
}

void print_memory_row(const char* what, const std::string& inference, const std::string& training) {
    std::printf("  %-44s %-30s %s\n", what, inference.c_str(), training.c_str());
}

void print_report(const Complexity& c) {
    const ComplexityOptions& o = c.options;
    const std::string N = std::to_string(o.batch);
    std::printf("%s, %ld classes, %ldx%ldx%ld input, batch %ld, %s\n\n", c.cfg.arch.c_str(), long(c.cfg.num_classes),
                long(c.cfg.in_channels), long(o.input_size), long(o.input_size), long(o.batch),
                o.precision == Precision::bf16 ? "bf16 mixed precision (bf16 activations, fp32 weights and Adam)" : "fp32");

    std::printf("Model size (state_dict: parameters and buffers)\n");
    std::printf("  %-30s %s\n", "parameters", group_digits(c.model.parameters).c_str());
    std::printf("  %-30s %s running statistics (float), %s num_batches_tracked (int64)\n", "buffers",
                group_digits(c.model.running_stats).c_str(), group_digits(c.model.batch_counts).c_str());
    std::printf("  %-30s %s\n", "fp32", bytes_text(c.model.fp32()).c_str());
    std::printf("  %-30s %s  (as model.to(torch.bfloat16): floats in bf16, counters int64)\n\n", "bf16",
                bytes_text(c.model.bf16()).c_str());

    std::printf("Compute (MACs: every convolution and the classifier; BN, ReLU, pooling and the bias are not\n"
                "counted; 1 MAC = 2 FLOPs)\n");
    std::printf("  %-30s %22s MACs %24s FLOPs\n", "forward, per image", group_digits(c.macs).c_str(),
                group_digits(2 * c.macs).c_str());
    std::printf("  %-30s %22s MACs %24s FLOPs\n", ("forward, per batch of " + N).c_str(),
                group_digits(c.macs * o.batch).c_str(), group_digits(2 * c.macs * o.batch).c_str());
    std::printf("  %-30s %22s MACs %24s FLOPs\n", "training step (3 x forward)", group_digits(3 * c.macs * o.batch).c_str(),
                group_digits(6 * c.macs * o.batch).c_str());
    std::printf("  this engine's training step per image: %s MACs\n"
                "  (forward, backward-weights, and backward-data but conv0's)\n\n",
                group_digits(c.engine_training_macs).c_str());

    std::printf("Activation memory, batch %ld at %ldx%ld\n", long(o.batch), long(o.input_size), long(o.input_size));
    print_memory_row("", "inference", "training");
    print_memory_row("naive: every forward tensor kept", bytes_text(c.naive_bytes), bytes_text(c.naive_bytes));
    print_memory_row("PyTorch: what autograd saves for backward", "-", bytes_text(c.autograd_saved));
    print_memory_row("this engine's arena, recomputing", bytes_text(int64_t(c.inference.activations)) + " *",
                     bytes_text(int64_t(c.training_recompute.activations)));
    print_memory_row("this engine's arena, keeping", "(same)", bytes_text(int64_t(c.training_keep.activations)));
    print_memory_row("+ parameters, gradients, buffers (+ Adam)", bytes_text(int64_t(c.inference.state)),
                     bytes_text(int64_t(c.training_recompute.state)));
    print_memory_row(o.with_scratchpad ? "+ oneDNN scratchpad" : "+ oneDNN scratchpad (not measured)",
                     bytes_text(int64_t(c.inference.scratchpad)), bytes_text(int64_t(c.training_recompute.scratchpad)));
    print_memory_row("+ the batch's images and outputs", bytes_text(int64_t(c.inference.batch)), "-");
    print_memory_row("= this engine in all, recomputing", bytes_text(int64_t(c.inference.total())),
                     bytes_text(int64_t(c.training_recompute.total())));
    print_memory_row("= this engine in all, keeping", "", bytes_text(int64_t(c.training_keep.total())));
    std::printf("  (naive: the input, every module, torch.cat and head output, and the max-pool's indices;\n"
                "  PyTorch: torchvision's DenseNet, memory_efficient=False; oneDNN's weight copies not counted;\n"
                "  * inference runs the batch %ld image(s) at a time, a chunk whose arena fits this CPU's cache)\n\n",
                long(executed_shape(c.cfg, {o.batch, o.input_size, o.input_size}, Pass::inference, o.precision).batch));

    if (o.device_tflops > 0) {
        const int64_t steps = (o.epoch_images + o.batch - 1) / o.batch;
        std::printf("Time at %g TFLOP/s (training = 3 x forward FLOPs)\n", o.device_tflops);
        std::printf("  %-44s %s\n", ("training step, batch " + N).c_str(), duration_text(c.seconds(o.batch, Pass::training)).c_str());
        std::printf("  %-44s %s\n",
                    ("training epoch, " + group_digits(o.epoch_images) + " images (" + group_digits(steps) + " steps)").c_str(),
                    duration_text(c.seconds(o.epoch_images, Pass::training)).c_str());
        std::printf("  %-44s %s\n", ("inference, batch " + N).c_str(), duration_text(c.seconds(o.batch, Pass::inference)).c_str());
        std::printf("  %-44s %s\n\n", ("inference, " + group_digits(o.epoch_images) + " images").c_str(),
                    duration_text(c.seconds(o.epoch_images, Pass::inference)).c_str());
    } else {
        std::printf("Time: give --device-tflops for time per step and per epoch\n\n");
    }

    std::printf("Largest batch at %ldx%ld in %s%s (this engine in all)\n", long(o.input_size), long(o.input_size),
                bytes_text(int64_t(c.budget)).c_str(), o.memory_gib > 0 ? "" : ", this machine's memory");
    std::printf("  %-44s %s\n", "training, recomputing (the default)", group_digits(c.max_batch_training).c_str());
    std::printf("  %-44s %s\n", "training, keeping", group_digits(c.max_batch_training_keep).c_str());
    std::printf("  %-44s %s\n\n", "inference", group_digits(c.max_batch_inference).c_str());

    std::printf("Per layer, for one image\n");
    print_layer_table(c.layers, true);
}

// What the GPU engine allocates on the card (cuda::measure_memory), after the CPU engine's report.
void print_gpu_report(const cuda::MemoryReport& g, const DeviceChoice& device, const ComplexityOptions& o) {
    auto row = [](const char* what, size_t bytes) { std::printf("  %-44s %s\n", what, bytes_text(int64_t(bytes)).c_str()); };
    std::printf("\nGPU memory on %s, batch %ld at %ldx%ld, %s: what the GPU engine allocates, measured there\n"
                "(its device buffers; cuDNN's and cuBLAS's handles hold a little more)\n",
                device.description.c_str(), long(o.batch), long(o.input_size), long(o.input_size),
                precision_name(o.precision));
    const cuda::TrainingBytes& t = g.training;
    if (!g.training_error.empty()) {
        std::printf("  training does not build at batch %ld: %s\n", long(o.batch), g.training_error.c_str());
    } else {
        row("training: activation arena, recomputing", t.arena);
        row("+ cuDNN workspace", t.workspace);
        row("+ weights in cuDNN's layout, and a dW", t.weight_copies);
        row("+ reduction and loss scratch", t.scratch);
        row("+ parameters, gradients, statistics, Adam", t.parameters);
        row("+ two batches in flight", t.batches);
        row("+ the tests' inference network", t.tester);
        row("= train --device cuda in all", t.total);
        row("  with --ema-decay: + the average", t.average);
        row("  with --test-ema as well: + its tester", t.average_tester);
    }
    if (!g.inference_error.empty())
        std::printf("  inference does not build at batch %ld: %s\n", long(o.batch), g.inference_error.c_str());
    else
        row("inference (eval, predict) in all", g.inference);
    std::printf("Largest batch the engine builds on this card now (%s of %s free)\n",
                bytes_text(int64_t(g.free_bytes)).c_str(), bytes_text(int64_t(g.card_bytes)).c_str());
    std::printf("  %-44s %s\n", "training, recomputing", group_digits(g.max_batch_training).c_str());
    std::printf("  %-44s %s\n", "inference", group_digits(g.max_batch_inference).c_str());
}

int run_complexity(const ComplexityCommandOptions& o) {
    const DeviceChoice device = choose_device(o.device);
    ComplexityOptions report = o.report;
    report.with_scratchpad = !o.no_scratchpad;
    report.precision = parse_precision(o.precision);
    // The scratchpad is measured by building the primitives, which needs bf16 kernels for bf16.
    if (report.precision == Precision::bf16 && report.with_scratchpad && !cpu_has_bf16()) {
        std::fprintf(stderr, "this CPU has no AVX512-BF16: the bf16 primitives cannot be built here, so their "
                             "scratchpad is not measured\n");
        report.with_scratchpad = false;
    }
    const Complexity c = analyse_complexity(densenet_preset(o.arch, o.num_classes), report);
    print_report(c);
    nlohmann::ordered_json json = complexity_json(c);
    if (device.kind == DeviceKind::cuda) {
        const cuda::MemoryReport g = gpu_engine()->measure_memory(
            {.arch = o.arch, .num_classes = o.num_classes, .input_size = report.input_size, .batch_size = report.batch,
             .precision = report.precision, .device = device.index});
        print_gpu_report(g, device, report);
        json["gpu"] = gpu_memory_json(g);
    }
    if (o.json) std::printf("%s\n", json.dump().c_str());
    return 0;
}
}  // namespace

Command add_complexity_command(CLI::App& app) {
    auto o = std::make_shared<ComplexityCommandOptions>();
    auto* cmd = app.add_subcommand("complexity",
                                   "model size, MACs and FLOPs, activation memory, time per step and the largest batch");
    cmd->add_option("--arch", o->arch, "densenet121, densenet161, densenet169 or densenet201")->capture_default_str();
    cmd->add_option("--num-classes", o->num_classes, "classifier outputs")->capture_default_str();
    cmd->add_option("--input-size", o->report.input_size, "height and width of the input")->capture_default_str();
    cmd->add_option("--batch-size", o->report.batch, "images per step")->capture_default_str();
    cmd->add_option("--device-tflops", o->report.device_tflops, "the device's FLOP rate, for time per step and epoch");
    cmd->add_option("--memory-gib", o->report.memory_gib,
                    "memory for the largest-batch search (default: this machine's physical memory)");
    cmd->add_option("--epoch-images", o->report.epoch_images, "images per epoch (CIFAR-10's training set)")
        ->capture_default_str();
    cmd->add_option("--precision", o->precision,
                    "fp32, or bf16: the engine's memory figures for mixed precision as train --precision bf16 runs it")
        ->capture_default_str();
    cmd->add_flag("--no-scratchpad", o->no_scratchpad,
                  "do not build the oneDNN primitives to measure their scratchpad (faster; it is then left out)");
    cmd->add_flag("--json", o->json, "also print every figure as one JSON object, on the last line");
    cmd->add_option("--device", o->device,
                    "cpu, or cuda, cuda:N or auto (a GPU when one is visible): on a GPU, also what the GPU engine "
                    "allocates there and the largest batches it builds on the card (some twenty builds)")
        ->capture_default_str();
    return {cmd, [o] { return run_complexity(*o); }};
}

}  // namespace dn
