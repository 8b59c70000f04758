#include "ops/conv.h"

#include "ops/precision.h"
#include "ops/profiler.h"
#include "tensor/feature_map.h"

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace dn {

using namespace dnnl;

// Measured with 2 threads, DenseNet-121's pointwise shapes (I = 128..1000 -> O = 128), fp32 and bf16,
// batch 32 at 56..7 pixels a side and batch 64 at 8..1:
// - backward-weights: the convolution primitive parallelises over images and spatial blocks, which
//   starves at small maps: at 4x4 it ran 177-214 GFLOP/s fp32 (bf16 190-257) against matmul's
//   209-224 (312-357); at 2x2 120-148 (50-105) against 199-224 (254-322); at 7x7 117-207 against
//   174-203. At 8x8 they tie, and from 14x14 up the convolution is faster (matmul 120-170 at 56x56).
// - forward and backward-data hold 200+ GFLOP/s on the convolution primitive down to 2x2 (where
//   matmul ties), but at 1x1 it ran 85-106 (bf16 97-208) against matmul's 173-218 (198-330).
//   At 2x2 the tie is broken by the convolution's weight reorder, which matmul does not need: all
//   three passes at batch 64 with the reorder, I = 256, 512, 992: fp32 261, 513, 1180 us against
//   matmul's 232, 482, 1017; bf16 219, 363, 730 against 194, 337, 617. (At 4x4: 922 against 910
//   for I = 256, 4135 against 4048 for 992; left as it was.)
// - bf16 on a CPU with AMX (a 2-core Xeon, batch 32, I -> 128 at 56x56 with I = 64..256, 28x28
//   with 256..512, 14x14 with 640..1024, 7x7 with 1024): oneDNN's AMX matmul ran backward-weights
//   at 581-1198 GFLOP/s against the convolution's 198-539, and backward-data at 1327-1832
//   against 1028-1479; the forward stays a convolution (1902-2280 against matmul's 1000-2148).
// Winograd, on the 3x3 shapes, the three passes together with their reorders to and from NHWC:
// - DenseNet-121's 128 -> 32 channels in training ran 1.70x (56x56), 1.95x (28x28), 1.43x (14x14)
//   and 1.18x (7x7) faster than the direct kernels at batch 32, 1.72x (8x8) and 1.29x (4x4) at
//   batch 64: every shape with 1,024 output pixels or more in the batch.
// - DenseNet-BC's narrow layers (48 -> 12, 64 -> 16 at batch 64) ran 0.84-1.13x.
// - Inference one image at a time, as the chunked inference network runs densenet121 at 224x224,
//   forward with its reorders, six alternated rounds: 1.60x (56x56), 1.30-1.34x (28x28), 0.59-0.66x
//   (14x14), with the F(4x4, 3x3) kernel (build_convolution); oneDNN's own pick for inference at
//   small batches, F(2x2, 3x3), ran 0.68-1.32x.
// - There is no bf16 Winograd.
// - Without AVX-512 oneDNN has none either; winograd_matmul (ours: the transforms, and oneDNN's
//   batched matmul for the products) against the direct AVX2 kernels at 128 -> 32, oneDNN held to
//   AVX2 on a Zen 4 (whose AVX2 and AVX-512 FMA peaks are the same), inference one image at a time:
//   2.0x at 56x56 (the direct kernel 1.04-1.26 ms, at 190-223 GFLOP/s), 1.5-1.7x at 28x28,
//   0.55-1.2x at 14x14 and 0.8x at 7x7; two images: 1.75x and 2.0x at 56x56 and 28x28. Training,
//   batch 32, forward / backward-data / backward-weights in ms, direct -> winograd_matmul: 56x56
//   46.4/37.6/67.6 -> 18.5/17.2/19.1, 28x28 11.5/8.4/11.5 -> 5.4/4.4/4.8, 14x14 2.3/2.1/2.6 ->
//   2.0/1.5/1.8, 7x7 0.6/0.5/0.8 -> 0.4/0.4/0.7: every shape where the batch has 1,024 output
//   pixels or more, as on AVX-512.
// whole_map, DenseNet-121's 128 -> 32 3x3 convolutions on the 2x2 and 1x1 maps of its last blocks
// at 32x32, all three passes with the weights' unfolding and the gradient's folding, in us
// (direct -> whole_map): fp32 at batch 64 276 -> 163 (2x2) and 79 -> 27 (1x1), batch 16 99 -> 79
// and 43 -> 21, batch 8 70 -> 66 (2x2); bf16 at batch 64 254 -> 117 and 125 -> 23. At batch 1 the
// 2x2 map ran slower (42 -> 64, its forward alone 3.2 -> 6.6), the 1x1 one faster (32 -> 19).
bool covers_whole_map(const ConvShape& s) {
    return s.stride == 1 && s.kernel == 2 * s.pad + 1 && s.in_h <= s.pad + 1 && s.in_w <= s.pad + 1;
}

namespace {
// The passes that run as oneDNN's matmul.
bool is_product(ConvKernel k) { return k == ConvKernel::matmul || k == ConvKernel::whole_map; }
// The passes that run oneDNN's convolution primitive.
bool on_primitive(ConvKernel k) { return k == ConvKernel::convolution || k == ConvKernel::winograd; }

// The input gradient of a 3x3, stride-1, padding-1 convolution is the forward of one whose in and
// out channels are swapped and whose kernel is turned half a turn: (I,O,3,3) from (O,I,3,3).
ConvShape input_gradient_as_forward(const ConvShape& s) {
    return {s.batch, s.out_channels, s.out_h(), s.out_w(), s.in_channels, s.kernel, s.stride, s.pad};
}

void swap_channels_and_turn(const float* weights_oihw, const ConvShape& s, float* turned) {
    const int64_t O = s.out_channels, I = s.in_channels, taps = s.kernel * s.kernel;
    for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < I; ++i)
            for (int64_t t = 0; t < taps; ++t) turned[(i * O + o) * taps + (taps - 1 - t)] = weights_oihw[(o * I + i) * taps + t];
}

// Pixel p_out of the output reads pixel p_in of the input through the kernel tap at their offset
// plus the padding (covers_whole_map: every pair has one): tap_of[p_out * map + p_in].
std::vector<int64_t> taps_of_pixel_pairs(const ConvShape& s) {
    const int64_t map = s.in_h * s.in_w;
    std::vector<int64_t> tap_of(size_t(map * map));
    for (int64_t p_out = 0; p_out < map; ++p_out)
        for (int64_t p_in = 0; p_in < map; ++p_in) {
            const int64_t kh = p_in / s.in_w - p_out / s.in_w + s.pad, kw = p_in % s.in_w - p_out % s.in_w + s.pad;
            tap_of[size_t(p_out * map + p_in)] = kh * s.kernel + kw;
        }
    return tap_of;
}

// Row p_out * O + o of the unfolded matrix holds, in its columns p_in * I + c, weight (o, c) of the
// pair's tap: each (o, c)'s K*K weights, read once, go to their map*map places.
template <class T>
void unfold(T* unfolded, const float* weights_oihw, const ConvShape& s, const std::vector<int64_t>& tap_of) {
    const int64_t taps = s.kernel * s.kernel, O = s.out_channels, I = s.in_channels, map = s.in_h * s.in_w;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < O; ++o)
        for (int64_t c = 0; c < I; ++c) {
            const float* w = weights_oihw + (o * I + c) * taps;
            for (int64_t p_out = 0; p_out < map; ++p_out) {
                T* row = unfolded + (p_out * O + o) * (map * I) + c;
                for (int64_t p_in = 0; p_in < map; ++p_in)
                    row[p_in * I] = from_float<T>(w[tap_of[size_t(p_out * map + p_in)]]);
            }
        }
}
}  // namespace

