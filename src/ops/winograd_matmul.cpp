#include "ops/winograd_matmul.h"

#include <algorithm>
#include <stdexcept>

namespace dn {

using namespace dnnl;
using dt = memory::data_type;
using tag = memory::format_tag;

namespace {

constexpr int64_t kTileSide = 4, kWindow = 6;
// Channels a tile's transform holds at once: its window and the half-transformed one, 2 x 36 x 32
// floats, stay in L1.
constexpr int64_t kLanes = 32;

// The interpolation points are 0, +-5/8, +-3/2 and infinity, as oneDNN's F(4x4, 3x3) kernel has
// them, not Lavin and Gray's 0, +-1, +-2: B^T's and A^T's entries are still exact in binary, and
// the rounding error is less than half. At 128 -> 32, one image at 56x56, relative to the exact
// output's norm: 1.0e-6 (0, +-1, +-2: 2.4e-6; oneDNN's Winograd 0.8e-6, its direct kernel 0.6e-6).
// With k over the finite points p_k:
//   B^T's row k holds the coefficients of prod_{l != k} (x - p_l), its last row those of
//   prod_l (x - p_l); G's row k is (1, p_k, p_k^2) / prod_{l != k} (p_k - p_l), its last (0, 0, 1);
//   A^T's column k is (1, p_k, p_k^2, p_k^3), its last (0, 0, 0, 1).
constexpr double kPoints[5] = {0.0, 0.625, -0.625, 1.5, -1.5};

// B^T applied to the six values d[0], d[step], ..., d[5 step] of each of `width` channels: the
// input transform along one axis, written to o0..o5. The outputs are six restrict pointers: GCC
// vectorises the channel loop only where it knows that the rows it writes overlap neither each
// other nor what it reads.
inline void input_axis_rows(const float* __restrict d, int64_t step, float* __restrict o0, float* __restrict o1,
                            float* __restrict o2, float* __restrict o3, float* __restrict o4, float* __restrict o5,
                            int64_t width) {
    constexpr float a = 225.0f / 256, b = 169.0f / 64, q = 25.0f / 64, w = 9.0f / 4;
    for (int64_t c = 0; c < width; ++c) {
        const float d0 = d[c], d1 = d[step + c], d2 = d[2 * step + c], d3 = d[3 * step + c], d4 = d[4 * step + c],
                    d5 = d[5 * step + c];
        const float wide2 = d4 - w * d2, wide1 = d3 - w * d1, narrow2 = d4 - q * d2, narrow1 = d3 - q * d1;
        o0[c] = a * d0 - b * d2 + d4;
        o1[c] = wide2 + 0.625f * wide1;
        o2[c] = wide2 - 0.625f * wide1;
        o3[c] = narrow2 + 1.5f * narrow1;
        o4[c] = narrow2 - 1.5f * narrow1;
        o5[c] = a * d1 - b * d3 + d5;
    }
}

inline void input_axis(const float* d, int64_t step, float* out, int64_t ostep, int64_t width) {
    input_axis_rows(d, step, out, out + ostep, out + 2 * ostep, out + 3 * ostep, out + 4 * ostep, out + 5 * ostep, width);
}

// A^T applied to the six values m[0], m[step], ..., m[5 step] of each of `width` channels,
// written to o0..o3.
inline void output_axis_rows(const float* __restrict m, int64_t step, float* __restrict o0, float* __restrict o1,
                             float* __restrict o2, float* __restrict o3, int64_t width) {
    for (int64_t c = 0; c < width; ++c) {
        const float m0 = m[c], m1 = m[step + c], m2 = m[2 * step + c], m3 = m[3 * step + c], m4 = m[4 * step + c],
                    m5 = m[5 * step + c];
        const float near_sum = m1 + m2, near_diff = m1 - m2, far_sum = m3 + m4, far_diff = m3 - m4;
        o0[c] = m0 + near_sum + far_sum;
        o1[c] = 0.625f * near_diff + 1.5f * far_diff;
        o2[c] = (25.0f / 64) * near_sum + (9.0f / 4) * far_sum;
        o3[c] = (125.0f / 512) * near_diff + (27.0f / 8) * far_diff + m5;
    }
}

inline void output_axis(const float* m, int64_t step, float* out, int64_t ostep, int64_t width) {
    output_axis_rows(m, step, out, out + ostep, out + 2 * ostep, out + 3 * ostep, width);
}

// A's rows (A^T's columns) applied to the four values dy[0], dy[step], ..., dy[3 step] of each of
// `width` channels, written to o0..o5: the backward of output_axis.
inline void output_gradient_axis_rows(const float* __restrict dy, int64_t step, float* __restrict o0,
                                      float* __restrict o1, float* __restrict o2, float* __restrict o3,
                                      float* __restrict o4, float* __restrict o5, int64_t width) {
    for (int64_t c = 0; c < width; ++c) {
        const float d0 = dy[c], d1 = dy[step + c], d2 = dy[2 * step + c], d3 = dy[3 * step + c];
        const float even_near = d0 + (25.0f / 64) * d2, odd_near = 0.625f * d1 + (125.0f / 512) * d3;
        const float even_far = d0 + (9.0f / 4) * d2, odd_far = 1.5f * d1 + (27.0f / 8) * d3;
        o0[c] = d0;
        o1[c] = even_near + odd_near;
        o2[c] = even_near - odd_near;
        o3[c] = even_far + odd_far;
        o4[c] = even_far - odd_far;
        o5[c] = d3;
    }
}

inline void output_gradient_axis(const float* dy, int64_t step, float* out, int64_t ostep, int64_t width) {
    output_gradient_axis_rows(dy, step, out, out + ostep, out + 2 * ostep, out + 3 * ostep, out + 4 * ostep,
                              out + 5 * ostep, width);
}

struct TileOrigin {
    int64_t image, row, col;  // the tile's first output pixel
};

TileOrigin tile_origin(const ConvShape& s, int64_t tile) {
    const int64_t across = (s.out_w() + kTileSide - 1) / kTileSide, down = (s.out_h() + kTileSide - 1) / kTileSide;
    const int64_t in_image = tile % (across * down);
    return {tile / (across * down), in_image / across * kTileSide, in_image % across * kTileSide};
}

void check_shape(const ConvShape& s, const char* name) {
    if (s.kernel != 3 || s.stride != 1 || s.pad != 1)
        throw std::invalid_argument(std::string(name) + ": winograd_matmul computes 3x3 stride-1 convolutions "
                                    "with padding 1");
    if (s.batch <= 0 || s.in_h <= 0 || s.in_w <= 0 || s.in_channels <= 0 || s.out_channels <= 0)
        throw std::invalid_argument(std::string(name) + ": an empty convolution");
}

struct WinogradWeightTransform {
    double g[kWindow][3] = {};
};

WinogradWeightTransform weight_transform() {
    WinogradWeightTransform G;
    for (int64_t k = 0; k < 5; ++k) {
        double scale = 1.0;
        for (int64_t l = 0; l < 5; ++l)
            if (l != k) scale *= kPoints[k] - kPoints[l];
        G.g[k][0] = 1.0 / scale, G.g[k][1] = kPoints[k] / scale, G.g[k][2] = kPoints[k] * kPoints[k] / scale;
    }
    G.g[5][2] = 1.0;
    return G;
}

}  // namespace

int64_t winograd_tile_count(const ConvShape& s) {
    return s.batch * ((s.out_h() + kTileSide - 1) / kTileSide) * ((s.out_w() + kTileSide - 1) / kTileSide);
}

// G from the points (above), in double: each transformed weight is rounded to float once.
void winograd_weights(const float* weights_oihw, const ConvShape& s, float* u) {
    const WinogradWeightTransform transform = weight_transform();
    const auto& G = transform.g;
    const int64_t I = s.in_channels, O = s.out_channels;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < I; ++i) {
            const float* g = weights_oihw + (o * I + i) * 9;
            double gg[kWindow][3];  // G g
            for (int64_t r = 0; r < kWindow; ++r)
                for (int64_t c = 0; c < 3; ++c) gg[r][c] = G[r][0] * g[c] + G[r][1] * g[3 + c] + G[r][2] * g[6 + c];
            for (int64_t r = 0; r < kWindow; ++r)
                for (int64_t c = 0; c < kWindow; ++c)
                    u[((r * kWindow + c) * I + i) * O + o] =
                        float(gg[r][0] * G[c][0] + gg[r][1] * G[c][1] + gg[r][2] * G[c][2]);
        }
}

