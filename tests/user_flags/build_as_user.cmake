# Configures SOURCE_DIR into BINARY_DIR as a user would (CXX_COMPILER, BUILD_TYPE, CXX_FLAGS; tests,
# benchmarks and header checks off, no preset), checks that no compile command of that build turns
# warnings into errors, builds TARGETS (comma-separated), runs `glassbox info` when the command line
# is one of them, then runs the example first_explanation and compares its scores with COMPARE when
# COMPARE is given, or else runs each of TARGETS (examples, each of which checks its own result).
foreach(variable SOURCE_DIR BINARY_DIR GENERATOR CXX_COMPILER BUILD_TYPE TARGETS)
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

# CMAKE_EXPORT_COMPILE_COMMANDS only writes compile_commands.json, read below; it changes no flag.
set(configure -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
              "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}" -DGLASSBOX_BUILD_TESTS=OFF -DGLASSBOX_BUILD_BENCH=OFF
              -DGLASSBOX_BUILD_EXAMPLES=ON -DGLASSBOX_BUILD_APPS=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
if(MAKE_PROGRAM)
  list(APPEND configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(DEFINED CXX_FLAGS)
  list(APPEND configure "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
endif()
run("${CMAKE_COMMAND}" ${configure})

# Every program of a user's build, the command line's sources included, compiles without -Werror.
file(READ "${BINARY_DIR}/compile_commands.json" commands)
string(REGEX MATCHALL "\"file\": \"[^\"]*\"" files "${commands}")
list(LENGTH files file_count)
if(file_count LESS 10)
  message(FATAL_ERROR "build_as_user.cmake: compile_commands.json lists ${file_count} files; expected the command line's and the examples'")
endif()
if(commands MATCHES "-Werror")
  string(REGEX MATCH "[^\n]*-Werror[^\n]*" offending "${commands}")
  message(FATAL_ERROR "build_as_user.cmake: a user's build turns warnings into errors: ${offending}")
endif()

string(REPLACE "," ";" targets "${TARGETS}")
run("${CMAKE_COMMAND}" --build "${BINARY_DIR}" --target ${targets})
list(FIND targets glassbox_cli cli_index)
if(cli_index GREATER -1)
  run("${BINARY_DIR}/apps/glassbox" info)
endif()
if(DEFINED COMPARE)
  run("${BINARY_DIR}/examples/first_explanation" --compare "${COMPARE}")
else()
  foreach(target IN LISTS targets)
    run("${BINARY_DIR}/examples/${target}")
  endforeach()
endif()
