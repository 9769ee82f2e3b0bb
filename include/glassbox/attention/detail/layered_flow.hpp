// glassbox: exact maximum flows between the top and bottom levels of a layered attention graph.
//
// Levels 0..n hold T positions each; level k's position p has an edge to level k-1's position
// q with capacity C_k[p, q] (the residual-corrected attention of layer first + k - 1). Every
// edge goes one level down, so a source at level n reaches the sinks at level 0 only through
// levels n-1 .. 1.
//
// Each (source, sink) problem is solved exactly by Dinic's algorithm (Dinic 1970): repeat
// { BFS distances from the source over arcs with residual capacity; a blocking flow along arcs
// that go one distance up, found by depth-first search with current-arc pointers } until the
// sink is unreachable. On the layered graph every source-sink path of the first phase has the
// same length, and a few phases suffice.
//
// The graph is never built as adjacency lists. Capacities are read from the dense layer
// matrices, and the flow of a problem lives in one dense block per level pair, over the
// positions that matter; an arc (k, p) -> (k - 1, q) has residual C_k[p, q] - F_k[p, q], its
// reverse F_k[p, q]. Work shared across the T^2 problems, all exact:
//   - per layer row and column, the range of positions with a non-zero capacity (a causal
//     mask makes row p's range 0..p), so no zero is scanned under a causal mask;
//   - for every sink, the set of nodes that can reach it, computed once for all sources; for
//     every source, the set it reaches, computed once for all sinks; a pair whose sink is
//     unreachable has flow 0 without a solve;
//   - each problem runs on the nodes that lie on some source-sink path (the others cannot carry
//     flow); under a causal mask that is positions j..i at every level;
//   - buffers are reused across problems (one workspace per thread).
//
// Floating point: a residual <= epsilon counts as zero (capacities are attention weights <= 1,
// so the default 1e-12 is far below any meaningful weight and far above rounding noise).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "glassbox/detail/eigen.hpp"

namespace glassbox::detail {

/// Per-thread buffers of layered_flow_network::flows_from.
struct layered_flow_workspace {
  std::vector<std::uint8_t> from_source;     ///< [(n + 1) * T] reachable from the current source
  std::vector<std::int32_t> low, high;       ///< per level: range of the problem's positions
  std::vector<std::size_t> node_offset;      ///< per level: index of position low[k] in the node arrays
  std::vector<std::size_t> block;            ///< per level k >= 1: offset of the flow block F_k
  std::vector<double> flow;                  ///< flow blocks, F_k[p - low[k], q - low[k - 1]]
  std::vector<std::int32_t> distance;        ///< BFS distance per node; -1 unvisited, -2 not in the problem
  std::vector<std::int32_t> current;         ///< current-arc pointer per node
  std::vector<std::int32_t> queue_level;     ///< level of each queued node
  std::vector<std::int32_t> queue_position;  ///< position of each queued node
  struct step {
    std::int32_t level, position, other;  // arc from (level, position) to (level -/+ 1, other)
    bool down;                            // a capacity arc (down) or a reverse arc (up)
  };
  std::vector<step> path;    ///< the current augmenting path
  std::size_t problems = 0;  ///< max-flow problems solved
  std::size_t phases = 0;    ///< Dinic phases over all problems
};

/// The layered graph of a set of capacity matrices, with reachability shared across problems.
template <class = void>
class basic_layered_flow_network {
 public:
  /// `capacities[k - 1]` holds the edges from level k to level k - 1 (k = 1..n), each [T, T];
  /// entries <= epsilon are not edges.
  basic_layered_flow_network(const std::vector<row_matrix<double>>& capacities, double epsilon)
      : n_(capacities.size()), t_(static_cast<std::size_t>(capacities.front().rows())), epsilon_(epsilon) {
    const std::size_t t = t_;
    capacity_.assign(n_ * t * t, 0.0);
    row_low_.assign(n_ * t, 0);
    row_high_.assign(n_ * t, -1);
    column_low_.assign(n_ * t, 0);
    column_high_.assign(n_ * t, -1);
    for (std::size_t k = 1; k <= n_; ++k) {
      const auto& c = capacities[k - 1];
      double* out = capacity_.data() + (k - 1) * t * t;
      for (std::size_t p = 0; p < t; ++p)
        for (std::size_t q = 0; q < t; ++q) {
          const double v = c(static_cast<Eigen::Index>(p), static_cast<Eigen::Index>(q));
          if (v <= epsilon_) continue;
          out[p * t + q] = v;
          extend(row_low_[(k - 1) * t + p], row_high_[(k - 1) * t + p], static_cast<std::int32_t>(q));
          extend(column_low_[(k - 1) * t + q], column_high_[(k - 1) * t + q], static_cast<std::int32_t>(p));
        }
    }
    // Whether every row's and column's non-zero entries form one contiguous range.
    std::vector<std::int32_t> row_count(n_ * t, 0), column_count(n_ * t, 0);
    for (std::size_t k = 0; k < n_; ++k)
      for (std::size_t p = 0; p < t; ++p)
        for (std::size_t q = 0; q < t; ++q)
          if (capacity_[(k * t + p) * t + q] > 0) {
            ++row_count[k * t + p];
            ++column_count[k * t + q];
          }
    contiguous_ = true;
    for (std::size_t r = 0; r < n_ * t; ++r) {
      if (row_count[r] != std::max(0, row_high_[r] - row_low_[r] + 1)) contiguous_ = false;
      if (column_count[r] != std::max(0, column_high_[r] - column_low_[r] + 1)) contiguous_ = false;
    }
    // reaches_sink_[j][k * T + p]: node (k, p) has a path to sink (0, j).
    reaches_sink_.assign(t * (n_ + 1) * t, 0);
    for (std::size_t j = 0; j < t; ++j) {
      std::uint8_t* r = reaches_sink_.data() + j * (n_ + 1) * t;
      r[j] = 1;
      for (std::size_t k = 1; k <= n_; ++k) {
        const double* c = capacity_.data() + (k - 1) * t * t;
        for (std::size_t p = 0; p < t; ++p) {
          const std::int32_t hi = row_high_[(k - 1) * t + p];
          for (std::int32_t q = row_low_[(k - 1) * t + p]; q <= hi; ++q)
            if (c[p * t + static_cast<std::size_t>(q)] > 0 && r[(k - 1) * t + static_cast<std::size_t>(q)]) {
              r[k * t + p] = 1;
              break;
            }
        }
      }
    }
  }

