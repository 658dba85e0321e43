// ctxtree_test/sanitizer.hpp — whether this build runs under a sanitizer, and what tests scale by.
#pragma once

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CTXTREE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CTXTREE_TEST_SANITIZED 1
#endif
#endif
#ifndef CTXTREE_TEST_SANITIZED
#define CTXTREE_TEST_SANITIZED 0
#endif

#if defined(__SANITIZE_THREAD__)
#define CTXTREE_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CTXTREE_TEST_TSAN 1
#endif
#endif
#ifndef CTXTREE_TEST_TSAN
#define CTXTREE_TEST_TSAN 0
#endif

namespace ctxtree_test {

inline constexpr bool kSanitized = CTXTREE_TEST_SANITIZED != 0;

// Repetition counts for pure race loops: sanitizers slow every step down 5-15x.
constexpr int Scaled(int n) { return kSanitized ? (n / 10 > 0 ? n / 10 : 1) : n; }

}  // namespace ctxtree_test