ConvKernels default_conv_kernels(const ConvShape& s, DType type, Pass pass) {
    if (s.kernel > 1 && covers_whole_map(s) && (s.in_h * s.in_w == 1 || s.batch >= 8))
        return {ConvKernel::whole_map, ConvKernel::whole_map, ConvKernel::whole_map};
    const bool wide_3x3 = s.kernel == 3 && s.stride == 1 && s.pad == 1 && s.in_channels >= 128 && s.out_channels >= 32;
    const bool winograd_pays = pass == Pass::training ? s.batch * s.out_h() * s.out_w() >= 1024
                                                      : s.out_h() * s.out_w() >= 28 * 28;
    if (wide_3x3 && type == DType::f32 && winograd_pays) {
        if (cpu_has_avx512()) return {ConvKernel::winograd, ConvKernel::winograd, ConvKernel::winograd};
        // oneDNN has none there: the engine's own.
        const ConvKernel wm = ConvKernel::winograd_matmul, cv = ConvKernel::convolution;
        if (pass == Pass::training) return {wm, wm, wm};
        return {wm, cv, cv};
    }
    if (!s.is_pointwise()) return {};
    const int64_t pixels = s.out_h() * s.out_w();
    const ConvKernel small_map = pixels <= 4 ? ConvKernel::matmul : ConvKernel::convolution;
    if (type == DType::bf16 && cpu_has_amx()) return {small_map, ConvKernel::matmul, ConvKernel::matmul};
    return {small_map, small_map, pixels <= 49 ? ConvKernel::matmul : ConvKernel::convolution};
}

// Measured with 2 threads at batch 32, oneDNN's direct kernels on DenseNet-121's pointwise shapes
// (I -> 128), NHWC against nChw16c, in GFLOP/s (forward, backward-data, backward-weights):
// - fp32: 64 at 56x56 156/144/122 against 190/183/177; 128 at 56x56 184/176/178 against
//   210/209/197; 128 at 28x28 204/196/173 against 218/222/207; 384 at 28x28 202/197/165 against
//   223/226/201; 256 at 14x14 217/145/223 against 227/223/224.
// - bf16: 64 at 56x56 402/302/244 against 427/372/332; 128 at 28x28 429/422/335 against
//   444/444/428; 384 at 28x28 385/402/320 against 442/446/426; at 14x14 they tie (256: 427/456/393
//   against 452/454/419; 512: 449/454/387 against 431/448/391).
// So training's pointwise convolutions on maps of 28x28 and larger run on nChw16c where all three
// passes are the convolution primitive. (Inference's conv1, which writes conv2's operand with the
// folded norm2, takes the layout of that operand: DenseNet's constructor decides.)
// bf16 on a CPU with AMX stays NHWC, since its gradients are matmuls there (default_conv_kernels);
// oneDNN has AMX kernels for NHWC but only its AVX512-BF16 ones for nChw16c. Measured on a 2-core
// Xeon with AMX, 256 -> 128 at 56x56 and 512 -> 128 at 28x28: NHWC 1902/1028/471 and
// 2195/1413/539 GFLOP/s, nChw16c 189/204/182 and 190/200/187. (In fp32 there it was a draw:
// 242/241/246 against 253/280/258 at 56x56, 312/239/223 against 235/309/299 at 28x28.)
bool can_run_blocked(const ConvShape& s, DType type, Pass pass) {
    const ConvKernels k = default_conv_kernels(s, type, pass);
    const ConvKernel cv = ConvKernel::convolution;
    const bool primitive_only =
        k.forward == cv && (pass == Pass::inference || (k.backward_data == cv && k.backward_weights == cv));
    return primitive_only && s.in_channels % kChannelBlock == 0 && s.out_channels % kChannelBlock == 0;
}

