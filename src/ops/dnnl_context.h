// defines: DnnlContext (the oneDNN engine, its stream and the one scratchpad all primitives share),
//          dnnl_type, nhwc_desc
#pragma once
#include "ops/pass.h"
#include "tensor/dtype.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <vector>

namespace dn {

// Every primitive is created with scratchpad_mode::user, so a single buffer serves them all
// instead of each primitive holding its own. Primitives report their need while they are built;
// the buffer only grows then, never during a step.
class DnnlContext {
public:
    DnnlContext();

    const dnnl::engine& engine() const { return engine_; }
    dnnl::stream& stream() { return stream_; }
    dnnl::primitive_attr attr() const;

    // Records a primitive's scratchpad need and which implementation oneDNN chose for it.
    void register_primitive(const std::string& what, const dnnl::primitive_desc_base& pd);
    const dnnl::memory& scratchpad() const { return scratchpad_; }
    size_t scratchpad_bytes() const { return scratchpad_bytes_; }

    struct ChosenImpl {
        std::string what;
        std::string impl;
    };
    const std::vector<ChosenImpl>& chosen_impls() const { return impls_; }

private:
    dnnl::engine engine_;
    dnnl::stream stream_;
    dnnl::memory scratchpad_;
    size_t scratchpad_bytes_ = 0;
    std::vector<ChosenImpl> impls_;
};

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

inline dt dnnl_type(DType t) { return t == DType::bf16 ? dt::bf16 : dt::f32; }

inline dnnl::memory::desc nhwc_desc(int64_t n, int64_t c, int64_t h, int64_t w, DType type = DType::f32) {
    return dnnl::memory::desc({n, c, h, w}, dnnl_type(type), tag::nhwc);
}

}  // namespace dn