  /// Number of levels above the sinks (n).
  std::size_t levels() const { return n_; }
  /// Positions per level (T).
  std::size_t tokens() const { return t_; }

  /// The maximum flow from top-level position `source` to every bottom-level position, into
  /// out[0..T).
  void flows_from(std::size_t source, std::span<double> out, layered_flow_workspace& ws) const {
    const std::size_t t = t_, n = n_;
    ws.from_source.assign((n + 1) * t, 0);
    ws.from_source[n * t + source] = 1;
    for (std::size_t k = n; k >= 1; --k) {
      const double* c = capacity_.data() + (k - 1) * t * t;
      for (std::size_t p = 0; p < t; ++p) {
        if (!ws.from_source[k * t + p]) continue;
        const std::int32_t hi = row_high_[(k - 1) * t + p];
        for (std::int32_t q = row_low_[(k - 1) * t + p]; q <= hi; ++q)
          if (c[p * t + static_cast<std::size_t>(q)] > 0) ws.from_source[(k - 1) * t + static_cast<std::size_t>(q)] = 1;
      }
    }
    for (std::size_t j = 0; j < t; ++j) {
      out[j] = 0;
      if (!ws.from_source[j]) continue;  // the sink is unreachable: flow 0
      out[j] = solve(source, j, ws);
    }
  }

 private:
  static void extend(std::int32_t& low, std::int32_t& high, std::int32_t x) {
    if (high < low) {
      low = high = x;
    } else {
      low = std::min(low, x);
      high = std::max(high, x);
    }
  }

  double cap(std::size_t k, std::size_t p, std::size_t q) const { return capacity_[((k - 1) * t_ + p) * t_ + q]; }