Layout default_activation_layout(const ConvShape& s, DType type, Pass pass) {
    if (pass == Pass::training && s.is_pointwise() && can_run_blocked(s, type, pass) &&
        s.out_h() * s.out_w() >= 28 * 28 && cpu_has_avx512())
        return Layout::nchw16c;
    return Layout::nhwc;
}

Conv2d::Conv2d(DnnlContext& ctx, const ConvShape& s, Pass pass, const char* name, DType type)
    : Conv2d(ctx, s, pass, name, type, default_conv_kernels(s, type, pass)) {}

Conv2d::Conv2d(DnnlContext& ctx, const ConvShape& s, Pass pass, const char* name, DType type, ConvEpilogue epilogue)
    : Conv2d(ctx, s, pass, name, type, default_conv_kernels(s, type, pass), epilogue) {}

Conv2d::Conv2d(DnnlContext& ctx, const ConvShape& s, Pass pass, const char* name, DType type, Layout activations,
               ConvEpilogue epilogue)
    : ctx_(ctx), shape_(s), type_(type), pass_(pass), kernels_(default_conv_kernels(s, type, pass)),
      epilogue_(epilogue), activations_(activations) {
    if (activations == Layout::nhwc) {
        build(name);
        return;
    }
    if (!can_run_blocked(s, type, pass))
        throw std::invalid_argument(std::string(name) + ": only the direct convolution primitive runs on nchw16c, "
                                    "with channel counts that are multiples of 16");
    build(name);
}

Conv2d::Conv2d(DnnlContext& ctx, const ConvShape& s, Pass pass, const char* name, DType type, ConvKernels kernels,
               ConvEpilogue epilogue)
    : ctx_(ctx), shape_(s), type_(type), pass_(pass), kernels_(kernels), epilogue_(epilogue) {
    build(name);
}

void Conv2d::build(const char* name) {
    const ConvShape& s = shape_;
    if (uses(ConvKernel::matmul) && !s.is_pointwise())
        throw std::invalid_argument(std::string(name) + ": matmul computes only 1x1, stride-1, unpadded convolutions");
    const int whole_map_passes = passes_on(ConvKernel::whole_map);
    if (whole_map_passes != 0 && (whole_map_passes != 3 || !covers_whole_map(s) || epilogue_ != ConvEpilogue::none))
        throw std::invalid_argument(std::string(name) + ": whole_map runs all three passes of a convolution whose "
                                    "windows cover the whole map, without an epilogue");
    if (epilogue_ != ConvEpilogue::none && pass_ != Pass::inference)
        throw std::invalid_argument(std::string(name) + ": an epilogue is for inference only (backward would need its input)");
    const int winograd_passes = passes_on(ConvKernel::winograd);
    if (winograd_passes != 0 && winograd_passes != 3)
        throw std::invalid_argument(std::string(name) + ": Winograd runs all three passes or none");
    if (winograd_passes == 3 &&
        (type_ != DType::f32 || s.kernel != 3 || s.stride != 1 || epilogue_ != ConvEpilogue::none))
        throw std::invalid_argument(std::string(name) +
                                    ": Winograd computes fp32 3x3 stride-1 convolutions, without an epilogue");
    if (winograd_passes == 3 && !cpu_has_avx512())
        throw std::invalid_argument(std::string(name) + ": oneDNN has Winograd convolutions only on CPUs with AVX-512");
    if (passes_on(ConvKernel::winograd_matmul) != 0) {
        if (type_ != DType::f32 || activations_ != Layout::nhwc || epilogue_ != ConvEpilogue::none)
            throw std::invalid_argument(std::string(name) + ": winograd_matmul computes fp32 on NHWC, without an epilogue");
        const bool weight_gradient = pass_ == Pass::training && kernels_.backward_weights == ConvKernel::winograd_matmul;
        if (kernels_.backward_weights == ConvKernel::winograd_matmul && kernels_.forward != ConvKernel::winograd_matmul)
            throw std::invalid_argument(std::string(name) + ": winograd_matmul computes the weight gradient only "
                                        "where it computes the forward");
        if (kernels_.forward == ConvKernel::winograd_matmul)
            winograd_forward_ = std::make_unique<WinogradMatmul>(
                ctx_, s, name,
                weight_gradient ? WinogradPasses::forward_and_weight_gradient : WinogradPasses::forward);
        if (pass_ == Pass::training && kernels_.backward_data == ConvKernel::winograd_matmul) {
            winograd_backward_data_ = std::make_unique<WinogradMatmul>(
                ctx_, input_gradient_as_forward(s), (std::string(name) + " backward-data").c_str());
            turned_weights_.resize(size_t(s.weight_count()));
        }
    }
    const auto& eng = ctx_.engine();
    user_weights_ = memory({{s.out_channels, s.in_channels, s.kernel, s.kernel}, dt::f32, tag::oihw}, eng, nullptr);
    if (epilogue_ != ConvEpilogue::none) {
        scale_ = memory({{s.out_channels}, dt::f32, tag::x}, eng, nullptr);
        bias_ = memory({{s.out_channels}, dt::f32, tag::x}, eng, nullptr);
    }
    if (uses(ConvKernel::convolution)) build_convolution(name);
    if (uses(ConvKernel::matmul) || whole_map()) build_matmul(name);
}

