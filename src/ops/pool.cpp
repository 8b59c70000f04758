#include "ops/pool.h"

#include "ops/profiler.h"

#include <string>

namespace dn {

using namespace dnnl;

Pool2d::Pool2d(DnnlContext& ctx, const PoolShape& s, PoolKind kind, Pass pass, const char* name, DType type)
    : ctx_(ctx), shape_(s), type_(type) {
    const auto& eng = ctx.engine();
    auto src_md = nhwc_desc(s.batch, s.channels, s.in_h, s.in_w, type);
    auto dst_md = nhwc_desc(s.batch, s.channels, s.out_h(), s.out_w(), type);
    // No padding is ever counted: torchvision's max pool pads with -inf and its average pool has none.
    auto alg = kind == PoolKind::max ? algorithm::pooling_max : algorithm::pooling_avg_exclude_padding;
    auto prop = pass == Pass::training ? prop_kind::forward_training : prop_kind::forward_inference;
    memory::dims kernel{s.kernel, s.kernel}, strides{s.stride, s.stride}, pad{s.pad, s.pad};

    pooling_forward::primitive_desc fwd_pd({prop, alg, src_md, dst_md, strides, kernel, pad, pad}, ctx.attr(), eng);
    ctx.register_primitive(std::string(name) + " forward", fwd_pd);
    fwd_ = pooling_forward(fwd_pd);
    src_ = memory(src_md, eng, nullptr);
    dst_ = memory(dst_md, eng, nullptr);
    fwd_args_ = {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}};
    if (pass == Pass::inference) return;

    workspace_bytes_ = fwd_pd.workspace_desc().get_size();
    bwd_args_ = {{DNNL_ARG_DIFF_DST, dst_}, {DNNL_ARG_DIFF_SRC, src_}};
    if (workspace_bytes_ > 0) {
        workspace_ = memory(fwd_pd.workspace_desc(), eng, nullptr);
        fwd_args_.insert({DNNL_ARG_WORKSPACE, workspace_});
        bwd_args_.insert({DNNL_ARG_WORKSPACE, workspace_});
    }
    pooling_backward::primitive_desc bwd_pd({alg, src_md, dst_md, strides, kernel, pad, pad}, ctx.attr(), eng, fwd_pd);
    ctx.register_primitive(std::string(name) + " backward", bwd_pd);
    bwd_ = pooling_backward(bwd_pd);
    has_backward_ = true;
}

// Bytes are the dense input and output each pass reads and writes.
static double pool_bytes(const PoolShape& s, DType type) {
    return double(dtype_bytes(type)) * double(s.batch * s.channels * (s.in_h * s.in_w + s.out_h() * s.out_w()));
}

// The scratchpad is looked up at every call: the context replaces it when a later primitive
// needs a larger one.
void Pool2d::forward(const void* src, void* dst, void* workspace) {
    PhaseTimer timer(Phase::pooling, 0.0, pool_bytes(shape_, type_));
    src_.set_data_handle(const_cast<void*>(src));
    dst_.set_data_handle(dst);
    if (workspace_bytes_ > 0) workspace_.set_data_handle(workspace);
    fwd_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    fwd_.execute(ctx_.stream(), fwd_args_);
}

void Pool2d::backward(const void* ddst, void* dsrc, const void* workspace) {
    PhaseTimer timer(Phase::pooling, 0.0, pool_bytes(shape_, type_));
    dst_.set_data_handle(const_cast<void*>(ddst));
    src_.set_data_handle(dsrc);
    if (workspace_bytes_ > 0) workspace_.set_data_handle(const_cast<void*>(workspace));
    bwd_args_[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    bwd_.execute(ctx_.stream(), bwd_args_);
}

void global_avg_pool_forward(float* y, const FeatureMap& x) {
    PhaseTimer timer(Phase::pooling, 0.0, 4.0 * double(x.elements() + x.n * x.c));
    const int64_t hw = x.h * x.w;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < x.n; ++n) {
        float* out = y + n * x.c;
        for (int64_t j = 0; j < x.c; ++j) out[j] = 0.0f;
        for (int64_t p = n * hw; p < (n + 1) * hw; ++p) {
            const float* px = x.pixel<float>(p);
#pragma omp simd
            for (int64_t j = 0; j < x.c; ++j) out[j] += px[j];
        }
        for (int64_t j = 0; j < x.c; ++j) out[j] /= float(hw);
    }
}

void global_avg_pool_backward(const FeatureMap& dx, const float* dy) {
    PhaseTimer timer(Phase::pooling, 0.0, 4.0 * double(dx.elements() + dx.n * dx.c));
    const int64_t hw = dx.h * dx.w;
    const float inv = 1.0f / float(hw);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < dx.pixels(); ++p) {
        const float* g = dy + (p / hw) * dx.c;
        float* out = dx.pixel<float>(p);
#pragma omp simd
        for (int64_t j = 0; j < dx.c; ++j) out[j] = g[j] * inv;
    }
}

}  // namespace dn
