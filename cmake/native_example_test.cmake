# cmake/native_example_test.cmake: the steps of the native example package test (cmake -P script,
# driven by cmake/native_tests.cmake). STEP selects one:
#   install  (BUILD_DIR, WORK_DIR, CONFIG)  fresh `cmake --install BUILD_DIR --prefix WORK_DIR/prefix`
#   build    (WORK_DIR, EXAMPLE_DIR, GENERATOR, CXX_COMPILER, CONFIG, CXX_FLAGS, LINK_FLAGS)
#            configures EXAMPLE_DIR as a separate project with CMAKE_PREFIX_PATH=WORK_DIR/prefix, so
#            find_package(ssdcore) resolves to the installed package, then builds it
#   run      (WORK_DIR) runs the example; its exit status is the test's
cmake_minimum_required(VERSION 3.20)

function(run_or_fail)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "command failed (${rc}): ${cmd}")
  endif()
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/example-build)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()

if(STEP STREQUAL "install")
  file(REMOVE_RECURSE ${WORK_DIR})
  run_or_fail(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} ${config_args})
  if(NOT EXISTS ${prefix}/include/ssdcore/ssdcore.h)
    message(FATAL_ERROR "the install has no include/ssdcore/ssdcore.h")
  endif()
  # Only public headers are installed, and they include nothing but each other and the standard
  # library.
  file(GLOB_RECURSE headers RELATIVE ${prefix} ${prefix}/*.h ${prefix}/*.hpp ${prefix}/*.cuh)
  foreach(h ${headers})
    if(NOT h MATCHES "^include/ssdcore/[a-z_]+\\.h$")
      message(FATAL_ERROR "unexpected header installed: ${h}")
    endif()
    file(STRINGS ${prefix}/${h} includes REGEX "^#include \"")
    foreach(inc ${includes})
      if(NOT inc MATCHES "^#include \"ssdcore/[a-z_]+\\.h\"")
        message(FATAL_ERROR "${h} includes a non-public header: ${inc}")
      endif()
    endforeach()
  endforeach()
  message(STATUS "installed public headers: ${headers}")
elseif(STEP STREQUAL "build")
  set(build_type ${CONFIG})
  if(NOT build_type)
    set(build_type Release)
  endif()
  run_or_fail(${CMAKE_COMMAND} -S ${EXAMPLE_DIR} -B ${build} -G ${GENERATOR}
              -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${build_type}
              -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON
              "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}")
  run_or_fail(${CMAKE_COMMAND} --build ${build} ${config_args})
elseif(STEP STREQUAL "run")
  file(GLOB_RECURSE exe ${build}/ssd_native_example ${build}/ssd_native_example.exe)
  if(NOT exe)
    message(FATAL_ERROR "no ssd_native_example under ${build}")
  endif()
  list(GET exe 0 exe)
  run_or_fail(${exe})
else()
  message(FATAL_ERROR "STEP = \"${STEP}\": allowed install, build, run")
endif()