primitive_attr Conv2d::forward_attr() const {
    primitive_attr attr = ctx_.attr();
    if (epilogue_ == ConvEpilogue::bias_relu) {
        post_ops relu;
        relu.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
        attr.set_post_ops(relu);
    }
    return attr;
}

// The scale is given at each reorder (a runtime value), as the norm it comes from changes with training.
primitive_attr Conv2d::weight_scale_attr() const {
    primitive_attr attr;
    if (epilogue_ != ConvEpilogue::none) attr.set_output_scales(1 << 0, {DNNL_RUNTIME_F32_VAL});  // per O
    return attr;
}

void Conv2d::reorder_weights(reorder& r, memory& to) {
    std::unordered_map<int, memory> args{{DNNL_ARG_FROM, user_weights_}, {DNNL_ARG_TO, to}};
    if (epilogue_ != ConvEpilogue::none) args[DNNL_ARG_ATTR_OUTPUT_SCALES] = scale_;
    r.execute(ctx_.stream(), args);
}

int Conv2d::passes_on(ConvKernel kernel) const {
    return int(kernels_.forward == kernel) + int(kernels_.backward_data == kernel) +
           int(kernels_.backward_weights == kernel);
}

bool Conv2d::uses(ConvKernel kernel) const {
    if (kernel == ConvKernel::convolution && winograd()) return true;  // the same primitive, another algorithm
    if (kernels_.forward == kernel) return true;
    return pass_ == Pass::training && (kernels_.backward_data == kernel || kernels_.backward_weights == kernel);
}