void winograd_input_tiles(const float* src, const ConvShape& s, int64_t first_tile, int64_t tiles, float* v) {
    const int64_t I = s.in_channels, H = s.in_h, W = s.in_w, position_stride = tiles * I;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
        const TileOrigin at = tile_origin(s, first_tile + t);
        const float* pixel[kWindow][kWindow];  // the window's pixels, null in the padding
        for (int64_t r = 0; r < kWindow; ++r)
            for (int64_t c = 0; c < kWindow; ++c) {
                const int64_t y = at.row - 1 + r, x = at.col - 1 + c;
                const bool inside = y >= 0 && y < H && x >= 0 && x < W;
                pixel[r][c] = inside ? src + ((at.image * H + y) * W + x) * I : nullptr;
            }
        alignas(64) float window[kWindow][kWindow][kLanes];
        alignas(64) float rows_done[kWindow][kWindow][kLanes];  // B^T d
        for (int64_t c0 = 0; c0 < I; c0 += kLanes) {
            const int64_t width = std::min(kLanes, I - c0);
            for (int64_t r = 0; r < kWindow; ++r)
                for (int64_t c = 0; c < kWindow; ++c) {
                    if (pixel[r][c]) std::copy_n(pixel[r][c] + c0, width, window[r][c]);
                    else std::fill_n(window[r][c], width, 0.0f);
                }
            for (int64_t c = 0; c < kWindow; ++c)
                input_axis(&window[0][c][0], kWindow * kLanes, &rows_done[0][c][0], kWindow * kLanes, width);
            for (int64_t r = 0; r < kWindow; ++r)
                input_axis(&rows_done[r][0][0], kLanes, v + (r * kWindow * tiles + t) * I + c0, position_stride, width);
        }
    }
}

