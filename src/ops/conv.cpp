#include "ops/conv.h"

#include "ops/profiler.h"

#include <string>

namespace dn {

using namespace dnnl;

Conv2d::Conv2d(DnnlContext& ctx, const ConvShape& s, Pass pass, const char* name, DType type)
    : ctx_(ctx), shape_(s), type_(type), pass_(pass) {
    const auto& eng = ctx.engine();
    auto src_md = nhwc_desc(s.batch, s.in_channels, s.in_h, s.in_w, type);
    auto dst_md = nhwc_desc(s.batch, s.out_channels, s.out_h(), s.out_w(), type);
    memory::desc user_w_md({s.out_channels, s.in_channels, s.kernel, s.kernel}, dt::f32, tag::oihw);
    memory::desc any_w_md({s.out_channels, s.in_channels, s.kernel, s.kernel}, dnnl_type(type), tag::any);
    // oneDNN's bf16 backward-weights accumulates in f32 and writes f32, for the f32 optimizer.
    memory::desc any_dw_md({s.out_channels, s.in_channels, s.kernel, s.kernel}, dt::f32, tag::any);
    memory::dims strides{s.stride, s.stride}, pad{s.pad, s.pad};
    auto prop = pass == Pass::training ? prop_kind::forward_training : prop_kind::forward_inference;

    convolution_forward::primitive_desc fwd_pd(
        {prop, algorithm::convolution_direct, src_md, any_w_md, dst_md, strides, pad, pad}, ctx.attr(), eng);
    ctx.register_primitive(std::string(name) + " forward", fwd_pd);
    fwd_ = convolution_forward(fwd_pd);
    src_ = memory(src_md, eng, nullptr);
    dst_ = memory(dst_md, eng, nullptr);
    user_weights_ = memory(user_w_md, eng, nullptr);
    fwd_weights_ = memory(fwd_pd.weights_desc(), eng);
    to_fwd_weights_ = reorder(user_weights_, fwd_weights_);
    fwd_args_ = {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, fwd_weights_}, {DNNL_ARG_DST, dst_}};
    if (pass == Pass::inference) return;

    convolution_backward_data::primitive_desc bwd_data_pd(
        {algorithm::convolution_direct, src_md, any_w_md, dst_md, strides, pad, pad}, ctx.attr(), eng, fwd_pd);
    ctx.register_primitive(std::string(name) + " backward-data", bwd_data_pd);
    bwd_data_ = convolution_backward_data(bwd_data_pd);
    bwd_data_shares_weights_ = bwd_data_pd.weights_desc() == fwd_pd.weights_desc();
    if (!bwd_data_shares_weights_) {
        bwd_data_weights_ = memory(bwd_data_pd.weights_desc(), eng);
        to_bwd_data_weights_ = reorder(user_weights_, bwd_data_weights_);
    }
    bwd_data_args_ = {{DNNL_ARG_DIFF_DST, dst_},
                      {DNNL_ARG_WEIGHTS, bwd_data_shares_weights_ ? fwd_weights_ : bwd_data_weights_},
                      {DNNL_ARG_DIFF_SRC, src_}};

    convolution_backward_weights::primitive_desc bwd_w_pd(
        {algorithm::convolution_direct, src_md, any_dw_md, dst_md, strides, pad, pad}, ctx.attr(), eng, fwd_pd);
    ctx.register_primitive(std::string(name) + " backward-weights", bwd_w_pd);
    bwd_weights_ = convolution_backward_weights(bwd_w_pd);
    diff_weights_ = memory(bwd_w_pd.diff_weights_desc(), eng);
    user_diff_weights_ = memory(user_w_md, eng, nullptr);
    from_diff_weights_ = reorder(diff_weights_, user_diff_weights_);
    bwd_weights_args_ = {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DIFF_DST, dst_}, {DNNL_ARG_DIFF_WEIGHTS, diff_weights_}};
}

void Conv2d::load_weights(const float* weights_oihw) {
    const bool two_layouts = pass_ == Pass::training && !bwd_data_shares_weights_;
    // Reads the f32 weights and writes each layout in the operands' type.
    const double writes = (two_layouts ? 2.0 : 1.0) * double(dtype_bytes(type_));
    PhaseTimer timer(Phase::weight_reorder, 0.0, (4.0 + writes) * double(shape_.weight_count()));
    user_weights_.set_data_handle(const_cast<float*>(weights_oihw));
    to_fwd_weights_.execute(ctx_.stream(), user_weights_, fwd_weights_);
    if (two_layouts) to_bwd_data_weights_.execute(ctx_.stream(), user_weights_, bwd_data_weights_);
}

// The scratchpad is looked up at every call: the context replaces it when a later primitive
// needs a larger one.
void Conv2d::forward(const void* src, void* dst) {
    PhaseTimer timer(Phase::conv_forward, 2.0 * double(shape_.macs()));
    src_.set_data_handle(const_cast<void*>(src));
    dst_.set_data_handle(dst);
    fwd_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    fwd_.execute(ctx_.stream(), fwd_args_);
}

void Conv2d::backward_data(const void* ddst, void* dsrc) {
    PhaseTimer timer(Phase::conv_backward_data, 2.0 * double(shape_.macs()));
    dst_.set_data_handle(const_cast<void*>(ddst));
    src_.set_data_handle(dsrc);
    bwd_data_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    bwd_data_.execute(ctx_.stream(), bwd_data_args_);
}

void Conv2d::backward_weights(const void* src, const void* ddst, float* dweights_oihw) {
    PhaseTimer timer(Phase::conv_backward_weights, 2.0 * double(shape_.macs()));
    src_.set_data_handle(const_cast<void*>(src));
    dst_.set_data_handle(const_cast<void*>(ddst));
    bwd_weights_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    bwd_weights_.execute(ctx_.stream(), bwd_weights_args_);
    PhaseTimer reorder_timer(Phase::weight_reorder, 0.0, 2.0 * double(shape_.weight_count() * 4));
    user_diff_weights_.set_data_handle(dweights_oihw);
    from_diff_weights_.execute(ctx_.stream(), diff_weights_, user_diff_weights_);
}

}  // namespace dn
