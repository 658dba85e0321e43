// ctxtree_model/relacy.hpp — relacy's simulator without its std-replacing macros.
//
// <relacy/relacy.hpp> #defines new, delete, malloc, free, memory_order_* and pthread_*, which
// breaks libstdc++ 12 and the production sources; its parts below define none of them. Plain
// new/delete still reach relacy's allocator (relacy replaces the global operator new/delete), so
// frees are tracked and an access to freed memory through a simulated atomic or var is reported.
#pragma once

#include <relacy/atomic.hpp>
#include <relacy/atomic_fence.hpp>
#include <relacy/backoff.hpp>
#include <relacy/base.hpp>
#include <relacy/context.hpp>
#include <relacy/context_base_impl.hpp>
#include <relacy/dyn_thread.hpp>
#include <relacy/stdlib/condition_variable.hpp>
#include <relacy/stdlib/event.hpp>
#include <relacy/stdlib/mutex.hpp>
#include <relacy/stdlib/semaphore.hpp>
#include <relacy/test_suite.hpp>
#include <relacy/thread_local.hpp>
#include <relacy/var.hpp>