  // One (source, sink) problem by Dinic's algorithm on the nodes of some source-sink path.
  double solve(std::size_t source, std::size_t sink, layered_flow_workspace& ws) const {
    const std::size_t t = t_, n = n_;
    const std::uint8_t* to_sink = reaches_sink_.data() + sink * (n + 1) * t;
    ws.low.assign(n + 1, 0);
    ws.high.assign(n + 1, -1);
    ws.node_offset.assign(n + 2, 0);
    for (std::size_t k = 0; k <= n; ++k) {
      std::int32_t lo = -1, hi = -1;
      for (std::size_t p = 0; p < t; ++p)
        if (ws.from_source[k * t + p] && to_sink[k * t + p]) {
          if (lo < 0) lo = static_cast<std::int32_t>(p);
          hi = static_cast<std::int32_t>(p);
        }
      ws.low[k] = lo < 0 ? 0 : lo;
      ws.high[k] = hi;
      ws.node_offset[k + 1] = ws.node_offset[k] + width(ws, k);
    }
    const std::size_t nodes = ws.node_offset[n + 1];
    ws.distance.resize(nodes);
    ws.current.resize(nodes);
    for (std::size_t k = 0; k <= n; ++k)
      for (std::int32_t p = ws.low[k]; p <= ws.high[k]; ++p) {
        const std::size_t v = k * t + static_cast<std::size_t>(p);
        ws.distance[index(ws, k, p)] = ws.from_source[v] && to_sink[v] ? -1 : -2;
      }
    ws.block.assign(n + 1, 0);
    std::size_t size = 0;
    for (std::size_t k = 1; k <= n; ++k) {
      ws.block[k] = size;
      size += width(ws, k) * width(ws, k - 1);
    }
    // Zero the flow entries the arcs can address. When every row's and column's non-zero
    // capacities are contiguous (causal or full attention, sliding windows), an arc's range holds
    // no zero capacity, a reverse arc (k, q) -> (k + 1, r) lies inside row r's range, and zeroing
    // the rows' ranges suffices (half the block under a causal mask); otherwise zero everything.
    if (!contiguous_) {
      ws.flow.assign(size, 0.0);
    } else if (ws.flow.size() < size) {
      ws.flow.resize(size);
    }
    for (std::size_t k = 1; k <= n && contiguous_; ++k)
      for (std::int32_t p = ws.low[k]; p <= ws.high[k]; ++p) {
        const arc_view v = arcs(ws, k, p);
        if (v.down_high >= v.down_low)
          std::fill_n(ws.flow.begin() + (v.down_flow + v.down_low), v.down_high - v.down_low + 1, 0.0);
      }
    ws.queue_level.resize(nodes);
    ws.queue_position.resize(nodes);

    const auto s_level = static_cast<std::int32_t>(n), s_pos = static_cast<std::int32_t>(source);
    const auto t_pos = static_cast<std::int32_t>(sink);
    // Phase 1 needs no search: every node of the problem lies on a source-sink path of n edges
    // (one per level), so its distance from the source is n - level.
    for (std::size_t k = 0; k <= n; ++k)
      for (std::int32_t p = ws.low[k]; p <= ws.high[k]; ++p) {
        std::int32_t& d = ws.distance[index(ws, k, p)];
        if (d != -2) d = static_cast<std::int32_t>(n - k);
      }
    double total = 0;
    bool first = true;
    while (first || levels_from_source(ws, s_level, s_pos, t_pos)) {
      first = false;
      ++ws.phases;
      total += blocking_flow(ws, s_level, s_pos, t_pos);
      // Reset the distances of the nodes in the problem for the next BFS.
      for (std::size_t k = 0; k <= n; ++k)
        for (std::int32_t p = ws.low[k]; p <= ws.high[k]; ++p) {
          std::int32_t& d = ws.distance[index(ws, k, p)];
          if (d != -2) d = -1;
        }
    }
    ++ws.problems;
    return total;
  }

