// defines: ResizeAxis, ResizePlan, make_resize_plan, resize_bilinear (Pillow's 8-bit bilinear resize)
#pragma once
#include <cstdint>
#include <vector>

namespace dn {

// torchvision's Resize on a PIL image is Pillow's Image.resize(size, BILINEAR): a separable
// triangle filter whose support widens by the downscale factor (so shrinking antialiases),
// with 22-bit fixed-point weights and a rounding to uint8 between the horizontal and the
// vertical pass. We reproduce it bit for bit, so a model trained here sees the pixels a
// PyTorch user's model sees.

// The weights of one axis, in -> out. Output i reads inputs [first[i], first[i] + taps), all
// inside [0, in); Pillow's narrower windows are padded with zero weights.
struct ResizeAxis {
    int64_t in = 0, out = 0;
    int64_t taps = 0;              // min(Pillow's ksize, in)
    std::vector<int32_t> first;    // (out)
    std::vector<int32_t> weights;  // (out, taps), fixed point, 1.0 = 1 << 22
};

// Built once per (input size, output size) and reused for every image of that size.
struct ResizePlan {
    int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
    ResizeAxis rows, cols;

    // The horizontal pass's result for one channel, (in_h, out_w); zero when that pass is skipped.
    int64_t scratch_bytes() const;
};

// Throws std::invalid_argument for a size below 1.
ResizePlan make_resize_plan(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w);

// dst (channels, out_h, out_w) from src (channels, in_h, in_w), both planar uint8; scratch holds
// plan.scratch_bytes(). Never allocates; a const plan may be shared between threads.
void resize_bilinear(uint8_t* dst, const uint8_t* src, int64_t channels, const ResizePlan& plan, uint8_t* scratch);

// The same, keeping the last plan and scratch per thread, so a loader resizing many images of
// one size allocates only on its first call.
void resize_bilinear(uint8_t* dst, int64_t out_h, int64_t out_w, const uint8_t* src, int64_t channels, int64_t in_h,
                     int64_t in_w);

}  // namespace dn
