#include "ops/dnnl_context.h"

namespace dn {

DnnlContext::DnnlContext() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    scratchpad_ = dnnl::memory({{1}, dt::u8, tag::x}, engine_);
}

dnnl::primitive_attr DnnlContext::attr() const {
    dnnl::primitive_attr a;
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
}

void DnnlContext::register_primitive(const std::string& what, const dnnl::primitive_desc_base& pd) {
    impls_.push_back({what, pd.impl_info_str()});
    size_t need = pd.scratchpad_desc().get_size();
    if (need > scratchpad_bytes_) {
        scratchpad_bytes_ = need;
        scratchpad_ = dnnl::memory({{int64_t(need)}, dt::u8, tag::x}, engine_);
    }
}

}  // namespace dn
