// lockfree_test_util.hpp — what LockFreeTree's white-box tests share: the tree's names, white-box
// access to a context's node, and the test support (freezer, allocation hook, sanitizer scaling).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctxtree/ctxtree.hpp>
#include <ctxtree/detail/config.hpp>
#include <ctxtree_test/alloc.hpp>
#include <ctxtree_test/freezer.hpp>
#include <ctxtree_test/sanitizer.hpp>
#include <functional>
#include <thread>
#include <vector>

namespace lockfree_test {

using Tree = ctxtree::LockFreeTree;
using Ctx = ctxtree::Context<Tree>;
using ctxtree_test::Freezer;
using ctxtree_test::kSanitized;
using ctxtree_test::RunTogether;
using ctxtree_test::Scaled;
using namespace std::chrono_literals;

// The cancellable node behind a context (white-box access for slot_capacity and child_count).
inline Tree::CancelNode* NodeOf(const Ctx& c) { return ctxtree::detail::Access::node(c)->anchor(); }

}  // namespace lockfree_test
