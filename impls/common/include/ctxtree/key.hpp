// ctxtree/key.hpp — typed keys for context values.
//
// A key's identity is its address: two keys never collide, even with equal names and types (Go's
// advice to use unexported key types, enforced by the type system). Keys are neither copyable nor
// movable and must outlive every context that binds them; they are normally globals.
#pragma once

#include <cstddef>
#include <new>
#include <string>
#include <string_view>

namespace ctxtree {
namespace detail {

// A value node is the node header (kLayerAt bytes), its layer (detail::ValueLayer, kLayerBytes),
// the function that destroys the value and frees the node (kDisposeBytes), then the bound T at
// value_offset<T>() from the layer. The disposer is in the node, not in the key: the last
// reference to a node may be dropped on another thread (the timer's, a deferred reclamation)
// after the user's last handle and the key itself are gone. The value's alignment is counted
// from the node's start, which the allocation aligns.
inline constexpr std::size_t kLayerAt = 32;
inline constexpr std::size_t kLayerBytes = 16;
using DisposeValue = void (*)(void* node, void* layer) noexcept;
inline constexpr std::size_t kDisposeBytes = sizeof(DisposeValue);
template <class T>
constexpr std::size_t value_offset() noexcept {
  return (kLayerAt + kLayerBytes + kDisposeBytes + alignof(T) - 1) / alignof(T) * alignof(T) -
         kLayerAt;
}
// Value nodes of a T aligned beyond this come from the aligned operator new.
template <class T>
inline constexpr bool kOverAligned = alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__;

// Destroys the T after `layer` and frees `node`, the value node's allocation.
template <class T>
void dispose_value(void* node, void* layer) noexcept {
  std::launder(reinterpret_cast<T*>(static_cast<char*>(layer) + value_offset<T>()))->~T();
  if constexpr (kOverAligned<T>) {
    ::operator delete (node, std::align_val_t{alignof(T)});
  } else {
    ::operator delete(node);
  }
}

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