void Conv2d::build_convolution(const char* name) {
    const ConvShape& s = shape_;
    const auto& eng = ctx_.engine();
    const tag layout = activations_ == Layout::nchw16c ? tag::aBcd16b : tag::nhwc;
    const memory::desc src_md({s.batch, s.in_channels, s.in_h, s.in_w}, dnnl_type(type_), layout);
    const memory::desc dst_md({s.batch, s.out_channels, s.out_h(), s.out_w()}, dnnl_type(type_), layout);
    memory::desc any_w_md({s.out_channels, s.in_channels, s.kernel, s.kernel}, dnnl_type(type_), tag::any);
    // oneDNN's bf16 backward-weights accumulates in f32 and writes f32, for the f32 optimizer.
    memory::desc any_dw_md({s.out_channels, s.in_channels, s.kernel, s.kernel}, dt::f32, tag::any);
    memory::dims strides{s.stride, s.stride}, pad{s.pad, s.pad};
    // oneDNN gives inference at small batches its F(2x2, 3x3) Winograd kernel, slower here than the
    // F(4x4, 3x3) one it gives training (default_conv_kernels); the two compute the same thing.
    auto prop = pass_ == Pass::training || winograd() ? prop_kind::forward_training : prop_kind::forward_inference;
    src_ = memory(src_md, eng, nullptr);
    dst_ = memory(dst_md, eng, nullptr);
    // Winograd lets oneDNN choose the activations' layout, as it does the weights'.
    const algorithm alg = winograd() ? algorithm::convolution_winograd : algorithm::convolution_direct;
    const memory::desc op_src_md = winograd() ? memory::desc(src_md.dims(), src_md.data_type(), tag::any) : src_md;
    const memory::desc op_dst_md = winograd() ? memory::desc(dst_md.dims(), dst_md.data_type(), tag::any) : dst_md;

    // The backward passes take the forward's descriptor as their hint, whichever kernel runs forward.
    auto forward_pd = [&]() {
        if (epilogue_ == ConvEpilogue::none)
            return convolution_forward::primitive_desc({prop, alg, op_src_md, any_w_md, op_dst_md, strides, pad, pad},
                                                       ctx_.attr(), eng);
        return convolution_forward::primitive_desc({prop, alg, op_src_md, any_w_md, bias_.get_desc(), op_dst_md,
                                                    strides, pad, pad},
                                                   forward_attr(), eng);
    };
    convolution_forward::primitive_desc fwd_pd = forward_pd();
    staged_src_ = src_, staged_dst_ = dst_;
    if (winograd()) {
        staged_src_ = memory(fwd_pd.src_desc(), eng, nullptr);
        staged_dst_ = memory(fwd_pd.dst_desc(), eng, nullptr);
        auto layout_change = [&](const memory& from, const memory& to, const char* what) {
            reorder::primitive_desc pd(from, to);
            ctx_.register_primitive(std::string(name) + " " + what, pd);
            return reorder(pd);
        };
        to_staged_src_ = layout_change(src_, staged_src_, "src to Winograd's layout");
        from_staged_dst_ = layout_change(staged_dst_, dst_, "dst from Winograd's layout");
        if (pass_ == Pass::training) {
            to_staged_dst_ = layout_change(dst_, staged_dst_, "dst gradient to Winograd's layout");
            from_staged_src_ = layout_change(staged_src_, src_, "src gradient from Winograd's layout");
        }
    }
    // The backward passes must read and write the forward's layouts, which are the staged ones.
    auto same_layouts = [&](const memory::desc& a_src, const memory::desc& a_dst, const char* pass) {
        if (a_src != staged_src_.get_desc() || a_dst != staged_dst_.get_desc())
            throw std::logic_error(std::string(name) + ": oneDNN's " + pass + " wants other activation layouts");
    };
    const bool conv_forward = on_primitive(kernels_.forward);
    if (conv_forward) {
        ctx_.register_primitive(std::string(name) + " forward", fwd_pd);
        fwd_ = convolution_forward(fwd_pd);
        fwd_weights_ = memory(fwd_pd.weights_desc(), eng);
        to_fwd_weights_ = reorder(reorder::primitive_desc(user_weights_, fwd_weights_, weight_scale_attr()));
        fwd_args_ = {{DNNL_ARG_SRC, staged_src_}, {DNNL_ARG_WEIGHTS, fwd_weights_}, {DNNL_ARG_DST, staged_dst_}};
        if (epilogue_ != ConvEpilogue::none) fwd_args_[DNNL_ARG_BIAS] = bias_;
    }
    if (pass_ == Pass::inference) return;

    if (on_primitive(kernels_.backward_data)) {
        convolution_backward_data::primitive_desc bwd_data_pd({alg, op_src_md, any_w_md, op_dst_md, strides, pad, pad},
                                                              ctx_.attr(), eng, fwd_pd);
        ctx_.register_primitive(std::string(name) + " backward-data", bwd_data_pd);
        same_layouts(bwd_data_pd.diff_src_desc(), bwd_data_pd.diff_dst_desc(), "backward-data");
        bwd_data_ = convolution_backward_data(bwd_data_pd);
        bwd_data_shares_weights_ = conv_forward && bwd_data_pd.weights_desc() == fwd_pd.weights_desc();
        if (!bwd_data_shares_weights_) {
            bwd_data_weights_ = memory(bwd_data_pd.weights_desc(), eng);
            to_bwd_data_weights_ = reorder(user_weights_, bwd_data_weights_);
        }
        bwd_data_args_ = {{DNNL_ARG_DIFF_DST, staged_dst_},
                          {DNNL_ARG_WEIGHTS, bwd_data_shares_weights_ ? fwd_weights_ : bwd_data_weights_},
                          {DNNL_ARG_DIFF_SRC, staged_src_}};
    }

    if (on_primitive(kernels_.backward_weights)) {
        convolution_backward_weights::primitive_desc bwd_w_pd({alg, op_src_md, any_dw_md, op_dst_md, strides, pad, pad},
                                                              ctx_.attr(), eng, fwd_pd);
        ctx_.register_primitive(std::string(name) + " backward-weights", bwd_w_pd);
        same_layouts(bwd_w_pd.src_desc(), bwd_w_pd.diff_dst_desc(), "backward-weights");
        bwd_weights_ = convolution_backward_weights(bwd_w_pd);
        diff_weights_ = memory(bwd_w_pd.diff_weights_desc(), eng);
        user_diff_weights_ = memory(user_weights_.get_desc(), eng, nullptr);
        from_diff_weights_ = reorder(diff_weights_, user_diff_weights_);
        bwd_weights_args_ = {{DNNL_ARG_SRC, staged_src_},
                             {DNNL_ARG_DIFF_DST, staged_dst_},
                             {DNNL_ARG_DIFF_WEIGHTS, diff_weights_}};
    }
}

