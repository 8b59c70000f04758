// defines: winograd_tile_count, winograd_weights, winograd_input_tiles, winograd_output_tiles,
//          winograd_output_gradient_tiles, winograd_weight_gradient, WinogradPasses,
//          WinogradMatmul (a 3x3 convolution's forward and weight gradient as Winograd's
//          F(4x4, 3x3), with the 36 products on oneDNN's batched matmul)
//
// oneDNN 2.6 has Winograd convolutions only on CPUs with AVX-512. Without them (an AVX2 CPU) a
// 3x3 convolution runs its direct kernels, at the FMA peak already (DenseNet-121's 128 -> 32 at
// 56x56: 215 GFLOP/s of 233, one image, oneDNN held to AVX2 on a Zen 4), so only fewer
// multiplications make it faster. F(4x4, 3x3) computes each 4x4 block of output pixels (a tile)
// from its 6x6 input window with 36 products per channel pair instead of 144:
//   V = B^T d B (each channel's window),  U = G g G^T (each 3x3 kernel),
//   M[k] = V[k] U[k] for each of the 36 positions k (a matrix product over channels),
//   y = A^T M A (each output channel's 4x4 block).
// The transforms are ours (they are elementwise over channels); the products are 36 matrix
// products of (tiles x in) by (in x out), one batched matmul. The weight gradient goes back
// through the same steps: dU[k] = V[k]^T dM[k] summed over tiles, with dM = A dy A^T, and
// dg = G^T dU G. (The input gradient is the forward of another convolution: Conv2d.) Measured
// as ConvKernel::winograd_matmul in ops/conv.cpp. The construction is Lavin and Gray's (2016), on
// the interpolation points that oneDNN's F(4x4, 3x3) kernel uses (winograd_matmul.cpp).
#pragma once
#include "ops/conv_shape.h"
#include "ops/dnnl_context.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace dn {

inline constexpr int64_t kWinogradPositions = 36;  // 6x6: a tile's input window and its transform

// Tiles of `s`'s output: ceil(H/4) * ceil(W/4) per image, row by row, image by image. A tile at
// the map's right or bottom edge is cut there.
int64_t winograd_tile_count(const ConvShape& s);

// u (36, I, O) = G g G^T of each (o, i) 3x3 kernel in the OIHW weights.
void winograd_weights(const float* weights_oihw, const ConvShape& s, float* u);
// v (36, tiles, I) = B^T d B of each tile's 6x6 window of the NHWC src (padding reads as zero),
// for the `tiles` tiles from first_tile on.
void winograd_input_tiles(const float* src_nhwc, const ConvShape& s, int64_t first_tile, int64_t tiles, float* v);
// The NHWC dst's pixels of those tiles = A^T m A of m (36, tiles, O).
void winograd_output_tiles(const float* m, const ConvShape& s, int64_t first_tile, int64_t tiles, float* dst_nhwc);
// The backward of the two above for the weight gradient: dm (36, tiles, O) = A dy A^T of each
// tile's 4x4 block of the NHWC dst gradient (zero past the map's edge), and the OIHW weight
// gradient from du (36, I, O), the gradient of u: G^T du G (assigned).
void winograd_output_gradient_tiles(const float* ddst_nhwc, const ConvShape& s, int64_t first_tile, int64_t tiles,
                                    float* dm);
void winograd_weight_gradient(const float* du, const ConvShape& s, float* dweights_oihw);

// What a WinogradMatmul computes: the forward alone, or also the weight gradient.
enum class WinogradPasses { forward, forward_and_weight_gradient };

// A 3x3, stride-1, padding-1 fp32 convolution's forward, and its weight gradient where built for
// it, as above. Its transformed tiles
// and products live in a staging buffer its caller gives (set_staging), as oneDNN's Winograd
// stages its operands. It takes its tiles in even groups, each transformed, multiplied and
// transformed back in turn, that need at most kGroupStagingBytes (but for channels so wide that
// kMinTilesPerGroup tiles need more), or less where its caller has less room (fit_staging).
class WinogradMatmul {
public:
    WinogradMatmul(DnnlContext& ctx, const ConvShape& shape, const char* name,
                   WinogradPasses passes = WinogradPasses::forward);

    size_t staging_bytes() const { return staging_bytes_for(group_); }
    // Whether it runs in `bytes` of staging: as it is, or in the fewest even groups that need no
    // more; false (and no change) where groups that small would run slower than the direct
    // kernels (under kMinTilesPerGroup tiles).
    bool fit_staging(size_t bytes);
    bool can_fit_staging(size_t bytes) const { return staging_bytes() <= bytes || even_group(bytes) > 0; }
    void set_staging(void* buffer) { staging_ = static_cast<std::byte*>(buffer); }
    int64_t tiles_per_group() const { return group_; }

    void load_weights(const float* weights_oihw);  // transforms them
    void forward(const float* src_nhwc, float* dst_nhwc);
    // Assigns the OIHW weight gradient: du[k] = sum over tiles of v[k]^T dm[k], one batched matmul
    // a group that accumulates into du, then G^T du G.
    void weight_gradient(const float* src_nhwc, const float* ddst_nhwc, float* dweights_oihw);

    // Measured one image at 56x56, oneDNN held to AVX2 on a Zen 4: the 196 tiles in one group ran
    // 2.0x the direct kernel's speed, in groups of 128, 64 and 32: 1.8x, 1.6x, 1.35x (the products
    // get shorter).
    static constexpr int64_t kMinTilesPerGroup = 32;
    // And 32 images at 56x56 (6272 tiles, 144 MB of staging at once): in groups of 3, 6, 10, 14
    // and 21 MB 2.4x, 2.6x, 2.5x, 2.2x and 1.7x (larger groups leave the cache between the
    // transform and the products); two images (9 MB) 2.2-2.3x in groups of 2-5 MB, 2.1x in one.
    static constexpr size_t kGroupStagingBytes = size_t(6) << 20;

private:
    // The tiles of the fewest even groups that need at most `bytes` (0: none of kMinTilesPerGroup).
    int64_t even_group(size_t bytes) const;
    size_t staging_bytes_for(int64_t tiles) const;
    size_t products_offset(int64_t tiles) const;  // m after v, on a cache line of its own
    void build_products(int64_t tiles);           // the matmuls for a full and for the last group
    template <class Each>
    void for_each_group(Each each);

    DnnlContext& ctx_;
    ConvShape shape_;
    std::string name_;
    WinogradPasses passes_;
    int64_t tiles_ = 0, group_ = 0;
    dnnl::memory u_;  // (36, I, O) f32, the transformed weights
    dnnl::memory du_;  // (36, I, O) f32, its gradient (forward_and_weight_gradient)
    // A batched matmul and its arguments, built once: each call sets their data pointers (the
    // staged v and m), as Conv2d does its primitives'.
    struct Products {
        dnnl::matmul product;
        std::unordered_map<int, dnnl::memory> args;
        int m_arg;  // where the staged m goes: the forward's destination, the gradient's weights (dm)
    };
    // m (36, group, O) = v (36, group, I) u, for a full group and for the last one; and the
    // weight gradient's du += v^T dm, v read as (36, I, group).
    Products products_, last_products_, gradient_products_, last_gradient_products_;
    void run(Products& products, void* v_data, void* m_data);
    std::byte* staging_ = nullptr;
};

}  // namespace dn
