# cmake/native_tests.cmake: CTest tests of the public C++ API and of the installed CMake package.
# Included by the root CMakeLists.txt inside `if(SSD_BUILD_TESTS)` (after enable_testing()).
#
#   test_public_headers_cxx17/20  every public header, alone and together, compiled with only
#                                 cpp/include on the include path (no internal header can sneak in)
#                                 and -Wall -Wextra -Wpedantic -Werror, in C++17 and C++20
#   test_public_api_cxx17/20      the ssdcore::Engine facade against toy runners, same warnings
#   native_package_install        cmake --install of this build into a scratch prefix
#   native_example_build          configures examples/native as a separate project against that
#                                 prefix (find_package(ssdcore)) and builds it
#   native_example_run            runs it: exits non-zero unless sd and ssd outputs equal ar's
# Under SSD_TSAN the example is compiled with -fsanitize=thread too, so its ModelRunner runs under
# ThreadSanitizer (scripts/test.sh sets TSAN_OPTIONS=halt_on_error=1).
set(_ssd_strict_warnings -Wall -Wextra -Wpedantic -Werror)

# One translation unit per public header, including only that header: each must be self-contained.
file(GLOB _ssd_public_headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/cpp/include/ssdcore/*.h)
set(_ssd_header_tus "")
foreach(h ${_ssd_public_headers})
  get_filename_component(name ${h} NAME_WE)
  set(tu ${CMAKE_CURRENT_BINARY_DIR}/public_header_tus/${name}.cpp)
  file(CONFIGURE OUTPUT ${tu} CONTENT "#include \"ssdcore/${name}.h\"  // must compile alone\n")
  list(APPEND _ssd_header_tus ${tu})
endforeach()

foreach(std 17 20)
  add_executable(test_public_headers_cxx${std} ${PROJECT_SOURCE_DIR}/cpp/tests/public/public_headers_check.cpp
                 ${_ssd_header_tus})
  target_include_directories(test_public_headers_cxx${std} PRIVATE ${PROJECT_SOURCE_DIR}/cpp/include)
  set_target_properties(test_public_headers_cxx${std} PROPERTIES CXX_STANDARD ${std} CXX_EXTENSIONS OFF)
  target_compile_options(test_public_headers_cxx${std} PRIVATE ${_ssd_strict_warnings})
  add_test(NAME test_public_headers_cxx${std} COMMAND test_public_headers_cxx${std})

  add_executable(test_public_api_cxx${std} ${PROJECT_SOURCE_DIR}/cpp/tests/public/public_api_tests.cpp)
  target_link_libraries(test_public_api_cxx${std} PRIVATE ssdcore)
  target_include_directories(test_public_api_cxx${std} PRIVATE ${PROJECT_SOURCE_DIR}/cpp/tests)
  set_target_properties(test_public_api_cxx${std} PROPERTIES CXX_STANDARD ${std} CXX_EXTENSIONS OFF)
  target_compile_options(test_public_api_cxx${std} PRIVATE ${_ssd_strict_warnings})
  add_test(NAME test_public_api_cxx${std} COMMAND test_public_api_cxx${std})
endforeach()

set(_ssd_native_dir ${CMAKE_BINARY_DIR}/native_example_test)
set(_ssd_example_flags "")
set(_ssd_example_link_flags "")
if(SSD_TSAN)
  set(_ssd_example_flags "-fsanitize=thread -g -O1")
  set(_ssd_example_link_flags "-fsanitize=thread")
endif()
get_property(_ssd_multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
set(_ssd_config_arg "")
if(_ssd_multi_config)
  set(_ssd_config_arg --config $<CONFIG>)
endif()

add_test(NAME native_package_install
  COMMAND ${CMAKE_COMMAND} -DSTEP=install -DBUILD_DIR=${CMAKE_BINARY_DIR} -DWORK_DIR=${_ssd_native_dir}
          -DCONFIG=$<CONFIG> -P ${CMAKE_CURRENT_LIST_DIR}/native_example_test.cmake)
add_test(NAME native_example_build
  COMMAND ${CMAKE_COMMAND} -DSTEP=build -DWORK_DIR=${_ssd_native_dir}
          -DEXAMPLE_DIR=${PROJECT_SOURCE_DIR}/examples/native -DGENERATOR=${CMAKE_GENERATOR}
          -DCXX_COMPILER=${CMAKE_CXX_COMPILER} -DCONFIG=$<CONFIG>
          -DCXX_FLAGS=${_ssd_example_flags} -DLINK_FLAGS=${_ssd_example_link_flags}
          -P ${CMAKE_CURRENT_LIST_DIR}/native_example_test.cmake)
add_test(NAME native_example_run
  COMMAND ${CMAKE_COMMAND} -DSTEP=run -DWORK_DIR=${_ssd_native_dir}
          -P ${CMAKE_CURRENT_LIST_DIR}/native_example_test.cmake)
set_tests_properties(native_package_install PROPERTIES FIXTURES_SETUP ssd_native_package)
set_tests_properties(native_example_build PROPERTIES
  FIXTURES_REQUIRED ssd_native_package FIXTURES_SETUP ssd_native_example TIMEOUT 900)
set_tests_properties(native_example_run PROPERTIES FIXTURES_REQUIRED ssd_native_example TIMEOUT 600)
