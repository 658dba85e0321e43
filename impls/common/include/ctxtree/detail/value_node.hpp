// ctxtree/detail/value_node.hpp — making a value node and reading its value, by the layout that
// values.hpp states (node header, ValueLayer, disposer, then the T).
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "ctxtree/detail/node.hpp"
#include "ctxtree/detail/values.hpp"
#include "ctxtree/key.hpp"

namespace ctxtree::detail {

// A value node: ValueNodeBase, its disposer, then the T, in one allocation that the disposer
// frees (values.hpp); the node stores no offset: the disposer knows T.
template <class Tree, class T, class U>
ValueNodeBase<Tree>* make_value_node(Node<Tree>* p, const Key<T>& k, U&& v) {
  static_assert(sizeof(ValueNodeBase<Tree>) == sizeof(LayerNode<Tree>) + sizeof(ValueLayer),
                "the layer ends the untyped part");
  static_assert(sizeof(LayerNode<Tree>) == kLayerAt, "value_offset counts the header");
  static_assert(alignof(ValueNodeBase<Tree>) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  constexpr std::size_t value_at = sizeof(ValueNodeBase<Tree>) - sizeof(ValueLayer) +
                                   value_offset<T>();  // from the node: after the layer
  constexpr std::size_t bytes = value_at + sizeof(T);
  void* mem = kOverAligned<T> ? ::operator new (bytes, std::align_val_t{alignof(T)})
                              : ::operator new(bytes);
  auto* n = new (mem) ValueNodeBase<Tree>(p, &k);
  const DisposeValue dispose = &dispose_value<T>;
  std::memcpy(static_cast<char*>(mem) + kLayerAt + kLayerBytes, &dispose, sizeof dispose);
  try {
    new (static_cast<char*>(mem) + value_at) T(std::forward<U>(v));
  } catch (...) {
    n->~ValueNodeBase();
    if constexpr (kOverAligned<T>) {
      ::operator delete (mem, std::align_val_t{alignof(T)});
    } else {
      ::operator delete(mem);
    }
    throw;
  }
  link_layer(n->layer, p->values);
  return n;
}

// The T bound by a layer that a Key<T> found.
template <class T>
const T* bound_value(const ValueLayer* l) noexcept {
  return std::launder(
      reinterpret_cast<const T*>(reinterpret_cast<const char*>(l) + value_offset<T>()));
}

}  // namespace ctxtree::detail