  static std::size_t width(const layered_flow_workspace& ws, std::size_t k) {
    return ws.high[k] < ws.low[k] ? 0 : static_cast<std::size_t>(ws.high[k] - ws.low[k] + 1);
  }
  static std::size_t index(const layered_flow_workspace& ws, std::size_t k, std::int32_t p) {
    return ws.node_offset[k] + static_cast<std::size_t>(p - ws.low[k]);
  }
  // F_k[p, q] for an edge (k, p) -> (k - 1, q).
  static double& flow_of(layered_flow_workspace& ws, std::size_t k, std::int32_t p, std::int32_t q) {
    return ws.flow[ws.block[k] + static_cast<std::size_t>(p - ws.low[k]) * width(ws, k - 1) +
                   static_cast<std::size_t>(q - ws.low[k - 1])];
  }
  // The arcs of node (k, p) within the problem: capacity arcs down to positions
  // down_low..down_high of level k - 1, reverse arcs up to positions up_low..up_high of level
  // k + 1, with the offsets that address their capacity, flow and the distance of their head.
  struct arc_view {
    std::int32_t down_low = 0, down_high = -1, up_low = 0, up_high = -1;
    const double* capacity = nullptr;           // capacity[q] = C_k[p, q]
    std::ptrdiff_t down_flow = 0;               // flow[down_flow + q] = F_k[p, q]
    std::ptrdiff_t down_distance = 0;           // distance[down_distance + q] of node (k - 1, q)
    std::ptrdiff_t up_flow = 0, up_stride = 0;  // flow[up_flow + r * up_stride] = F_{k+1}[r, p]
    std::ptrdiff_t up_distance = 0;             // distance[up_distance + r] of node (k + 1, r)
  };
  arc_view arcs(const layered_flow_workspace& ws, std::size_t k, std::int32_t p) const {
    arc_view v;
    if (k >= 1) {
      const std::size_t row = (k - 1) * t_ + static_cast<std::size_t>(p);
      v.down_low = std::max(ws.low[k - 1], row_low_[row]);
      v.down_high = std::min(ws.high[k - 1], row_high_[row]);
      v.capacity = capacity_.data() + row * t_;
      v.down_flow = static_cast<std::ptrdiff_t>(ws.block[k]) +
                    static_cast<std::ptrdiff_t>(p - ws.low[k]) * static_cast<std::ptrdiff_t>(width(ws, k - 1)) -
                    ws.low[k - 1];
      v.down_distance = static_cast<std::ptrdiff_t>(ws.node_offset[k - 1]) - ws.low[k - 1];
    }
    if (k < n_) {
      const std::size_t column = k * t_ + static_cast<std::size_t>(p);  // column p of C_{k+1}
      v.up_low = std::max(ws.low[k + 1], column_low_[column]);
      v.up_high = std::min(ws.high[k + 1], column_high_[column]);
      v.up_stride = static_cast<std::ptrdiff_t>(width(ws, k));
      v.up_flow = static_cast<std::ptrdiff_t>(ws.block[k + 1]) - ws.low[k + 1] * v.up_stride + (p - ws.low[k]);
      v.up_distance = static_cast<std::ptrdiff_t>(ws.node_offset[k + 1]) - ws.low[k + 1];
    }
    return v;
  }

  // BFS distances from the source over arcs with residual > epsilon; true when the sink is reached.
  bool levels_from_source(layered_flow_workspace& ws, std::int32_t s_level, std::int32_t s_pos,
                          std::int32_t t_pos) const {
    std::size_t head = 0, tail = 0;
    ws.distance[index(ws, static_cast<std::size_t>(s_level), s_pos)] = 0;
    ws.queue_level[tail] = s_level;
    ws.queue_position[tail++] = s_pos;
    std::int32_t sink_distance = -1;
    while (head < tail) {
      const auto k = static_cast<std::size_t>(ws.queue_level[head]);
      const std::int32_t p = ws.queue_position[head++];
      const std::int32_t next = ws.distance[index(ws, k, p)] + 1;
      if (sink_distance >= 0 && next > sink_distance) break;
      const arc_view v = arcs(ws, k, p);
      for (std::int32_t q = v.down_low; q <= v.down_high; ++q) {
        std::int32_t& d = ws.distance[static_cast<std::size_t>(v.down_distance + q)];
        if (d != -1 || v.capacity[q] - ws.flow[static_cast<std::size_t>(v.down_flow + q)] <= epsilon_) continue;
        d = next;
        if (k == 1 && q == t_pos) sink_distance = next;
        ws.queue_level[tail] = static_cast<std::int32_t>(k - 1);
        ws.queue_position[tail++] = q;
      }
      for (std::int32_t r = v.up_low; r <= v.up_high; ++r) {
        std::int32_t& d = ws.distance[static_cast<std::size_t>(v.up_distance + r)];
        if (d != -1 || ws.flow[static_cast<std::size_t>(v.up_flow + r * v.up_stride)] <= epsilon_) continue;
        d = next;
        ws.queue_level[tail] = static_cast<std::int32_t>(k + 1);
        ws.queue_position[tail++] = r;
      }
    }
    return sink_distance >= 0;
  }

