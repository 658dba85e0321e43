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

// A value node is an untyped part ending with its layer (detail::ValueLayer, kLayerBytes), then
// the bound T at value_offset<T>() from the layer. The key knows T, so value nodes store neither
// the offset nor a destructor: every byte a value node saves is saved per context.
// The layer sits kLayerAt bytes into its node (after the node header), and the value's alignment
// is counted from the node's start, which the allocation aligns.
inline constexpr std::size_t kLayerAt = 32;
inline constexpr std::size_t kLayerBytes = 16;
template <class T>
constexpr std::size_t value_offset() noexcept {
  return (kLayerAt + kLayerBytes + alignof(T) - 1) / alignof(T) * alignof(T) - kLayerAt;
}
// Value nodes of a T aligned beyond this come from the aligned operator new.
template <class T>
inline constexpr bool kOverAligned = alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__;

// The untyped part of a key: what to_string prints, and how to free a node binding it.
class KeyBase {
 public:
  // Destroys the value after `layer` and frees `node`, the value node's allocation.
  using Dispose = void (*)(void* node, void* layer) noexcept;

  KeyBase(std::string_view name, Dispose dispose) : name_(name), dispose_(dispose) {}
  KeyBase(const KeyBase&) = delete;
  KeyBase& operator=(const KeyBase&) = delete;
  std::string_view name() const noexcept { return name_; }
  void dispose(void* node, void* layer) const noexcept { dispose_(node, layer); }

 protected:
  ~KeyBase() = default;

 private:
  std::string name_;
  const Dispose dispose_;
};

}  // namespace detail

template <class T>
class Key : public detail::KeyBase {
 public:
  using value_type = T;
  explicit Key(std::string_view name) : detail::KeyBase(name, &dispose_value) {}

 private:
  static void dispose_value(void* node, void* layer) noexcept {
    std::launder(reinterpret_cast<T*>(static_cast<char*>(layer) + detail::value_offset<T>()))->~T();
    if constexpr (detail::kOverAligned<T>) {
      ::operator delete (node, std::align_val_t{alignof(T)});
    } else {
      ::operator delete(node);
    }
  }
};

}  // namespace ctxtree
