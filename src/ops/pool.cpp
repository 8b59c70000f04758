#include "ops/pool.h"

#include <string>

namespace dn {

using namespace dnnl;

Pool2d::Pool2d(DnnlContext& ctx, const PoolShape& s, PoolKind kind, Pass pass, const char* name)
    : ctx_(ctx), shape_(s) {
    const auto& eng = ctx.engine();
    auto src_md = nhwc_desc(s.batch, s.channels, s.in_h, s.in_w);
    auto dst_md = nhwc_desc(s.batch, s.channels, s.out_h(), s.out_w());
    // No padding is ever counted: torchvision's max pool pads with -inf and its average pool has none.
    auto alg = kind == PoolKind::max ? algorithm::pooling_max : algorithm::pooling_avg_exclude_padding;
    auto prop = pass == Pass::training ? prop_kind::forward_training : prop_kind::forward_inference;
    memory::dims kernel{s.kernel, s.kernel}, strides{s.stride, s.stride}, pad{s.pad, s.pad};

    pooling_forward::primitive_desc fwd_pd({prop, alg, src_md, dst_md, strides, kernel, pad, pad}, ctx.attr(), eng);
    ctx.register_primitive(std::string(name) + " forward", fwd_pd);
    fwd_ = pooling_forward(fwd_pd);
    src_ = memory(src_md, eng, nullptr);
    dst_ = memory(dst_md, eng, nullptr);
    if (pass == Pass::inference) return;

    workspace_bytes_ = fwd_pd.workspace_desc().get_size();
    if (workspace_bytes_ > 0) workspace_ = memory(fwd_pd.workspace_desc(), eng, nullptr);
    pooling_backward::primitive_desc bwd_pd({alg, src_md, dst_md, strides, kernel, pad, pad}, ctx.attr(), eng, fwd_pd);
    ctx.register_primitive(std::string(name) + " backward", bwd_pd);
    bwd_ = pooling_backward(bwd_pd);
    has_backward_ = true;
}

void Pool2d::forward(const float* src, float* dst, void* workspace) {
    src_.set_data_handle(const_cast<float*>(src));
    dst_.set_data_handle(dst);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}, {DNNL_ARG_SCRATCHPAD, ctx_.scratchpad()}};
    if (workspace_bytes_ > 0) {
        workspace_.set_data_handle(workspace);
        args.insert({DNNL_ARG_WORKSPACE, workspace_});
    }
    fwd_.execute(ctx_.stream(), args);
}

void Pool2d::backward(const float* ddst, float* dsrc, const void* workspace) {
    dst_.set_data_handle(const_cast<float*>(ddst));
    src_.set_data_handle(dsrc);
    std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, dst_}, {DNNL_ARG_DIFF_SRC, src_}, {DNNL_ARG_SCRATCHPAD, ctx_.scratchpad()}};
    if (workspace_bytes_ > 0) {
        workspace_.set_data_handle(const_cast<void*>(workspace));
        args.insert({DNNL_ARG_WORKSPACE, workspace_});
    }
    bwd_.execute(ctx_.stream(), args);
}

void global_avg_pool_forward(float* y, const FeatureMap& x) {
    const int64_t hw = x.h * x.w;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < x.n; ++n) {
        float* out = y + n * x.c;
        for (int64_t j = 0; j < x.c; ++j) out[j] = 0.0f;
        for (int64_t p = n * hw; p < (n + 1) * hw; ++p) {
            const float* px = x.pixel(p);
#pragma omp simd
            for (int64_t j = 0; j < x.c; ++j) out[j] += px[j];
        }
        for (int64_t j = 0; j < x.c; ++j) out[j] /= float(hw);
    }
}

void global_avg_pool_backward(const FeatureMap& dx, const float* dy) {
    const int64_t hw = dx.h * dx.w;
    const float inv = 1.0f / float(hw);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < dx.pixels(); ++p) {
        const float* g = dy + (p / hw) * dx.c;
        float* out = dx.pixel(p);
#pragma omp simd
        for (int64_t j = 0; j < dx.c; ++j) out[j] = g[j] * inv;
    }
}

}  // namespace dn