void winograd_output_tiles(const float* m, const ConvShape& s, int64_t first_tile, int64_t tiles, float* dst) {
    const int64_t O = s.out_channels, H = s.out_h(), W = s.out_w(), position_stride = tiles * O;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
        const TileOrigin at = tile_origin(s, first_tile + t);
        alignas(64) float rows_done[kTileSide][kWindow][kLanes];  // A^T m
        alignas(64) float block[kTileSide][kLanes];               // one output row of the tile
        for (int64_t c0 = 0; c0 < O; c0 += kLanes) {
            const int64_t width = std::min(kLanes, O - c0);
            for (int64_t c = 0; c < kWindow; ++c)
                output_axis(m + (c * tiles + t) * O + c0, kWindow * position_stride, &rows_done[0][c][0],
                            kWindow * kLanes, width);
            for (int64_t r = 0; r < kTileSide && at.row + r < H; ++r) {
                output_axis(&rows_done[r][0][0], kLanes, &block[0][0], kLanes, width);
                for (int64_t c = 0; c < kTileSide && at.col + c < W; ++c)
                    std::copy_n(block[c], width, dst + ((at.image * H + at.row + r) * W + at.col + c) * O + c0);
            }
        }
    }
}

void winograd_output_gradient_tiles(const float* ddst, const ConvShape& s, int64_t first_tile, int64_t tiles,
                                    float* dm) {
    const int64_t O = s.out_channels, H = s.out_h(), W = s.out_w(), position_stride = tiles * O;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
        const TileOrigin at = tile_origin(s, first_tile + t);
        alignas(64) float block[kTileSide][kTileSide][kLanes];  // the tile's dy, zero past the edge
        alignas(64) float rows_done[kWindow][kTileSide][kLanes];  // A dy
        for (int64_t c0 = 0; c0 < O; c0 += kLanes) {
            const int64_t width = std::min(kLanes, O - c0);
            for (int64_t r = 0; r < kTileSide; ++r)
                for (int64_t c = 0; c < kTileSide; ++c) {
                    const bool inside = at.row + r < H && at.col + c < W;
                    if (inside) std::copy_n(ddst + ((at.image * H + at.row + r) * W + at.col + c) * O + c0, width, block[r][c]);
                    else std::fill_n(block[r][c], width, 0.0f);
                }
            for (int64_t c = 0; c < kTileSide; ++c)
                output_gradient_axis(&block[0][c][0], kTileSide * kLanes, &rows_done[0][c][0], kTileSide * kLanes, width);
            for (int64_t r = 0; r < kWindow; ++r)
                output_gradient_axis(&rows_done[r][0][0], kLanes, dm + (r * kWindow * tiles + t) * O + c0,
                                     position_stride, width);
        }
    }
}

