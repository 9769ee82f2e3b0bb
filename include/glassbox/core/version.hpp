// glassbox: the library version.
#pragma once

#define GLASSBOX_VERSION_MAJOR 0
#define GLASSBOX_VERSION_MINOR 1
#define GLASSBOX_VERSION_PATCH 0

namespace glassbox {
/// The library version as "major.minor.patch".
inline constexpr const char* version = "0.1.0";
}  // namespace glassbox
