#include "ops/linear.h"

#include "ops/profiler.h"

#include <string>

namespace dn {

using namespace dnnl;

Linear::Linear(DnnlContext& ctx, int64_t batch, int64_t in, int64_t out, const char* name)
    : ctx_(ctx), batch_(batch), in_(in), out_(out) {
    const auto& eng = ctx.engine();
    memory::desc x_md({batch, in}, dt::f32, tag::ab);
    memory::desc w_t_md({in, out}, dt::f32, tag::ba);  // W^T viewed through W's (O,I) storage
    memory::desc b_md({1, out}, dt::f32, tag::ab);
    memory::desc y_md({batch, out}, dt::f32, tag::ab);
    memory::desc w_md({out, in}, dt::f32, tag::ab);
    memory::desc dy_t_md({out, batch}, dt::f32, tag::ba);

    matmul::primitive_desc fwd_pd({x_md, w_t_md, b_md, y_md}, ctx.attr(), eng);
    matmul::primitive_desc bwd_data_pd({y_md, w_md, x_md}, ctx.attr(), eng);     // dx = dy W
    matmul::primitive_desc bwd_w_pd({dy_t_md, x_md, w_md}, ctx.attr(), eng);     // dW = dy^T x
    ctx.register_primitive(std::string(name) + " forward", fwd_pd);
    ctx.register_primitive(std::string(name) + " backward-data", bwd_data_pd);
    ctx.register_primitive(std::string(name) + " backward-weights", bwd_w_pd);
    fwd_ = matmul(fwd_pd);
    bwd_data_ = matmul(bwd_data_pd);
    bwd_weights_ = matmul(bwd_w_pd);

    x_ = memory(x_md, eng, nullptr);
    w_t_ = memory(w_t_md, eng, nullptr);
    b_ = memory(b_md, eng, nullptr);
    y_ = memory(y_md, eng, nullptr);
    dy_ = memory(y_md, eng, nullptr);
    w_ = memory(w_md, eng, nullptr);
    dx_ = memory(x_md, eng, nullptr);
    dy_t_ = memory(dy_t_md, eng, nullptr);
    dw_ = memory(w_md, eng, nullptr);
    fwd_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_WEIGHTS, w_t_}, {DNNL_ARG_BIAS, b_}, {DNNL_ARG_DST, y_}};
    bwd_data_args_ = {{DNNL_ARG_SRC, dy_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, dx_}};
    bwd_weights_args_ = {{DNNL_ARG_SRC, dy_t_}, {DNNL_ARG_WEIGHTS, x_}, {DNNL_ARG_DST, dw_}};
}

// The scratchpad is looked up at every call: the context replaces it when a later primitive
// needs a larger one.
void Linear::forward(float* y, const float* x, const float* weight, const float* bias) {
    PhaseTimer timer(Phase::classifier_loss, 2.0 * double(batch_ * in_ * out_));
    x_.set_data_handle(const_cast<float*>(x));
    w_t_.set_data_handle(const_cast<float*>(weight));
    b_.set_data_handle(const_cast<float*>(bias));
    y_.set_data_handle(y);
    fwd_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    fwd_.execute(ctx_.stream(), fwd_args_);
}

void Linear::backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight) {
    PhaseTimer timer(Phase::classifier_loss, (dx ? 4.0 : 2.0) * double(batch_ * in_ * out_));
    if (dx) {
        dy_.set_data_handle(const_cast<float*>(dy));
        w_.set_data_handle(const_cast<float*>(weight));
        dx_.set_data_handle(dx);
        bwd_data_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
        bwd_data_.execute(ctx_.stream(), bwd_data_args_);
    }
    dy_t_.set_data_handle(const_cast<float*>(dy));
    x_.set_data_handle(const_cast<float*>(x));
    dw_.set_data_handle(dweight);
    bwd_weights_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    bwd_weights_.execute(ctx_.stream(), bwd_weights_args_);
    for (int64_t o = 0; o < out_; ++o) dbias[o] = 0.0f;
    for (int64_t n = 0; n < batch_; ++n)
        for (int64_t o = 0; o < out_; ++o) dbias[o] += dy[n * out_ + o];
}

}  // namespace dn
