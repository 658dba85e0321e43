// ctxtree/key.hpp — typed keys for context values.
//
// A key's identity is its address: two keys never collide, even with equal names and types (Go's
// advice to use unexported key types, enforced by the type system). Keys are neither copyable nor
// movable and must outlive every context that binds them; they are normally globals.
#pragma once

#include <string>
#include <string_view>

namespace ctxtree {
namespace detail {

// The untyped part of a key: what to_string prints.
class KeyBase {
 public:
  explicit KeyBase(std::string_view name) : name_(name) {}
  KeyBase(const KeyBase&) = delete;
  KeyBase& operator=(const KeyBase&) = delete;
  std::string_view name() const noexcept { return name_; }

 protected:
  ~KeyBase() = default;

 private:
  std::string name_;
};

}  // namespace detail

template <class T>
class Key : public detail::KeyBase {
 public:
  using value_type = T;
  explicit Key(std::string_view name) : detail::KeyBase(name) {}
};

}  // namespace ctxtree
