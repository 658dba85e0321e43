// tests/lock_free/lock_free_trees.hpp — the trees whose operations are lock-free, and what their
// typed suites share.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <ctxtree/ctxtree.hpp>
#include <ctxtree_test/alloc.hpp>
#include <ctxtree_test/freezer.hpp>
#include <ctxtree_test/sanitizer.hpp>
#include <thread>

namespace lock_free_test {

using LockFreeTrees = ::testing::Types<ctxtree::LockFreeTree, ctxtree::EpochTree>;

using ctxtree_test::Freezer;
using ctxtree_test::FrozenThread;
using ctxtree_test::kSanitized;
using ctxtree_test::RunTogether;
using ctxtree_test::Scaled;
using namespace std::chrono_literals;

template <class Tree>
using Pair = std::pair<ctxtree::Context<Tree>, ctxtree::CancelFunc>;

// Live nodes after deferred frees (EpochTree) are reclaimed.
template <class Tree>
std::size_t LiveNodes() {
  ctxtree::debug::reclaim<Tree>();
  return ctxtree::debug::live_nodes<Tree>();
}

// Timers fire and drop their nodes on the timer thread: waits (bounded) for the count to settle.
template <class Tree>
bool LiveNodesReturnTo(std::size_t n) {
  const auto limit = std::chrono::steady_clock::now() + 20s;
  while (LiveNodes<Tree>() != n) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace lock_free_test