void Conv2d::build_matmul(const char* name) {
    const ConvShape& s = shape_;
    const auto& eng = ctx_.engine();
    const int64_t map = whole_map() ? s.in_h * s.in_w : 1;  // pixels in a row of the product
    const int64_t P = s.batch * s.in_h * s.in_w / map, I = map * s.in_channels, O = map * s.out_channels;
    const dt type = dnnl_type(type_);
    memory::desc src_md({P, I}, type, tag::ab), dst_md({P, O}, type, tag::ab);
    memory::desc weights_md({O, I}, type, tag::ab), weights_t_md({I, O}, type, memory::dims{1, I});
    memory::desc ddst_t_md({O, P}, type, memory::dims{1, O}), dweights_md({O, I}, dt::f32, tag::ab);
    mm_src_ = memory(src_md, eng, nullptr);
    mm_dst_ = memory(dst_md, eng, nullptr);
    mm_weights_transposed_ = memory(weights_t_md, eng, nullptr);
    mm_weights_ = memory(weights_md, eng, nullptr);
    if (whole_map()) {
        // Unfolded straight into the operands' type: f32, or a bf16 copy.
        tap_of_ = taps_of_pixel_pairs(s);
        memory& weights = type_ == DType::bf16 ? weight_copy_ : unfolded_;
        weights = memory({{O, I}, type, tag::ab}, eng);
        mm_weights_transposed_.set_data_handle(weights.get_data_handle());
        mm_weights_.set_data_handle(weights.get_data_handle());
    } else if (type_ == DType::bf16 || epilogue_ != ConvEpilogue::none) {
        weight_copy_ = memory({{O, I, 1, 1}, type, tag::oihw}, eng);
        to_weight_copy_ = reorder(reorder::primitive_desc(user_weights_, weight_copy_, weight_scale_attr()));
        mm_weights_transposed_.set_data_handle(weight_copy_.get_data_handle());
        mm_weights_.set_data_handle(weight_copy_.get_data_handle());
    }

    if (is_product(kernels_.forward)) {
        const bool bias = epilogue_ != ConvEpilogue::none;
        memory::desc bias_md({1, O}, dt::f32, tag::ab);
        matmul::primitive_desc pd = bias ? matmul::primitive_desc({src_md, weights_t_md, bias_md, dst_md}, forward_attr(), eng)
                                         : matmul::primitive_desc({src_md, weights_t_md, dst_md}, ctx_.attr(), eng);
        ctx_.register_primitive(std::string(name) + " forward", pd);
        mm_fwd_ = matmul(pd);
        mm_fwd_args_ = {{DNNL_ARG_SRC, mm_src_}, {DNNL_ARG_WEIGHTS, mm_weights_transposed_}, {DNNL_ARG_DST, mm_dst_}};
        // The (O) bias read as (1,O).
        if (bias) mm_fwd_args_[DNNL_ARG_BIAS] = memory(bias_md, eng, nullptr);
    }
    if (pass_ == Pass::inference) return;
    if (is_product(kernels_.backward_data)) {
        // dsrc (P,I) = ddst (P,O) * W (O,I)
        matmul::primitive_desc pd({dst_md, weights_md, src_md}, ctx_.attr(), eng);
        ctx_.register_primitive(std::string(name) + " backward-data", pd);
        mm_bwd_data_ = matmul(pd);
        mm_bwd_data_args_ = {{DNNL_ARG_SRC, mm_dst_}, {DNNL_ARG_WEIGHTS, mm_weights_}, {DNNL_ARG_DST, mm_src_}};
    }
    if (is_product(kernels_.backward_weights)) {
        // dW (O,I) = ddst^T (O,P) * src (P,I), accumulated in f32
        mm_ddst_transposed_ = memory(ddst_t_md, eng, nullptr);
        mm_dweights_ = memory(dweights_md, eng, nullptr);
        if (whole_map()) {
            unfolded_grad_ = memory(dweights_md, eng);
            mm_dweights_.set_data_handle(unfolded_grad_.get_data_handle());
        }
        matmul::primitive_desc pd({ddst_t_md, src_md, dweights_md}, ctx_.attr(), eng);
        ctx_.register_primitive(std::string(name) + " backward-weights", pd);
        mm_bwd_weights_ = matmul(pd);
        mm_bwd_weights_args_ = {{DNNL_ARG_SRC, mm_ddst_transposed_}, {DNNL_ARG_WEIGHTS, mm_src_},
                                {DNNL_ARG_DST, mm_dweights_}};
    }
}

void Conv2d::load_weights(const float* weights_oihw) {
    if (epilogue_ != ConvEpilogue::none)
        throw std::logic_error("a convolution with an epilogue loads its weights with their scale and bias");
    load_weights(weights_oihw, nullptr, nullptr);
}

void Conv2d::load_weights(const float* weights_oihw, const float* output_channel_scale, const float* bias) {
    if ((epilogue_ != ConvEpilogue::none) != (output_channel_scale && bias))
        throw std::logic_error("a scale and a bias are for a convolution with an epilogue, and it needs both");
    if (winograd_forward_ || winograd_backward_data_) {
        const int transforms = int(bool(winograd_forward_)) + int(bool(winograd_backward_data_));
        PhaseTimer timer(Phase::weight_reorder, 0.0,
                         4.0 * double(transforms) * double(shape_.weight_count() * (1 + kWinogradPositions / 9)));
        if (winograd_forward_) winograd_forward_->load_weights(weights_oihw);
        if (winograd_backward_data_) {
            swap_channels_and_turn(weights_oihw, shape_, turned_weights_.data());
            winograd_backward_data_->load_weights(turned_weights_.data());
        }
    }
    if (bias) {
        scale_.set_data_handle(const_cast<float*>(output_channel_scale));
        bias_.set_data_handle(const_cast<float*>(bias));
        if (kernels_.forward == ConvKernel::matmul) mm_fwd_args_[DNNL_ARG_BIAS].set_data_handle(const_cast<float*>(bias));
    }
    if (whole_map()) {
        // Reads the f32 weights, writes the unfolded matrix in the operands' type.
        const memory& unfolded = weight_copy_ ? weight_copy_ : unfolded_;
        PhaseTimer timer(Phase::weight_reorder, 0.0,
                         4.0 * double(shape_.weight_count()) + double(unfolded.get_desc().get_size()));
        unfold_weights(weights_oihw);
        return;
    }
    const bool training = pass_ == Pass::training;
    const bool conv_forward = on_primitive(kernels_.forward);
    const bool conv_bwd_data_layout = training && on_primitive(kernels_.backward_data) && !bwd_data_shares_weights_;
    const bool matmul_weights =
        kernels_.forward == ConvKernel::matmul || (training && kernels_.backward_data == ConvKernel::matmul);
    const bool matmul_copy = matmul_weights && weight_copy_;
    user_weights_.set_data_handle(const_cast<float*>(weights_oihw));
    if (matmul_weights && !matmul_copy) {
        // f32 matmul reads the weights where the optimizer leaves them.
        mm_weights_transposed_.set_data_handle(const_cast<float*>(weights_oihw));
        mm_weights_.set_data_handle(const_cast<float*>(weights_oihw));
    }
    const int layouts = int(conv_forward) + int(conv_bwd_data_layout) + int(matmul_copy);
    if (layouts == 0) return;
    // Reads the f32 weights and writes each layout in the operands' type.
    PhaseTimer timer(Phase::weight_reorder, 0.0,
                     (4.0 + layouts * double(dtype_bytes(type_))) * double(shape_.weight_count()));
    if (conv_forward) reorder_weights(to_fwd_weights_, fwd_weights_);
    if (conv_bwd_data_layout) to_bwd_data_weights_.execute(ctx_.stream(), user_weights_, bwd_data_weights_);
    if (matmul_copy) reorder_weights(to_weight_copy_, weight_copy_);
}

