# The fixture of the consumer tests: configures glassbox's source tree as a packager would (only
# the library: no tests, examples, apps or benchmarks) and installs it into a fresh PREFIX.
# Run as: cmake -DSOURCE_DIR=... -DBINARY_DIR=... -DPREFIX=... -DGENERATOR=... -P install_glassbox.cmake
foreach(variable SOURCE_DIR BINARY_DIR PREFIX GENERATOR)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "install_glassbox.cmake: ${variable} is not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "install_glassbox.cmake: failed (${result}): ${command}")
  endif()
endfunction()

file(REMOVE_RECURSE "${PREFIX}")
set(configure_args -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release
                   -DGLASSBOX_BUILD_TESTS=OFF -DGLASSBOX_BUILD_EXAMPLES=OFF -DGLASSBOX_BUILD_APPS=OFF
                   -DGLASSBOX_BUILD_BENCH=OFF -DGLASSBOX_INSTALL=ON)
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
run("${CMAKE_COMMAND}" ${configure_args})
run("${CMAKE_COMMAND}" --build "${BINARY_DIR}" --config Release)
run("${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${PREFIX}" --config Release)

# What a package must contain: the config, its version file, the exported target and the headers.
file(GLOB_RECURSE config_files "${PREFIX}/*/glassboxConfig.cmake")
file(GLOB_RECURSE version_files "${PREFIX}/*/glassboxConfigVersion.cmake")
file(GLOB_RECURSE target_files "${PREFIX}/*/glassboxTargets.cmake")
foreach(found config_files version_files target_files)
  if(NOT ${found})
    message(FATAL_ERROR "install_glassbox.cmake: the install into ${PREFIX} has no ${found}")
  endif()
endforeach()
file(GLOB_RECURSE source_headers RELATIVE "${SOURCE_DIR}/include" "${SOURCE_DIR}/include/*.hpp")
foreach(header IN LISTS source_headers)
  if(NOT EXISTS "${PREFIX}/include/${header}")
    message(FATAL_ERROR "install_glassbox.cmake: ${header} was not installed into ${PREFIX}/include")
  endif()
endforeach()
list(LENGTH source_headers n_headers)
message(STATUS "installed glassbox into ${PREFIX}: ${n_headers} headers, ${config_files}")
