# Configures SOURCE_DIR into BINARY_DIR as a user would (CXX_COMPILER, BUILD_TYPE, CXX_FLAGS; tests,
# benchmarks and header checks off, warnings not errors), builds the command line and the example
# first_explanation, runs `glassbox info` and the example, and compares its scores with COMPARE.
foreach(variable SOURCE_DIR BINARY_DIR GENERATOR CXX_COMPILER BUILD_TYPE COMPARE)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "build_as_user.cmake: ${variable} is not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "build_as_user.cmake: failed (${result}): ${command}")
  endif()
endfunction()

set(configure -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
              "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}" -DGLASSBOX_BUILD_TESTS=OFF -DGLASSBOX_BUILD_BENCH=OFF
              -DGLASSBOX_BUILD_EXAMPLES=ON -DGLASSBOX_BUILD_APPS=ON)
if(MAKE_PROGRAM)
  list(APPEND configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(DEFINED CXX_FLAGS)
  list(APPEND configure "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
endif()
run("${CMAKE_COMMAND}" ${configure})
run("${CMAKE_COMMAND}" --build "${BINARY_DIR}" --target glassbox_cli first_explanation)
run("${BINARY_DIR}/apps/glassbox" info)
run("${BINARY_DIR}/examples/first_explanation" --compare "${COMPARE}")
