// glassbox: advice to the operating system about large buffers.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace glassbox::detail {

/// Asks Linux (5.14 or newer) to map the whole pages of [data, data + bytes) for writing in one call
/// (madvise MADV_POPULATE_WRITE), before a pass fills them: one system call instead of a page fault
/// per 4 KiB. For large buffers filled once (activation rows). Does nothing elsewhere, or when the
/// kernel declines. (Transparent huge pages, tried too, made the kernel's part slower here.)
template <class = void>
inline void prefault_for_writing(void* data, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  constexpr std::uintptr_t page = 4096;
  const auto start = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t begin = (start + page - 1) & ~(page - 1), end = (start + bytes) & ~(page - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace glassbox::detail
