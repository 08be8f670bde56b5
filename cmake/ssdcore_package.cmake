# cmake/ssdcore_package.cmake: the public C++ API's include directories, install rules and the
# exported CMake package (find_package(ssdcore CONFIG) -> ssdcore::ssdcore). Included by the root
# CMakeLists.txt after the ssdcore (and ssdcore_cuda) targets exist.
#
# Layouts (SSD_INSTALL_LAYOUT):
#   standard  <prefix>/lib/libssdcore.a, <prefix>/include/ssdcore/*.h, <prefix>/lib/cmake/ssdcore/
#   wheel     the same under the Python package dir: <platlib>/ssdcore/{lib,include,lib/cmake/ssdcore}
#             (default when scikit-build-core drives the build; `python -m ssdcore --cmake-dir`
#             prints the cmake dir). Only the wheel layout is used by `pip install`.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(DEFINED SKBUILD_PROJECT_NAME)
  set(_ssd_default_layout wheel)
else()
  set(_ssd_default_layout standard)
endif()
set(SSD_INSTALL_LAYOUT "${_ssd_default_layout}" CACHE STRING "Install layout: standard or wheel")
set_property(CACHE SSD_INSTALL_LAYOUT PROPERTY STRINGS standard wheel)
if(SSD_INSTALL_LAYOUT STREQUAL "wheel")
  set(SSD_INSTALL_LIBDIR ssdcore/lib)
  set(SSD_INSTALL_INCLUDEDIR ssdcore/include)
elseif(SSD_INSTALL_LAYOUT STREQUAL "standard")
  set(SSD_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR})
  set(SSD_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
else()
  message(FATAL_ERROR "SSD_INSTALL_LAYOUT = \"${SSD_INSTALL_LAYOUT}\": allowed \"standard\", \"wheel\"")
endif()
set(SSD_INSTALL_CMAKEDIR ${SSD_INSTALL_LIBDIR}/cmake/ssdcore)

# The public headers must carry the project version.
file(STRINGS ${PROJECT_SOURCE_DIR}/cpp/include/ssdcore/version.h _ssd_version_line
     REGEX "^#define SSDCORE_VERSION_STRING ")
if(NOT _ssd_version_line MATCHES "\"${PROJECT_VERSION}\"")
  message(FATAL_ERROR "cpp/include/ssdcore/version.h (${_ssd_version_line}) does not match the "
                      "project version ${PROJECT_VERSION}")
endif()

# Consumers see only the public headers; the internal ones (cpp/, cuda/) are for this build.
target_include_directories(ssdcore PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/cpp/include>
  $<INSTALL_INTERFACE:${SSD_INSTALL_INCLUDEDIR}>)
if(SSD_TSAN)
  # An instrumented static library needs the TSan runtime wherever it is linked.
  target_link_options(ssdcore INTERFACE -fsanitize=thread)
endif()

# The runtime and the layers it links (static archives: a consumer links all of them).
set(_ssd_install_targets ssdcore ssd_sampling ssd_cpu_model ssd_core)
set(SSD_CUDA_TOOLKIT_HINT "")
set(SSD_CUDA_MAJOR "")
if(SSD_WITH_CUDA)
  list(APPEND _ssd_install_targets ssdcore_cuda)
  set(SSD_CUDA_MAJOR ${CUDAToolkit_VERSION_MAJOR})
  if(CUDAToolkit_BIN_DIR)
    get_filename_component(SSD_CUDA_TOOLKIT_HINT "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  endif()
endif()

install(TARGETS ${_ssd_install_targets} EXPORT ssdcoreTargets
  ARCHIVE DESTINATION ${SSD_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${SSD_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/cpp/include/ssdcore
  DESTINATION ${SSD_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")
install(EXPORT ssdcoreTargets NAMESPACE ssdcore:: DESTINATION ${SSD_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/ssdcoreConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/ssdcoreConfig.cmake
  INSTALL_DESTINATION ${SSD_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ssdcoreConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ssdcoreConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/ssdcoreConfigVersion.cmake
  DESTINATION ${SSD_INSTALL_CMAKEDIR})