  // One blocking flow: advance along admissible arcs (residual > epsilon, one distance up),
  // augment by the bottleneck at the sink, retreat to the tail of the first saturated arc; a node
  // without an admissible arc left leaves the level graph.
  double blocking_flow(layered_flow_workspace& ws, std::int32_t s_level, std::int32_t s_pos, std::int32_t t_pos) const {
    for (std::size_t k = 0; k <= n_; ++k)
      for (std::int32_t p = ws.low[k]; p <= ws.high[k]; ++p) ws.current[index(ws, k, p)] = 0;
    ws.path.clear();
    double total = 0;
    std::int32_t k = s_level, p = s_pos;
    auto residual = [&](const layered_flow_workspace::step& x) {
      const auto kk = static_cast<std::size_t>(x.level);
      return x.down ? cap(kk, static_cast<std::size_t>(x.position), static_cast<std::size_t>(x.other)) -
                          flow_of(ws, kk, x.position, x.other)
                    : flow_of(ws, kk + 1, x.other, x.position);
    };
    while (true) {
      if (k == 0 && p == t_pos) {
        double bottleneck = std::numeric_limits<double>::infinity();
        for (const auto& x : ws.path) bottleneck = std::min(bottleneck, residual(x));
        std::size_t first_saturated = ws.path.size();
        for (std::size_t e = 0; e < ws.path.size(); ++e) {
          const auto& x = ws.path[e];
          const auto kk = static_cast<std::size_t>(x.level);
          if (x.down) {
            flow_of(ws, kk, x.position, x.other) += bottleneck;
          } else {
            flow_of(ws, kk + 1, x.other, x.position) -= bottleneck;
          }
          if (first_saturated == ws.path.size() && residual(x) <= epsilon_) first_saturated = e;
        }
        total += bottleneck;
        ws.path.resize(first_saturated);
        if (ws.path.empty()) {
          k = s_level;
          p = s_pos;
        } else {
          const auto& x = ws.path.back();
          k = x.down ? x.level - 1 : x.level + 1;
          p = x.other;
        }
        continue;
      }
      const auto kk = static_cast<std::size_t>(k);
      const std::size_t u = index(ws, kk, p);
      const std::int32_t want = ws.distance[u] + 1;
      const arc_view v = arcs(ws, kk, p);
      const std::int32_t nd = std::max(0, v.down_high - v.down_low + 1);
      const std::int32_t nu = std::max(0, v.up_high - v.up_low + 1);
      std::int32_t& a = ws.current[u];
      bool found = false;
      for (; a < nd; ++a) {
        const std::int32_t q = v.down_low + a;
        if (ws.distance[static_cast<std::size_t>(v.down_distance + q)] != want ||
            v.capacity[q] - ws.flow[static_cast<std::size_t>(v.down_flow + q)] <= epsilon_)
          continue;
        ws.path.push_back({k, p, q, true});
        k -= 1;
        p = q;
        found = true;
        break;
      }
      if (!found) {
        for (; a < nd + nu; ++a) {
          const std::int32_t r = v.up_low + (a - nd);
          if (ws.distance[static_cast<std::size_t>(v.up_distance + r)] != want ||
              ws.flow[static_cast<std::size_t>(v.up_flow + r * v.up_stride)] <= epsilon_)
            continue;
          ws.path.push_back({k, p, r, false});
          k += 1;
          p = r;
          found = true;
          break;
        }
      }
      if (found) continue;
      // Dead end: drop the node from the level graph and retreat.
      ws.distance[u] = -1;
      if (ws.path.empty()) break;
      const auto x = ws.path.back();
      ws.path.pop_back();
      k = x.level;
      p = x.position;
      ++ws.current[index(ws, static_cast<std::size_t>(k), p)];
    }
    return total;
  }

  std::size_t n_;
  std::size_t t_;
  double epsilon_;
  bool contiguous_ = true;                              // every row's and column's non-zero capacities are contiguous
  std::vector<double> capacity_;                        // [n][T][T], entries <= epsilon stored as 0
  std::vector<std::int32_t> row_low_, row_high_;        // [n * T]: non-zero columns of row p of C_k
  std::vector<std::int32_t> column_low_, column_high_;  // [n * T]: non-zero rows of column q of C_k
  std::vector<std::uint8_t> reaches_sink_;
};

/// The layered flow network (basic_layered_flow_network's only instantiation).
using layered_flow_network = basic_layered_flow_network<>;

}  // namespace glassbox::detail