void winograd_weight_gradient(const float* du, const ConvShape& s, float* dweights_oihw) {
    const WinogradWeightTransform G = weight_transform();
    const int64_t I = s.in_channels, O = s.out_channels;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < I; ++i) {
            double gt_du[3][kWindow];  // G^T du
            for (int64_t r = 0; r < 3; ++r)
                for (int64_t c = 0; c < kWindow; ++c) {
                    double sum = 0.0;
                    for (int64_t k = 0; k < kWindow; ++k) sum += G.g[k][r] * du[((k * kWindow + c) * I + i) * O + o];
                    gt_du[r][c] = sum;
                }
            float* dg = dweights_oihw + (o * I + i) * 9;
            for (int64_t r = 0; r < 3; ++r)
                for (int64_t c = 0; c < 3; ++c) {
                    double sum = 0.0;
                    for (int64_t k = 0; k < kWindow; ++k) sum += gt_du[r][k] * G.g[k][c];
                    dg[r * 3 + c] = float(sum);
                }
        }
}

WinogradMatmul::WinogradMatmul(DnnlContext& ctx, const ConvShape& shape, const char* name, WinogradPasses passes)
    : ctx_(ctx), shape_(shape), name_(name), passes_(passes), tiles_(winograd_tile_count(shape)) {
    check_shape(shape, name);
    u_ = memory({{kWinogradPositions, shape.in_channels, shape.out_channels}, dt::f32, tag::abc}, ctx.engine());
    if (passes == WinogradPasses::forward_and_weight_gradient) du_ = memory(u_.get_desc(), ctx.engine());
    // Channels so wide that kMinTilesPerGroup tiles need more: one group, until fit_staging.
    const int64_t group = even_group(kGroupStagingBytes);
    build_products(group > 0 ? group : tiles_);
}

size_t WinogradMatmul::products_offset(int64_t tiles) const {
    return size_t(kWinogradPositions * tiles * shape_.in_channels * 4 + 63) / 64 * 64;
}

size_t WinogradMatmul::staging_bytes_for(int64_t tiles) const {
    return products_offset(tiles) + size_t(kWinogradPositions * tiles * shape_.out_channels * 4);
}

int64_t WinogradMatmul::even_group(size_t bytes) const {
    const size_t per_tile = staging_bytes_for(1);
    const int64_t largest = std::min(tiles_, int64_t(bytes / per_tile));  // about: v's end is aligned
    for (int64_t most = largest; most > 0; --most) {
        if (staging_bytes_for(most) > bytes) continue;
        const int64_t groups = (tiles_ + most - 1) / most;
        const int64_t even = (tiles_ + groups - 1) / groups;  // as many groups, as even as they can be
        return even < std::min(tiles_, kMinTilesPerGroup) ? 0 : even;
    }
    return 0;
}

bool WinogradMatmul::fit_staging(size_t bytes) {
    if (staging_bytes() <= bytes) return true;
    const int64_t group = even_group(bytes);
    if (group == 0) return false;
    build_products(group);
    return true;
}