void Conv2d::unfold_weights(const float* weights_oihw) {
    if (weight_copy_) unfold(static_cast<bf16*>(weight_copy_.get_data_handle()), weights_oihw, shape_, tap_of_);
    else unfold(static_cast<float*>(unfolded_.get_data_handle()), weights_oihw, shape_, tap_of_);
}

// Each tap's gradient is the sum of its blocks', in the order of the output pixels, then the input's
// (a tap no pair has, on a map smaller than the kernel's reach, is zero): per output channel, the
// taps' sums over the I columns, vectorised, then written to OIHW.
void Conv2d::fold_weight_gradient(float* dweights_oihw) {
    const ConvShape& s = shape_;
    const int64_t taps = s.kernel * s.kernel, O = s.out_channels, I = s.in_channels, map = s.in_h * s.in_w;
    const float* grad = static_cast<const float*>(unfolded_grad_.get_data_handle());
#pragma omp parallel
    {
        thread_local std::vector<float> per_tap;  // (taps, I)
        per_tap.resize(size_t(taps * I));
#pragma omp for schedule(static)
        for (int64_t o = 0; o < O; ++o) {
            std::fill(per_tap.begin(), per_tap.end(), 0.0f);
            for (int64_t p_out = 0; p_out < map; ++p_out)
                for (int64_t p_in = 0; p_in < map; ++p_in) {
                    float* sum = per_tap.data() + tap_of_[size_t(p_out * map + p_in)] * I;
                    const float* block = grad + (p_out * O + o) * (map * I) + p_in * I;
                    for (int64_t c = 0; c < I; ++c) sum[c] += block[c];
                }
            for (int64_t c = 0; c < I; ++c)
                for (int64_t t = 0; t < taps; ++t) dweights_oihw[(o * I + c) * taps + t] = per_tap[size_t(t * I + c)];
        }
    }
}

// The staged dst follows the staged src on a cache line of its own.
size_t Conv2d::staged_dst_offset() const { return (staged_src_.get_desc().get_size() + 63) / 64 * 64; }

size_t Conv2d::staging_bytes() const {
    size_t own = 0;  // winograd_matmul's passes share one staging buffer, one after the other
    if (winograd_forward_) own = winograd_forward_->staging_bytes();
    if (winograd_backward_data_) own = std::max(own, winograd_backward_data_->staging_bytes());
    return winograd() ? staged_dst_offset() + staged_dst_.get_desc().get_size() : own;
}

bool Conv2d::fit_staging(size_t bytes) {
    if (staging_bytes() <= bytes) return true;
    if (!winograd_forward_ && !winograd_backward_data_) return false;
    // Both or neither: a pass that fits stays as it was.
    WinogradMatmul* passes[] = {winograd_forward_.get(), winograd_backward_data_.get()};
    for (WinogradMatmul* p : passes)
        if (p && p->staging_bytes() > bytes && !p->can_fit_staging(bytes)) return false;
    for (WinogradMatmul* p : passes)
        if (p) p->fit_staging(bytes);
    return true;
}

void Conv2d::set_staging(void* buffer) {
    if (winograd_forward_) winograd_forward_->set_staging(buffer);
    if (winograd_backward_data_) winograd_backward_data_->set_staging(buffer);
    if (!winograd()) return;
    auto* bytes = static_cast<std::byte*>(buffer);
    staged_src_.set_data_handle(bytes);
    staged_dst_.set_data_handle(bytes + staged_dst_offset());
    staging_set_ = true;
}

bool Conv2d::can_take_blocked_src() const {
    if (!winograd()) return false;
    const ConvShape& s = shape_;
    const memory::desc blocked({s.batch, s.in_channels, s.in_h, s.in_w}, dnnl_type(type_), tag::aBcd16b);
    return s.in_channels % kChannelBlock == 0 && staged_src_.get_desc() == blocked;
}

void Conv2d::take_blocked_src() {
    if (!can_take_blocked_src())
        throw std::logic_error("this convolution does not read its src in the nchw16c layout");
    src_blocked_ = true;
}

