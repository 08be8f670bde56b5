// ssdcore/version.h: the version of the ssdcore C++ API.
//
// SSDCORE_VERSION_* describe the headers you compiled against; ssdcore::version() returns the
// version of the library you linked. They must agree (the package's CMake version file enforces the
// same major.minor at find_package time). The build checks that these numbers equal the CMake
// project version. Any thread.
#pragma once

#define SSDCORE_VERSION_MAJOR 0
#define SSDCORE_VERSION_MINOR 1
#define SSDCORE_VERSION_PATCH 0
#define SSDCORE_VERSION_STRING "0.1.0"

namespace ssdcore {

// "major.minor.patch" of the linked library.
const char* version() noexcept;

}  // namespace ssdcore