void WinogradMatmul::build_products(int64_t tiles) {
    const auto& eng = ctx_.engine();
    const int64_t I = shape_.in_channels, O = shape_.out_channels, P = kWinogradPositions;
    auto build = [&](int64_t group, const char* which) {
        const memory::desc v_md({P, group, I}, dt::f32, tag::abc), m_md({P, group, O}, dt::f32, tag::abc);
        matmul::primitive_desc pd({v_md, u_.get_desc(), m_md}, ctx_.attr(), eng);
        ctx_.register_primitive(name_ + ", Winograd's products" + which, pd);
        return Products{matmul(pd), {{DNNL_ARG_SRC, memory(v_md, eng, nullptr)},
                                     {DNNL_ARG_WEIGHTS, u_},
                                     {DNNL_ARG_DST, memory(m_md, eng, nullptr)}},
                        DNNL_ARG_DST};
    };
    // du += v^T dm: v (36, group, I) read as (36, I, group), accumulated by a sum post-op.
    auto build_gradient = [&](int64_t group, const char* which) {
        const memory::desc v_t_md({P, I, group}, dt::f32, memory::dims{group * I, 1, I});
        const memory::desc dm_md({P, group, O}, dt::f32, tag::abc);
        primitive_attr accumulate = ctx_.attr();
        post_ops sum;
        sum.append_sum(1.0f);
        accumulate.set_post_ops(sum);
        matmul::primitive_desc pd({v_t_md, dm_md, du_.get_desc()}, accumulate, eng);
        ctx_.register_primitive(name_ + " weight gradient, Winograd's products" + which, pd);
        return Products{matmul(pd), {{DNNL_ARG_SRC, memory(v_t_md, eng, nullptr)},
                                     {DNNL_ARG_WEIGHTS, memory(dm_md, eng, nullptr)},
                                     {DNNL_ARG_DST, du_}},
                        DNNL_ARG_WEIGHTS};
    };
    group_ = tiles;
    const int64_t last = tiles_ - (tiles_ - 1) / group_ * group_;
    products_ = build(group_, "");
    last_products_ = last == group_ ? products_ : build(last, " (last group)");
    if (passes_ != WinogradPasses::forward_and_weight_gradient) return;
    gradient_products_ = build_gradient(group_, "");
    last_gradient_products_ = last == group_ ? gradient_products_ : build_gradient(last, " (last group)");
}

void WinogradMatmul::load_weights(const float* weights_oihw) {
    winograd_weights(weights_oihw, shape_, static_cast<float*>(u_.get_data_handle()));
}

// Calls each(first tile, tiles, last group?, v's staging, m's staging) for each group in turn.
template <class Each>
void WinogradMatmul::for_each_group(Each each) {
    if (!staging_) throw std::logic_error(name_ + ": a Winograd convolution runs only once it has its staging buffer");
    for (int64_t first = 0; first < tiles_; first += group_) {
        const int64_t tiles = std::min(group_, tiles_ - first);
        each(first, tiles, first + group_ >= tiles_, reinterpret_cast<float*>(staging_),
             reinterpret_cast<float*>(staging_ + products_offset(tiles)));
    }
}

// Runs `products` on the staged v (its source) and m (Products::m_arg).
void WinogradMatmul::run(Products& products, void* v_data, void* m_data) {
    products.args.at(DNNL_ARG_SRC).set_data_handle(v_data);
    products.args.at(products.m_arg).set_data_handle(m_data);
    products.args[DNNL_ARG_SCRATCHPAD] = ctx_.scratchpad();
    products.product.execute(ctx_.stream(), products.args);
}

void WinogradMatmul::forward(const float* src, float* dst) {
    for_each_group([&](int64_t first, int64_t tiles, bool last, float* v_data, float* m_data) {
        winograd_input_tiles(src, shape_, first, tiles, v_data);
        run(last ? last_products_ : products_, v_data, m_data);
        winograd_output_tiles(m_data, shape_, first, tiles, dst);
    });
}

void WinogradMatmul::weight_gradient(const float* src, const float* ddst, float* dweights_oihw) {
    if (passes_ != WinogradPasses::forward_and_weight_gradient)
        throw std::logic_error(name_ + ": built for the forward alone");
    std::fill_n(static_cast<float*>(du_.get_data_handle()), du_.get_desc().get_size() / sizeof(float), 0.0f);
    for_each_group([&](int64_t first, int64_t tiles, bool last, float* v_data, float* dm_data) {
        winograd_input_tiles(src, shape_, first, tiles, v_data);
        winograd_output_gradient_tiles(ddst, shape_, first, tiles, dm_data);
        run(last ? last_gradient_products_ : gradient_products_, v_data, dm_data);
    });
    winograd_weight_gradient(static_cast<const float*>(du_.get_data_handle()), shape_, dweights_oihw);
}

}  // namespace dn