// src or dsrc into the kernel's src operand: the caller's buffer itself where it is blocked, else
// staged (from: a reorder, or none for an operand the kernel only writes).
void Conv2d::stage_src(void* caller_src, reorder* from) {
    src_.set_data_handle(caller_src);
    if (src_blocked_) staged_src_.set_data_handle(caller_src);
    else if (from) stage(*from, src_, staged_src_);
}

void Conv2d::stage(reorder& r, memory& from, memory& to) {
    if (!staging_set_) throw std::logic_error("a Winograd convolution runs only once it has its staging buffer");
    r.execute(ctx_.stream(), from, to);
}

// The scratchpad is looked up at every call: the context replaces it when a later primitive
// needs a larger one. Under Winograd, the layout changes count as the pass's time.
void Conv2d::forward(const void* src, void* dst) {
    PhaseTimer timer(Phase::conv_forward, 2.0 * double(shape_.macs()));
    if (winograd_forward_) {
        winograd_forward_->forward(static_cast<const float*>(src), static_cast<float*>(dst));
        return;
    }
    if (is_product(kernels_.forward)) {
        mm_src_.set_data_handle(const_cast<void*>(src));
        mm_dst_.set_data_handle(dst);
        mm_fwd_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
        mm_fwd_.execute(ctx_.stream(), mm_fwd_args_);
        return;
    }
    dst_.set_data_handle(dst);
    stage_src(const_cast<void*>(src), winograd() ? &to_staged_src_ : nullptr);
    fwd_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    fwd_.execute(ctx_.stream(), fwd_args_);
    if (winograd()) stage(from_staged_dst_, staged_dst_, dst_);
}

void Conv2d::backward_data(const void* ddst, void* dsrc) {
    PhaseTimer timer(Phase::conv_backward_data, 2.0 * double(shape_.macs()));
    if (winograd_backward_data_) {
        winograd_backward_data_->forward(static_cast<const float*>(ddst), static_cast<float*>(dsrc));
        return;
    }
    if (is_product(kernels_.backward_data)) {
        mm_dst_.set_data_handle(const_cast<void*>(ddst));
        mm_src_.set_data_handle(dsrc);
        mm_bwd_data_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
        mm_bwd_data_.execute(ctx_.stream(), mm_bwd_data_args_);
        return;
    }
    dst_.set_data_handle(const_cast<void*>(ddst));
    if (winograd()) stage(to_staged_dst_, dst_, staged_dst_);
    run_backward_data(dsrc);
}

// Reads the staged ddst, writes dsrc.
void Conv2d::run_backward_data(void* dsrc) {
    stage_src(dsrc, nullptr);
    bwd_data_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    bwd_data_.execute(ctx_.stream(), bwd_data_args_);
    if (winograd() && !src_blocked_) stage(from_staged_src_, staged_src_, src_);
}

void Conv2d::backward_weights(const void* src, const void* ddst, float* dweights_oihw) {
    PhaseTimer timer(Phase::conv_backward_weights, 2.0 * double(shape_.macs()));
    if (kernels_.backward_weights == ConvKernel::winograd_matmul) {
        winograd_forward_->weight_gradient(static_cast<const float*>(src), static_cast<const float*>(ddst),
                                           dweights_oihw);
        return;
    }
    if (is_product(kernels_.backward_weights)) {
        mm_ddst_transposed_.set_data_handle(const_cast<void*>(ddst));
        mm_src_.set_data_handle(const_cast<void*>(src));
        if (!whole_map()) mm_dweights_.set_data_handle(dweights_oihw);
        mm_bwd_weights_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
        mm_bwd_weights_.execute(ctx_.stream(), mm_bwd_weights_args_);
        if (whole_map()) {
            PhaseTimer reorder_timer(Phase::weight_reorder, 0.0,
                                     double(unfolded_grad_.get_desc().get_size()) + 4.0 * double(shape_.weight_count()));
            fold_weight_gradient(dweights_oihw);
        }
        return;
    }
    dst_.set_data_handle(const_cast<void*>(ddst));
    stage_src(const_cast<void*>(src), winograd() ? &to_staged_src_ : nullptr);
    if (winograd()) stage(to_staged_dst_, dst_, staged_dst_);
    run_backward_weights(dweights_oihw);
}

// Reads the staged src and ddst.
void Conv2d::run_backward_weights(float* dweights_oihw) {
    bwd_weights_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    bwd_weights_.execute(ctx_.stream(), bwd_weights_args_);
    PhaseTimer reorder_timer(Phase::weight_reorder, 0.0, 2.0 * double(shape_.weight_count() * 4));
    user_diff_weights_.set_data_handle(dweights_oihw);
    from_diff_weights_.execute(ctx_.stream(), diff_weights_, user_diff_weights_);
}

void Conv2d::backward(const void* src, const void* ddst, void* dsrc, float* dweights_oihw) {
    backward_weights(src, ddst, dweights_oihw);
    if (!winograd()) {
        backward_data(ddst, dsrc);
        return;
    }
    // The staged ddst is still there; backward-data overwrites the staged src, no longer needed.
    PhaseTimer timer(Phase::conv_backward_data, 2.0 * double(shape_.macs()));
    run_backward_data(dsrc);
}

}  // namespace dn
